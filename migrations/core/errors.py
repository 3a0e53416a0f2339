"""The errors the engine and phases raise for the application layer to map to exit codes."""

from __future__ import annotations


class OperationError(Exception):
    """The command ran but its work failed, was refused or found differences: exit 1 with this message (one
    line, or trustfold's own layout of several). Every exit-1 error derives from it, so the CLI maps one root.
    """


class PlanningError(OperationError):
    """The plan cannot be made (missing discovery, earlier phase not run)."""

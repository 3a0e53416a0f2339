"""The errors the engine and phases raise for the application layer to map to exit codes."""

from __future__ import annotations


class PlanningError(Exception):
    """The plan cannot be made (missing discovery, earlier phase not run)."""

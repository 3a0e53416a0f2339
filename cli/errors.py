"""Exit codes: 0 success, 1 an operation failed or verification found differences, 2 bad input."""

from __future__ import annotations


class OperationFailed(Exception):
    """The command ran but its work failed or found differences: exit 1, one line."""


EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

"""Exit codes: 0 success, 1 an operation failed or verification found differences, 2 bad input."""

from __future__ import annotations

import click


class OperationFailed(Exception):
    """The command ran but its work failed or found differences: exit 1, one line."""


EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class BadOption(click.ClickException):
    """An option's value is refused before anything is opened or changed: "Error: --opt: why", exit 2."""

    exit_code = EXIT_BAD_INPUT

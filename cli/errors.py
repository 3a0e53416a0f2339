"""Exit codes: 0 success, 1 an operation failed or verification found differences, 2 bad input."""

from __future__ import annotations

import click

from migrations.core.errors import OperationError


class OperationFailed(OperationError):
    """The command ran but its work failed or found differences: exit 1, one line. The application layer's
    refusals (migrations.core.errors.OperationError) are mapped the same way."""


EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class BadOption(click.ClickException):
    """An option's value is refused before anything is opened or changed: "Error: --opt: why", exit 2."""

    exit_code = EXIT_BAD_INPUT

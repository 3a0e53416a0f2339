"""The one error type config problems surface as: a single line naming file, line, field and the fix."""

from __future__ import annotations

from pathlib import Path


class ConfigError(Exception):
    """Bad input in config/: always reported as one line, exit code 2 at the CLI."""

    def __init__(
        self, file: Path | str | None, message: str, *, line: int | None = None, field: str | None = None
    ):
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.message = " ".join(message.split())
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or "config"
        if self.line is not None:
            where = f"{where}:{self.line}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"

"""Job keys and SAS-bearing URIs of Migration API packages: a 0600 file beside the state store, never the
store, plans, reports or logs."""

from __future__ import annotations

import json
import os
from pathlib import Path


class Secrets:
    """Job keys and SAS-bearing URIs by package: a 0600 file beside the store, never the store or logs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, dict[str, str]] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def put(self, package: str, **values: str) -> None:
        self.data.setdefault(package, {}).update(values)
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def get(self, package: str) -> dict[str, str]:
        return self.data.get(package, {})

    def drop(self, package: str) -> None:
        if self.data.pop(package, None) is not None:
            self._write()

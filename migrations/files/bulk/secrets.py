"""Job keys and SAS-bearing URIs of Migration API packages: a 0600 file beside the state store, never the
store, plans, reports or logs.

The file is replaced atomically (written beside, fsynced, renamed), so a crash leaves the old file or the new
one, never half of either. A file that does not parse is refused, never read as empty: the next write would
otherwise drop every other package's key and SAS, and those packages could no longer be followed or cleaned.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from trust import ConfigError

MODE = 0o600


class Secrets:
    """Job keys and SAS-bearing URIs by package: a 0600 file beside the store, never the store or logs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, dict[str, str]] = self._read()

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return {}
        with os.fdopen(fd) as fh:
            # Tightened on every open: a mode loosened by hand (or a copy) is never left as found.
            os.fchmod(fh.fileno(), MODE)
            text = fh.read()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                self.path,
                f"the Migration API secrets file is corrupt ({exc.msg}); nothing was changed. Restore it "
                "from a backup, or move it aside and abandon its packages (run --abandon-package)",
            ) from None
        if not isinstance(data, dict) or not all(
            isinstance(v, dict) and all(isinstance(x, str) for x in v.values()) for v in data.values()
        ):
            raise ConfigError(self.path, "the Migration API secrets file is not a map of packages")
        return data

    def put(self, package: str, **values: str) -> None:
        self.data.setdefault(package, {}).update(values)
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, MODE)
        with os.fdopen(fd, "w") as fh:
            os.fchmod(fh.fileno(), MODE)  # a stale .tmp keeps its old mode through O_CREAT
            json.dump(self.data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)  # the rename itself survives a power cut
        finally:
            os.close(dfd)

    def get(self, package: str) -> dict[str, str]:
        return self.data.get(package, {})

    def drop(self, package: str) -> None:
        if self.data.pop(package, None) is not None:
            self._write()

"""What every command receives: where config and state live, which Graph to talk to, how loud to be."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from migrations.core.store import StateStore
    from trust import Trust


@dataclass
class AppContext:
    config_dir: Path
    state_path: Path
    graph_url: str | None
    verbose: bool = False
    log_format: str = "text"
    _trust: Trust | None = field(default=None, repr=False)
    _store: StateStore | None = field(default=None, repr=False)

    def trust(self) -> Trust:
        """The validated trust; a ConfigError here becomes exit 2 before anything is changed."""
        if self._trust is None:
            from trust import load_trust

            self._trust = load_trust(self.config_dir)
        return self._trust

    def store(self, *, create: bool = True, readonly: bool = False) -> StateStore:
        """The state store; readonly for commands that only read it (an existing store is then opened with
        SQLite's mode=ro, so archived copies and read-only mounts work; a missing one is created as
        before)."""
        if self._store is None:
            from migrations.core.store import StateStore

            readonly = readonly and self.state_path.exists()
            self._store = StateStore.open(self.state_path, create=create, readonly=readonly)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @staticmethod
    def operator() -> tuple[str, str]:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = os.environ.get("USER", "unknown")
        return user, socket.gethostname()


pass_app = click.make_pass_decorator(AppContext)

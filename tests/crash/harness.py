"""Crash-test harness: trustfold runs in-process (fast) or, when a kill is asked for, as a subprocess that
the commit-boundary hook (migrations.killpoints) ends with exit code 137 at an exact store commit."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

from migrations.killpoints import ENV as KILL_ENV
from tests.identity.conftest import CONFIG

KILLED = 137


class Trustfold:
    def __init__(self, url: str, state: Path):
        self.url, self.state = url, state
        self.stderr = ""

    def env(self) -> dict[str, str]:
        return {
            "TRUSTFOLD_CONFIG_DIR": str(CONFIG),
            "TRUSTFOLD_GRAPH_URL": self.url,
            "TRUSTFOLD_STATE": str(self.state),
        }

    def __call__(self, *args: str, kill: str | None = None) -> tuple[int, str]:
        """(exit code, stdout); stderr in self.stderr. In-process unless `kill` names a commit boundary."""
        return self._call(*args, kill=kill)

    def _call(self, *args: str, kill: str | None = None) -> tuple[int, str]:
        if kill is not None:
            proc = subprocess.run(
                [sys.executable, "-c", "from cli.main import main; main()", *args],
                env={**os.environ, **self.env(), KILL_ENV: kill},
                capture_output=True,
                text=True,
                timeout=300,
            )
            self.stderr = proc.stderr
            return proc.returncode, proc.stdout
        from cli.main import run

        out, err = io.StringIO(), io.StringIO()
        saved = {k: os.environ.get(k) for k in self.env()}
        os.environ.update(self.env())
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = run(list(args))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.stderr = err.getvalue()
        return code, out.getvalue()

    def ok(self, *args: str) -> str:
        code, out = self(*args)
        assert code == 0, f"trustfold {' '.join(args)} -> {code}\n{out}\n{self.stderr}"
        return out

    def killed(self, *args: str, at: str) -> None:
        code, out = self(*args, kill=at)
        assert code == KILLED, (
            f"never reached {at}: trustfold {' '.join(args)} -> {code}\n{out[-2000:]}\n{self.stderr[-2000:]}"
        )

    def fork(self, path: Path) -> Trustfold:
        """A copy of this state store (taken while no process has it open) under `path`."""
        shutil.copyfile(self.state, path)
        return Trustfold(self.url, path)

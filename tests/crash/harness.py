"""Crash-test harness: trustfold runs in-process (fast) or, when a kill is asked for, as a subprocess that
the kill hook (migrations.core.killpoints) SIGKILLs at an exact store commit or named boundary."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from migrations.core.killpoints import ENV as KILL_ENV
from tests.identity.conftest import CONFIG

KILLED = -signal.SIGKILL  # subprocess reports death by a signal as its negated number


class Trustfold:
    def __init__(self, url: str, state: Path):
        self.url, self.state = url, state
        self.stderr = ""
        self.planned: set[tuple[str, ...]] = set()

    def env(self) -> dict[str, str]:
        return {
            "TRUSTFOLD_CONFIG_DIR": str(CONFIG),
            "TRUSTFOLD_GRAPH_URL": self.url,
            "TRUSTFOLD_STATE": str(self.state),
        }

    def __call__(self, *args: str, kill: str | None = None) -> tuple[int, str]:
        """(exit code, stdout); stderr in self.stderr. In-process unless `kill` names a commit boundary.

        A `run` goes as an operator's does: the phase is planned (and the plan stored) the first time, and
        every later run, a resume after a kill included, applies that stored, reviewed plan. Planning
        options (--propagate-deletes) go to `plan`; a test that changes the source plans again explicitly
        by passing `--replan`."""
        return self._call(*self._reviewed(args), kill=kill)

    def _reviewed(self, args: tuple[str, ...]) -> tuple[str, ...]:
        if not args or args[0] != "run" or "--replan" in args or "--plan" in args:
            return args
        planning = tuple(a for a in args if a == "--propagate-deletes")
        key = (args[1], args[args.index("--phase") + 1], *planning)
        if key not in self.planned:
            code, out = self._call("plan", key[0], "--phase", key[1], *planning)
            assert code == 0, f"trustfold plan {' '.join(key)} -> {code}\n{out}\n{self.stderr}"
            self.planned.add(key)
        return tuple(a for a in args if a not in planning)

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
        copy = Trustfold(self.url, path)
        copy.planned = set(self.planned)
        return copy

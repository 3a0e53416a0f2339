"""The bulk engine's crash-test hook: SIGKILL the process at a named commit boundary (packaging, staged,
submitted, importing) so tests kill at boundaries rather than by timing."""

from __future__ import annotations

import os
import signal

CRASH_ENV = "TRUSTFOLD_BULK_CRASH_AT"  # test hook: SIGKILL this process at a named commit boundary


def boundary(name: str) -> None:
    """Crash tests kill the run here, at a commit boundary, through this hook rather than by timing."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)

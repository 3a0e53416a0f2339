"""Run locks: one writer per academy and phase at a time, across processes, operators and machines.

A lock is a row in the state store's `run_locks` table, keyed by (academy, phase). Taking it is one INSERT
inside one IMMEDIATE transaction, so SQLite's own locking decides a race: exactly one of several concurrent
takers commits, the others see the primary key already held and are told who holds it.

A holder refreshes its heartbeat from a background thread on its own connection (the run's asyncio loop may be
busy for minutes). A lock whose holder is gone is stale and taken over with a warning: the holder's pid is
dead on this host, or no heartbeat came within STALE_AFTER seconds (a holder on another host, or a hung one).
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from migrations.core.errors import OperationError
from migrations.core.store import StateStore, now

log = logging.getLogger("trustfold.locks")

STALE_AFTER = 120.0  # seconds without a heartbeat after which a holder counts as gone
HEARTBEAT_EVERY = 20.0  # seconds between heartbeats; several fit inside STALE_AFTER


class LockHeld(OperationError):
    """Another live run holds the lock: an operation failure (exit 1), not bad input."""


@dataclass(frozen=True)
class Holder:
    academy: str
    phase: str
    token: str
    operator: str
    host: str
    pid: int
    command: str
    started_at: str
    heartbeat_at: str

    def describe(self) -> str:
        return (
            f"{self.operator} on {self.host} (pid {self.pid}, `{self.command}`) since {self.started_at}, "
            f"last heartbeat {self.heartbeat_at}"
        )


def holders(store: StateStore, academy: str | None = None) -> list[Holder]:
    """Every lock held now (for `status`); an older store without the table simply has none."""
    has_table = store.rows("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'run_locks'")
    if not has_table:
        return []
    sql = "SELECT * FROM run_locks"
    params: tuple[Any, ...] = ()
    if academy:
        sql += " WHERE academy = ?"
        params = (academy,)
    return [Holder(**dict(r)) for r in store.rows(sql + " ORDER BY academy, phase", params)]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def stale_reason(holder: Holder, *, host: str, at: datetime, stale_after: float = STALE_AFTER) -> str | None:
    """Why `holder` no longer holds its lock, or None when it may still be working."""
    if holder.host == host and not _pid_alive(holder.pid):
        return f"process {holder.pid} on {host} is no longer running"
    try:
        beat = datetime.fromisoformat(holder.heartbeat_at)
    except ValueError:
        return f"its heartbeat '{holder.heartbeat_at}' is unreadable"
    if at - beat > timedelta(seconds=stale_after):
        return f"no heartbeat for {int((at - beat).total_seconds())} s (bound {int(stale_after)} s)"
    return None


@dataclass
class RunLock:
    """Locks held by this process for one academy and one or more phases; release() drops exactly these."""

    store: StateStore
    academy: str
    phases: tuple[str, ...]
    token: str
    taken_over: list[str]

    def heartbeat(self) -> bool:
        """Refresh our rows on a private connection; False when a row is no longer ours (taken over)."""
        conn = sqlite3.connect(self.store.path, timeout=30, isolation_level=None)
        try:
            cur = conn.execute(
                "UPDATE run_locks SET heartbeat_at = ? WHERE academy = ? AND token = ?",
                (now(), self.academy, self.token),
            )
            return cur.rowcount == len(self.phases)
        finally:
            conn.close()

    def release(self) -> None:
        with self.store.tx() as tx:
            tx.execute("DELETE FROM run_locks WHERE academy = ? AND token = ?", (self.academy, self.token))


def acquire(
    store: StateStore,
    academy: str,
    phases: Iterable[str],
    *,
    operator: str,
    command: str,
    host: str | None = None,
    pid: int | None = None,
    stale_after: float = STALE_AFTER,
    held: type[Exception] = LockHeld,
) -> RunLock:
    """Take the lock of every phase in one transaction, or none of them (LockHeld names the holder)."""
    wanted = tuple(sorted(set(phases)))
    host = host or socket.gethostname()
    pid = os.getpid() if pid is None else pid
    token = uuid.uuid4().hex
    taken_over: list[str] = []
    with store.tx() as tx:
        for phase in wanted:
            stamp = now()
            row = (academy, phase, token, operator, host, pid, command, stamp, stamp)
            insert = (
                "INSERT INTO run_locks (academy, phase, token, operator, host, pid, command, started_at, "
                "heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )
            try:
                tx.execute(insert, row)
                continue
            except sqlite3.IntegrityError:
                pass
            # Inside the same IMMEDIATE transaction nobody else can change the row between this read and the
            # takeover below; a failed statement does not end the transaction, so an exception here rolls back
            # every phase taken so far.
            found = tx.execute(
                "SELECT * FROM run_locks WHERE academy = ? AND phase = ?", (academy, phase)
            ).fetchone()
            holder = Holder(**dict(found))
            reason = stale_reason(holder, host=host, at=datetime.now(UTC), stale_after=stale_after)
            if reason is None:
                raise held(
                    f"{academy} {phase} is being changed by {holder.describe()}; wait for it to finish "
                    "(`trustfold status` shows locks)"
                )
            tx.execute(
                "DELETE FROM run_locks WHERE academy = ? AND phase = ? AND token = ?",
                (academy, phase, holder.token),
            )
            tx.execute(insert, row)
            taken_over.append(f"{phase} from {holder.describe()}: {reason}")
    for note in taken_over:
        log.warning("took over the stale run lock of %s %s", academy, note)
    return RunLock(store, academy, wanted, token, taken_over)


class _Heartbeat(threading.Thread):
    def __init__(self, lock: RunLock, every: float):
        super().__init__(name="trustfold-lock-heartbeat", daemon=True)
        self.lock, self.every, self.stop = lock, every, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            try:
                if not self.lock.heartbeat():
                    log.warning(
                        "the run lock of %s %s was taken over by another run; this run should stop",
                        self.lock.academy,
                        ",".join(self.lock.phases),
                    )
            except sqlite3.Error as exc:
                # A busy store delays one beat; STALE_AFTER leaves room for several misses.
                log.debug("lock heartbeat failed: %s", exc)


@contextmanager
def run_lock(
    store: StateStore,
    academy: str,
    phases: Iterable[str],
    *,
    operator: str,
    command: str,
    heartbeat_every: float = HEARTBEAT_EVERY,
    held: type[Exception] = LockHeld,
) -> Iterator[RunLock]:
    """Hold the locks for the block: heartbeat while inside, released in finally whatever happens. `held` is
    the exception raised when a live run holds one of them (the CLI passes its exit-1 type)."""
    lock = acquire(store, academy, phases, operator=operator, command=command, held=held)
    beat = _Heartbeat(lock, heartbeat_every)
    beat.start()
    try:
        _test_hook_after_lock()
        yield lock
    finally:
        beat.stop.set()
        beat.join(timeout=5)
        lock.release()


def _test_hook_after_lock() -> None:
    """Tests hold a lock open deterministically (no sleeps): wait until the named file exists."""
    gate = os.environ.get("TRUSTFOLD_TEST_HOLD_LOCK_UNTIL")
    if not gate:
        return
    ready = os.environ.get("TRUSTFOLD_TEST_LOCK_TAKEN")
    if ready:
        with open(ready, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()}\n")
    event = threading.Event()
    while not os.path.exists(gate):
        event.wait(0.05)

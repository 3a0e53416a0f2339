"""Two operators at once: one run per academy and phase; the others exit 1 naming who holds it; a dead
holder's lock is taken over with a warning. Held open by a file gate (a test hook), never by sleeping."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from cli.context import AppContext
from migrations.core.locks import holders
from migrations.core.store import StateStore, now
from tests.identity.conftest import Cli


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _inject_lock(state: Path, academy: str, phase: str, pid: int, host: str, heartbeat: str) -> None:
    store = StateStore.open(state)
    with store.tx() as tx:
        tx.execute(
            "INSERT INTO run_locks (academy, phase, token, operator, host, pid, command, started_at, "
            "heartbeat_at) VALUES (?, ?, 'injected', 'alice', ?, ?, 'run', ?, ?)",
            (academy, phase, host, pid, "2026-12-01T08:00:00.000+00:00", heartbeat),
        )
    store.close()


def test_three_concurrent_runs_exactly_one_works(cli: Cli, tmp_path: Path) -> None:
    cli("discover", "hillside")
    gate, taken = tmp_path / "release", tmp_path / "taken"
    env = {**cli.env(), "TRUSTFOLD_TEST_HOLD_LOCK_UNTIL": str(gate), "TRUSTFOLD_TEST_LOCK_TAKEN": str(taken)}
    argv = [sys.executable, "-c", "from cli.main import main; main()"]
    argv += ["run", "hillside", "--phase", "users", "--replan"]
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    try:
        # The winner waits at the gate holding the lock, so the two losers fail whenever they start; the loop
        # below only waits for that to happen (its bound is a failure, not a timing assumption).
        deadline = time.monotonic() + 240
        while sum(p.poll() is not None for p in procs) < 2:
            assert time.monotonic() < deadline, "two runs should have been refused"
            time.sleep(0.05)
        losers = [p for p in procs if p.poll() is not None]
        (winner,) = [p for p in procs if p.poll() is None]
        assert taken.read_text().split() == [str(winner.pid)], "only the winner ever held the lock"
        user, host = AppContext.operator()
        for p in losers:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 1, (out, err)
            lines = err.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in err, err
            assert lines[0].startswith(f"error: hillside users is being changed by {user} on {host} "), lines
            assert f"(pid {winner.pid}, `run hillside --phase users`) since 20" in lines[0], lines[0]
        store = StateStore.open(cli.state, readonly=True)
        shown = cli("status", "hillside").stdout
        assert "locked by" in shown and f"(pid {winner.pid}" in shown, shown
        assert [h.pid for h in holders(store)] == [winner.pid]
        store.close()
        gate.touch()
        out, err = winner.communicate(timeout=240)
        assert winner.returncode == 0, out + err
    finally:
        gate.touch()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    db = sqlite3.connect(cli.state)
    done = Counter(
        key for (key,) in db.execute("SELECT step_key FROM journal WHERE phase = 'users' AND event = 'done'")
    )
    assert done and set(done.values()) == {1}, "every step done exactly once"
    assert db.execute("SELECT count(*) FROM run_locks").fetchone()[0] == 0, "released at the end"
    runs = db.execute("SELECT count(*) FROM runs WHERE phase = 'users' AND kind = 'run'").fetchone()[0]
    assert runs == 1, "the losers never started a run"
    db.close()
    files = list((tmp_path / "runs").glob("*-initial-passwords.csv"))
    assert len(files) == 1
    upns = [line.split(",", 1)[0] for line in files[0].read_text().splitlines()[1:]]
    assert upns and len(upns) == len(set(upns)), "one initial password per user"
    assert "locked by" not in cli("status", "hillside").stdout


def test_dead_holder_lock_is_taken_over_with_a_warning(cli: Cli) -> None:
    cli("discover", "hillside")
    dead = _dead_pid()
    _inject_lock(cli.state, "hillside", "users", dead, socket.gethostname(), now())
    proc = cli("run", "hillside", "--phase", "users", "--replan")
    assert "took over the stale run lock of hillside users from alice" in proc.stderr, proc.stderr
    assert f"process {dead} on {socket.gethostname()} is no longer running" in proc.stderr
    store = StateStore.open(cli.state, readonly=True)
    assert holders(store) == []
    store.close()


def test_silent_holder_elsewhere_is_stale_but_a_live_one_is_not(tmp_path: Path) -> None:
    """Heartbeat bound: a holder on another host whose last heartbeat is old is taken over (no waiting:
    the heartbeat is injected in the past); a live local holder is reported (exit 1) with what it runs."""
    from migrations.core.locks import LockHeld, acquire

    state = tmp_path / "state.db"
    _inject_lock(state, "oakwood", "groups", 4242, "laptop-7", "2026-12-01T08:00:00.000+00:00")
    _inject_lock(state, "oakwood", "users", os.getpid(), socket.gethostname(), now())
    store = StateStore.open(state)
    lock = acquire(store, "oakwood", ["groups"], operator="bob", command="rollback")
    assert "no heartbeat for" in lock.taken_over[0] and "laptop-7" in lock.taken_over[0]
    try:
        acquire(store, "oakwood", ["groups", "users"], operator="carol", command="run")
    except LockHeld as exc:
        message = str(exc)
    else:
        raise AssertionError("a live holder must keep its lock")
    assert "oakwood" in message and f"pid {os.getpid()}" in message
    # All or nothing: carol's attempt took neither phase, bob still holds groups.
    assert {(h.phase, h.operator) for h in holders(store)} == {("groups", "bob"), ("users", "alice")}
    assert lock.heartbeat()
    lock.release()
    assert [h.phase for h in holders(store)] == ["users"]
    store.close()


def test_live_holder_blocks_run_and_rollback_exit_1(tmp_path: Path) -> None:
    from tests.identity.conftest import CONFIG

    state = tmp_path / "state.db"
    beat = now()
    _inject_lock(state, "hillside", "groups", os.getpid(), socket.gethostname(), beat)
    env = {**os.environ, "TRUSTFOLD_CONFIG_DIR": str(CONFIG), "TRUSTFOLD_STATE": str(state)}
    env["TRUSTFOLD_GRAPH_URL"] = "http://127.0.0.1:9"  # never reached: the lock is refused first
    base = [sys.executable, "-c", "from cli.main import main; main()"]
    for args in (
        ["run", "hillside", "--phase", "groups", "--replan"],
        ["rollback", "hillside", "--phase", "all", "--yes"],
    ):
        proc = subprocess.run(base + args, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert proc.stderr.strip() == (
            f"error: hillside groups is being changed by alice on {socket.gethostname()} (pid {os.getpid()}, "
            f"`run`) since 2026-12-01T08:00:00.000+00:00, last heartbeat {beat}; wait for it to finish "
            "(`trustfold status` shows locks)"
        )
    store = StateStore.open(state, readonly=True)
    assert [h.token for h in holders(store)] == ["injected"], "the refused runs took and left nothing"
    store.close()

"""Identity steps killed at every commit boundary (the kill hook, never timing): a resumed run leaves the
trust tenant exactly as an uninterrupted run does, and a rollback - itself killed at any boundary, or run
straight after a crash with steps in doubt - leaves nothing behind. Small tenants (20 users); the full sweep
is slow."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.testing import running_sandbox
from tests.crash.harness import Trustfold
from tests.identity.conftest import CONFIG, directory_view, snapshot

ACADEMY = "hillside"
PHASES = ("users", "groups", "memberships")
PHASE_OF = {
    "create-user": "users",
    "assign-licence": "users",
    "create-group": "groups",
    "add-members": "memberships",
}
MARKER = "extension_0b6a9d2e3f414c5a8e7b1d2c3b4a5f60_trustfoldSource"


@dataclass
class Tenant:
    url: str
    template: Trustfold  # a discovered state store, copied for every case
    before: dict[str, Any]  # the trust tenant before any run (raw snapshot)
    reference: dict[str, Any]  # directory view after one uninterrupted run of every phase

    def left_behind(self) -> list[str]:
        now = snapshot(self.url)
        problems = []
        for kind in ("users", "groups", "deletedItems"):
            if now.get(kind) != self.before.get(kind):
                problems.append(kind)
        return problems


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenant]:
    home = tmp_path_factory.mktemp("identity-crash")
    with running_sandbox(CONFIG, size=20, seed=3, throttling=False) as url:
        template = Trustfold(str(url), home / "template.db")
        template.ok("discover", ACADEMY)
        before = snapshot(str(url))
        run = template.fork(home / "reference.db")
        for phase in PHASES:
            run.ok("run", ACADEMY, "--phase", phase)
        reference = directory_view(snapshot(str(url)))
        run.ok("rollback", ACADEMY, "--phase", "all", "--yes", "--purge")
        t = Tenant(str(url), template, before, reference)
        assert t.left_behind() == [], "the uninterrupted rollback itself leaves something"
        yield t


def _no_duplicates(snap: dict[str, Any]) -> None:
    markers = Counter(o.get(MARKER) for o in snap["users"] + snap["groups"] if o.get(MARKER))
    assert markers and max(markers.values()) == 1, "an object was created twice"


def _run_all(tf: Trustfold, kill: str | None = None) -> None:
    """Every identity phase; the one holding the killed step type is first killed at `kill`, then resumed."""
    killed_phase = PHASE_OF[kill.split(":")[1]] if kill else None
    for phase in PHASES:
        if phase == killed_phase:
            tf.killed("run", ACADEMY, "--phase", phase, at=str(kill))
        tf.ok("run", ACADEMY, "--phase", phase)


def _rollback(tf: Trustfold, kill: str | None = None) -> None:
    if kill:
        tf.killed("rollback", ACADEMY, "--phase", "all", "--yes", "--purge", at=kill)
    tf.ok("rollback", ACADEMY, "--phase", "all", "--yes", "--purge")


def _forward_then_rollback(t: Tenant, tmp_path: Path, kill: str, undo_kill: str | None) -> None:
    tf = t.template.fork(tmp_path / "state.db")
    _run_all(tf, kill)
    snap = snapshot(t.url)
    _no_duplicates(snap)
    assert directory_view(snap) == t.reference
    _rollback(tf, undo_kill)
    assert t.left_behind() == []


def _crash_then_rollback(t: Tenant, tmp_path: Path, kill: str) -> None:
    """Killed with a step in doubt, then rolled back without resuming: what the crashed run made goes."""
    tf = t.template.fork(tmp_path / "state.db")
    phase = PHASE_OF[kill.split(":")[1]]
    for p in PHASES[: PHASES.index(phase)]:
        tf.ok("run", ACADEMY, "--phase", p)
    tf.killed("run", ACADEMY, "--phase", phase, at=kill)
    _rollback(tf)
    assert t.left_behind() == []


FORWARD_OPS = ("create-user", "assign-licence", "create-group", "add-members")
BOUNDARIES = (
    "intent:{op}:{n}:before",
    "intent:{op}:{n}:after",
    "outcome:{op}:{n}:before",
    "outcome:{op}:{n}:after",
)
UNDO_BOUNDARIES = (
    "undo-intent:{op}:{n}:before",
    "undo-intent:{op}:{n}:after",
    "undo-outcome:{op}:{n}:before",
    "undo-outcome:{op}:{n}:after",
)


# The default run: a created user whose outcome was never recorded, rolled back at once (the in-doubt case);
# and a group's undo killed between deleting it and recording that, then resumed.
def test_user_created_but_unrecorded_is_rolled_back(tenant: Tenant, tmp_path: Path) -> None:
    _crash_then_rollback(tenant, tmp_path, "outcome:create-user:1:before")


def test_rollback_killed_after_a_delete_completes_on_the_next_run(tenant: Tenant, tmp_path: Path) -> None:
    _forward_then_rollback(
        tenant, tmp_path, "outcome:add-members:1:before", "undo-outcome:create-group:1:before"
    )


def test_transient_errors_during_rollback_leave_nothing_behind(tenant: Tenant, tmp_path: Path) -> None:
    """503s (and other transient answers) on reads and deletes during a rollback are retried, never taken
    as a reason to keep an object: one rollback under faults leaves nothing behind."""
    tf = tenant.template.fork(tmp_path / "state.db")
    for phase in PHASES:
        tf.ok("run", ACADEMY, "--phase", phase)
    faults = {"faults": "503=0.25,429=0.05,504=0.05,drop=0.05"}
    assert httpx.post(f"{tenant.url}/sandbox/faults", json=faults).status_code == 200
    try:
        out = tf.ok("rollback", ACADEMY, "--phase", "all", "--yes", "--purge")
    finally:
        assert httpx.post(f"{tenant.url}/sandbox/faults", json={"faults": ""}).status_code == 200
    assert "kept" not in out.replace("0 kept", ""), out
    assert tenant.left_behind() == []


@pytest.mark.slow
@pytest.mark.parametrize("op", FORWARD_OPS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("n", (1, 2))
def test_forward_kill_sweep(tenant: Tenant, tmp_path: Path, op: str, boundary: str, n: int) -> None:
    _forward_then_rollback(tenant, tmp_path, boundary.format(op=op, n=n), None)


@pytest.mark.slow
@pytest.mark.parametrize("op", FORWARD_OPS)
@pytest.mark.parametrize("boundary", BOUNDARIES[1:3])
def test_crash_then_rollback_sweep(tenant: Tenant, tmp_path: Path, op: str, boundary: str) -> None:
    _crash_then_rollback(tenant, tmp_path, boundary.format(op=op, n=1))


@pytest.mark.slow
@pytest.mark.parametrize("op", FORWARD_OPS)
@pytest.mark.parametrize("boundary", UNDO_BOUNDARIES)
@pytest.mark.parametrize("n", (1, 3))
def test_rollback_kill_sweep(tenant: Tenant, tmp_path: Path, op: str, boundary: str, n: int) -> None:
    _forward_then_rollback(tenant, tmp_path, "outcome:create-user:1:after", boundary.format(op=op, n=n))

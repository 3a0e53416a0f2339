"""The teams phase killed at its commit boundaries (the kill hook, never timing): team, class and channel
creation, message import (the message sent, its outcome not yet journaled; and the intent journaled, nothing
sent) and completion. The resumed run leaves no second class, team or channel and no duplicate or missing
message, and completion is never called by a run that was not asked for it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.testing import running_sandbox
from tests.crash.harness import Trustfold
from tests.identity.conftest import CONFIG
from tests.teams.conftest import ACADEMY, World, identity_migrated


@dataclass
class Case:
    world: World
    home: Path


@pytest.fixture
def case(tmp_path: Path) -> Iterator[Case]:
    """A sandbox of its own for each case: a rollback cannot give back a deleted channel's name (Teams keeps
    it taken for 30 days), so cases never share a trust tenant."""
    with running_sandbox(CONFIG, size=20, seed=3, teams_protected_api_approved=True, throttling=False) as url:
        yield Case(identity_migrated(url, tmp_path / "template.db"), tmp_path)


def _check(w: World, *, completed: bool) -> None:
    source, target = w.teams(w.source), w.teams()
    assert len(target) == len(source), f"{len(target)} teams for {len(source)} at source"
    classes = Counter(c.get("externalId") for c in w.get("/education/classes")["value"])
    assert classes and max(classes.values()) == 1, "a class was created twice"
    for name, src in source.items():
        dst = next(t for n, t in target.items() if n == name or n.endswith(f" {name}"))
        src_channels, dst_channels = w.channels(src["id"], w.source), w.channels(dst["id"])
        assert sorted(dst_channels) == sorted(src_channels), f"{name}: channels differ"
        for cname, sc in src_channels.items():
            before = w.messages(src["id"], sc["id"], w.source)["value"]
            after = w.messages(dst["id"], dst_channels[cname]["id"])
            stamps = Counter((m["createdDateTime"], m["from"]["user"]["id"]) for m in after["value"])
            assert not stamps or max(stamps.values()) == 1, f"{name} / {cname}: a message imported twice"
            assert len(after["value"]) == len(before), f"{name} / {cname}: messages lost"
            if before:
                assert after["migrationMode"] == ("completed" if completed else "inProgress"), (name, cname)


KILLS = (
    "outcome:create-class:2:before",
    "outcome:create-team:1:before",
    "outcome:create-channel:3:before",
    "outcome:import-message:5:before",
    "intent:import-message:7",
)


@pytest.mark.parametrize("kill", KILLS)
def test_a_killed_run_resumes_without_duplicates(case: Case, kill: str) -> None:
    w = case.world
    tf = Trustfold(w.url, case.home / f"{kill.replace(':', '_')}.db")
    Trustfold(w.url, w.state).fork(tf.state)
    tf.killed("run", ACADEMY, "--phase", "teams", "--replan", at=kill)
    tf.ok("run", ACADEMY, "--phase", "teams", "--replan")
    _check(w, completed=False)
    # A rollback after the crash and resume removes every class it made, in doubt or not.
    tf.ok("rollback", ACADEMY, "--phase", "teams", "--yes", "--purge")
    assert not w.get("/education/classes")["value"], "rollback left a class behind"


def test_a_run_killed_while_completing_completes_once_resumed(case: Case) -> None:
    w = case.world
    tf = Trustfold(w.url, case.home / "complete.db")
    Trustfold(w.url, w.state).fork(tf.state)
    tf.ok("run", ACADEMY, "--phase", "teams", "--replan")
    _check(w, completed=False)
    tf.killed(
        "run", ACADEMY, "--phase", "teams", "--replan", "--complete", at="outcome:complete-migration:2:before"
    )
    tf.ok("run", ACADEMY, "--phase", "teams", "--replan", "--complete")
    _check(w, completed=True)

"""Channel files killed at their commit boundaries (the kill hook, never timing): a copy uploaded but its
outcome not journaled, and a folder made but not recorded. The resumed teams run leaves each channel's
folder holding exactly the source's files (no second copy, no conflict-renamed twin), and a rollback
afterwards removes every copy, the one left in doubt included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.testing import running_sandbox
from tests.crash.harness import Trustfold
from tests.identity.conftest import CONFIG
from tests.teams.conftest import ACADEMY, World, identity_migrated
from tests.teams.test_channel_files import _channel_pairs, _files, _folder, _same, _tree


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with running_sandbox(CONFIG, size=20, seed=3, teams_protected_api_approved=True, throttling=False) as url:
        yield identity_migrated(url, tmp_path / "template.db")


@pytest.mark.parametrize("kill", ["outcome:copy:2:before", "outcome:copy:1:after", "upload-fragment:1"])
def test_a_run_killed_while_copying_channel_files_resumes_without_duplicates(
    world: World, tmp_path: Path, kill: str
) -> None:
    tf = Trustfold(world.url, tmp_path / "killed.db")
    Trustfold(world.url, world.state).fork(tf.state)
    tf.killed("run", ACADEMY, "--phase", "teams", "--replan", at=kill)
    tf.ok("run", ACADEMY, "--phase", "teams", "--replan")
    folders = {}
    for name, sid, scid, tid, tcid in _channel_pairs(world):
        before = _files(world, sid, scid, world.source)
        after = _files(world, tid, tcid)
        assert set(after) == set(before), f"{name}: {sorted(set(after) ^ set(before))}"
        assert all(_same(after[p]) == _same(before[p]) for p in before), name
        folders[name] = _folder(world, tid, tcid)
    tf.ok("rollback", ACADEMY, "--phase", "teams", "--yes")
    for name, (drive, folder) in folders.items():
        assert _tree(world, drive, folder) == {}, f"{name}: rollback left copies behind"

"""File steps killed at commit boundaries (the kill hook, never timing): a resumed run leaves the trust
tenant exactly as an uninterrupted run does, a conflict-renamed copy resumes under its renamed name, and a
rollback - killed at any boundary, or run straight after a crash - leaves nothing behind. The full sweep is
slow; the default run keeps the cases that failed before one transaction per outcome."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.testing import running_sandbox
from tests.crash.harness import Trustfold
from tests.files.conftest import SOURCE_SITE, TARGET_SITE, World
from tests.identity.conftest import CONFIG, TARGET, Cli, bootstrapped

ACADEMY = "hillside"
BIG = "Open evening.mp4"  # larger than anything else, so the first copy; its name is taken in the trust
RENAMED = "Open evening (hillside).mp4"
BIG_SIZE = 6 * 1024 * 1024 + 4321  # two upload fragments


@dataclass
class Files:
    world: World
    template: Trustfold  # discovered, users created; copied for every case
    before: dict[str, dict[str, Any]]  # target drives before the files phase (path -> item)
    reference: dict[str, dict[str, tuple[int, str]]]  # after one uninterrupted files run

    def view(self) -> dict[str, dict[str, tuple[int, str]]]:
        return {
            d: {p: (int(i.get("size") or 0), str(i.get("quickXorHash"))) for p, i in items.items()}
            for d, items in self.world.drives().items()
        }

    def left_behind(self) -> dict[str, list[str]]:
        now = self.world.drives()
        out = {}
        for drive, items in now.items():
            extra = sorted(set(items) - set(self.before.get(drive, {})))
            changed = sorted(p for p, i in self.before.get(drive, {}).items() if items.get(p) != i)
            if extra or changed:
                out[drive] = extra + changed
        return out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Files]:
    home = tmp_path_factory.mktemp("files-crash")
    with running_sandbox(CONFIG, size=20, seed=3, throttling=False) as url:
        bootstrapped(str(url))
        source = next(t["id"] for t in url.world.tenant_list() if t["academy"] == ACADEMY)
        w = World(str(url), Cli(str(url), home / "unused.db"), source, home / "unused.db")
        template = Trustfold(str(url), home / "template.db")
        src_lib, tgt_lib = w.library(source, SOURCE_SITE), w.library(TARGET, TARGET_SITE)
        w.add_file(source, src_lib, BIG, BIG_SIZE, "open-evening")
        # Someone in the trust already keeps a different file at that path: the copy must be renamed.
        w.put(TARGET, tgt_lib, BIG, b"the trust's own video")
        template.ok("discover", ACADEMY)
        template.ok("run", ACADEMY, "--phase", "users")
        template.ok("provision-onedrive", ACADEMY)  # before the files plan, as an operator does
        f = Files(w, template, w.drives(), {})
        run = template.fork(home / "reference.db")
        run.ok("run", ACADEMY, "--phase", "files")
        f.reference = f.view()
        assert RENAMED in f.reference[tgt_lib]
        run.ok("rollback", ACADEMY, "--phase", "files", "--yes")
        assert f.left_behind() == {}, "the uninterrupted rollback itself leaves something"
        yield f


def _verified(tf: Trustfold) -> None:
    report = json.loads(tf("verify", ACADEMY, "--json")[1])["files"]
    assert report["differences"] == [], report["differences"][:3]


def _forward(f: Files, tmp_path: Path, kill: str, undo_kill: str | None = None) -> None:
    tf = f.template.fork(tmp_path / "state.db")
    tf.killed("run", ACADEMY, "--phase", "files", at=kill)
    out = tf.ok("run", ACADEMY, "--phase", "files", "--json")
    assert json.loads(out)["status"] == "succeeded", out
    assert f.view() == f.reference
    _verified(tf)
    if undo_kill:
        tf.killed("rollback", ACADEMY, "--phase", "files", "--yes", at=undo_kill)
    tf.ok("rollback", ACADEMY, "--phase", "files", "--yes")
    assert f.left_behind() == {}


def _crash_then_rollback(f: Files, tmp_path: Path, kill: str) -> None:
    tf = f.template.fork(tmp_path / "state.db")
    tf.killed("run", ACADEMY, "--phase", "files", at=kill)
    tf.ok("rollback", ACADEMY, "--phase", "files", "--yes")
    assert f.left_behind() == {}


# Default run: the cases named in issue 12.
def test_copy_uploaded_but_unrecorded_is_rolled_back(files: Files, tmp_path: Path) -> None:
    """Killed after the upload completed, before its outcome: rollback removes the copy."""
    _crash_then_rollback(files, tmp_path, "outcome:copy:2:before")


def test_renamed_copy_killed_mid_upload_resumes_under_its_renamed_name(files: Files, tmp_path: Path) -> None:
    """Killed after the first fragment of the conflict-renamed copy: the resumed run finishes it as
    'name (hillside).ext' (nothing under the taken name is touched); a rollback killed between deleting it
    and recording that completes on the next run."""
    _forward(files, tmp_path, "upload-fragment:1", "undo-outcome:undo-copy:1:before")


def test_renamed_copy_left_in_doubt_is_removed_by_rollback(files: Files, tmp_path: Path) -> None:
    _crash_then_rollback(files, tmp_path, "upload-fragment:1")


# Copy 1 is the conflict-renamed file (the largest goes first); copy 2 an ordinary one.
STEP_BOUNDARIES = [
    f"{event}:{op}:{n}:{when}"
    for op in ("mkdir", "copy")
    for event in ("intent", "outcome")
    for when in ("before", "after")
    for n in ((1, 2) if op == "copy" else (1,))
] + ["upload-fragment:1", "upload-fragment:2"]
UNDO_BOUNDARIES = [
    f"{event}:{op}:1:{when}"
    for op in ("undo-copy", "undo-mkdir")
    for event in ("undo-intent", "undo-outcome")
    for when in ("before", "after")
]


@pytest.mark.slow
@pytest.mark.parametrize("kill", STEP_BOUNDARIES)
def test_forward_kill_sweep(files: Files, tmp_path: Path, kill: str) -> None:
    _forward(files, tmp_path, kill)


@pytest.mark.slow
@pytest.mark.parametrize("kill", STEP_BOUNDARIES)
def test_crash_then_rollback_sweep(files: Files, tmp_path: Path, kill: str) -> None:
    _crash_then_rollback(files, tmp_path, kill)


@pytest.mark.slow
@pytest.mark.parametrize("kill", UNDO_BOUNDARIES)
def test_rollback_kill_sweep(files: Files, tmp_path: Path, kill: str) -> None:
    _forward(files, tmp_path, "outcome:mkdir:1:after", kill)


# ---- second pass: moves and deletes (a source folder renamed, a source file deleted) ----------------------
@dataclass
class SecondPass:
    files: Files
    src_lib: str
    reference: dict[str, dict[str, tuple[int, str]]]

    def change_source(self) -> dict[str, Any]:
        """Rename one source folder, delete one source file; returns what restore() needs."""
        w = self.files.world
        items = w.drives(w.source)[self.src_lib]
        # A folder only trustfold made in the trust tenant (renaming one the trust already had is another
        # matter), and a file outside it.
        tgt = self.files.before[self.files.world.library(TARGET, TARGET_SITE)]
        folders = sorted(p for p, i in items.items() if p and i["folder"] and "/" not in p and p not in tgt)
        folder = folders[0]
        doomed = sorted(
            p for p, i in items.items() if not i["folder"] and "/" in p and not p.startswith(folder)
        )[0]
        with w.graph(w.source) as g:
            r = g.patch(
                f"/drives/{self.src_lib}/items/{items[folder]['id']}", json={"name": f"{folder} (old)"}
            )
            assert r.status_code == 200, r.text
            assert g.delete(f"/drives/{self.src_lib}/items/{items[doomed]['id']}").status_code == 204
        return {"folder": folder, "doomed": doomed, "size": items[doomed]["size"], "seed": doomed}

    def restore(self, change: dict[str, Any]) -> None:
        w = self.files.world
        items = w.drives(w.source)[self.src_lib]
        with w.graph(w.source) as g:
            r = g.patch(
                f"/drives/{self.src_lib}/items/{items[change['folder'] + ' (old)']['id']}",
                json={"name": change["folder"]},
            )
            assert r.status_code == 200, r.text
        w.add_file(w.source, self.src_lib, change["doomed"], int(change["size"]), change["seed"])


def _second_pass(sp: SecondPass, tmp_path: Path, kill: str | None) -> dict[str, dict[str, tuple[int, str]]]:
    f = sp.files
    tf = f.template.fork(tmp_path / "state.db")
    tf.ok("run", ACADEMY, "--phase", "files")
    change = sp.change_source()
    try:
        if kill:
            tf.killed("run", ACADEMY, "--phase", "files", "--propagate-deletes", at=kill)
        out = json.loads(tf.ok("run", ACADEMY, "--phase", "files", "--propagate-deletes", "--json"))
        assert out["status"] == "succeeded", out
        view = f.view()
        _verified(tf)
        tf.ok("rollback", ACADEMY, "--phase", "files", "--yes")
        assert f.left_behind() == {}
    finally:
        sp.restore(change)
    return view


@pytest.fixture(scope="module")
def second(files: Files, tmp_path_factory: pytest.TempPathFactory) -> SecondPass:
    w = files.world
    sp = SecondPass(files, w.library(w.source, SOURCE_SITE), {})
    sp.reference = _second_pass(sp, tmp_path_factory.mktemp("second-reference"), None)
    return sp


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill",
    [
        f"{e}:{op}:1:{when}"
        for op in ("move", "delete")
        for e in ("intent", "outcome")
        for when in ("before", "after")
    ],
)
def test_second_pass_kill_sweep(second: SecondPass, tmp_path: Path, kill: str) -> None:
    assert _second_pass(second, tmp_path, kill) == second.reference

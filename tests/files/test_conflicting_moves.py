"""Incremental passes never touch what trustfold did not create (issue 12): a source folder or file renamed
or moved onto a name the trust tenant already uses for its own item takes the conflict name
`name (academy)`; a source folder that was merged into the trust's own folder on the first pass, then renamed
at source, leaves the trust's folder where it is (a new folder of ours takes the new name and our copies
move into it); a file that was adopted (identical content already there) is copied afresh rather than moved;
a folder create that meets a trust file of that name takes the conflict name instead of claiming the file.
Each case ends with a rollback that leaves the trust tenant exactly as it was before the files phase."""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.drives_state import DriveStore
from sandbox.testing import running_sandbox
from tests.crash.harness import Trustfold
from tests.files.conftest import SOURCE_SITE, TARGET_SITE, World
from tests.identity.conftest import CONFIG, TARGET, Cli, bootstrapped

ACADEMY = "hillside"


@dataclass
class Case:
    world: World
    tf: Trustfold
    src: str  # source library id
    tgt: str  # target library id

    def source(self) -> dict[str, dict[str, Any]]:
        return self.world.drives(self.world.source)[self.src]

    def target(self) -> dict[str, dict[str, Any]]:
        return self.world.drives()[self.tgt]

    def patch_source(self, path: str, body: dict[str, Any]) -> None:
        with self.world.graph(self.world.source) as g:
            r = g.patch(f"/drives/{self.src}/items/{self.source()[path]['id']}", json=body)
        assert r.status_code == 200, r.text

    def trust_folder(self, path: str) -> dict[str, Any]:
        """A folder someone in the trust makes in the target library (not trustfold)."""
        parent, _, name = path.rpartition("/")
        with self.world.graph(TARGET) as g:
            where = f"/drives/{self.tgt}/root:/{parent}:" if parent else f"/drives/{self.tgt}/root"
            pid = g.get(where).json()["id"]
            r = g.post(f"/drives/{self.tgt}/items/{pid}/children", json={"name": name, "folder": {}})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def run(self, *extra: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(
            self.tf.ok("run", ACADEMY, "--phase", "files", "--replan", "--json", *extra)
        )
        return out

    def verified(self) -> None:
        report = json.loads(self.tf("verify", ACADEMY, "--json")[1])["files"]
        assert report["differences"] == [], report["differences"][:3]

    def findings(self) -> list[dict[str, Any]]:
        with sqlite3.connect(self.tf.state) as db:
            rows = db.execute(
                "SELECT kind, display, handling FROM file_findings WHERE academy = ?", (ACADEMY,)
            ).fetchall()
        return [{"kind": k, "display": d, "handling": h} for k, d, h in rows]


@dataclass
class Template:
    world: World
    url: Any  # the running sandbox (its in-process world)
    tf: Trustfold  # discovered, users created, OneDrives provisioned
    drives: dict[str, DriveStore]  # both tenants' drives at that moment


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    home = tmp_path_factory.mktemp("conflicting-moves")
    with running_sandbox(CONFIG, size=20, seed=3, throttling=False) as url:
        bootstrapped(str(url))
        source = next(t["id"] for t in url.world.tenant_list() if t["academy"] == ACADEMY)
        w = World(str(url), Cli(str(url), home / "unused.db"), source, home / "unused.db")
        tf = Trustfold(str(url), home / "template.db")
        tf.ok("discover", ACADEMY)
        tf.ok("run", ACADEMY, "--phase", "users")
        tf.ok("provision-onedrive", ACADEMY)
        saved = {t: copy.deepcopy(url.world.tenant(t).drives) for t in (source, TARGET)}
        yield Template(w, url, tf, saved)


@pytest.fixture
def case(template: Template, tmp_path: Path) -> Case:
    """Every test starts from the template: its state store forked, both tenants' drives as they were
    (the source's delta tokens stay valid: the drive store is restored whole)."""
    for tid, drives in template.drives.items():
        template.url.world.tenant(tid).drives = copy.deepcopy(drives)
    w = template.world
    return Case(
        w,
        template.tf.fork(tmp_path / "state.db"),
        w.library(w.source, SOURCE_SITE),
        w.library(TARGET, TARGET_SITE),
    )


def _same(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return all(after.get(k) == v for k, v in before.items())


def test_folder_renamed_onto_a_trust_folder_takes_the_conflict_name(case: Case) -> None:
    """Our folder 'Admin', renamed at source to 'Notices', where the trust keeps its own 'Notices'."""
    theirs = case.trust_folder("Notices")
    case.world.put(TARGET, case.tgt, "Notices/Read me.txt", b"the trust's own notice")
    pristine = case.target()
    first = case.run()
    assert first["status"] == "succeeded", first["failures"]
    before = case.target()
    admin = sorted(p for p in case.source() if p.startswith("Admin/"))
    case.patch_source("Admin", {"name": "Notices"})

    second = case.run()
    assert second["status"] == "succeeded", second["failures"]
    after = case.target()
    # The trust's folder keeps its id, its name and exactly its own content.
    assert after["Notices"]["id"] == theirs["id"]
    assert sorted(p for p in after if p.startswith("Notices/")) == ["Notices/Read me.txt"]
    assert after["Notices/Read me.txt"] == before["Notices/Read me.txt"]
    # Ours took the conflict name, with everything it held.
    assert after["Notices (hillside)"]["id"] == before["Admin"]["id"]
    moved = {p.replace("Admin/", "Notices (hillside)/", 1) for p in before if p.startswith("Admin/")}
    assert moved <= set(after) and len(moved) == len(admin)
    assert any(
        f["kind"] == "name-conflict" and "Notices (hillside)" in f["handling"] for f in case.findings()
    )
    case.verified()
    # A third pass is quiet: the decision stands.
    again = case.run()
    assert again["counts"]["planned"] == 0, again
    case.tf.ok("rollback", ACADEMY, "--phase", "files", "--yes")
    assert case.target() == pristine


def test_merged_folder_renamed_at_source_leaves_the_trust_folder_alone(case: Case) -> None:
    """'Policies' already existed in the trust library (trustfold copied into it, as into any existing
    folder); renamed at source, our copies follow the new name and the trust's folder stays as it was."""
    pristine = case.target()
    first = case.run()
    assert first["status"] == "succeeded", first["failures"]
    before = case.target()
    assert "Policies/Safeguarding Policy (hillside).pdf" in before  # the first pass's conflict rename
    case.patch_source("Policies", {"name": "Policies 2024"})

    second = case.run()
    assert second["status"] == "succeeded", second["failures"]
    after = case.target()
    # The trust's folder and the trust's own files in it: untouched.
    assert after["Policies"]["id"] == pristine["Policies"]["id"]
    theirs = {p: i for p, i in pristine.items() if p.startswith("Policies/")}
    assert {p: after.get(p) for p in theirs} == theirs
    assert sorted(p for p in after if p.startswith("Policies/")) == sorted(theirs)
    # Ours under the new name: the file that clashed takes its own name again, the adopted one is copied.
    new = {p: i for p, i in after.items() if p.startswith("Policies 2024/")}
    src = {p: i for p, i in case.source().items() if p.startswith("Policies 2024/")}
    assert sorted(new) == sorted(src)
    assert all(new[p]["quickXorHash"] == src[p]["quickXorHash"] for p in src)
    assert (
        new["Policies 2024/Safeguarding Policy.pdf"]["id"]
        == (before["Policies/Safeguarding Policy (hillside).pdf"]["id"])
    )
    case.verified()
    again = case.run()
    assert again["counts"]["planned"] == 0, again
    case.tf.ok("rollback", ACADEMY, "--phase", "files", "--yes")
    assert case.target() == pristine


def test_file_moves_never_move_trust_files_nor_land_on_them(case: Case) -> None:
    """An adopted file (the trust's identical copy) renamed at source is copied under the new name, the
    trust's file left where it is; a copied file moved at source onto a name the trust uses takes the
    conflict name."""
    pristine = case.target()
    assert case.run()["status"] == "succeeded"
    before = case.target()
    # The trust keeps a different 'Scans/Behaviour Policy.docx' of its own.
    case.world.put(TARGET, case.tgt, "Scans/Behaviour Policy.docx", b"the trust's own behaviour policy")
    theirs_file = case.target()["Scans/Behaviour Policy.docx"]
    scans = case.source()["Scans"]
    case.patch_source("Policies/Behaviour Policy.docx", {"parentReference": {"id": scans["id"]}})
    case.patch_source("Policies/Term Dates 2024-25.pdf", {"name": "Term Dates.pdf"})

    second = case.run()
    assert second["status"] == "succeeded", second["failures"]
    after = case.target()
    assert after["Scans/Behaviour Policy.docx"] == theirs_file
    assert (
        after["Scans/Behaviour Policy (hillside).docx"]["id"]
        == before["Policies/Behaviour Policy.docx"]["id"]
    )
    assert after["Policies/Term Dates 2024-25.pdf"] == pristine["Policies/Term Dates 2024-25.pdf"]
    assert (
        after["Policies/Term Dates.pdf"]["quickXorHash"]
        == pristine["Policies/Term Dates 2024-25.pdf"]["quickXorHash"]
    )
    case.verified()
    case.tf.ok("rollback", ACADEMY, "--phase", "files", "--yes")
    left = case.target()
    assert left.pop("Scans/Behaviour Policy.docx") == theirs_file
    assert left.pop("Scans")["folder"]  # ours, kept: it holds the trust's file
    assert left == pristine


def test_folder_create_meeting_a_trust_file_takes_the_conflict_name(case: Case) -> None:
    """The trust keeps a file named 'Scans' (no extension) where the source has a folder 'Scans': the
    folder is created as 'Scans (hillside)', and neither the run nor the rollback claims the trust's file."""
    case.world.put(TARGET, case.tgt, "Scans", b"not a folder")
    pristine = case.target()
    first = case.run()
    assert first["status"] == "succeeded", first["failures"]
    after = case.target()
    assert after["Scans"] == pristine["Scans"]
    assert after["Scans (hillside)"]["folder"]
    case.verified()
    case.tf.ok("rollback", ACADEMY, "--phase", "files", "--yes")
    assert case.target() == pristine


def test_propagated_deletes_spare_what_trustfold_did_not_create(case: Case) -> None:
    """--propagate-deletes deletes our unchanged copies only: an adopted file, a copy changed in the trust
    tenant and a merged folder stay."""
    pristine = case.target()
    assert case.run()["status"] == "succeeded"
    case.world.put(TARGET, case.tgt, "Policies/Behaviour Policy.docx", b"edited in the trust tenant")
    edited = case.target()["Policies/Behaviour Policy.docx"]
    with case.world.graph(case.world.source) as g:
        for path in ("Policies/Behaviour Policy.docx", "Policies/Term Dates 2024-25.pdf", "Admin/CON.txt"):
            assert g.delete(f"/drives/{case.src}/items/{case.source()[path]['id']}").status_code == 204
    out = case.run("--propagate-deletes")
    assert out["status"] == "succeeded", out["failures"]
    after = case.target()
    assert after["Policies/Behaviour Policy.docx"] == edited
    assert after["Policies/Term Dates 2024-25.pdf"] == pristine["Policies/Term Dates 2024-25.pdf"]
    assert "Admin/CON_.txt" not in after
    case.tf.ok("rollback", ACADEMY, "--phase", "files", "--yes")
    left = case.target()
    assert left.pop("Policies/Behaviour Policy.docx") == edited
    pristine.pop("Policies/Behaviour Policy.docx", None)
    assert left == pristine

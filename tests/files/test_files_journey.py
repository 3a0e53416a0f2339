"""The files phase end to end: first pass with awkward names, long paths, zero-byte and oversized files;
incremental passes; rollback that leaves pre-existing and user-changed content; error paths."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import httpx
from quickxorhash import quickxorhash

from tests.files.conftest import SOURCE_SITE, TARGET_SITE, World, b64
from tests.identity.conftest import TARGET


def qxh(data: bytes) -> str:
    h = quickxorhash()
    h.update(data)
    return b64(h.digest())


def findings(w: World) -> list[dict[str, Any]]:
    with sqlite3.connect(w.state) as db:
        db.row_factory = sqlite3.Row
        row = db.execute(
            "SELECT detail FROM phase_status WHERE academy='hillside' AND phase='discover'"
        ).fetchone()
    return list(json.loads(row["detail"])["findings"])


def test_first_pass_copies_every_file_by_rule(hillside: World) -> None:
    w = hillside
    src_lib, tgt_lib = w.library(w.source, SOURCE_SITE), w.library(TARGET, TARGET_SITE)
    before = w.drives()[tgt_lib]
    # Discovery already reported the file problems, before anything was copied.
    kinds = {f["kind"] for f in findings(w)}
    assert {"forbidden-name", "path-too-long", "file-too-large", "zero-byte"} <= kinds

    result = w.cli.json("run", "hillside", "--phase", "files", "--replan")
    assert result["status"] == "succeeded", result["failures"]
    c = result["counts"]
    assert c["failed"] == 0 and c["files"] > 20 and c["bytes"] > 1_000_000 and c["renamed"] >= 9

    source = w.drives(w.source)[src_lib]
    target = w.drives()[tgt_lib]
    # Names SharePoint refuses were changed by the recorded rules, content intact.
    renamed = {
        "Admin/Budget: 2024?.xlsx": "Admin/Budget_ 2024_.xlsx",
        'Admin/Notes "draft" v2.docx': "Admin/Notes _draft_ v2.docx",
        "Admin/ Leading space.docx": "Admin/Leading space.docx",
        "Admin/Trailing space.docx ": "Admin/Trailing space.docx",
        "Admin/~$Timetable.docx": "Admin/_Timetable.docx",
        "Admin/CON.txt": "Admin/CON_.txt",
        "Admin/desktop.ini": "Admin/_desktop.ini",
        "Admin/.lock": "Admin/_.lock",
        "Old intranet/_vti_cnf/index.htm": "Old intranet/_vti-cnf/index.htm",
    }
    for old, new in renamed.items():
        assert target[new]["quickXorHash"] == source[old]["quickXorHash"], new
    # Zero-byte files and empty folders exist; the oversized video does not; the deep file was relocated.
    assert target["Admin/placeholder.txt"]["size"] == 0
    assert target["Archive/2019-20"]["folder"] and target["Scans"]["folder"]
    assert not any("4K master" in p for p in target)
    deep = [p for p in target if p.startswith("Long paths/") and p.endswith("Deep review notes.docx")]
    assert len(deep) == 1
    # Timestamps kept through fileSystemInfo.
    for path in ("Governors", "Media/Sports Day 2024.mp4", "Admin/placeholder.txt"):
        matches = [p for p in source if p.startswith(path)]
        for p in matches:
            if p in target:
                assert target[p]["fileSystemInfo"] == source[p]["fileSystemInfo"], p
    # Content already in the trust tenant is untouched: identical file adopted, different one kept beside.
    for p in ("Welcome to Hillside Academy.docx", "Policies/Trust Data Protection Policy.pdf"):
        assert target[p] == before[p]
    assert target["Policies/Safeguarding Policy.pdf"] == before["Policies/Safeguarding Policy.pdf"]
    assert (
        target["Policies/Safeguarding Policy (hillside).pdf"]["quickXorHash"]
        == source["Policies/Safeguarding Policy.pdf"]["quickXorHash"]
    )
    assert target["Policies/Term Dates 2024-25.pdf"] == before["Policies/Term Dates 2024-25.pdf"]
    assert not any(p.startswith("Policies/Term Dates 2024-25 ") for p in target)
    # OneDrives went to the mapped trust users' OneDrives.
    onedrive_files = sum(
        1 for d in w.drives().values() for i in d.values() if not i["folder"] and "Lesson" not in i["path"]
    )
    assert onedrive_files > len(target)
    # Verify agrees, per drive.
    v = w.cli("verify", "hillside", "--json", check=False)
    files = json.loads(v.stdout)["files"]
    assert files["differences"] == [] and files["matched"] == files["files"] - 1  # the oversized video


def test_second_pass_copies_only_changes_and_reports_deletions(hillside: World) -> None:
    w = hillside
    src_lib, tgt_lib = w.library(w.source, SOURCE_SITE), w.library(TARGET, TARGET_SITE)
    w.cli.json("run", "hillside", "--phase", "files", "--replan")
    again = w.cli.json("run", "hillside", "--phase", "files", "--replan")
    assert again["counts"]["planned"] == 0 and again["counts"]["bytes_sent"] == 0

    # Users keep working in the legacy tenant before cut-over.
    w.put(w.source, src_lib, "Policies/New policy.docx", b"new policy " * 100)
    w.put(w.source, src_lib, "Policies/Behaviour Policy.docx", b"rewritten " * 500)
    with w.graph(w.source) as g:
        item = g.get(f"/drives/{src_lib}/root:/Governors:").json()
        minutes = g.get(f"/drives/{src_lib}/items/{item['id']}/children").json()["value"][0]
        assert (
            g.patch(f"/drives/{src_lib}/items/{minutes['id']}", json={"name": "Minutes archive"}).status_code
            == 200
        )
        policies = g.get(f"/drives/{src_lib}/root:/Policies:").json()
        scans = g.get(f"/drives/{src_lib}/root:/Scans:").json()
        sg = g.get(f"/drives/{src_lib}/root:/Policies/Safeguarding Policy.pdf:").json()
        moved = g.patch(f"/drives/{src_lib}/items/{sg['id']}", json={"parentReference": {"id": scans["id"]}})
        assert moved.status_code == 200
        gone = g.get(f"/drives/{src_lib}/root:/Admin/CON.txt:").json()
        assert g.delete(f"/drives/{src_lib}/items/{gone['id']}").status_code == 204
        assert policies["id"]

    planned = w.cli("plan", "hillside", "--phase", "files").stdout
    second = w.cli.json("run", "hillside", "--phase", "files", "--replan")
    c = second["counts"]
    assert second["status"] == "succeeded", second["failures"]
    # one new, one changed, one folder renamed, one file moved
    assert (c["planned"], c["done"]) == (4, 4), planned
    assert c["bytes"] == len(b"new policy " * 100) + len(b"rewritten " * 500)
    assert any("CON_.txt" in n and "--propagate-deletes" in n for n in second["notes"])
    target = w.drives()[tgt_lib]
    assert target["Policies/New policy.docx"]["quickXorHash"] == qxh(b"new policy " * 100)
    assert target["Policies/Behaviour Policy.docx"]["quickXorHash"] == qxh(b"rewritten " * 500)
    assert any(p.startswith("Governors/Minutes archive/") for p in target)
    assert not any(p.startswith(f"Governors/{minutes['name']}/") for p in target)
    # Moved away from the name clash, the file takes its own name again.
    assert (
        "Scans/Safeguarding Policy.pdf" in target
        and "Policies/Safeguarding Policy (hillside).pdf" not in target
    )
    assert "Admin/CON_.txt" in target  # deletions are reported, not applied, by default

    planned = w.cli(
        "run", "hillside", "--phase", "files", "--replan", "--propagate-deletes", "--dry-run"
    ).stdout
    third = w.cli.json("run", "hillside", "--phase", "files", "--replan", "--propagate-deletes")
    assert (third["counts"]["planned"], third["counts"]["done"]) == (1, 1), planned
    assert "Admin/CON_.txt" not in w.drives()[tgt_lib]


def test_rollback_removes_only_what_was_created(hillside: World) -> None:
    w = hillside
    tgt_lib = w.library(TARGET, TARGET_SITE)
    before = w.drives()
    w.cli.json("run", "hillside", "--phase", "files", "--replan")
    # A teacher edits a migrated file in the trust tenant before the rollback.
    edited = w.put(TARGET, tgt_lib, "Policies/Behaviour Policy.docx", b"edited in the trust tenant")
    plan = w.cli("rollback", "hillside", "--phase", "files", "--dry-run")
    assert "delete copied file 'Policies/Behaviour Policy.docx'" in plan.stdout
    out = w.cli("rollback", "hillside", "--phase", "files", "--yes", "--json", check=False)
    report = json.loads(out.stdout)
    notes = report[0]["result"]["notes"]
    assert any("Behaviour Policy.docx" in n and "changed" in n for n in notes)
    after = w.drives()
    for drive, items in before.items():
        assert after[drive].keys() - {"Policies/Behaviour Policy.docx"} == items.keys(), drive
        for path, item in items.items():
            assert after[drive][path] == item, path
    assert after[tgt_lib]["Policies/Behaviour Policy.docx"]["id"] == edited["id"]
    # Drives the tool provisioned stay (they belong to the users); everything in them that it copied is gone.
    for drive in after.keys() - before.keys():
        assert after[drive] == {}, drive


def test_errors_name_the_problem(hillside: World, tmp_path: Any) -> None:
    w = hillside
    bad = w.cli("run", "hillside", "--phase", "files", "--replan", "--sharepoint-budget", "lots", check=False)
    assert bad.returncode == 2 and "--sharepoint-budget" in bad.stderr and "Traceback" not in bad.stderr
    from tests.identity.conftest import Cli

    fresh = Cli(w.url, tmp_path / "other.db")
    early = fresh("plan", "hillside", "--phase", "files", check=False)
    assert early.returncode == 1 and "trustfold discover hillside" in early.stderr


def test_faults_and_a_lost_delta_token_lose_nothing(hillside: World) -> None:
    """Throttling, 503s, lost answers and dropped downloads on the way; then the service forgets every delta
    token (410): the next pass resyncs in full and copies nothing twice."""
    w = hillside
    tgt_lib = w.library(TARGET, TARGET_SITE)
    before = w.drives()[tgt_lib]
    faults = {"faults": "429=0.05,503=0.03,504=0.02,drop=0.02"}
    assert httpx.post(f"{w.url}/sandbox/faults", json=faults).status_code == 200
    first = w.cli.json("run", "hillside", "--phase", "files", "--replan")
    assert first["status"] == "succeeded", first["failures"]
    assert first["counts"]["throttled"] > 0
    assert httpx.post(f"{w.url}/sandbox/faults", json={"faults": ""}).status_code == 200
    names_before = sorted(w.drives()[tgt_lib])
    assert len(names_before) == len(set(names_before))
    # No duplicates from re-sent creates: the library holds what was there plus exactly what was recorded.
    with sqlite3.connect(w.state) as db:
        recorded = {
            r[0]
            for r in db.execute(
                "SELECT path FROM file_copies WHERE drive_key LIKE 'library:%' AND created = 1"
            )
        }
    assert set(names_before) == set(before) | recorded, set(names_before) - set(before) - recorded
    verify = json.loads(w.cli("verify", "hillside", "--json", check=False).stdout)["files"]
    assert verify["differences"] == [] and verify["matched"] == verify["files"] - 1

    assert httpx.post(f"{w.url}/sandbox/tenants/{w.source}/expire-delta", json={}).status_code == 200
    again = w.cli.json("run", "hillside", "--phase", "files", "--replan")
    assert again["status"] == "succeeded" and again["counts"]["planned"] == 0
    assert sorted(w.drives()[tgt_lib]) == names_before


def test_a_library_missing_from_the_tenant_is_named(hillside: World, tmp_path: Any) -> None:
    import shutil

    from tests.identity.conftest import CONFIG, Cli

    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    academy = config / "academies" / "hillside.yaml"
    academy.write_text(
        academy.read_text().replace("{site: staff, library: Documents}", "{site: nosuch, library: Documents}")
    )
    cli = Cli(hillside.url, tmp_path / "other.db")
    env = {**cli.env(), "TRUSTFOLD_CONFIG_DIR": str(config)}
    cli.env = lambda: env  # type: ignore[method-assign]
    out = cli("discover", "hillside", check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "site 'nosuch' not found" in out.stderr and "phases.files.libraries" in out.stderr
    plan = cli("plan", "hillside", "--phase", "files", check=False)
    assert plan.returncode == 1 and "site 'nosuch' not found" in plan.stderr

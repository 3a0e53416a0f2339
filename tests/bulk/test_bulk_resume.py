"""Crash safety, incremental passes and refusals of the Migration API engine, on one sandbox + Azurite:
SIGKILL at commit boundaries (migrations.core.killpoints) during packaging, staging and import, each resumed
with nothing imported twice; an incremental pass imports only the changes; a package corrupted in storage
after staging is refused by SharePoint (the sandbox) and reported per item, then imported by the next run."""

from __future__ import annotations

import json
import sqlite3
import time
from urllib.parse import quote

from azure.storage.blob import ContainerClient

from migrations.core.killpoints import ENV as KILL_ENV
from sandbox.migration_api import service
from tests.files.conftest import SOURCE_SITE, TARGET_SITE, World
from tests.identity.conftest import TARGET


def _crash_at(w: World, boundary: str) -> int:
    w.cli.extra_env[KILL_ENV] = boundary  # type: ignore[attr-defined]
    try:
        return w.cli("run", "hillside", "--phase", "files", "--replan", check=False).returncode
    finally:
        del w.cli.extra_env[KILL_ENV]  # type: ignore[attr-defined]


def test_kills_resume_incremental_and_corrupt_package(bulk_hillside: World) -> None:
    w = bulk_hillside
    svc = service(w.url.world)
    assert _crash_at(w, "bulk.packaging:1") == -9 and not svc.jobs  # killed while files were being staged
    assert _crash_at(w, "bulk.staged:1") == -9 and not svc.jobs  # killed with a package staged, not submitted
    assert _crash_at(w, "bulk.submitted:1") == -9 and svc.jobs  # killed with a job in flight
    submitted = len(svc.jobs)
    result = w.cli.json("run", "hillside", "--phase", "files", "--replan")
    assert result["status"] == "succeeded", result["failures"]
    assert max(svc.imports.values()) == 1  # re-attached to the job in flight: nothing imported twice
    with sqlite3.connect(w.state) as db:
        states = {r[0] for r in db.execute("SELECT state FROM bulk_packages")}
        with_job = db.execute("SELECT count(DISTINCT job_id) FROM bulk_packages WHERE job_id IS NOT NULL")
        recorded = with_job.fetchone()[0]
    # Every job SharePoint received is one package's, recorded once: none was submitted twice.
    assert states == {"done"} and len(svc.jobs) == recorded >= submitted
    files = json.loads(w.cli("verify", "hillside", "--json", check=False).stdout)["files"]
    assert files["differences"] == [] and files["matched"] == files["files"] - 1  # the oversized video

    # Incremental: one file changed and one added at source; only they are imported.
    src_lib = w.library(w.source, SOURCE_SITE)
    w.put(w.source, src_lib, "Policies/Behaviour Policy.docx", b"changed at source " * 100)
    w.put(w.source, src_lib, "Policies/New guidance.docx", b"new at source " * 50)
    before = dict(svc.imports)
    again = w.cli.json("run", "hillside", "--phase", "files", "--replan")
    assert again["status"] == "succeeded", again["failures"]
    changed = {k for k in svc.imports if svc.imports[k] != before.get(k)}
    assert {k.split("/", 1)[1] for k in changed} == {
        "Shared Documents/Policies/Behaviour Policy.docx",
        "Shared Documents/Policies/New guidance.docx",
    }
    files = json.loads(w.cli("verify", "hillside", "--json", check=False).stdout)["files"]
    assert files["differences"] == []

    # A package tampered with in storage between staging and import is refused and reported per item.
    w.put(w.source, src_lib, "Policies/Tampered.docx", b"will be tampered " * 40)
    svc.paused = True
    jobs = set(svc.jobs)
    proc = w.cli.popen("run", "hillside", "--phase", "files", "--replan", "--json")
    try:
        deadline = time.monotonic() + 120
        while not set(svc.jobs) - jobs:
            assert time.monotonic() < deadline and proc.poll() is None, "no job was submitted"
            time.sleep(0.05)
        job = svc.jobs[(set(svc.jobs) - jobs).pop()]
        manifests = ContainerClient.from_container_url(job.manifest)
        blob = manifests.get_blob_client("Manifest.xml")
        iv = blob.get_blob_properties().metadata["IV"]
        blob.upload_blob(b"\x00" * 64, overwrite=True, metadata={"IV": iv})
        blob.create_snapshot()
    finally:
        svc.paused = False
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, out + err
    report = json.loads(out)
    assert any("Tampered.docx" in f["step"] and "Manifest.xml" in f["message"] for f in report["failures"]), (
        report["failures"]
    )
    with sqlite3.connect(w.state) as db:
        kinds = {r[0] for r in db.execute("SELECT kind FROM file_findings WHERE display LIKE '%Tampered%'")}
    assert kinds == {"import-error"}
    assert not any("Tampered" in k for k in svc.imports)
    # The next run stages a fresh package and imports it.
    final = w.cli.json("run", "hillside", "--phase", "files", "--replan")
    assert final["status"] == "succeeded", final["failures"]
    assert sum(1 for k in svc.imports if k.endswith(quote("Tampered.docx", safe=" "))) == 1

    # Rollback removes what the Migration API imported, as it does for Graph copies.
    tgt_lib = w.library(TARGET, TARGET_SITE)
    imported = {
        k.split("/", 1)[1].removeprefix("Shared Documents/") for k in svc.imports if k.startswith(tgt_lib)
    }
    assert "Policies/New guidance.docx" in imported
    rolled = json.loads(w.cli("rollback", "hillside", "--phase", "files", "--yes", "--json").stdout)
    assert rolled[0]["result"]["status"] == "succeeded", rolled
    left = w.drives()[tgt_lib]
    assert not imported & set(left)

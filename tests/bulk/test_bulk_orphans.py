"""Issue #22's last known gap: a conflict-renamed bulk copy whose package was given up after SharePoint had
already imported it. The file sits in the trust tenant under its conflict name with nothing recording it, and
its step ended failed. The next run must recognise it as trustfold's own (by what the intent journaled) and
record it, or give it the source's new content in place; before the fix the Migration API engine imported it
afresh under a new GUID and SharePoint refused it ("GUID conflict") on every run."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from migrations.core.killpoints import ENV as KILL_ENV
from sandbox.azurite import Azurite
from sandbox.migration_api import configure, service
from tests.bulk.conftest import BulkCli, start
from tests.files.conftest import SOURCE_SITE, TARGET_SITE, World
from tests.identity.conftest import TARGET, bootstrapped

TAKEN = "Conflict/Plan.docx"
RENAMED = "Conflict/Plan (hillside).docx"
FIRST = b"the academy's plan " * 200
SECOND = b"the academy's plan, revised over the weekend " * 120


def _landed_then_abandoned(tmp_path: Path, azurite: Azurite, revise: bool) -> tuple[World, str, str]:
    """Killed with its job in flight; SharePoint finishes the job; the operator gives the package up."""
    config, ctx = start(tmp_path, azurite, extra="    onedrive: false\n", size=20, seed=3)
    url = ctx.__enter__()
    bootstrapped(str(url))
    configure(url.world, blob_url=azurite.blob_url, queue_url=azurite.queue_url, account=azurite.account,
              key=azurite.key, rate=2000)  # fmt: skip
    source = next(t["id"] for t in url.world.tenant_list() if t["academy"] == "hillside")
    cli = BulkCli(url, tmp_path / "state.db", config, azurite.env())
    w = World(url, cli, source, tmp_path / "state.db")
    w._ctx = ctx  # type: ignore[attr-defined]
    src_lib, tgt_lib = w.library(source, SOURCE_SITE), w.library(TARGET, TARGET_SITE)
    planned = w.put(source, src_lib, TAKEN, FIRST)
    w.put(TARGET, tgt_lib, TAKEN, b"the trust's own plan")  # forces the conflict rename
    cli("discover", "hillside")
    cli("run", "hillside", "--phase", "users", "--replan")
    cli.extra_env[KILL_ENV] = "bulk.submitted:1"
    assert cli("run", "hillside", "--phase", "files", "--replan", check=False).returncode == -9
    del cli.extra_env[KILL_ENV]
    svc = service(url.world)
    deadline = time.monotonic() + 120
    while any(j.state != 0 for j in svc.jobs.values()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert RENAMED in w.drives()[tgt_lib]  # SharePoint imported it; nothing records it
    with sqlite3.connect(w.state) as db:
        pids = [r[0] for r in db.execute("SELECT package_id FROM bulk_packages WHERE state = 'submitted'")]
    assert pids
    args = [a for p in pids for a in ("--abandon-package", p)]
    gave_up = cli("run", "hillside", "--phase", "files", "--replan", *args, "--json", check=False)
    assert "abandoned by the operator" in gave_up.stdout
    if revise:
        with w.graph(source) as g:
            resp = g.put(f"/drives/{src_lib}/items/{planned['id']}/content", content=SECOND)
            assert resp.status_code == 200, resp.text
    return w, tgt_lib, src_lib


def _settle(w: World, tgt_lib: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    svc = service(w.url.world)  # type: ignore[attr-defined]
    before = dict(svc.imports)
    result = json.loads(w.cli("run", "hillside", "--phase", "files", "--replan", "--json").stdout)
    again = {k for k, n in svc.imports.items() if n > before.get(k, 0)}
    assert f"{tgt_lib}/Shared Documents/{RENAMED}" not in again  # never imported a second time
    return result, w.drives()[tgt_lib]


@pytest.mark.parametrize("revise", [False, True], ids=["unchanged", "changed-at-source"])
def test_abandoned_conflict_renamed_bulk_copy_is_recognised_as_ours(
    tmp_path: Path, azurite: Azurite, revise: bool
) -> None:
    w, tgt_lib, _ = _landed_then_abandoned(tmp_path, azurite, revise)
    try:
        result, left = _settle(w, tgt_lib)
        assert result["status"] == "succeeded", result["failures"]
        want = SECOND if revise else FIRST
        assert left[RENAMED]["size"] == len(want)
        assert left[TAKEN]["size"] == len(b"the trust's own plan")  # the trust's own file untouched
        assert not [p for p in left if p.startswith("Conflict/Plan (hillside) (")]  # no second copy
        # Recorded as ours, so rollback removes it and leaves the trust's own file.
        w.cli("rollback", "hillside", "--phase", "files", "--yes")
        left = w.drives()[tgt_lib]
        assert RENAMED not in left and left[TAKEN]["size"] == len(b"the trust's own plan")
    finally:
        w._ctx.__exit__(None, None, None)  # type: ignore[attr-defined]

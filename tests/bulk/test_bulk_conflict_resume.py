"""A bulk copy planned with a conflict rename and left in doubt by a kill (its job in flight) is imported
under the name its intent journaled, even when a fresh decision would now choose another: the trust's own
file that forced the rename is gone by the time the run resumes. (Checked for issue 16's review: it held on
main, through the engine's re-attach to the package it journaled; slow, as a guard.)"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from migrations.core.killpoints import ENV as KILL_ENV
from sandbox.azurite import Azurite
from sandbox.migration_api import configure, service
from tests.bulk.conftest import BulkCli, start
from tests.files.conftest import SOURCE_SITE, TARGET_SITE, World
from tests.identity.conftest import TARGET, bootstrapped

TAKEN = "Conflict/Plan.docx"
RENAMED = "Conflict/Plan (hillside).docx"


def _in_doubt(state: Path) -> dict[str, dict[str, object]]:
    """Copy steps whose latest journal event is their intent, with the args it journaled."""
    latest: dict[str, tuple[str, str]] = {}
    with sqlite3.connect(state) as db:
        for key, event, data in db.execute(
            "SELECT step_key, event, data FROM journal WHERE phase = 'files' ORDER BY seq"
        ):
            latest[key] = (event, data)
    return {k: json.loads(d or "{}").get("args", {}) for k, (e, d) in latest.items() if e == "intent"}


@pytest.mark.slow
def test_in_doubt_conflict_rename_is_imported_under_the_journaled_name(
    tmp_path: Path, azurite: Azurite
) -> None:
    config, ctx = start(tmp_path, azurite, extra="    onedrive: false\n", size=20, seed=3)
    with ctx as url:
        bootstrapped(str(url))
        configure(url.world, blob_url=azurite.blob_url, queue_url=azurite.queue_url, account=azurite.account,
                  key=azurite.key, rate=2000)  # fmt: skip
        source = next(t["id"] for t in url.world.tenant_list() if t["academy"] == "hillside")
        cli = BulkCli(url, tmp_path / "state.db", config, azurite.env())
        w = World(url, cli, source, tmp_path / "state.db")
        src_lib, tgt_lib = w.library(source, SOURCE_SITE), w.library(TARGET, TARGET_SITE)
        w.put(source, src_lib, TAKEN, b"the academy's plan " * 200)
        own = w.put(TARGET, tgt_lib, TAKEN, b"the trust's own plan")  # forces the rename
        cli("discover", "hillside")
        cli("run", "hillside", "--phase", "users", "--replan")
        cli.extra_env[KILL_ENV] = "bulk.submitted:1"
        assert cli("run", "hillside", "--phase", "files", "--replan", check=False).returncode == -9
        del cli.extra_env[KILL_ENV]
        svc = service(url.world)
        assert svc.jobs  # killed with its job in flight
        doubt = [a for a in _in_doubt(tmp_path / "state.db").values() if a.get("path") in (TAKEN, RENAMED)]
        assert [a["path"] for a in doubt] == [RENAMED]
        # The trust's file that forced the rename goes: a fresh plan would now choose the source's own name.
        with w.graph(TARGET) as g:
            assert g.delete(f"/drives/{tgt_lib}/items/{own['id']}").status_code == 204
        result = json.loads(cli("run", "hillside", "--phase", "files", "--replan", "--json").stdout)
        assert result["status"] == "succeeded", result["failures"]
        assert max(svc.imports.values()) == 1  # nothing imported twice
        imported = {k.split("/", 1)[1] for k in svc.imports if k.startswith(tgt_lib)}
        assert f"Shared Documents/{RENAMED}" in imported and f"Shared Documents/{TAKEN}" not in imported
        left = w.drives()[tgt_lib]
        assert RENAMED in left and TAKEN not in left
        assert left[RENAMED]["size"] == len(b"the academy's plan " * 200)

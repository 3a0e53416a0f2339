"""The Migration API engine end to end against sandbox + Azurite."""

from __future__ import annotations

import json

from tests.files.conftest import SOURCE_SITE, TARGET_SITE, World
from tests.identity.conftest import TARGET


def test_library_through_the_migration_api(bulk_hillside: World) -> None:
    w = bulk_hillside
    result = w.cli.json("run", "hillside", "--phase", "files")
    assert result["status"] == "succeeded", result["failures"]
    src_lib, tgt_lib = w.library(w.source, SOURCE_SITE), w.library(TARGET, TARGET_SITE)
    source, target = w.drives(w.source)[src_lib], w.drives()[tgt_lib]
    assert result["counts"]["files"] > 20
    files = json.loads(w.cli("verify", "hillside", "--json", check=False).stdout)["files"]
    assert files["differences"] == [] and files["matched"] == files["files"] - 1  # the oversized video
    assert len(target) > 20 and len(source) > 20

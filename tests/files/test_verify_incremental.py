"""Files verify reads only what changed since the run (delta from the run's tokens on both sides) and trusts
the hashes the run checked; it still catches a change made in the trust tenant or at source since, and
reads a drive whole (and says so) when its token has expired: learn.microsoft.com/graph/api/driveitem-delta
(410 Gone, resyncRequired: "Replace any local items with the server's version"; sandbox: expire-delta)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import httpx

from tests.files.conftest import SOURCE_SITE, TARGET_SITE, World
from tests.identity.conftest import TARGET


def verify(w: World) -> tuple[dict[str, Any], dict[str, int]]:
    """The files part of `verify hillside --json`, and what it cost the trust tenant in the sandbox."""
    before = w.stats(TARGET)
    out = json.loads(w.cli("verify", "hillside", "--json", check=False).stdout)
    after = w.stats(TARGET)
    cost = {k: int(after[k]) - int(before[k]) for k in ("requests", "bytes_out")}
    return dict(out["files"]), cost


def test_untouched_tree_verified_from_the_runs_tokens_and_a_trust_change_caught(hillside: World) -> None:
    w = hillside
    assert w.cli.json("run", "hillside", "--phase", "files", "--replan")["status"] == "succeeded"
    # First verify after the run: the run's own writes come through delta and are compared live.
    first, _ = verify(w)
    assert first["differences"] == [] and first["target_reads"]["full"] == 0, first
    assert first["target_reads"]["delta"] > 0 and first["matched"] == first["files"] - 1
    # Untouched since: every matched file is as the run recorded it, read through empty delta pages.
    again, cost = verify(w)
    assert again["differences"] == [] and again["matched"] == first["matched"]
    assert again["trusted"] == again["matched"] and again["target_reads"]["full"] == 0
    # The same check reading every target drive whole (what verify did before: no tokens kept).
    with sqlite3.connect(w.state) as db:
        db.execute("DELETE FROM delta_links WHERE resource LIKE 'files-verify:%'")
    whole, full_cost = verify(w)
    assert whole["differences"] == [] and whole["trusted"] == 0
    assert whole["target_reads"]["delta"] == 0 and whole["target_reads"]["full"] > 0
    assert any("no delta token" in n for n in whole["notes"])
    assert cost["requests"] < full_cost["requests"], (cost, full_cost)
    assert cost["bytes_out"] * 3 < full_cost["bytes_out"], (cost, full_cost)

    # A file changed in the trust tenant after the run is reported, from the token the clean read left.
    tgt_lib = w.library(TARGET, TARGET_SITE)
    w.put(TARGET, tgt_lib, "Policies/Behaviour Policy.docx", b"edited in the trust tenant " * 40)
    changed, _ = verify(w)
    assert changed["target_reads"]["full"] == 0
    assert [(d["kind"], d["object"]) for d in changed["differences"]] == [
        ("file-content", f"{SOURCE_SITE}/Documents/Policies/Behaviour Policy.docx")
    ]
    # And again next time: a drive with a difference keeps its older token.
    still, _ = verify(w)
    assert [d["object"] for d in still["differences"]] == [d["object"] for d in changed["differences"]]


def test_source_change_since_the_run_is_reported(hillside: World) -> None:
    w = hillside
    w.cli.json("run", "hillside", "--phase", "files", "--replan")
    verify(w)
    src_lib = w.library(w.source, SOURCE_SITE)
    w.put(w.source, src_lib, "Policies/Behaviour Policy.docx", b"rewritten at source " * 50)
    result, _ = verify(w)
    assert [(d["kind"], d["object"]) for d in result["differences"]] == [
        ("file-content", f"{SOURCE_SITE}/Documents/Policies/Behaviour Policy.docx")
    ]
    assert result["target_reads"]["full"] == 0


def test_expired_token_falls_back_to_a_full_read_and_says_so(hillside: World) -> None:
    w = hillside
    w.cli.json("run", "hillside", "--phase", "files", "--replan")
    verify(w)
    r = httpx.post(f"{w.url}/sandbox/tenants/{TARGET}/expire-delta", json={}, timeout=30)
    assert r.status_code in (200, 204), r.text
    tgt_lib = w.library(TARGET, TARGET_SITE)
    w.put(TARGET, tgt_lib, "Policies/Behaviour Policy.docx", b"edited while the token was lost " * 40)
    out = w.cli("verify", "hillside", check=False)
    assert out.returncode == 1
    assert "delta token from the run has expired (410 resyncRequired)" in out.stdout, out.stdout
    assert "file-content staff/Documents/Policies/Behaviour Policy.docx" in out.stdout
    result, _ = verify(w)
    assert result["target_reads"]["full"] > 0 and len(result["differences"]) == 1

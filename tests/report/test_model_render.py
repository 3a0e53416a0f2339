"""The report's numbers come from the store by the reporting contract; every renderer escapes and redacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_fixtures import add_run

from migrations.core.store import StateStore
from migrations.reporting import build_report, render
from migrations.reporting.model import _throughput
from migrations.safety.redaction import register_secret
from trust import load_trust

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_counts_follow_the_contract(filled_store: StateStore):
    report = build_report(filled_store, load_trust(CONFIG))
    oak = next(a for a in report.academies if a.code == "oakwood")
    users = oak.phase("users")
    assert (users.planned, users.done, users.already_present, users.skipped) == (118, 110, 6, 2)
    assert users.throttled == 3 and users.wait_seconds == 4.5
    # files: phase_status counts win over the two runs; throttling adds up over both runs.
    files = oak.phase("files")
    assert (files.done, files.failed, files.bytes, files.renamed) == (298, 2, 130_000_000, 4)
    assert files.throttled == 3 and files.wait_seconds == 3.25 and files.runs == 2
    assert files.last_run_status == "succeeded"
    groups = oak.phase("groups")
    assert (groups.planned, groups.done, groups.already_present, groups.runs) == (14, 14, 0, 2)
    assert oak.rollback_available and users.rollback_available and not oak.phase("groups").rollback_available
    assert oak.overall == "complete" and oak.verify == {
        "ok": True,
        "checked": 462,
        "differences": [],
        "files": {"drives": 3, "hash_ok": 298},
    }
    assert oak.finding_counts == {"disabled-account": 1, "duplicate-display-name": 1}
    assert oak.finding_summary[0] == {
        "kind": "disabled-account",
        "count": 1,
        "handling": ["skipped (include_disabled is false)"],
    }
    st = next(a for a in report.academies if a.code == "stmarys")
    assert st.overall == "attention" and st.phase("groups").status == "failed"
    untouched = next(a for a in report.academies if a.code == "brookfield")
    assert untouched.overall == "not-started" and not untouched.rollback_available
    assert [a.code for a in report.academies] == ["brookfield", "hillside", "oakwood", "stmarys"]
    assert report.totals["done"] == 110 + 14 + 30 + 298 + 40 + 3
    assert report.totals["throttled"] == 3 + 3 + 7


def test_one_academy_and_store_only_academies(filled_store: StateStore):
    add_run(filled_store, "retired", "users", start=0, length=1, counts={"done": 1})
    report = build_report(filled_store, load_trust(CONFIG), "stmarys")
    assert [a.code for a in report.academies] == ["stmarys"] and report.audit_entries == 1
    without_config = build_report(filled_store)
    retired = next(a for a in without_config.academies if a.code == "retired")
    assert retired.wave is None and retired.phase("users").done == 1


def test_rolled_back_phase_has_no_rollback_plan(filled_store: StateStore):
    filled_store.set_phase_status("oakwood", "users", "rolled-back", {})
    oak = next(a for a in build_report(filled_store).academies if a.code == "oakwood")
    assert not oak.phase("users").rollback_available and oak.overall == "rolled-back"
    assert oak.phase("users").status == "rolled-back"


def test_throughput_from_cumulative_samples(filled_store: StateStore):
    run = add_run(filled_store, "x", "users", start=500, length=4, counts={"done": 40}, samples=4)
    points = _throughput(filled_store, [run])
    assert [p.items_per_s for p in points] == [10.0, 10.0, 10.0, 10.0]
    assert _throughput(filled_store, []) == []


def test_html_escapes_and_is_self_contained(filled_store: StateStore):
    html = render(build_report(filled_store, load_trust(CONFIG)), "html")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "St Mary&#39;s &lt;Église&gt; &amp; &#34;Co&#34;" in html
    # Nothing fetched from anywhere: no external scripts, stylesheets, images or fonts.
    for marker in ("src=", "<link", "@import", "url(", "http://", "https://"):
        assert marker not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert html.count("<svg") == 3


def test_markdown_escapes_cells(filled_store: StateStore):
    md = render(build_report(filled_store, load_trust(CONFIG)), "md")
    assert 'St Mary\'s &lt;Église&gt; &amp; "Co"' in md
    assert "renamed \\| transliterated" in md
    assert "<script>" not in md
    assert "| Oakwood Special School | 2 | complete |" in md


def test_json_round_trips(filled_store: StateStore):
    data = json.loads(render(build_report(filled_store, load_trust(CONFIG)), "json"))
    oak = next(a for a in data["academies"] if a["code"] == "oakwood")
    files = next(p for p in oak["phases"] if p["phase"] == "files")
    assert files["bytes"] == 130_000_000 and oak["overall"] == "complete"
    assert data["trust_name"] == "Northern Lights Learning Trust"


def test_a_stray_secret_never_leaves(filled_store: StateStore):
    secret = "s3cr3t-value-from-a-misbehaving-engine"
    register_secret(secret)
    filled_store.set_phase_status(
        "hillside", "discover", "done", {"findings": [{"kind": "guest", "message": secret}]}
    )
    for fmt in ("html", "md", "json"):
        assert secret not in render(build_report(filled_store), fmt)


def test_unknown_format(filled_store: StateStore):
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        render(build_report(filled_store), "pdf")

"""The report's structured sections (issue 21): verification as a summary per kind with the differences
first, readiness from the latest preflight of each tenant, OneDrive totals over every provisioning call."""

from __future__ import annotations

import json
import re

from report_fixtures import AWKWARD, CONFIG, add_bootstrap, add_preflight, add_provisioning, verify_detail

from migrations.core.store import StateStore
from migrations.reporting import build_report, render
from migrations.reporting.render import DIFFERENCES_SHOWN
from trust import load_trust

HOSTILE = "<img src=x onerror=alert(1)>\u202efdp.exe\x1b[31m"


def _drive(n: int) -> dict[str, object]:
    return {"drive": f"user{n}@oakwood.example -> OneDrive", "files": 5, "matched": 5, "bytes": 1_888_238}


def _files_part(differences: list[dict[str, str]]) -> dict[str, object]:
    drives = [_drive(n) for n in range(25)] + [
        {"drive": HOSTILE, "files": 0, "matched": 0, "bytes": 17}
    ]  # 25 x 1,888,238 + 17 = 47,205,967 bytes
    return {
        "checked": 125,
        "differences": differences,
        "drives": drives,
        "files": 125,
        "matched": 125 - len(differences),
        "bytes": sum(int(d["bytes"]) for d in drives),  # type: ignore[call-overload]
    }


def _section(html: str, code: str) -> str:
    start = html.index(f'id="academy-{code}"')
    return html[start : html.index("</section>", start)]


def test_verification_is_a_summary_per_kind_with_the_differences_first(filled_store: StateStore):
    diffs = [
        {"kind": "file-missing", "object": f"Staff/{i}.docx", "message": "not in the trust tenant"}
        for i in range(30)
    ]
    diffs.insert(0, {"kind": "file-content", "object": AWKWARD + HOSTILE, "message": HOSTILE})
    detail = verify_detail(
        412,
        {
            "files": _files_part(diffs),
            "permissions": {"checked": 9, "differences": [], "grants": 12, "matched": 12},
            "domain": {
                "checked": 0,
                "differences": [],
                "note": "the domain phase has not run for this academy",
            },
        },
    )
    filled_store.set_phase_status("oakwood", "verify", "failed", detail)
    report = build_report(filled_store, load_trust(CONFIG))
    oak = next(a for a in report.academies if a.code == "oakwood")
    assert [(k["kind"], k["checked"], k["differences"]) for k in oak.verification] == [
        ("identity", 412, 0),
        ("files", 125, 31),
        ("permissions", 9, 0),
        ("domain", 0, 0),
    ]
    assert oak.verification[1]["drives"] == 26 and oak.verification[1]["bytes"] == 47_205_967

    html = _section(render(report, "html"), "oakwood")
    # The old page printed the part as a dict: "Files: bytes 47205967, checked 125, ..., drives [{...".
    assert "drives [{" not in html and "'bytes'" not in html and "47205967" not in html
    assert html.index('class="differences"') < html.index('class="verification"')
    shown = re.findall(r"<tr><td>file-(?:missing|content)</td>", html)
    assert len(shown) == DIFFERENCES_SHOWN
    assert f"and\n{31 - DIFFERENCES_SHOWN} more" in html
    files_row = html[html.index('<tr data-kind="files">') :].split("</tr>")[0]
    assert 'data-metric="checked" data-value="125"' in files_row and ">31<" in files_row
    assert "26 drives, 125 files, 45.0 MB" in files_row
    assert "12 of 12 planned grants found" in html and "the domain phase has not run" in html
    # Tenant strings stay inert: escaped, and controls/invisibles shown as codes (sanitise.report_text).
    assert "<img" not in html and "\u202e" not in html and "\x1b" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;\\u202efdp.exe\\u001b[31m" in html

    md = render(report, "md")
    part = md[md.index("## Oakwood") :]
    assert "| kind | object | difference |" in part and "| files | 125 | 31 |" in part
    assert part.index("| kind | object | difference |") < part.index("| checked | objects |")
    assert f"… and {31 - DIFFERENCES_SHOWN} more" in part and "26 drives, 125 files, 45.0 MB" in part
    assert "drives [{" not in md and "<img" not in md and "\u202e" not in md
    assert "&lt;img src=x onerror=alert(1)&gt;\\u202efdp.exe\\u001b[31m" in part

    data = json.loads(render(report, "json"))
    full = next(a for a in data["academies"] if a["code"] == "oakwood")
    assert len(full["verify"]["files"]["drives"]) == 26 and len(full["verify"]["differences"]) == 31
    assert full["verify"]["files"]["drives"][-1]["drive"] == HOSTILE  # exact in JSON; escaped as \u in text
    assert full["verification"][1]["kind"] == "files"


def _checks(html: str) -> list[tuple[str, str, str]]:
    table = html[html.index('<table id="preflight">') :].split("</table>")[0]
    return re.findall(r'data-state="(\w+)"><td>([\w-]+)</td><td>([\w-]+)</td>', table)


def test_readiness_shows_the_latest_preflight_of_each_tenant(filled_store: StateStore):
    before = (("credential", "trust", True), ("extension", "trust", False), ("credential", "stmarys", True))
    add_preflight(filled_store, *before)
    add_bootstrap(filled_store)
    html = render(build_report(filled_store, load_trust(CONFIG)), "html")
    # The only preflight was taken before bootstrap: the check bootstrap then fixed is not shown blocking.
    assert _checks(html) == [
        ("ok", "credential", "trust"),
        ("fixed", "extension", "trust"),
        ("ok", "credential", "stmarys"),
    ]
    assert "2 of 3 checks pass; 1 fixed by bootstrap since" in html

    # A preflight after bootstrap, of the trust tenant and oakwood only: stmarys keeps its last result.
    add_preflight(
        filled_store,
        ("credential", "trust", True),
        ("extension", "trust", True),
        ("credential", "oakwood", False),
    )
    report = build_report(filled_store, load_trust(CONFIG))
    html = render(report, "html")
    assert _checks(html) == [
        ("ok", "credential", "trust"),
        ("ok", "extension", "trust"),
        ("blocks", "credential", "oakwood"),
        ("ok", "credential", "stmarys"),
    ]
    assert "3 of 4 checks pass" in html and "fixed by bootstrap" not in html
    md = render(report, "md")
    assert "| extension | trust | ok |" in md and "| credential | oakwood | blocks |" in md

    # A third, of the trust tenant and stmarys: the first gives no tenant's result now.
    add_preflight(filled_store, ("credential", "trust", True), ("credential", "stmarys", True))
    pre = build_report(filled_store).onboarding["preflight"]
    assert [(c["check"], c["tenant"], c["ok"]) for c in pre["checks"]] == [
        ("credential", "trust", True),
        ("credential", "oakwood", False),
        ("credential", "stmarys", True),
    ]
    assert pre["superseded"] == 1
    assert "1 earlier preflight(s) superseded" in render(build_report(filled_store), "html")


def test_onedrive_table_shows_the_academys_totals(filled_store: StateStore):
    users = [f"u{n}@oakwood.example" for n in range(250)]
    add_provisioning(filled_store, "oakwood", users, ready=240, waiting=users[240:])
    # A later call finds nothing left to ask: its own counts are 0 requested in 0 admin calls.
    add_provisioning(filled_store, "oakwood", [], ready=250, waiting=[])
    drives = build_report(filled_store).onboarding["onedrive"]["oakwood"]
    assert (drives["ready"], len(drives["waiting"]), drives["requested"], drives["calls"]) == (250, 0, 250, 2)
    html = render(build_report(filled_store), "html")
    row = html[html.index('<tr data-academy="oakwood"><td>oakwood</td>') :].split("</tr>")[0]
    assert re.findall(r'data-field="(\w+)">(\d+)<', row) == [
        ("ready", "250"),
        ("waiting", "0"),
        ("requested", "250"),
        ("calls", "2"),
    ]
    assert "OneDrives oakwood: 250 ready, 0 waiting; 250 requested in 2 admin calls in all." in render(
        build_report(filled_store), "md"
    )

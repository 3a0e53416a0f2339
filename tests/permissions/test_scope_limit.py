"""SharePoint's limit of items with unique permissions per library (50,000: sharepoint-online-limits,
"Unique security scopes per list or library"), lowered in the sandbox so that a real run meets it: the items
past it are findings naming the item and the limit, the rest of the run carries on, and nothing wider (the
folder above, the library) is shared instead."""

from __future__ import annotations

import json
from collections import Counter

import httpx

from tests.identity.conftest import TARGET
from tests.permissions.conftest import World
from tests.permissions.test_permissions_journey import _expected, _people_group, _plan


def test_items_past_the_unique_scope_limit_are_findings_never_wider_grants(copied: World) -> None:
    w = copied
    admin = f"{w.url}/sandbox/tenants/{TARGET}/sharing"
    # One item with permissions of its own per library or OneDrive: the second item of a drive is refused.
    assert httpx.post(admin, json={"uniqueScopesLimit": 1}).status_code == 200
    try:
        proc = w.cli("run", "hillside", "--phase", "permissions", "--replan", "--json", check=False)
    finally:
        httpx.post(admin, json={"uniqueScopesLimit": 50_000})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    result = json.loads(proc.stdout)
    refused = [f for f in result["failures"] if "limit of items with unique permissions" in f["message"]]
    assert refused, result["failures"]
    assert len(refused) == len(result["failures"])  # nothing else went wrong
    assert all("nothing wider was shared instead" in f["message"] for f in refused)
    assert result["counts"]["done"] > 0  # the run carried on past the refusals
    expected = _expected(_plan(w), _people_group(w))
    shared: Counter[str] = Counter()
    for (drive, item), want in expected.items():
        got = w.signatures(drive, item)
        # Each item has exactly its planned grants, or none at all: never a part, never someone else's.
        assert got in (want, Counter()), (item, got, want)
        shared[drive] += bool(got)
    assert shared and all(n <= 1 for n in shared.values())
    # No drive's other items took grants the plan did not give them (a refused grant is not moved up).
    for drive in shared:
        for item, n in _direct_counts(w, drive).items():
            assert (drive, item) in expected or n == 0, item
    # The report's sharing section names each refused item with the limit and what was (not) done instead.
    report = w.cli("report", "hillside", "--format", "md", "--out", "-").stdout
    section = report[report.index("Sharing refused by SharePoint") :]
    section = section[: section.index("\n\n", section.index("| --- |"))]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(refused), section
    paths = {f["message"].split("'")[1] for f in refused}
    for row in rows:
        assert "50,000 per library" in row and "nothing wider was shared instead" in row, row
        assert any(f"| {p} |" in row for p in paths), row
    html = w.cli("report", "hillside", "--format", "html", "--out", "-").stdout
    assert f'data-field="sharing-refused" data-value="{len(refused)}"' in html
    assert html.count("nothing wider was shared instead") >= len(refused)
    # A new plan still has those grants to give: the refusals stay in the report until a run gives them.
    w.cli("plan", "hillside", "--phase", "permissions")
    report = w.cli("report", "hillside", "--format", "md", "--out", "-").stdout
    assert f"with unique permissions): {len(refused)} item(s)." in report
    # Once the library has room, the plan's steps give the grants and the refusals leave the report.
    again = w.cli("run", "hillside", "--phase", "permissions", "--json", check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (
        "Sharing refused by SharePoint"
        not in w.cli("report", "hillside", "--format", "md", "--out", "-").stdout
    )


def _direct_counts(w: World, drive: str) -> dict[str, int]:
    """Every item of the drive the run touched: how many grants of its own it has."""
    out: dict[str, int] = {}
    with w.graph() as g:
        r = g.get(f"/drives/{drive}/root/delta")
        while True:
            assert r.status_code == 200, r.text
            for it in r.json().get("value", []):
                if "root" not in it:
                    out[it["id"]] = len(w.direct(drive, it["id"]))
            nxt = r.json().get("@odata.nextLink")
            if not nxt:
                return out
            r = g.get(nxt)

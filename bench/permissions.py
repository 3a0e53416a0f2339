"""Permission requests per shared item, and the share of SharePoint's resource-unit budget a sharing pass
uses.

A sandbox (throttling on, SharePoint budget --budget per tenant) with one academy migrated up to files; then
one `run --phase permissions` (it scans sharing and runs the plan in one process) and a second, unchanged
incremental pass. Prints, from one run:
- permission requests (reads of shared items' permissions + invite/createLink writes) per shared item
  (goal <= 2 on average);
- RU spent per tenant / the most SharePoint's window admits in the pass's duration
  (limit * ceil(seconds / window)), i.e. the share of the budget used;
- delta requests per drive (sharing is found by delta, never by reading every item);
- the share of the "Specific Sharing APIs" limit the pass's writes use (300 sharing changes per 5 minutes per
  app per tenant: writes / (300 * ceil(seconds / 300)));
- the same figures for the incremental pass (nothing changed at source).

Run: .venv/bin/python bench/permissions.py [--size 100] [--budget 1200/60]
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from _cli_common import ROOT
from _cli_common import cli as trustfold

from sandbox.testing import running_sandbox

GOAL = 2.0
SHARING_LIMIT, SHARING_WINDOW = 300, 300.0  # "Specific Sharing APIs", per app per tenant


def cli(url: str, state: Path, *args: str) -> Any:
    return trustfold(url, state, *args, as_json=False, timeout=1800)


def figures(counts: dict[str, Any], limit: float, window: float, drives: int) -> dict[str, float]:
    items = max(1, int(counts["shared_items"]))
    requests = int(counts["permission_reads"]) + int(counts["permission_writes"])
    seconds = max(float(counts["seconds"]), 0.001)
    admits = limit * math.ceil(seconds / window)
    return {
        "shared items": int(counts["shared_items"]),
        "permission requests": requests,
        "requests per shared item": requests / items,
        "RU spent (both tenants)": int(counts["sharepoint_ru"]),
        "RU share of budget, target": int(counts["sharepoint_ru_target"]) / admits,
        "RU share of budget, source": (int(counts["sharepoint_ru"]) - int(counts["sharepoint_ru_target"]))
        / admits,
        "delta requests per drive": int(counts["delta_requests"]) / max(1, drives),
        "grants written": int(counts["permission_writes"]),
        "sharing-API limit share": int(counts["permission_writes"])
        / (SHARING_LIMIT * math.ceil(seconds / SHARING_WINDOW)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100, help="users per academy in the sandbox")
    parser.add_argument("--budget", default="1200/60", help="SharePoint RU per tenant, N/SECONDS")
    parser.add_argument("--academy", default="hillside")
    args = parser.parse_args()
    limit, window = (float(x) for x in args.budget.split("/"))
    with (
        running_sandbox(ROOT / "config", size=args.size, seed=11, sharepoint_ru=args.budget) as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        state = Path(tmp) / "state.db"
        cli(url, state, "bootstrap", "--yes")
        cli(url, state, "discover", args.academy)
        for phase in ("users", "groups", "files"):
            cli(
                url,
                state,
                "run",
                args.academy,
                "--phase",
                phase,
                "--replan",
                "--sharepoint-budget",
                args.budget,
            )
        budget = ("--sharepoint-budget", args.budget)
        first = cli(url, state, "run", args.academy, "--phase", "permissions", "--replan", "--json", *budget)
        again = cli(url, state, "run", args.academy, "--phase", "permissions", "--replan", "--json", *budget)
        with sqlite3.connect(state) as db:
            drives = db.execute("SELECT count(*) FROM drives WHERE source_drive_id IS NOT NULL").fetchone()[0]
    one = figures(first["counts"], limit, window, drives)
    two = figures(again["counts"], limit, window, drives)
    print(
        f"permissions bench: {args.academy}, size {args.size}, budget {args.budget} per tenant, "
        f"{drives} drives"
    )
    print(f"{'figure':32} {'first pass':>12} {'incremental':>12}")
    for key in one:
        a, b = one[key], two[key]
        fmt = (lambda v: f"{v:12.3f}") if isinstance(a, float) else (lambda v: f"{v:12d}")
        print(f"{key:32} {fmt(a)} {fmt(b)}")
    ratio = one["requests per shared item"]
    print(
        f"requests per shared item / goal ({GOAL:g}): {ratio / GOAL:.3f} "
        f"({'met' if ratio <= GOAL else 'missed'})"
    )
    print(f"429 answers: first {first['counts']['throttled']}, incremental {again['counts']['throttled']}")


if __name__ == "__main__":
    main()

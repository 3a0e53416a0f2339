"""Identity migration against the sandbox's write budget: how much of the budget trustfold uses, and how
few requests it spends.

Prints, from one run:
- writes achieved / writes the sliding-window budget permits over the run (goal >= 0.9);
- HTTP requests to the trust tenant per migrated user (goal <= 0.1) and per membership (goal <= 0.06);
- share of requests answered 429 (goal <= 2%).
The default budget, 300 writes / 15 s, has Microsoft's rate (3,000 / 150 s = 20 writes/s) in a window short
enough for a one-minute bench; --budget 3000/150 uses the published figure (needs a larger --size).

With --licences group the trust is configured with `licences.mode: group`: users get their licence by
membership of the academy's staff / pupils group (one write per user plus a twentieth for the membership)
instead of one assignLicense each; compare the two runs' requests per migrated user.

Run: .venv/bin/python bench/identity_users.py [--size 600] [--budget 300/15] [--licences direct|group]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from _cli_common import ROOT, permitted, target_stats
from _cli_common import cli as trustfold

from sandbox.testing import running_sandbox

CONFIG = ROOT / "config"


def cli(url: str, state: Path, *args: str) -> dict:
    return trustfold(url, state, *args, config=CONFIG)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=600, help="users per academy")
    parser.add_argument("--budget", default="300/15", help="write budget N/SECONDS (sandbox and client)")
    parser.add_argument("--academies", nargs="+", default=["hillside", "oakwood"])
    parser.add_argument(
        "--licences", choices=("direct", "group"), default="direct", help="licences.mode for the trust"
    )
    args = parser.parse_args()
    limit, window = (float(x) for x in args.budget.split("/"))
    global CONFIG
    with tempfile.TemporaryDirectory() as tmp:
        CONFIG = licence_config(Path(tmp), args.licences)
        run_bench(args, limit, window, Path(tmp))


def licence_config(tmp: Path, mode: str) -> Path:
    """A copy of config/ with licences.mode set (the trust's other settings unchanged)."""
    cfg = tmp / "config"
    shutil.copytree(ROOT / "config", cfg)
    trust = cfg / "trust.yaml"
    anchor = "  pupil: STANDARDWOFFPACK_STUDENT\n"
    text = trust.read_text()
    if anchor not in text:
        raise SystemExit("config/trust.yaml: licences.pupil line not found; cannot set licences.mode")
    trust.write_text(text.replace(anchor, anchor + f"  mode: {mode}\n"))
    return cfg


def run_bench(args: argparse.Namespace, limit: float, window: float, tmp: Path) -> None:
    with running_sandbox(CONFIG, size=args.size, seed=3, write_budget=args.budget) as url:
        state = tmp / "state.db"
        for code in args.academies:
            cli(url, state, "discover", code)
        cli(url, state, "bootstrap", "--yes")  # the one-off set-up: provenance marker registered
        for code in args.academies:  # `run` applies the plan the operator reviewed: plan first
            cli(url, state, "plan", code, "--phase", "users")
        before = target_stats(url)
        start = time.monotonic()
        for code in args.academies:
            cli(
                url,
                state,
                "run",
                code,
                "--phase",
                "users",
                "--write-budget",
                args.budget,
                "--concurrency",
                "8",
            )
        users = users_created(state)
        elapsed = time.monotonic() - start
        mid = target_stats(url)
        for code in args.academies:
            cli(url, state, "plan", code, "--phase", "groups")
            cli(url, state, "run", code, "--phase", "groups", "--write-budget", args.budget)
        for code in args.academies:
            cli(url, state, "plan", code, "--phase", "memberships")
        pre_members = target_stats(url)
        members = 0
        for code in args.academies:
            result = cli(url, state, "run", code, "--phase", "memberships", "--write-budget", args.budget)
            members += result["counts"]["done"]
        after = target_stats(url)
        writes = mid["writes"] - before["writes"]
        allowed = permitted(limit, window, elapsed)
        user_requests = mid["requests"] - before["requests"]
        member_requests = after["requests"] - pre_members["requests"]
        added = memberships_added(state)
        throttled = after["throttled"] - before["throttled"]
        requests = after["requests"] - before["requests"]
        print(
            f"users phase (licences {args.licences}): {users} users, {writes} writes in {elapsed:.1f} s "
            f"(budget {int(limit)}/{window:g} s permits {allowed:.0f} over the run)"
        )
        print(f"  writes achieved / budget permitted: {writes / allowed:.2f}   (goal >= 0.9)")
        print(f"  requests per migrated user: {user_requests / max(users, 1):.3f}   (goal <= 0.1)")
        print(f"  writes per migrated user: {writes / max(users, 1):.3f}")
        print(
            f"memberships phase: {added} memberships added with {member_requests} requests "
            f"({members} add-members steps)"
        )
        print(f"  requests per membership: {member_requests / max(added, 1):.4f}   (goal <= 0.06)")
        print(f"429 share of all requests: {throttled / max(requests, 1):.2%}   (goal <= 2%)")


def users_created(state: Path) -> int:
    db = sqlite3.connect(state)
    return int(
        db.execute(
            "SELECT COUNT(DISTINCT step_key) FROM journal WHERE op = 'create-user' AND event = 'done'"
        ).fetchone()[0]
    )


def memberships_added(state: Path) -> int:
    db = sqlite3.connect(state)
    rows = db.execute(
        "SELECT data FROM journal WHERE op = 'add-members' AND event = 'done' AND phase = 'memberships'"
    ).fetchall()
    return sum(len(json.loads(r[0]).get("members", [])) for r in rows)


if __name__ == "__main__":
    main()

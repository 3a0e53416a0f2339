"""One academy's users phase with the write window lifted: how many 429s the identity resource-unit budget
answers, with and without trustfold's client-side copy of that window.

The trust tenant starts small (a handful of central users, Microsoft's smallest identity tier, 3,500 RU per
10 s) and grows past 500 users during the run (8,000 RU per 10 s). The sandbox's write budgets are lifted
(as `--write-budget` raised on both sides would), so the RU budget is the only wall left; before the
client kept an RU window, such a run learnt that wall from 429s (issue 13 quotes 3,728 for 4,000 users).

Prints, from one run per mode: users created, seconds, 429s answered by the sandbox to the trust tenant,
429 share of requests, and the ratio of RU spent per 10 s to the budget at the end (how close it runs).

Run: .venv/bin/python bench/identity_ru_window.py [--size 4000] [--academy hillside] [--modes window,off]
     [--concurrency 8]
     (about 2-4 minutes on 2 cores at the default size; --size 1000 for a quick look)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
from _cli_common import ROOT, TARGET, target_stats
from _cli_common import cli as trustfold

from sandbox.testing import running_sandbox

LIFTED = "1000000/150"


def cli(url: str, state: Path, *args: str, window: bool = True) -> dict:
    env = {"TRUSTFOLD_IDENTITY_RU_WINDOW": "on" if window else "off"}
    return trustfold(url, state, *args, env=env)


def one(size: int, academy: str, window: bool, concurrency: int) -> dict[str, float]:
    with (
        running_sandbox(
            ROOT / "config",
            size=size,
            seed=3,
            write_budget=LIFTED,
            tenant_write_budget="1000000/300",
        ) as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        state = Path(tmp) / "state.db"
        cli(url, state, "bootstrap", "--yes", window=window)  # the one-off set-up, not measured
        cli(url, state, "discover", academy, window=window)
        before = target_stats(url)
        start = time.monotonic()
        result = cli(
            url,
            state,
            "run",
            academy,
            "--phase",
            "users",
            "--replan",
            "--write-budget",
            LIFTED,
            "--concurrency",
            str(concurrency),
            window=window,
        )
        elapsed = time.monotonic() - start
        after = target_stats(url)
        budget = httpx.get(f"{url}/sandbox/settings").json()["budgets"][TARGET]["identity_ru"]
        users = result["counts"]["done"]
        return {
            "steps_done": users,
            "seconds": elapsed,
            "throttled": after["throttled"] - before["throttled"],
            "requests": after["requests"] - before["requests"],
            "writes": after["writes"] - before["writes"],
            "final_budget": budget,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=4000, help="users per academy")
    parser.add_argument("--academy", default="hillside")
    parser.add_argument("--concurrency", type=int, default=8, help="trustfold run --concurrency")
    parser.add_argument("--modes", default="window,off", help="window (client RU window on), off, or both")
    args = parser.parse_args()
    rows = {}
    for mode in args.modes.split(","):
        rows[mode] = one(args.size, args.academy, window=mode == "window", concurrency=args.concurrency)
        r = rows[mode]
        print(
            f"{mode:>6}: {int(r['steps_done'])} steps done ({int(r['writes'])} writes) "
            f"in {r['seconds']:.1f} s; "
            f"429 answers: {int(r['throttled'])} of {int(r['requests'])} requests "
            f"({r['throttled'] / max(r['requests'], 1):.2%}); tier at the end {r['final_budget']}"
        )
    if "window" in rows and "off" in rows:
        w, o = rows["window"], rows["off"]
        print(
            f"429s with the window / without: {int(w['throttled'])} / {int(o['throttled'])}; "
            f"time ratio {w['seconds'] / max(o['seconds'], 1e-9):.2f}"
        )


if __name__ == "__main__":
    main()

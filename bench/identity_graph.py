"""Identity migration end to end (discover, plan, run) against the trust tenant's write budget: how much of
the budget the whole journey uses, with users, groups and memberships as one dependency graph
(`--phase identity`) or phase by phase (`--mode phases`: plan and run users, then groups, then memberships).

Prints, from one run: writes achieved / writes the sliding-window budget permits from the start of discover
to the end of the last run (goal >= 0.85), the same over the runs alone, requests per write, and the
429 share. The default budget, 300 writes / 15 s, is Microsoft's rate (3,000 / 150 s = 20 writes/s) in a
window short enough for a one-minute bench.

Run: .venv/bin/python bench/identity_graph.py [--size 300] [--mode graph|phases] [--academies A B ...]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from _cli_common import ROOT, best_use, cli, permitted, target_stats

from sandbox.testing import running_sandbox


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=300, help="users in the academy")
    parser.add_argument("--budget", default="300/15", help="write budget N/SECONDS (sandbox and client)")
    parser.add_argument("--mode", choices=("graph", "phases"), default="graph")
    parser.add_argument("--academies", nargs="+", default=["hillside"])
    parser.add_argument("--concurrency", type=int, default=8, help="batches in flight (run --concurrency)")
    args = parser.parse_args()
    limit, window = (float(x) for x in args.budget.split("/"))
    phases = ["identity"] if args.mode == "graph" else ["users", "groups", "memberships"]
    run_opts = ["--write-budget", args.budget, "--concurrency", str(args.concurrency)]
    with (
        running_sandbox(ROOT / "config", size=args.size, seed=3, write_budget=args.budget) as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        state = Path(tmp) / "state.db"
        cli(url, state, "bootstrap", "--yes")  # the one-off set-up, before the measured window
        before = target_stats(url)
        start = time.monotonic()
        stages = []
        for code in args.academies:
            t = time.monotonic()
            cli(url, state, "discover", code)
            stages.append(f"discover {code} {time.monotonic() - t:.1f} s")
        run_time = 0.0
        for phase in phases:
            for code in args.academies:  # every plan reviewed first, then the runs back to back
                t = time.monotonic()
                cli(url, state, "plan", code, "--phase", phase)
                stages.append(f"plan {code} {phase} {time.monotonic() - t:.1f} s")
            for code in args.academies:
                t = time.monotonic()
                result = cli(url, state, "run", code, "--phase", phase, *run_opts)
                run_time += time.monotonic() - t
                stages.append(f"run {code} {phase} {time.monotonic() - t:.1f} s")
                if result["status"] != "succeeded":
                    raise SystemExit(f"run {code} {phase} failed: {result['failures'][:5]}")
        elapsed = time.monotonic() - start
        after = target_stats(url)
        verified = {"ok": all(cli(url, state, "verify", code)["ok"] for code in args.academies)}
        writes = after["writes"] - before["writes"]
        requests = after["requests"] - before["requests"]
        throttled = after["throttled"] - before["throttled"]
        use = writes / permitted(limit, window, elapsed)
        best = best_use(writes, limit, window)
        print(
            f"identity end to end ({args.mode}, {len(args.academies)} academies x {args.size} users, "
            f"budget {int(limit)}/{window:g} s): "
            f"{writes} writes in {elapsed:.1f} s (runs {run_time:.1f} s); verify ok: {verified['ok']}"
        )
        print(f"  stages: {', '.join(stages)}")
        print(f"  budget use end to end (writes / permitted): {use:.2f}   (goal >= 0.85)")
        print(
            f"  highest use any client can reach for {writes} writes: {best:.2f} "
            f"(the window admits them no sooner than {window * (math.ceil(writes / limit) - 1):g} s); "
            f"reached {use / best:.0%} of it"
        )
        runs_use = writes / permitted(limit, window, run_time)
        print(f"  budget use over the runs alone:             {runs_use:.2f}")
        print(f"  requests to the trust tenant per write: {requests / max(writes, 1):.3f}")
        print(f"  429 share of requests: {throttled / max(requests, 1):.2%}")


if __name__ == "__main__":
    main()

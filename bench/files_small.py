"""Many small files through the files phase under a binding SharePoint resource-unit budget.

The sandbox (its own process) enforces --budget as its SharePoint RU window and the client is given the
same figure (--sharepoint-budget), as an operator who knows the tenant's budget would. --files generated
files of 2-50 KB in a few folders are added to hillside's staff library before discovery; then one files
run copies them (and the library's own content). Prints, from one run:
- files per minute;
- RU spent in the target per minute (sharepoint_ru_target / seconds * 60) / the budget's rate (goal >= 0.9),
  as the issue words it; the window starts empty, so this counts one free window and can exceed 1;
- the strict form: RU spent / the most the sliding window admits in a run of T seconds,
  limit * ceil(T / window) (no client can score above 1);
- 429 answers;
- the naive baseline: the same files in a fresh sandbox with --concurrency 1 (skip with --no-baseline).
The default budget, 1,200 RU a minute, is Microsoft's figure for a tenant under 1,000 licences.

Run: .venv/bin/python bench/files_small.py [--files 1500] [--budget 1200/60] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
from pathlib import Path
from typing import Any

from _files_common import Cli, files_run, mib, sandbox_process, table

GOAL = 0.9


def small_files(count: int, folders: int, seed: int = 7) -> list[tuple[str, int, str]]:
    rng = random.Random(seed)
    return [
        (f"Bench/Folder {i % folders:02d}/note-{i:05d}.txt", rng.randint(2_000, 50_000), f"small-{i}")
        for i in range(count)
    ]


def one_pass(args: argparse.Namespace, concurrency: int) -> dict[str, Any]:
    limit, window = (float(x) for x in args.budget.split("/"))
    with (
        sandbox_process("--sharepoint-ru", args.budget) as box,
        tempfile.TemporaryDirectory() as tmp,
    ):
        box.add_files(small_files(args.files, args.folders))
        cli = Cli(box, Path(tmp))
        cli.prepare()
        m = files_run(cli, "--concurrency", str(concurrency), "--sharepoint-budget", args.budget)
    c = m.result["counts"]
    seconds = float(c["seconds"])
    ru = int(c["sharepoint_ru_target"])
    rate = ru / seconds  # RU per second
    return {
        "concurrency": concurrency,
        "files": int(c["files"]),
        "bytes": int(c["bytes"]),
        "seconds": seconds,
        "files_per_min": c["files"] / seconds * 60,
        "ru": ru,
        "ru_per_min": rate * 60,
        "rate_ratio": rate / (limit / window),
        "strict_ratio": ru / (limit * math.ceil(seconds / window)),
        "throttled": int(c["throttled"]),
        "requests": c["requests"],
        "rss": m.peak_rss,
    }


def show(r: dict[str, Any], title: str) -> None:
    table(
        [
            ("files copied", f"{r['files']} ({mib(r['bytes'])})"),
            ("seconds", f"{r['seconds']:.1f}"),
            ("files per minute", f"{r['files_per_min']:,.0f}"),
            ("target RU spent", f"{r['ru']:,} ({r['ru_per_min']:,.0f} RU/min)"),
            ("target RU per file", f"{r['ru'] / max(r['files'], 1):.2f}"),
            ("requests (both tenants)", f"{r['requests']:,.0f}"),
            ("429 answers", str(r["throttled"])),
            ("peak RSS", mib(r["rss"])),
        ],
        title,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1500, help="generated files of 2-50 KB")
    parser.add_argument("--folders", type=int, default=10, help="folders they are spread over")
    parser.add_argument("--budget", default="1200/60", help="SharePoint RU budget N/SECONDS (both sides)")
    parser.add_argument("--concurrency", type=int, default=8, help="trustfold run --concurrency")
    parser.add_argument("--no-baseline", action="store_true", help="skip the --concurrency 1 pass")
    args = parser.parse_args()

    main_pass = one_pass(args, args.concurrency)
    show(
        main_pass,
        f"files_small: {args.files} files in {args.folders} folders, budget {args.budget} RU "
        f"(sandbox and client), --concurrency {args.concurrency}",
    )
    baseline = None
    if not args.no_baseline:
        baseline = one_pass(args, 1)
        show(baseline, "naive baseline: same files, fresh sandbox, --concurrency 1")
    print(
        f"ratio target RU per minute / budget per minute: {main_pass['rate_ratio']:.2f}   "
        f"(goal >= {GOAL}; counts the initially empty window)"
    )
    print(
        f"ratio target RU / most the window admits in the run: {main_pass['strict_ratio']:.2f}   "
        "(strict form, <= 1 by construction)"
    )
    print(f"429 answers: {main_pass['throttled']}")
    if baseline:
        print(
            f"ratio files/min vs --concurrency 1 baseline: "
            f"{main_pass['files_per_min'] / baseline['files_per_min']:.2f} "
            f"(baseline RU rate / budget rate {baseline['rate_ratio']:.2f})"
        )


if __name__ == "__main__":
    main()

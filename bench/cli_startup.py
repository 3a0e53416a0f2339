"""`trustfold --help` start-up time, as a ratio to a bare Python start measured in the same run.

Run: .venv/bin/python bench/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def median_seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    bare = median_seconds([sys.executable, "-c", "pass"], args.runs)
    help_ = median_seconds([sys.executable, "-c", "from cli.main import main; main()", "--help"], args.runs)
    print(f"python -c pass:   {bare * 1000:7.1f} ms (median of {args.runs})")
    print(f"trustfold --help: {help_ * 1000:7.1f} ms (median of {args.runs})")
    print(f"ratio to a bare interpreter: {help_ / bare:.1f}x")


if __name__ == "__main__":
    main()

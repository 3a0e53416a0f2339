"""One large file through the files phase: the copier's peak memory and its throughput against the link.

The sandbox runs as its own process with --bandwidth-mbps (each tenant's link, each direction). The files
phase runs once for the library's ordinary content, then a generated file of --size-gib is added to hillside's
staff library and the phase runs again: that second run copies only the big file, so its `seconds` count is
the big file's time. Prints, from one run:
- peak RSS of the `trustfold run` process (the kernel's ru_maxrss for that process alone) / 200 MB goal
  (goal: ratio < 1);
- large-file throughput = file bytes / seconds / configured bandwidth (goal >= 0.8).

Run: .venv/bin/python bench/files_large.py [--size-gib 2] [--bandwidth-mbps 800] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _files_common import Cli, files_run, mib, sandbox_process, table

RSS_GOAL = 200 * 1000 * 1000  # "200 MB"
THROUGHPUT_GOAL = 0.8


def rss(n: int) -> str:
    return f"{n / 1e6:,.1f} MB ({mib(n)})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-gib", type=float, default=2.0, help="size of the generated file (GiB)")
    parser.add_argument("--bandwidth-mbps", type=float, default=800.0, help="sandbox link speed (Mbit/s)")
    parser.add_argument("--concurrency", type=int, default=4, help="trustfold run --concurrency")
    args = parser.parse_args()
    size = int(args.size_gib * 1024**3)
    link = args.bandwidth_mbps * 1_000_000 / 8  # bytes/s

    with (
        sandbox_process("--bandwidth-mbps", f"{args.bandwidth_mbps:g}") as box,
        tempfile.TemporaryDirectory() as tmp,
    ):
        cli = Cli(box, Path(tmp))
        cli.prepare()
        conc = ("--concurrency", str(args.concurrency))
        first = files_run(cli, *conc)
        box.add_file("Media/large-bench.bin", size, "files-large-bench")
        before = box.stats()
        second = files_run(cli, *conc)
        after = box.stats()

    c1, c2 = first.result["counts"], second.result["counts"]
    seconds = float(c2["seconds"])
    throughput = c2["bytes"] / seconds if seconds else 0.0
    target_in = after[box.target]["bytes_in"] - before[box.target]["bytes_in"]
    source_out = after[box.source]["bytes_out"] - before[box.source]["bytes_out"]
    table(
        [
            (
                "first run (library content)",
                f"{c1['files']} files, {mib(c1['bytes'])}, {c1['seconds']:.1f} s",
            ),
            ("first run peak RSS", rss(first.peak_rss)),
            ("second run (large file)", f"{c2['files']} file(s), {mib(c2['bytes'])}, {seconds:.1f} s"),
            ("second run wall time (process)", f"{second.wall:.1f} s"),
            ("second run peak RSS", rss(second.peak_rss)),
            ("bytes sent by the copier", f"{c2['bytes_sent']:,}"),
            ("source bytes out / target bytes in", f"{source_out:,} / {target_in:,}"),
            ("throughput", f"{throughput * 8 / 1e6:,.0f} Mbit/s (link {args.bandwidth_mbps:g} Mbit/s)"),
            ("429 answers", str(c2["throttled"])),
        ],
        f"files_large: {args.size_gib:g} GiB generated file, sandbox link {args.bandwidth_mbps:g} Mbit/s, "
        f"--concurrency {args.concurrency}",
    )
    if c2["files"] != 1 or c2["bytes"] != size:
        print(f"  NOTE: the second run copied {c2['files']} files / {c2['bytes']:,} bytes, not just the file")
    peak = max(first.peak_rss, second.peak_rss)
    print(f"ratio peak RSS / 200 MB goal: {peak / RSS_GOAL:.2f}   (goal < 1.0)")
    print(f"ratio large-file throughput / configured bandwidth: {throughput / link:.2f}   (goal >= 0.8)")


if __name__ == "__main__":
    main()

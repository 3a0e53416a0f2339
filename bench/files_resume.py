"""A files run SIGKILLed mid-upload, then run again: how many bytes went to the target twice.

The sandbox (its own process, link capped by --bandwidth-mbps so the upload takes several seconds) holds
hillside's library; a first run copies its ordinary content. Then a generated file of --size-mb is added,
`trustfold run hillside --phase files` is started, and once the target has received --kill-at of the file
(GET /sandbox/stats, bytes_in) the process is SIGKILLed. A second run completes the copy. Prints, from one
run:
- bytes re-sent = target bytes_in over both runs - the file's size, and its ratio to one upload chunk
  (5 MiB = 5,242,880 bytes; goal <= 1); bytes_in also holds the few KB of JSON bodies the runs POST
  (createUploadSession), so the figure is an upper bound;
- that no file was visible in the target between the runs (a partial upload never looks complete), and that
  the final file's size and quickXorHash in the target equal the source's.
The sandbox counts a fragment's bytes once all of them arrived, so the fragment cut off by the kill (at most
one chunk) is not in bytes_in: the figure is the bytes the target had to accept twice.

Run: .venv/bin/python bench/files_resume.py [--size-mb 400] [--bandwidth-mbps 400] [--kill-at 0.4]
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _files_common import ACADEMY, CHUNK, TARGET_SITE, Cli, Sandbox, files_run, mib, sandbox_process, table

from sandbox.testing import graph_client

FILE_PATH = "Media/resume-bench.bin"


def target_item(box: Sandbox) -> dict[str, Any] | None:
    """The copied file in the trust tenant's hillside-staff library, as Graph returns it (None: absent)."""
    with graph_client(box.url, box.target) as g:
        site = next(s for s in g.get("/sites", params={"search": TARGET_SITE}).json()["value"])
        drives = g.get(f"/sites/{site['id']}/drives").json()["value"]
        drive = next(d for d in drives if d["name"] == "Documents")
        r = g.get(f"/drives/{drive['id']}/root:/{FILE_PATH}")
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return dict(r.json())


def source_item(box: Sandbox, added: dict[str, Any]) -> dict[str, Any]:
    with graph_client(box.url, box.source) as g:
        r = g.get(f"/drives/{added['driveId']}/items/{added['id']}")
        r.raise_for_status()
        return dict(r.json())


def qxh(item: dict[str, Any] | None) -> str | None:
    return ((item or {}).get("file") or {}).get("hashes", {}).get("quickXorHash")


def run_and_kill(cli: Cli, box: Sandbox, t_in0: int, threshold: float) -> tuple[float, str]:
    """Start a files run, SIGKILL it once the target holds `threshold` more bytes; (seconds, stderr)."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a full pipe would stall the run
        proc = cli.popen("run", ACADEMY, "--phase", "files", "--json", stderr=errors)
        started = time.monotonic()
        while proc.poll() is None:
            if box.stats()[box.target]["bytes_in"] - t_in0 >= threshold:
                break
            time.sleep(0.02)
        if proc.poll() is not None:
            raise SystemExit(
                f"the first run ended ({proc.returncode}) before the kill point; "
                "use a larger --size-mb or a lower --bandwidth-mbps"
            )
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        elapsed = time.monotonic() - started
        errors.seek(0)
        return elapsed, errors.read().decode(errors="replace")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=400, help="size of the generated file (MiB)")
    parser.add_argument("--bandwidth-mbps", type=float, default=400.0, help="sandbox link speed (Mbit/s)")
    parser.add_argument("--kill-at", type=float, default=0.4, help="share of the file received, then SIGKILL")
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024

    with (
        sandbox_process("--bandwidth-mbps", f"{args.bandwidth_mbps:g}") as box,
        tempfile.TemporaryDirectory() as tmp,
    ):
        cli = Cli(box, Path(tmp))
        cli.prepare()
        files_run(cli)
        added = box.add_file(FILE_PATH, size, "files-resume-bench")
        before = box.stats()
        t_in0 = before[box.target]["bytes_in"]

        killed_after, stderr = run_and_kill(cli, box, t_in0, args.kill_at * size)
        time.sleep(0.5)  # let the sandbox finish with the dropped connection
        landed = box.stats()[box.target]["bytes_in"] - t_in0
        visible = target_item(box)

        second = files_run(cli)
        after = box.stats()
        final = target_item(box)
        source = source_item(box, added)

    c2 = second.result["counts"]
    target_in = after[box.target]["bytes_in"] - t_in0
    source_out = after[box.source]["bytes_out"] - before[box.source]["bytes_out"]
    resent = target_in - size
    remaining = size - landed
    same = final is not None and final.get("size") == source.get("size") and qxh(final) == qxh(source)
    table(
        [
            ("file", f"{mib(size)} ({size:,} bytes)"),
            (
                "first run killed after",
                f"{killed_after:.1f} s, target bytes in {landed:,} ({landed / size:.0%})",
            ),
            ("file visible in the target after the kill", "yes (partial!)" if visible else "no"),
            ("second run", f"{c2['files']} file(s), {c2['seconds']:.1f} s, status {second.result['status']}"),
            ("second run bytes sent (client)", f"{c2['bytes_sent']:,} (file minus landed: {remaining:,})"),
            ("target bytes in, both runs", f"{target_in:,}"),
            ("source bytes out, both runs", f"{source_out:,} (re-read {source_out - size:,})"),
            ("target size / source size", f"{(final or {}).get('size')} / {source.get('size')}"),
            ("target quickXorHash", str(qxh(final))),
            ("source quickXorHash", str(qxh(source))),
            ("size and hash equal", "yes" if same else "NO"),
        ],
        f"files_resume: {args.size_mb} MiB generated file, link {args.bandwidth_mbps:g} Mbit/s, "
        f"SIGKILL at {args.kill_at:.0%}",
    )
    if "Traceback" in stderr:
        print(f"  first run's stderr ended: {stderr[-300:]!r}")
    print(f"bytes re-sent: {resent:,} = {resent / CHUNK:.2f} chunks of 5 MiB   (goal <= 1 chunk)")
    print(f"ratio re-sent / one chunk: {resent / CHUNK:.2f}   (goal <= 1.0)")


if __name__ == "__main__":
    try:
        main()
    except httpx.HTTPError as exc:
        raise SystemExit(f"sandbox request failed: {exc}") from None

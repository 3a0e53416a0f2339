"""A large file (hundreds of MB, generated and streamed) killed mid-upload resumes from nextExpectedRanges:
no partial file ever looks complete, and at most one chunk is sent twice."""

from __future__ import annotations

import json
import signal
import time

import httpx

from migrations.files.transfer import CHUNK
from tests.files.conftest import SOURCE_SITE, TARGET_SITE, World
from tests.identity.conftest import TARGET

BIG = 256 * 1024 * 1024 + 12_345  # not a multiple of the chunk size: the last fragment is short


def test_sigkill_mid_upload_resumes_without_resending(hillside: World) -> None:
    w = hillside
    src_lib, tgt_lib = w.library(w.source, SOURCE_SITE), w.library(TARGET, TARGET_SITE)
    # Everything else first, so the second pass moves only the big file.
    assert w.cli.json("run", "hillside", "--phase", "files", "--replan")["status"] == "succeeded"
    big = w.add_file(w.source, src_lib, "Media/Leavers assembly 2025.mp4", BIG, "leavers-2025")
    httpx.post(f"{w.url}/sandbox/faults", json={"bandwidth_mbps": 400}).raise_for_status()
    before = w.stats(TARGET)["bytes_in"]

    proc = w.cli.popen("run", "hillside", "--phase", "files", "--replan")
    deadline = time.monotonic() + 120
    while w.stats(TARGET)["bytes_in"] - before < BIG * 0.4:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "upload did not progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    sent_before_kill = w.stats(TARGET)["bytes_in"] - before
    assert 0.4 * BIG <= sent_before_kill < BIG
    # Nothing half-copied is visible in the trust tenant.
    assert "Media/Leavers assembly 2025.mp4" not in w.drives()[tgt_lib]

    httpx.post(f"{w.url}/sandbox/faults", json={"bandwidth_mbps": None}).raise_for_status()
    result = w.cli.json("run", "hillside", "--phase", "files", "--replan")
    assert result["status"] == "succeeded", result["failures"]
    resent = w.stats(TARGET)["bytes_in"] - before - BIG
    assert 0 <= resent <= CHUNK, f"{resent} bytes sent twice"
    assert result["counts"]["bytes_sent"] <= BIG - sent_before_kill + CHUNK

    source = w.drives(w.source)[src_lib]["Media/Leavers assembly 2025.mp4"]
    target = w.drives()[tgt_lib]["Media/Leavers assembly 2025.mp4"]
    assert target["size"] == BIG == big["size"]
    assert target["quickXorHash"] == source["quickXorHash"]
    assert target["fileSystemInfo"] == source["fileSystemInfo"]
    verify = json.loads(w.cli("verify", "hillside", "--json", check=False).stdout)  # groups not run here
    assert verify["files"]["differences"] == [] and verify["files"]["matched"] >= 1


def test_killed_at_random_instants_then_resumed_copies_everything_once(hillside: World) -> None:
    """SIGKILL three times at random points of a files run (planning, folders, copies), then run to the end:
    every file verifies and nothing exists twice."""
    import random
    import sqlite3

    w = hillside
    tgt_lib = w.library(TARGET, TARGET_SITE)
    before = w.drives()
    rng = random.Random(20261125)
    # A slow link stretches the copies so the kills land among them.
    httpx.post(f"{w.url}/sandbox/faults", json={"bandwidth_mbps": 40}).raise_for_status()
    killed = 0
    for _ in range(3):
        # The fixture provisioned the OneDrives and preflight is tested on its own: the kills aim at copies.
        # Each kill waits for a seeded number of bytes to arrive (not for a time, which a loaded machine
        # stretches): the process dies mid-copy, at a point the seed fixes up to the chunk in flight.
        start = w.stats(TARGET)["bytes_in"]
        goal = start + rng.randint(300_000, 2_000_000)
        proc = w.cli.popen("run", "hillside", "--phase", "files", "--replan", "--skip-preflight")
        deadline = time.monotonic() + 240
        while proc.poll() is None and w.stats(TARGET)["bytes_in"] < goal and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
    assert killed == 3
    assert w.stats(TARGET)["bytes_in"] > 1_000_000  # the killed runs were copying, not only planning
    httpx.post(f"{w.url}/sandbox/faults", json={"bandwidth_mbps": None}).raise_for_status()
    result = w.cli.json("run", "hillside", "--phase", "files", "--replan")
    assert result["status"] == "succeeded", result["failures"]
    verify = json.loads(w.cli("verify", "hillside", "--json", check=False).stdout)["files"]
    assert verify["differences"] == [] and verify["matched"] == verify["files"] - 1  # the oversized video
    after = w.drives()
    with sqlite3.connect(w.state) as db:
        recorded = {
            (r[0], r[1]) for r in db.execute("SELECT target_drive, path FROM file_copies WHERE created = 1")
        }
    for drive, items in after.items():
        extra = set(items) - set(before.get(drive, {})) - {p for d, p in recorded if d == drive}
        assert not extra, f"{drive}: {sorted(extra)[:5]}"
    assert after[tgt_lib].keys() >= before[tgt_lib].keys()

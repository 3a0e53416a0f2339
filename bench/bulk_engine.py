"""The bulk file engine (SharePoint Migration API) against the Graph engine, measured in one run:

1. SharePoint API requests per 1,000 files: the same generated library (--files small files, 1-16 KB, in
   folders of 100) migrated by each engine into its own sandbox (same seed, throttling off); requests counted
   by the sandbox on the trust tenant (Graph and SharePoint REST), plus the client's SharePoint RU spent.
2. Peak RSS of a child process packaging --size MiB (one file: download stand-in -> AES-256-CBC with a fresh
   IV -> 4 MiB staged blocks in Azurite -> commit + snapshot); goal < 250 MB.
3. Packaging + encryption throughput (MB/s, staging included and, separately, into a null sink) as a share
   of one core's AES-256-CBC speed measured in the same run (cryptography, 256 MiB in 4 MiB updates).

Needs Node.js and Azurite (`make test` installs it into .tools/). Prints figures and ratios, never pass/fail.
Run: .venv/bin/python bench/bulk_engine.py [--files 1000] [--size 2048]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from migrations.files.bulk import crypto  # noqa: E402
from migrations.files.bulk.blobs import BLOCK, upload  # noqa: E402
from sandbox.azurite import Azurite, running_azurite  # noqa: E402

MIB = 1024 * 1024
CONFIG = ROOT / "config"
TARGET = "6f1c2a4e-8b7d-4c3e-9a10-2b5d7e9f0a11"


def _config(tmp: Path, engine: str) -> Path:
    out = tmp / f"config-{engine}"
    shutil.copytree(CONFIG, out)
    p = out / "academies" / "hillside.yaml"
    text = re.sub(r"    engine: auto\n    auto: \{min_items: 20\}\n", "", p.read_text())
    p.write_text(re.sub(r"(  files:\n)", rf"\1    engine: {engine}\n    onedrive: false\n", text, count=1))
    return out


def engine_run(engine: str, files: int, az: Azurite, tmp: Path) -> dict[str, Any]:
    from sandbox.migration_api import configure
    from sandbox.testing import running_sandbox
    from tests.bulk.library import seed_library

    cfg = _config(tmp, engine)
    with running_sandbox(cfg, size=60, seed=3, throttling=False) as url:
        configure(
            url.world, blob_url=az.blob_url, queue_url=az.queue_url, account=az.account, key=az.key, rate=5000
        )
        source = next(t["id"] for t in url.world.tenant_list() if t["academy"] == "hillside")
        seed_library(url.world, source, "staff", files)
        env = {**os.environ, **az.env(), "TRUSTFOLD_CONFIG_DIR": str(cfg), "TRUSTFOLD_GRAPH_URL": url,
               "TRUSTFOLD_STATE": str(tmp / f"{engine}.db")}  # fmt: skip

        def cli(*args: str) -> str:
            cmd = [sys.executable, "-c", "from cli.main import main; main()", *args]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
            if proc.returncode != 0:
                raise SystemExit(
                    f"trustfold {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
                )
            return proc.stdout

        cli("bootstrap", "--yes")  # the trust tenant's one-off set-up, as an operator runs it first
        cli("discover", "hillside")
        cli("run", "hillside", "--phase", "users", "--replan")
        before = url.world.stats.as_dict([TARGET])["tenants"][TARGET]["requests"]
        started = time.monotonic()
        result = json.loads(
            cli(
                "run",
                "hillside",
                "--phase",
                "files",
                "--replan",
                "--json",
                "--sharepoint-budget",
                "100000/60",
            )
        )
        seconds = time.monotonic() - started
        after = url.world.stats.as_dict([TARGET])["tenants"][TARGET]
    c = result["counts"]
    return {
        "engine": engine,
        "status": result["status"],
        "files": int(c["files"]),
        "requests": after["requests"] - before,
        "rest": sum(v for k, v in after["by_method"].items() if k.startswith("REST")),
        "ru": int(c.get("sharepoint_ru_target") or 0),
        "seconds": seconds,
    }


def aes_core_speed() -> float:
    """MB/s of AES-256-CBC on one core, in the engine's own update size."""
    enc = crypto.Encryptor(crypto.new_key(), crypto.new_iv())
    buf = os.urandom(BLOCK)
    total = 256 * MIB
    t = time.perf_counter()
    for _ in range(total // BLOCK):
        enc.update(buf)
    return total / MIB / (time.perf_counter() - t)


async def _source(size: int) -> Any:
    """A download stand-in: `size` bytes in the engine's piece size (one random block, re-sent)."""
    piece = os.urandom(BLOCK)
    sent = 0
    while sent < size:
        n = min(BLOCK, size - sent)
        yield piece[:n]
        sent += n


class _Null:
    def stage_block(self, block_id: str, data: bytes) -> None:
        pass

    def commit_block_list(self, ids: list[str], metadata: dict[str, str]) -> None:
        pass

    def create_snapshot(self) -> None:
        pass


def packaging_child(size_mib: int, blob_url: str, account: str, key: str, sink: str) -> None:
    """Runs in its own process so its peak RSS is the packager's alone."""
    from azure.storage.blob import BlobServiceClient

    size = size_mib * MIB
    if sink == "azurite":
        svc = BlobServiceClient(blob_url, credential={"account_name": account, "account_key": key})
        name = f"bench-{os.getpid()}"
        svc.create_container(name)
        blob: Any = svc.get_blob_client(name, "big.dat")
    else:
        blob = _Null()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    sent = asyncio.run(
        upload(blob, crypto.aencrypt_chunks(_source(size), crypto.new_key(), crypto.new_iv()), {"IV": "x"})
    )
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"seconds": seconds, "sent": sent, "peak_kib": peak, "base_kib": base}))


def packaging(size_mib: int, az: Azurite, sink: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(size_mib), az.blob_url, az.account, az.key, sink]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=3600).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--size", type=int, default=2048, help="MiB packaged for the memory and speed figures")
    ap.add_argument("--child", nargs=5)
    args = ap.parse_args()
    if args.child:
        packaging_child(int(args.child[0]), *args.child[1:])
        return
    with tempfile.TemporaryDirectory() as tmp, running_azurite(Path(tmp) / "azurite") as az:
        runs = [engine_run(e, args.files, az, Path(tmp)) for e in ("graph", "migration-api")]
        print(f"== SharePoint API requests per 1,000 files ({args.files} generated small files, one run)")
        for r in runs:
            per = 1000 / max(r["files"], 1)
            print(
                f"  {r['engine']:<14} {r['status']:<10} files {r['files']:>6}  requests/1000 files "
                f"{r['requests'] * per:>8.0f} (REST {r['rest'] * per:.0f})  "
                f"RU/1000 files {r['ru'] * per:>8.0f}  {r['seconds']:.1f} s"
            )
        g, m = runs
        print(f"  ratio migration-api / graph requests: {m['requests'] / max(g['requests'], 1):.3f}")
        core = aes_core_speed()
        staged = packaging(args.size, az, "azurite")
        null = packaging(args.size, az, "null")
        mb = args.size
        print(f"== Packaging {args.size} MiB (one file, AES-256-CBC, 4 MiB blocks)")
        print(f"  peak RSS staging to Azurite: {staged['peak_kib'] / 1024:.0f} MB  (goal < 250 MB: ratio "
              f"{staged['peak_kib'] / 1024 / 250:.2f})")  # fmt: skip
        print(f"  peak RSS into a null sink:   {null['peak_kib'] / 1024:.0f} MB")
        print(f"  one core AES-256-CBC: {core:.0f} MB/s")
        for label, r in (("staged to Azurite", staged), ("null sink (package + encrypt only)", null)):
            speed = mb / r["seconds"]
            print(f"  {label}: {speed:.0f} MB/s = {speed / core:.2f} of one core's AES-CBC speed")


if __name__ == "__main__":
    main()

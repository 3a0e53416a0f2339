"""Shared plumbing for the file-migration benches: a sandbox in its own process, the CLI run as an operator
runs it (so the copier's memory is its own), the admin API for generated files, and a tidy table printer."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHUNK = 16 * 320 * 1024  # the copier's upload fragment: 5 MiB
ACADEMY = "hillside"
LIBRARY = "site:staff/Documents"  # hillside's source library (config/academies/hillside.yaml)
TARGET_SITE = "hillside-staff"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sandbox:
    url: str
    source: str  # hillside's legacy tenant id
    target: str  # the trust tenant id

    def stats(self) -> dict[str, dict[str, Any]]:
        return dict(httpx.get(f"{self.url}/sandbox/stats", timeout=30).json()["tenants"])

    def add_file(self, path: str, size: int, seed: str, drive: str = LIBRARY) -> dict[str, Any]:
        """A generated file in the source tenant (content made on the fly, never stored)."""
        r = httpx.post(
            f"{self.url}/sandbox/tenants/{self.source}/files",
            json={"drive": drive, "path": path, "size": size, "seed": seed},
            timeout=60,
        )
        if r.status_code != 200:
            raise SystemExit(f"adding {path} to the sandbox failed: {r.status_code} {r.text}")
        return dict(r.json())

    def add_files(self, files: Sequence[tuple[str, int, str]], drive: str = LIBRARY) -> None:
        """Many generated files (path, size, seed) over one connection."""
        with httpx.Client(base_url=self.url, timeout=60) as client:
            for path, size, seed in files:
                r = client.post(
                    f"/sandbox/tenants/{self.source}/files",
                    json={"drive": drive, "path": path, "size": size, "seed": seed},
                )
                if r.status_code != 200:
                    raise SystemExit(f"adding {path} to the sandbox failed: {r.status_code} {r.text}")


@contextlib.contextmanager
def sandbox_process(*options: str, size: int = 30, seed: int = 1) -> Iterator[Sandbox]:
    """`trustfold sandbox serve` as a separate process on a free loopback port, stopped on exit."""
    port = _free_port()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [
                str(BIN / "trustfold"),
                "sandbox",
                "serve",
                "--port",
                str(port),
                "--size",
                str(size),
                "--seed",
                str(seed),
                *options,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TRUSTFOLD_CONFIG_DIR": str(ROOT / "config")},
        )
        try:
            yield _started(proc, log, f"http://127.0.0.1:{port}")
        finally:
            proc.send_signal(signal.SIGINT)  # uvicorn shuts down cleanly and removes its upload blobs
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _started(proc: subprocess.Popen[bytes], log: Any, url: str) -> Sandbox:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"the sandbox exited ({proc.returncode}):\n{log.read().decode()[-2000:]}")
        try:
            tenants = httpx.get(f"{url}/sandbox/tenants", timeout=5).json()
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise SystemExit("the sandbox did not start within 60 s") from None
            time.sleep(0.2)
    source = next(t["id"] for t in tenants if t["role"] == "source" and t["academy"] == ACADEMY)
    target = next(t["id"] for t in tenants if t["role"] == "target")
    return Sandbox(url, source, target)


@dataclass
class Measured:
    result: dict[str, Any]
    peak_rss: int  # bytes, from the kernel's accounting of that one process
    wall: float


class Cli:
    """`trustfold` as an operator runs it: its own process, the sandbox's URL, a private state store."""

    def __init__(self, box: Sandbox, workdir: Path):
        self.box = box
        self.state = workdir / "state.db"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TRUSTFOLD_CONFIG_DIR": str(ROOT / "config"),
            "TRUSTFOLD_GRAPH_URL": self.box.url,
            "TRUSTFOLD_STATE": str(self.state),
        }

    def popen(self, *args: str, stderr: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(BIN / "trustfold"), *args], env=self.env(), stdout=subprocess.DEVNULL, stderr=stderr
        )

    def measured(self, *args: str) -> Measured:
        """Run with --json; the peak RSS is the child's own ru_maxrss from wait4, so neither the sandbox
        nor this bench is counted."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            started = time.monotonic()
            proc = subprocess.Popen(
                [str(BIN / "trustfold"), *args, "--json"], env=self.env(), stdout=out, stderr=err
            )
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.monotonic() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            text = out.read().decode()
            if proc.returncode != 0 and not text.strip().startswith("{"):
                raise SystemExit(
                    f"trustfold {' '.join(args)} -> {proc.returncode}\n{text}\n{err.read().decode()[-3000:]}"
                )
        result = json.loads(text)
        return Measured(result, usage.ru_maxrss * 1024, wall)

    def json(self, *args: str) -> dict[str, Any]:
        return self.measured(*args).result

    def prepare(self) -> None:
        """discover, then users (OneDrives map to migrated users)."""
        self.json("discover", ACADEMY)
        self.json("bootstrap", "--yes")  # the one-off set-up: provenance marker registered
        self.json("run", ACADEMY, "--phase", "users", "--replan")
        self.json("provision-onedrive", ACADEMY)  # OneDrives exist before the measured files runs


def files_run(cli: Cli, *extra: str) -> Measured:
    m = cli.measured("run", ACADEMY, "--phase", "files", "--replan", *extra)
    if m.result.get("status") != "succeeded":
        failures = json.dumps(m.result.get("failures", [])[:5], indent=1)
        raise SystemExit(f"files run {m.result.get('status')}: {failures}")
    return m


def table(rows: Sequence[tuple[str, str]], title: str = "") -> None:
    if title:
        print(title)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


def mib(n: float) -> str:
    return f"{n / 1024 / 1024:,.1f} MiB"

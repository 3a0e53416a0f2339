"""What the benches that drive trustfold against an in-process sandbox share: the repository root (put on
sys.path), the trust tenant's id, the CLI run in a subprocess as an operator runs it, the sandbox's counters
for the trust tenant, and the write-budget arithmetic the identity benches print."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET = "6f1c2a4e-8b7d-4c3e-9a10-2b5d7e9f0a11"  # the trust tenant in config/trust.yaml


def cli(
    url: str,
    state: Path,
    *args: str,
    config: Path | None = None,
    env: dict[str, str] | None = None,
    as_json: bool = True,
    timeout: float | None = None,
) -> Any:
    """`trustfold ARGS` against the sandbox at URL with state STATE; its JSON (`--json` added unless
    as_json is False, then its standard output). A failure ends the bench with the command's output."""
    environ = {
        **os.environ,
        "TRUSTFOLD_CONFIG_DIR": str(config or ROOT / "config"),
        "TRUSTFOLD_GRAPH_URL": url,
        "TRUSTFOLD_STATE": str(state),
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-c", "from cli.main import main; main()", *args, *(["--json"] if as_json else [])],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"trustfold {' '.join(args)} -> {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return json.loads(proc.stdout) if as_json or "--json" in args else proc.stdout


def target_stats(url: str) -> dict[str, Any]:
    """The sandbox's request, write and 429 counters for the trust tenant."""
    return dict(httpx.get(f"{url}/sandbox/stats").json()["tenants"][TARGET])


def permitted(limit: float, window: float, seconds: float) -> float:
    """Writes a sliding window of LIMIT per WINDOW seconds permits over SECONDS: a full window at the start,
    then the rate."""
    return limit * (seconds / window) + limit


def best_use(writes: int, limit: float, window: float) -> float:
    """The highest budget use any client can reach for WRITES writes: under a sliding window they cannot
    all be sent before window * (ceil(writes / limit) - 1) seconds have passed, however little else runs."""
    return writes / permitted(limit, window, window * (math.ceil(writes / limit) - 1))


def security_group(nick: str, members: tuple[str, ...] = ()) -> dict[str, Any]:
    """The body of `POST /groups` for a security group named NICK, with MEMBERS (directoryObject URLs)."""
    body: dict[str, Any] = {
        "displayName": nick,
        "mailEnabled": False,
        "mailNickname": nick,
        "securityEnabled": True,
    }
    if members:
        body["members@odata.bind"] = list(members)
    return body

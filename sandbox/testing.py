"""Run a real sandbox server for tests: `with running_sandbox(Path("config")) as base: ...`.

The server is uvicorn on a free loopback port in a background thread; `base` is "http://127.0.0.1:PORT"
(Graph at base + "/v1.0", admin API at base + "/sandbox/..."). It is a str, with the in-process World as
`base.world` for tests that want to look behind the HTTP surface.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from sandbox.app import create_app
from sandbox.bootstrap import make_world
from sandbox.settings import Budget, Faults, Settings, parse_budget, parse_faults, parse_seats
from sandbox.world import World


class SandboxURL(str):
    """The base URL of a running sandbox, carrying its World."""

    world: World

    def __new__(cls, value: str, world: World) -> SandboxURL:
        obj = super().__new__(cls, value)
        obj.world = world
        return obj


def build_settings(**overrides: Any) -> Settings:
    """Settings from keyword arguments; budget and fault strings are parsed as the CLI parses them."""
    values = dict(overrides)
    for key in ("write_budget", "identity_ru", "sharepoint_ru", "tenant_write_budget"):
        if isinstance(values.get(key), str):
            values[key] = parse_budget(values[key], key.replace("_", " "))
    if isinstance(values.get("seats"), str):
        values["seats"] = parse_seats(values["seats"])
    if isinstance(values.get("faults"), str):
        values["faults"] = parse_faults(values["faults"])
    elif isinstance(values.get("faults"), dict):
        values["faults"] = Faults.from_dict(values["faults"])
    for key in ("write_budget", "identity_ru", "sharepoint_ru"):
        if key in values and values[key] is not None and not isinstance(values[key], Budget):
            raise TypeError(f"{key} must be 'N/SECONDS' or a Budget")
    return Settings(**values)


@contextlib.contextmanager
def running_sandbox(
    config_dir: Path | str,
    *,
    size: int = 100,
    seed: int = 1,
    state_path: Path | None = None,
    **settings: Any,
) -> Iterator[SandboxURL]:
    """Start a sandbox for `config_dir`'s tenants; stop it on exit. Settings: see sandbox.settings.Settings
    (latency_ms, bandwidth_mbps, faults "429=0.1,...", write_budget "N/S", identity_ru, sharepoint_ru,
    throttling False to switch budgets off)."""
    world = make_world(Path(config_dir), build_settings(size=size, seed=seed, **settings), state_path)
    app = create_app(world)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the sandbox server did not start")
        time.sleep(0.01)
    try:
        yield SandboxURL(f"http://127.0.0.1:{port}", world)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def reset(base_url: str, **body: Any) -> dict[str, Any]:
    """POST /sandbox/reset: regenerate all tenants, clear stats and throttle windows (between tests)."""
    r = httpx.post(f"{base_url}/sandbox/reset", json=body, timeout=60)
    r.raise_for_status()
    return r.json()


def token(base_url: str, tenant_id: str, client_id: str = "00000000-0000-0000-0000-00000000c0de") -> str:
    """An access token for `tenant_id` from the sandbox's token endpoint."""
    r = httpx.post(
        f"{base_url}/{tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": "sandbox",
            "scope": "https://graph.microsoft.com/.default",
        },
        timeout=30,
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def graph_client(base_url: str, tenant_id: str, **kwargs: Any) -> httpx.Client:
    """An httpx client for Graph in `tenant_id`, with a bearer token and base URL set."""
    return httpx.Client(
        base_url=f"{base_url}/v1.0",
        headers={"Authorization": f"Bearer {token(base_url, tenant_id)}"},
        timeout=kwargs.pop("timeout", 30),
        **kwargs,
    )

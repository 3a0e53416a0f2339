"""Soak the sandbox: many concurrent clients of mixed traffic for a long time (not part of the test run).

Starts `trustfold sandbox serve` in a child process (Microsoft's default budgets) and runs --clients
asyncio clients for --duration seconds: paged lists, filters, gets, delta rounds, $batch, and user/group
create-update-delete-purge cycles (so the data stays about the same size). Reports every answer that is not
a success or a 429/503 the budgets call for, and the server's memory (RSS) over time.

    .venv/bin/python bench/sandbox_soak.py                       # 200 clients, 10 minutes
    .venv/bin/python bench/sandbox_soak.py --clients 50 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import psutil
from _cli_common import security_group

ROOT = Path(__file__).resolve().parents[1]
BIND = "https://graph.microsoft.com/v1.0/directoryObjects/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Soak:
    def __init__(self, base: str, tenant: str, domain: str) -> None:
        self.base = base
        self.tenant = tenant
        self.domain = domain
        self.ok = 0
        self.throttled = 0
        self.errors: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def note(self, op: str, r: httpx.Response, expect: tuple[int, ...] = (200, 201, 204)) -> bool:
        if r.status_code in expect:
            self.ok += 1
            return True
        if r.status_code in (429, 503):
            self.throttled += 1
            return False
        key = f"{op} {r.status_code}"
        self.errors[key] += 1
        self.examples.setdefault(key, r.text[:300])
        return False

    async def call(
        self, c: httpx.AsyncClient, op: str, method: str, url: str, **kw: object
    ) -> httpx.Response | None:
        for _ in range(6):
            try:
                r = await c.request(method, url, **kw)
            except httpx.HTTPError as exc:
                self.errors[f"{op} {type(exc).__name__}"] += 1
                return None
            if r.status_code in (429, 503):
                self.throttled += 1
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            return r
        return None

    async def client(self, c: httpx.AsyncClient, stop: float, rng: random.Random) -> None:
        while time.monotonic() < stop:
            roll = rng.random()
            if roll < 0.25:
                r = await self.call(
                    c, "list", "GET", "/users", params={"$top": 50, "$select": "id,displayName"}
                )
                if r is not None and self.note("list", r) and "@odata.nextLink" in r.json():
                    r2 = await self.call(c, "page", "GET", r.json()["@odata.nextLink"])
                    if r2 is not None:
                        self.note("page", r2)
            elif roll < 0.40:
                r = await self.call(
                    c,
                    "filter",
                    "GET",
                    "/users",
                    params={"$filter": "startswith(displayName,'a')", "$select": "id"},
                )
                if r is not None:
                    self.note("filter", r)
            elif roll < 0.50:
                r = await self.call(c, "delta", "GET", "/groups/delta", params={"$select": "displayName"})
                if r is not None:
                    self.note("delta", r)
            elif roll < 0.60:
                reqs = [{"id": str(i), "method": "GET", "url": "/organization"} for i in range(5)]
                r = await self.call(c, "batch", "POST", "/$batch", json={"requests": reqs})
                if r is not None and self.note("batch", r):
                    for item in r.json()["responses"]:
                        if item["status"] not in (200, 429):
                            self.errors[f"batch-item {item['status']}"] += 1
            else:
                await self.cycle(c)

    async def cycle(self, c: httpx.AsyncClient) -> None:
        nick = f"soak{uuid.uuid4().hex[:12]}"
        body = {
            "accountEnabled": True,
            "displayName": nick,
            "mailNickname": nick,
            "userPrincipalName": f"{nick}@{self.domain}",
            "passwordProfile": {"password": "Soak!Pass1234"},
        }
        r = await self.call(c, "create-user", "POST", "/users", json=body)
        if r is None or not self.note("create-user", r):
            return
        uid = r.json()["id"]
        g = await self.call(
            c,
            "create-group",
            "POST",
            "/groups",
            json=security_group(nick, (BIND + uid,)),
        )
        r = await self.call(c, "patch-user", "PATCH", f"/users/{uid}", json={"jobTitle": "Soak"})
        if r is not None:
            self.note("patch-user", r)
        if g is not None and self.note("create-group", g):
            gid = g.json()["id"]
            r = await self.call(c, "members", "GET", f"/groups/{gid}/members")
            if r is not None:
                self.note("members", r)
            r = await self.call(c, "delete-group", "DELETE", f"/groups/{gid}")
            if r is not None:
                self.note("delete-group", r)
        r = await self.call(c, "delete-user", "DELETE", f"/users/{uid}")
        if r is not None and self.note("delete-user", r):
            r = await self.call(c, "purge-user", "DELETE", f"/directory/deletedItems/{uid}")
            if r is not None:
                self.note("purge-user", r)


async def run(base: str, clients: int, duration: float, proc: psutil.Process) -> None:
    tenants = httpx.get(f"{base}/sandbox/tenants").json()
    target = next(t for t in tenants if t["role"] == "target")
    tok = httpx.post(
        f"{base}/{target['id']}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "soak",
            "client_secret": "soak",
            "scope": "https://graph.microsoft.com/.default",
        },
    ).json()["access_token"]
    soak = Soak(base, target["id"], target["domains"][0])
    stop = time.monotonic() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    rss: list[tuple[float, int]] = []

    async def sample() -> None:
        t0 = time.monotonic()
        while time.monotonic() < stop:
            rss.append((time.monotonic() - t0, proc.memory_info().rss))
            await asyncio.sleep(max(1.0, duration / 20))

    async with httpx.AsyncClient(
        base_url=f"{base}/v1.0", headers={"Authorization": f"Bearer {tok}"}, timeout=120, limits=limits
    ) as c:
        await asyncio.gather(sample(), *(soak.client(c, stop, random.Random(i)) for i in range(clients)))
    rss.append((duration, proc.memory_info().rss))
    print(
        f"{clients} clients for {duration:g}s: {soak.ok} successful answers, {soak.throttled} "
        f"throttled (429/503)"
    )
    total_errors = sum(soak.errors.values())
    print(f"errors other than throttling: {total_errors}")
    for key, n in soak.errors.most_common():
        print(f"  {n:6d}  {key}  e.g. {soak.examples.get(key, '')[:160]}")
    mb = [r / 2**20 for _, r in rss]
    third = max(1, len(mb) // 3)
    print("server RSS MiB over time: " + " ".join(f"{m:.0f}" for m in mb))
    print(f"RSS growth after warm-up (first third -> end): ratio {mb[-1] / mb[third - 1]:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--duration", type=float, default=600.0)
    p.add_argument("--size", type=int, default=250)
    args = p.parse_args()
    port = free_port()
    cmd = [
        sys.executable,
        "-c",
        "from cli.main import main; main()",
        "--config-dir",
        str(ROOT / "config"),
        "sandbox",
        "serve",
        "--port",
        str(port),
        "--size",
        str(args.size),
    ]
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/sandbox/tenants", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        asyncio.run(run(base, args.clients, args.duration, psutil.Process(server.pid)))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()

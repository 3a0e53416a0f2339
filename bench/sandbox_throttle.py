"""How closely does the sandbox hold a greedy client to its configured budget?

Starts a sandbox (or uses --url), then clients send writes (POST /groups) or 1-RU reads (GET /organization)
as fast as they can for --duration seconds, honouring Retry-After unless --ignore-retry-after. Prints ratios:

  peak window ratio  = most requests admitted in any window of the budget's length / budget (ideal 1.00)
  steady rate ratio  = admissions after the first window / what the budget allows in that time (ideal 1.00)

    .venv/bin/python bench/sandbox_throttle.py --budget 600/10 --duration 60
    .venv/bin/python bench/sandbox_throttle.py --kind reads --budget 2000/10 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path

import httpx
from _cli_common import security_group

from sandbox.settings import parse_budget
from sandbox.testing import running_sandbox, token

ROOT = Path(__file__).resolve().parents[1]


async def greedy(
    base: str, tenant: str, kind: str, duration: float, clients: int, honour: bool
) -> tuple[list[float], int]:
    headers = {"Authorization": f"Bearer {token(base, tenant)}"}
    admitted: list[float] = []
    throttled = 0
    start = time.monotonic()
    stop = start + duration

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal throttled
        while time.monotonic() < stop:
            if kind == "writes":
                nick = f"b{uuid.uuid4().hex[:12]}"
                r = await client.post("/groups", json=security_group(nick))
            else:
                r = await client.get("/organization")
            now = time.monotonic()
            if r.status_code == 429:
                throttled += 1
                if honour:
                    await asyncio.sleep(min(float(r.headers.get("Retry-After", "1")), max(0.0, stop - now)))
            elif r.status_code < 400 and now < stop:
                admitted.append(now - start)

    async with httpx.AsyncClient(base_url=f"{base}/v1.0", headers=headers, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(clients)))
    return admitted, throttled


def peak_window(times: list[float], window: float) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", default="600/10", help="N/SECONDS for the measured budget (default 600/10)")
    p.add_argument("--kind", choices=["writes", "reads"], default="writes")
    p.add_argument(
        "--duration", type=float, default=60.0, help="seconds (default 60; shorter for a quick look)"
    )
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--ignore-retry-after", action="store_true", help="hammer instead of waiting")
    p.add_argument("--url", help="use a running sandbox (its budgets are set through /sandbox/throttle)")
    args = p.parse_args()
    budget = parse_budget(args.budget)
    settings = {"write_budget": args.budget} if args.kind == "writes" else {"identity_ru": args.budget}
    if args.kind == "writes":  # keep the RU budget out of the way of a write measurement
        settings["identity_ru"] = f"{budget.limit * 100}/{budget.seconds:g}"

    def run(base: str) -> None:
        tenant = httpx.get(f"{base}/sandbox/tenants").json()[0]["id"]
        times, throttled = asyncio.run(
            greedy(base, tenant, args.kind, args.duration, args.clients, not args.ignore_retry_after)
        )
        times.sort()
        peak = peak_window(times, budget.seconds)
        print(
            f"budget {budget} {args.kind}, {args.duration:g}s, {args.clients} clients, "
            f"{'ignoring' if args.ignore_retry_after else 'honouring'} Retry-After"
        )
        print(f"admitted {len(times)}, throttled answers {throttled}")
        print(
            f"peak window ratio  {peak / budget.limit:.3f}  ({peak} in the busiest "
            f"{budget.seconds:g}s window)"
        )
        if args.duration > budget.seconds:
            after = sum(1 for t in times if t >= budget.seconds)
            allowed = budget.limit * (args.duration - budget.seconds) / budget.seconds
            print(
                f"steady rate ratio  {after / allowed:.3f}  ({after} admitted after the first window, "
                f"{allowed:.0f} allowed)"
            )

    if args.url:
        body = {"write_budget": args.budget} if args.kind == "writes" else {"identity_ru": args.budget}
        httpx.post(f"{args.url}/sandbox/throttle", json=body).raise_for_status()
        run(args.url)
    else:
        with running_sandbox(ROOT / "config", size=100, **settings) as base:
            run(base)


if __name__ == "__main__":
    main()

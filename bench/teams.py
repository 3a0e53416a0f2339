"""Channel history through the teams phase against Teams' message-import limit.

A sandbox (throttling on; Teams limits as Microsoft's: 4 requests a second per team or channel, message
import --import-limit per channel) with one academy's users, groups and memberships migrated. --messages
messages (a reply after every tenth) are posted at the source, through the sandbox's admin route as users
post them, into each of the first --channels channels of the academy's teams (team by team), so the import
limit binds; then one `trustfold run ACADEMY --phase teams` carries them. The sandbox's own count of each
target channel's messages is sampled ten times a second. Prints, from one run:
- messages per second per channel (its imports / the seconds from its first to its last) / the import limit
  (goal >= 0.9 with no 429 answers); the bound a channel can reach is min(import limit, requests a second
  per channel), so it is printed too;
- channels in parallel: the most channels importing in the same second, and the aggregate rate /
  (import limit * seeded channels);
- requests per message: the run's trust-tenant requests (teams, channels, tabs, imports, completion) per
  imported message, and the legacy tenant's reads per message;
- 429 answers.

Run: .venv/bin/python bench/teams.py [--messages 150] [--channels 4] [--import-limit 5/1]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _cli_common import ROOT, TARGET
from _cli_common import cli as trustfold

from sandbox.testing import running_sandbox

GOAL = 0.9
START = datetime(2025, 9, 8, 8, 0, tzinfo=UTC)


class ChannelSampler:
    """(seconds, {target channel id: messages}) ten times a second, read from the sandbox's own store."""

    def __init__(self, world: Any) -> None:
        self.world = world
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _count(self) -> dict[str, int]:
        store = getattr(self.world.tenants[TARGET], "teams", None)
        if store is None:
            return {}
        for _ in range(5):
            try:
                return {cid: len(msgs) for cid, msgs in list(store.messages.items())}
            except RuntimeError:  # the sandbox's thread added a channel while we copied
                continue
        return {}

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self._count()))
            self._stop.wait(0.1)

    def __enter__(self) -> ChannelSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic(), self._count()))

    def spans(self) -> dict[str, tuple[float, float, int]]:
        """Target channel -> (first import seen, last import seen, messages imported)."""
        out: dict[str, tuple[float, float, int]] = {}
        before: dict[str, int] = {}
        for t, counts in self.samples:
            for cid, n in counts.items():
                if n > before.get(cid, 0):
                    first, _, _ = out.get(cid, (t, t, 0))
                    out[cid] = (first, t, n)
                before[cid] = n
        return out

    def peak_parallel(self, channels: set[str]) -> int:
        """The most of CHANNELS that gained a message within the same one-second stretch."""
        gains: dict[str, list[float]] = defaultdict(list)
        before: dict[str, int] = {}
        for t, counts in self.samples:
            for cid, n in counts.items():
                if cid in channels and n > before.get(cid, 0):
                    gains[cid].append(t)
                before[cid] = n
        best = 0
        for t, _ in self.samples:
            best = max(best, sum(1 for ts in gains.values() if any(t <= g < t + 1.0 for g in ts)))
        return best


def seed(url: str, world: Any, source: str, channels: int, messages: int) -> list[tuple[str, str]]:
    """Post MESSAGES messages at the source into the first CHANNELS channels (team by team); their ids."""
    store = world.tenants[source].teams
    picked: list[tuple[str, str]] = []
    for team_id in sorted(store.teams):
        for ch in sorted(store.channels_of(team_id), key=lambda c: str(c["displayName"])):
            if len(picked) < channels and ch.get("membershipType", "standard") == "standard":
                picked.append((team_id, ch["id"]))
    with httpx.Client(base_url=f"{url}/sandbox/tenants/{source}/teams", timeout=60) as client:
        for team_id, cid in picked:
            owner = next(iter(world.tenants[source].owners[team_id]))
            root = ""
            for i in range(messages):
                body: dict[str, Any] = {
                    "from": owner,
                    "content": f"<p>Homework {i}: pages {i}-{i + 2}.</p>",
                    "createdDateTime": (START + timedelta(minutes=7 * i, milliseconds=i)).isoformat(),
                }
                if i % 10 == 9 and root:
                    body["replyToId"] = root
                r = client.post(f"/{team_id}/channels/{cid}/messages", json=body)
                r.raise_for_status()
                if i % 10 == 0:
                    root = r.json()["id"]
    return picked


def source_reads(url: str, source: str) -> int:
    """The legacy tenant's request count, from the sandbox's own stats."""
    return int(httpx.get(f"{url}/sandbox/stats").json()["tenants"][source]["requests"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=150, help="messages posted into each seeded channel")
    parser.add_argument("--channels", type=int, default=4, help="channels seeded (first teams first)")
    parser.add_argument("--import-limit", default="5/1", help="sandbox imports per channel, N/S")
    parser.add_argument("--size", type=int, default=20, help="users per academy in the sandbox")
    parser.add_argument("--academy", default="hillside")
    args = parser.parse_args()
    n, secs = (float(x) for x in args.import_limit.split("/"))
    limit = n / secs
    with (
        running_sandbox(
            ROOT / "config",
            size=args.size,
            seed=11,
            teams_protected_api_approved=True,
            teams_import=args.import_limit,
        ) as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        world = url.world
        source = next(t["id"] for t in world.tenant_list() if t["academy"] == args.academy)
        per_team = world.settings.teams_per_team
        per_channel = float(per_team.limit) / float(per_team.seconds)
        state = Path(tmp) / "state.db"
        trustfold(url, state, "bootstrap", "--yes", as_json=False)
        seeded = seed(url, world, source, args.channels, args.messages)
        trustfold(url, state, "discover", args.academy, as_json=False)
        for phase in ("users", "groups", "memberships"):
            trustfold(url, state, "run", args.academy, "--phase", phase, "--replan", as_json=False)
        read_before = source_reads(url, source)
        started = time.monotonic()
        with ChannelSampler(world) as sampler:
            result = trustfold(url, state, "run", args.academy, "--phase", "teams", "--replan", timeout=1800)
        seconds = time.monotonic() - started
        source_requests = source_reads(url, source) - read_before
    counts = result["counts"]
    spans = sampler.spans()
    # The seeded channels are the target channels that received at least --messages imports.
    bench = {cid: s for cid, s in spans.items() if s[2] >= args.messages}
    rates = {cid: (s[2] - 1) / max(s[1] - s[0], 1e-3) for cid, s in bench.items()}
    imported = sum(s[2] for s in bench.values())
    first = min((s[0] for s in bench.values()), default=0.0)
    last = max((s[1] for s in bench.values()), default=0.0)
    aggregate = (imported - 1) / max(last - first, 1e-3)
    peak = sampler.peak_parallel(set(bench))
    messages = max(1, int(counts["messages"]))
    bound = min(limit, per_channel)
    print(
        f"teams bench: {args.academy}, size {args.size}, {len(seeded)} channel(s) seeded with "
        f"{args.messages} messages, import limit {args.import_limit} per channel, "
        f"{per_channel:g} requests a second per team or channel"
    )
    print(f"{'figure':44} {'value':>10}")
    rows: list[tuple[str, str]] = [
        ("messages imported (whole run)", f"{messages}"),
        ("seeded channels seen importing", f"{len(bench)}"),
        ("seconds (whole teams run, CLI start to end)", f"{seconds:.1f}"),
        ("trust requests (whole run)", f"{int(counts['requests'])}"),
        ("client window wait, seconds (summed)", f"{float(counts.get('teams_window_wait', 0)):.1f}"),
    ]
    for i, r in enumerate(rates.values()):
        rows.append((f"channel {i + 1}: messages per second", f"{r:.2f}"))
    for k, v in rows:
        print(f"{k:44} {v:>10}")
    mean = sum(rates.values()) / max(1, len(rates))
    print(
        f"messages per second per channel / import limit ({limit:g}/s): {mean / limit:.3f} "
        f"(goal >= {GOAL}: {'met' if mean / limit >= GOAL else 'missed'}; "
        f"the most a channel may reach is min(import, per-channel) = {bound:g}/s, {bound / limit:.2f})"
    )
    print(
        f"channels in parallel: peak {peak} of {len(bench)} importing in the same second; aggregate "
        f"{aggregate:.2f}/s / (limit x channels) = {aggregate / (limit * max(1, len(bench))):.3f}"
    )
    print(
        f"requests per message: trust {int(counts['requests']) / messages:.3f}, "
        f"legacy tenant {source_requests / messages:.3f} (the run's plan and image reads)"
    )
    print(f"429 answers: {counts['throttled']}")


if __name__ == "__main__":
    main()

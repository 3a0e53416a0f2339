"""The runner's slots and the Teams window (migrations/teams/pace.py, the pace in migrations/core/runner.py):
a message whose channel's window is full waits in its channel's queue, not asleep in the window holding a
slot, so other channels' messages go meanwhile; each channel's messages still go in plan order. Shown by the
order and fake-clock time of the requests (no timings), with fewer slots than channels."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from migrations.core.plan import Plan
from migrations.core.runner import Runner
from migrations.core.steps import Outcome, Step, register_operation
from migrations.graph.client import BatchItem, GraphResponse
from migrations.graph.teams_window import TeamsWindow, WindowedConnection
from migrations.teams.pace import TeamsPace


class Clock:
    """Time moves only when someone sleeps: to the end of the latest sleep that has come due."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, wake)


@dataclass
class Stats:
    throttled: int = 0


@dataclass
class Conn:
    clock: Clock
    sent: list[tuple[float, str, str]] = field(default_factory=list)  # (time, channel, message)
    stats: Stats = field(default_factory=Stats)

    async def request(self, method: str, url: str, **kw: Any) -> GraphResponse:
        cid = url.split("/")[4]
        self.sent.append((self.clock.now, cid, kw["json"]["n"]))
        await asyncio.sleep(0)  # the answer comes back after others have had a turn
        return GraphResponse(201, {}, {"id": f"{cid}-{kw['json']['n']}"})


@dataclass
class Ctx:
    target: Any

    def remember(self, key: str, target_id: str | None, data: dict[str, Any]) -> None:
        pass


class Import:
    name = "pace-import"
    batchable = False

    def describe(self, step: Step) -> str:
        return step.key

    def request(self, step: Step, ctx: Ctx) -> BatchItem:
        a = step.args
        return BatchItem("POST", f"/teams/{a['team']}/channels/{a['channel']}/messages", {"n": a["n"]})

    def outcome(self, step: Step, resp: GraphResponse, ctx: Ctx) -> Outcome | None:
        return Outcome("done", resp.body["id"]) if resp.status == 201 else None

    async def reconcile(self, step: Step, ctx: Ctx) -> Outcome | None:
        return None


register_operation(Import())  # type: ignore[arg-type]


class Journal:
    def history(self) -> dict[str, dict[str, Any]]:
        return {}

    def intents(self, steps: list[Step]) -> None:
        pass

    def outcomes(self, results: list[tuple[Step, Outcome]]) -> None:
        pass


CHANNELS = [("t1", "c1"), ("t1", "c2"), ("t2", "c3")]  # two channels of one team, one of another
PER_CHANNEL = 12


def _run(paced: bool) -> tuple[Conn, TeamsWindow, Any]:
    clock = Clock()
    window = TeamsWindow(clock=clock, sleep=clock.sleep)
    conn = Conn(clock)
    ctx = Ctx(WindowedConnection(conn, window))
    # The plan holds the channels one after another, as the teams phase plans them.
    steps = [
        Step(f"msg:{cid}:{n:02d}", "pace-import", {"team": tid, "channel": cid, "n": f"{n:02d}"})
        for tid, cid in CHANNELS
        for n in range(PER_CHANNEL)
    ]
    pace = TeamsPace(window, ctx) if paced else None
    runner = Runner(Plan("a", "teams", steps), ctx, Journal(), concurrency=2, lag_tolerance=0, pace=pace)
    return conn, window, asyncio.run(runner.run())


def test_a_full_channel_window_does_not_hold_a_slot_while_other_channels_wait() -> None:
    conn, window, result = _run(paced=True)
    assert result.done == len(CHANNELS) * PER_CHANNEL and result.failed == 0
    start = conn.sent[0][0]
    first_second = [cid for t, cid, _ in conn.sent if t < start + 1.0]
    # Each channel has its own 4 a second (throttling-limits, "Microsoft Teams service limits"): with two
    # slots and three channels, all three spend theirs in the first second.
    assert {cid: first_second.count(cid) for _, cid in CHANNELS} == {"c1": 4, "c2": 4, "c3": 4}
    assert window.waited == 0  # no slot ever slept in the window
    for _, cid in CHANNELS:
        order = [n for _, c, n in conn.sent if c == cid]
        assert order == sorted(order) and len(order) == PER_CHANNEL  # plan order, each once


def test_without_the_pace_the_slots_sleep_on_the_first_channel() -> None:
    """What the pace changes: the same plan without it spends the first second on the first channel alone."""
    conn, window, result = _run(paced=False)
    assert result.done == len(CHANNELS) * PER_CHANNEL
    start = conn.sent[0][0]
    first_second = {cid for t, cid, _ in conn.sent if t < start + 1.0}
    assert first_second == {"c1"}
    assert window.waited > 0

"""The client-side write window: reservations count at once, stamps are taken when answers arrive, and the
whole budget is usable without earning a 429 (a fake clock: no timings)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from migrations.graph.client import WriteWindow


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let other tasks (answers arriving) run, as a real sleep would


def window(limit: int = 10, seconds: float = 15.0) -> tuple[WriteWindow, FakeClock]:
    clock = FakeClock()
    return WriteWindow(limit, seconds, clock=clock, sleep=clock.sleep), clock


def test_the_whole_budget_is_usable_in_batches() -> None:
    w, _clock = window(limit=300)

    async def go() -> float:
        waited = 0.0
        for _ in range(15):  # fifteen $batch envelopes of twenty writes fill the window exactly
            waited += await w.reserve(20)
            w.settle(20)
        return waited

    assert asyncio.run(go()) == 0.0
    assert len(w.sent) == 300


def test_a_slot_frees_one_window_after_the_answer_not_after_the_send() -> None:
    w, clock = window(limit=2, seconds=15.0)

    async def go() -> float:
        await w.reserve(2)
        clock.now += 3.0  # the answer took three seconds: the server admitted the writes at most then
        w.settle(2)
        return await w.reserve(1)

    waited = asyncio.run(go())
    # From the answer (t+3) one window plus the small margin; stamping at send would free it 3 s too early.
    assert waited == pytest.approx(w.expiry + 0.001)
    assert clock.now >= 1000.0 + 3.0 + 15.0
    assert w.expiry - 15.0 < 0.2  # padding is a small margin, not a share of the window


def test_writes_in_flight_hold_their_slots_until_answered() -> None:
    w, clock = window(limit=2)

    async def go() -> None:
        await w.reserve(2)

        async def answer_later() -> None:
            await asyncio.sleep(0)
            clock.now += 0.5
            w.settle(2)

        task = asyncio.create_task(answer_later())
        await w.reserve(1)  # cannot fit while both are in flight, nor until a window after their answer
        await task

    asyncio.run(go())
    assert clock.now >= 1000.0 + 0.5 + 15.0


def test_stamps_cross_processes_with_writes_in_flight(tmp_path: Path) -> None:
    w, clock = window(limit=5)
    path = tmp_path / "write-window.json"

    async def go() -> None:
        await w.reserve(3)
        w.settle(2)  # one still in flight when the process stops: saved as sent now

    asyncio.run(go())
    w.save(path)
    fresh = WriteWindow(5, 15.0, clock=clock, sleep=clock.sleep)
    fresh.load(path)
    assert len(fresh.sent) == 3
    clock.now += 16.0
    fresh.load(path)  # stale stamps are not loaded
    fresh._expire(clock.now)
    assert len(fresh.sent) == 0


def test_a_429_shrinks_the_window_and_a_quiet_window_restores_it() -> None:
    w, clock = window(limit=100)
    w.throttled()
    assert w.limit == 80
    w.throttled()  # within a second: counted once
    assert w.limit == 80
    clock.now += 1.5
    w.throttled()
    assert w.limit == 64
    w.recovered()
    assert w.limit == 64
    clock.now += 16.0
    w.recovered()
    assert w.limit == 100


def test_a_batch_takes_the_slots_free_now_when_the_rest_are_far_off() -> None:
    w, clock = window(limit=300)

    async def go() -> tuple[tuple[int, float], tuple[int, float]]:
        await w.reserve(1)
        w.settle(1)  # e.g. bootstrap's write, seconds ago: it holds one slot for most of a window
        clock.now += 2.0
        for _ in range(14):
            await w.reserve(20)
            w.settle(20)
        first = await w.reserve_some(20)  # 19 fit now, the 20th only in 13 s: take the 19
        w.settle(first[0])
        clock.now += 15.0  # a window later the next batch fits whole, after a short wait at most
        return first, await w.reserve_some(20)

    first, second = asyncio.run(go())
    assert first == (19, 0.0)
    assert second[0] == 20


def test_a_batch_waits_briefly_rather_than_split() -> None:
    w, clock = window(limit=10)

    async def go() -> tuple[int, float]:
        await w.reserve(10)
        w.settle(6)
        clock.now += 0.2
        w.settle(4)
        clock.now += 15.0  # the six have left; the four leave in about a tenth of a second
        return await w.reserve_some(8)

    granted, waited = asyncio.run(go())
    assert granted == 8 and 0 < waited < 0.5  # one request of eight, not six now and two later

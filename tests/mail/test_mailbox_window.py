"""The per-mailbox Outlook window (graph/mailbox_window.py): each limit holds, and mailboxes are apart.

No timings: the windows take a fake clock and a fake sleep that advances it, so every wait is computed."""

from __future__ import annotations

import asyncio

from migrations.graph.client import WriteWindow
from migrations.graph.mailbox_window import CONCURRENT, REQUESTS, UPLOAD_BYTES, ByteWindow, MailboxWindows


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def test_the_published_limits() -> None:
    # learn.microsoft.com/graph/throttling-limits, "Outlook service limits".
    assert REQUESTS == (10_000, 600.0)
    assert CONCURRENT == 4
    assert UPLOAD_BYTES == (150 * 1024 * 1024, 300.0)


def test_bytes_beyond_the_window_wait_until_the_oldest_upload_leaves() -> None:
    clock = FakeClock()
    w = ByteWindow(100, 300.0, clock=clock, sleep=clock.sleep)

    async def go() -> None:
        assert await w.reserve(60) == 0.0
        w.settle(60)
        clock.t += 10
        waited = await w.reserve(60)  # 120 > 100: waits until the first 60 expire (300 s after its stamp)
        assert waited >= 290.0
        assert clock.t - 1000.0 >= w.expiry

    asyncio.run(go())


def test_an_item_larger_than_the_window_goes_alone() -> None:
    clock = FakeClock()
    w = ByteWindow(100, 300.0, clock=clock, sleep=clock.sleep)

    async def go() -> None:
        assert await w.reserve(500) == 0.0  # a 150 MB message in a window of 150 MB: never stuck

    asyncio.run(go())


def test_requests_beyond_the_ten_minute_budget_wait() -> None:
    clock = FakeClock()
    w = WriteWindow(3, 600.0, clock=clock, sleep=clock.sleep)

    async def go() -> None:
        for _ in range(3):
            await w.reserve(1)
            w.settle(1)
        assert await w.reserve(1) >= 600.0

    asyncio.run(go())


def test_at_most_four_requests_of_one_mailbox_in_flight_and_mailboxes_apart() -> None:
    windows = MailboxWindows()
    peak = {"a": 0, "b": 0}
    now = {"a": 0, "b": 0}

    async def call(box: str, release: asyncio.Event) -> None:
        async with windows.of(box).slot():
            now[box] += 1
            peak[box] = max(peak[box], now[box])
            await release.wait()
            now[box] -= 1

    async def go() -> None:
        release = asyncio.Event()
        tasks = [asyncio.create_task(call(b, release)) for b in ("a", "b") for _ in range(9)]
        for _ in range(20):
            await asyncio.sleep(0)
        assert now == {"a": 4, "b": 4}  # each mailbox has its own four
        release.set()
        await asyncio.gather(*tasks)

    asyncio.run(go())
    assert peak == {"a": 4, "b": 4}
    assert windows.of("a") is not windows.of("b")

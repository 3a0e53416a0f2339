"""The Teams window (migrations/graph/teams_window.py): which limits a request falls under, and that a fifth
request to a channel inside a second waits instead of meeting Microsoft's 429. A fake clock: no timing."""

from __future__ import annotations

import asyncio

from migrations.graph.teams_window import TeamsWindow, keys_of


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_keys_name_the_team_the_channel_and_the_import_limit() -> None:
    assert keys_of("POST", "/teams") == [("create-teams", 10)]
    assert keys_of("PUT", "/groups/g1/team") == [("team:g1", 4)]
    assert keys_of("GET", "/teams/t1/channels") == [("team:t1", 4)]
    imported = keys_of("POST", "/teams/t1/channels/c1/messages")
    assert imported == [("team:t1", 4), ("channel:c1", 4), ("import:c1", 5)]
    assert ("import:c1", 5) in keys_of("POST", "/teams/t1/channels/c1/messages/m1/replies")
    assert ("import:c1", 5) not in keys_of("GET", "/teams/t1/channels/c1/messages")
    assert keys_of("GET", "/users/u1") == []  # not a Teams path: the window lets it by


def test_a_fifth_request_to_one_team_inside_a_second_waits() -> None:
    clock = Clock()
    window = TeamsWindow(clock=clock, sleep=clock.sleep)

    async def go() -> None:
        for _ in range(4):
            assert await window.reserve("GET", "/teams/t1/channels") == 0
        assert await window.reserve("GET", "/teams/t2/channels") == 0  # another team: its own window
        waited = await window.reserve("GET", "/teams/t1/channels")
        assert waited >= 1.0

    asyncio.run(go())
    assert clock.slept and window.waited >= 1.0


def test_a_429_closes_the_window_for_its_retry_after() -> None:
    clock = Clock()
    window = TeamsWindow(clock=clock, sleep=clock.sleep)

    async def go() -> None:
        await window.reserve("POST", "/teams/t1/channels/c1/messages")
        window.settle("POST", "/teams/t1/channels/c1/messages", 429, 7.0)
        waited = await window.reserve("GET", "/teams/t1/channels/c1/messages")
        assert waited >= 7.0

    asyncio.run(go())
    assert window.throttled == 1


def test_a_request_waiting_for_one_team_does_not_hold_up_another() -> None:
    clock = Clock()
    gate = asyncio.Event()

    async def sleep(seconds: float) -> None:
        clock.slept.append(seconds)
        await gate.wait()  # the waiting request stays asleep until the other team's request is through
        clock.now += seconds

    window = TeamsWindow(clock=clock, sleep=sleep)

    async def go() -> None:
        for _ in range(4):
            await window.reserve("GET", "/teams/t1/channels")
        waiting = asyncio.create_task(window.reserve("GET", "/teams/t1/channels"))
        await asyncio.sleep(0)
        assert await asyncio.wait_for(window.reserve("GET", "/teams/t2/channels"), 1) == 0
        gate.set()
        assert await waiting >= 1.0

    asyncio.run(go())

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


def test_keys_name_the_team_or_the_channel_and_the_import_limit() -> None:
    assert keys_of("POST", "/teams") == [("create-teams", 10)]
    assert keys_of("PUT", "/groups/g1/team") == [("team:g1", 4)]
    assert keys_of("GET", "/teams/t1/channels") == [("team:t1", 4)]
    imported = keys_of("POST", "/teams/t1/channels/c1/messages")
    # "4 requests per second per app ... on a given team or channel": a channel's request is its channel's.
    assert imported == [("channel:c1", 4), ("import:c1", 5)]
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


def test_channels_of_one_team_each_have_their_own_four_a_second() -> None:
    """Two channels of one team: four requests each inside one second go at once (the team's window is not
    spent by them); a fifth to the first channel waits for the second to pass."""
    clock = Clock()
    window = TeamsWindow(clock=clock, sleep=clock.sleep)

    async def go() -> list[float]:
        waits = []
        for cid in ("c1", "c2", "c1", "c2", "c1", "c2", "c1", "c2"):
            waits.append(await window.reserve("GET", f"/teams/t1/channels/{cid}"))
        assert await window.reserve("GET", "/teams/t1/channels") == 0  # the team itself: untouched
        waits.append(await window.reserve("GET", "/teams/t1/channels/c1"))
        return waits

    waits = asyncio.run(go())
    assert waits[:8] == [0.0] * 8
    assert waits[8] >= 1.0


def test_room_counts_claimed_requests_until_they_are_stamped() -> None:
    """What the runner asks before giving a step a slot: claimed-but-unsent requests fill the window as
    sent ones do; a claim a request stamped, or one released unsent, stops counting."""
    clock = Clock()
    window = TeamsWindow(clock=clock, sleep=clock.sleep)
    path = "/teams/t1/channels/c1/messages"
    claims = [window.claim("POST", path) for _ in range(4)]
    assert window.room("POST", path) > 0  # four on their way: the channel's four a second are spoken for
    assert window.room("POST", "/teams/t1/channels/c2/messages") == 0

    async def go() -> None:
        for _ in range(3):
            assert await window.reserve("POST", path) == 0

    asyncio.run(go())
    assert window.room("POST", path) > 0  # three stamped, one still claimed
    window.release(claims[3])  # sent nothing (the step failed before its request)
    for c in claims:
        window.release(c)  # released after being used: no effect
    assert window.room("POST", path) == 0
    clock.now += 2.0
    assert window.room("POST", path) == 0

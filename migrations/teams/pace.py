"""The teams phase's steps as the runner's pace sees them: each step's lane is the Teams windows its request
falls under (one channel's imports share a lane), and it takes a runner slot only when its window has room,
so a slot never sleeps on one channel's limit while another channel's messages wait behind it."""

from __future__ import annotations

from typing import Any

from migrations.core.steps import Step, operation
from migrations.graph.teams_window import Claim, TeamsWindow, keys_of


class TeamsPace:
    def __init__(self, window: TeamsWindow, ctx: Any):
        self.window, self.ctx = window, ctx
        # Step key -> the (method, path) its request takes: a step is asked about often while it waits.
        self._where: dict[str, tuple[str, str]] = {}

    def _request(self, step: Step) -> tuple[str, str]:
        where = self._where.get(step.key)
        if where is None:
            r = operation(step.op).request(step, self.ctx)
            where = self._where[step.key] = (r.method, r.url)
        return where

    def lane(self, step: Step) -> str | None:
        names = keys_of(*self._request(step))
        return "|".join(name for name, _ in names) or None

    def room(self, step: Step) -> float:
        return self.window.room(*self._request(step))

    def claim(self, step: Step) -> Claim | None:
        where = self._request(step)
        del self._where[step.key]  # asked no more: a re-send reserves on its own
        return self.window.claim(*where)

    def release(self, claim: Claim | None) -> None:
        self.window.release(claim)

    async def pause(self, seconds: float) -> None:
        await self.window.pause(seconds)

"""A team put on a group that is still new answers 404 for a while (team-put-teams: "If the group was created
less than 15 minutes ago, it's possible for the Create team call to fail with a 404 error code due to
replication delays ... retry the call"). The runner's bounded re-sends of such a step wait outside its
concurrency slot, so the other teams' requests go meanwhile. Shown by the order of requests (no timings), with
one slot so that holding it would be visible."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from migrations.core.plan import Plan
from migrations.core.runner import MAX_SENDS, Runner, absent_wait
from migrations.core.steps import Outcome, Step, register_operation
from migrations.graph.client import BatchItem, GraphResponse


@dataclass
class Stats:
    throttled: int = 0


@dataclass
class Target:
    """PUT /groups/{id}/team as a new group answers it: 404 for the first `young[key]` sends, then 201."""

    young: dict[str, int]
    sent: list[str] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)

    async def request(self, method: str, url: str, **_: Any) -> GraphResponse:
        key = url.split("/")[2]
        self.sent.append(key)
        if self.sent.count(key) <= self.young.get(key, 0):
            return GraphResponse(404, {}, {"error": {"code": "NotFound", "message": "No team found"}})
        return GraphResponse(201, {}, {"id": key})


@dataclass
class Ctx:
    target: Target

    def remember(self, key: str, target_id: str | None, data: dict[str, Any]) -> None:
        pass


class PutTeam:
    name = "slot-put-team"
    batchable = False  # as every Teams write: one request each, so each holds a slot of its own

    def describe(self, step: Step) -> str:
        return f"team on {step.key}"

    def request(self, step: Step, ctx: Ctx) -> BatchItem:
        return BatchItem("PUT", f"/groups/{step.key}/team", {})

    def outcome(self, step: Step, resp: GraphResponse, ctx: Ctx) -> Outcome | None:
        return Outcome("done", step.key) if resp.status == 201 else None

    async def reconcile(self, step: Step, ctx: Ctx) -> Outcome | None:
        return None  # GET /groups/{id}/team answers 404 too while the group is new


register_operation(PutTeam())  # type: ignore[arg-type]


class Journal:
    def history(self) -> dict[str, dict[str, Any]]:
        return {}

    def intents(self, steps: list[Step]) -> None:
        pass

    def outcomes(self, results: list[tuple[Step, Outcome]]) -> None:
        pass


def _run(young: dict[str, int], keys: list[str]) -> tuple[Target, Any]:
    target = Target(young)
    steps = [Step(k, "slot-put-team", {}) for k in keys]
    runner = Runner(Plan("a", "teams", steps), Ctx(target), Journal(), concurrency=1, lag_tolerance=0)
    return target, asyncio.run(runner.run())


def test_other_teams_are_sent_while_a_new_group_answers_404() -> None:
    target, result = _run({"new": 2}, ["new", "b", "c", "d"])
    assert result.done == 4 and result.failed == 0
    assert target.sent.count("new") == 3
    first, last = target.sent.index("new"), len(target.sent) - 1 - target.sent[::-1].index("new")
    between = [k for k in target.sent[first:last] if k != "new"]
    # Holding the one slot through the retries would send new, new, new and only then b, c, d.
    assert between, f"no other team was sent while 'new' waited: {target.sent}"


def test_the_retries_stay_bounded_and_the_rest_still_arrive() -> None:
    target, result = _run({"never": 99}, ["never", "b", "c"])
    assert target.sent.count("never") == MAX_SENDS
    assert result.done == 2 and result.failed == 1
    assert result.failures == [{"step": "never", "message": f"outcome unknown after {MAX_SENDS} attempts"}]


def test_the_wait_for_a_too_new_object_starts_short_and_grows() -> None:
    """A write answered 404 is sent again after a quarter of the lag tolerance, then half, then the whole,
    so a group seen a second later is not waited for four; in all about four lag tolerances of patience."""
    waits = [absent_wait(4.0, sends) for sends in range(MAX_SENDS - 1)]
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert sum(waits) >= 3.5 * 4.0

"""The bounded wait for trust mailboxes (readiness/mailboxes.py): who is still waiting is named, and the
wait ends as soon as every mailbox exists. A fake connection answers as Graph does for a user whose mailbox
Exchange has not provisioned yet (404 MailboxNotEnabledForRESTAPI); no timings."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from migrations.core.store import StateStore, dumps, now
from migrations.graph.client import GraphResponse
from migrations.graph.outlook_gate import OutlookGate
from migrations.readiness.mailboxes import wait_for_mailboxes


class FakeTarget:
    def __init__(self, ready_after: dict[str, int]):
        self.ready_after = ready_after  # user id -> how many asks answer 404 first
        self.asked: dict[str, int] = {}
        self.outlook_gate = OutlookGate()

    async def request(self, method: str, path: str, **kw: Any) -> GraphResponse:
        # exchangeSettings is Exchange's: every read takes one of the app's Outlook slots while it is sent.
        assert kw.get("gate") == self.outlook_gate.held, "an exchangeSettings read bypassed the Outlook gate"
        uid = path.split("/")[2]
        self.asked[uid] = self.asked.get(uid, 0) + 1
        if self.asked[uid] <= self.ready_after[uid]:
            return GraphResponse(404, {}, {"error": {"code": "MailboxNotEnabledForRESTAPI", "message": ""}})
        return GraphResponse(200, {}, {"primaryMailboxId": f"MBX:{uid}"})


def _store(tmp: Path, people: dict[str, str]) -> StateStore:
    store = StateStore.open(tmp / "state.db")
    with store.tx() as tx:
        for i, (uid, upn) in enumerate(people.items()):
            tx.execute(
                "INSERT INTO mappings (academy, kind, source_id, source_key, action, origin, data, "
                "updated_at) VALUES ('hillside', 'user', ?, ?, 'match', 'computed', ?, ?)",
                (f"s{i}", upn, dumps({"target_id": uid}), now()),
            )
    return store


def test_who_is_still_waiting_is_named_when_the_bound_is_reached(tmp_path: Path) -> None:
    store = _store(tmp_path, {"u1": "a.ready@x", "u2": "b.waiting\u202e@x"})
    target = FakeTarget({"u1": 0, "u2": 99})
    waited = asyncio.run(wait_for_mailboxes(store, "hillside", target, 1.0, poll_s=5.0))  # type: ignore[arg-type]
    assert (waited.ready, waited.waiting) == (1, ["b.waiting\u202e@x"])
    assert waited.message().startswith("1 trust mailboxes not provisioned yet after 0 s (b.waiting")


def test_the_wait_ends_once_every_mailbox_exists(tmp_path: Path) -> None:
    store = _store(tmp_path, {"u1": "a@x", "u2": "b@x"})
    target = FakeTarget({"u1": 1, "u2": 5})
    naps: list[float] = []

    async def nap(s: float) -> None:
        naps.append(s)

    waited = asyncio.run(
        wait_for_mailboxes(store, "hillside", target, 3600.0, poll_s=5.0, sleep=nap)  # type: ignore[arg-type]
    )
    # The first look again after a second, the gap doubling up to the poll interval.
    assert (waited.ready, waited.waiting, naps) == (2, [], [1.0, 2.0, 4.0, 5.0, 5.0])
    assert target.asked == {"u1": 2, "u2": 6}  # a ready mailbox is not asked again

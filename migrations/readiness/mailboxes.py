"""Trust mailboxes before a mail run: Exchange makes a licensed user's mailbox in the background
(learn.microsoft.com/exchange/recipients-in-exchange-online/create-user-mailboxes), so right after the users
phase the trust users may have none yet. Until then `GET /users/{id}/settings/exchange` answers 404
MailboxNotEnabledForRESTAPI. The wait is bounded and names who is still waiting; a run goes ahead with the
mailboxes that are there (the others are carried by the next pass)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from migrations.core.store import StateStore
from migrations.graph.client import GraphError, TenantConnection
from migrations.graph.mailbox_window import MailboxWindows
from migrations.mail.discovery import people

POLL_S = 5.0
# The first look again comes sooner, then the gap doubles up to POLL_S: a mailbox licensed moments before
# (the users phase just ran) is often there within a second or two, and each look is one Outlook request per
# user still waiting, far inside the mailbox's 10,000 in 10 minutes.
FIRST_POLL_S = 1.0
# How long a mail run waits for mailboxes before it goes ahead with those that exist.
MAILBOX_WAIT_S = 120.0
NAMED = 10  # people named in the message; the rest counted


@dataclass
class MailboxWait:
    ready: int = 0
    waiting: list[str] = field(default_factory=list)  # the trust users' source UPNs, in mapping order
    waited_s: float = 0.0
    # The ready trust users' exchangeSettings as answered (user id -> body with primaryMailboxId): the mail
    # plan straight after reuses them instead of asking each user again.
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def message(self) -> str:
        if not self.waiting:
            return f"{self.ready} trust mailboxes ready"
        named = ", ".join(self.waiting[:NAMED])
        more = f" and {len(self.waiting) - NAMED} more" if len(self.waiting) > NAMED else ""
        return (
            f"{len(self.waiting)} trust mailboxes not provisioned yet after {self.waited_s:.0f} s "
            f"({named}{more}): their mail waits for the next pass"
        )


async def _has_mailbox(
    conn: TenantConnection, windows: MailboxWindows, user: str
) -> tuple[bool, dict[str, Any] | None]:
    """Whether the user has a mailbox, and its exchangeSettings when the answer names the primary mailbox."""
    # Exchange answers exchangeSettings (an Outlook path): the read takes one of the app's Outlook slots, and
    # a 429 slows it in its own window's retry layer instead of pausing the tenant or failing the wait.
    resp = await windows.of(f"user:{user}").request(conn, "GET", f"/users/{user}/settings/exchange")
    if resp.status == 404:
        return False, None
    if not resp.ok:
        raise GraphError("GET", f"/users/{user}/settings/exchange", resp)
    body = resp.body or {}
    # A list answer (the page documents a collection) or a single object, as discovery reads it.
    if isinstance(body.get("value"), list):
        body = body["value"][0] if body["value"] else {}
    return True, (dict(body) if body.get("primaryMailboxId") else None)


async def wait_for_mailboxes(
    store: StateStore,
    code: str,
    target: TenantConnection,
    bound_s: float,
    *,
    poll_s: float = POLL_S,
    first_poll_s: float = FIRST_POLL_S,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> MailboxWait:
    """Poll the mapped trust users' mailboxes until all exist or `bound_s` has passed: first after
    `first_poll_s`, the gap doubling up to `poll_s`."""
    todo = {p.target_user: p.source_key for p in people(store, code) if p.target_user}
    result = MailboxWait()
    windows = MailboxWindows()
    started = time.monotonic()
    gap = min(first_poll_s, poll_s)
    while True:
        found = await asyncio.gather(*(_has_mailbox(target, windows, uid) for uid in todo))
        for uid, (ok, settings) in zip(list(todo), found, strict=True):
            if ok:
                result.ready += 1
                if settings is not None:
                    result.settings[uid] = settings
                del todo[uid]
        result.waited_s = time.monotonic() - started
        if not todo or result.waited_s + gap > bound_s:
            break
        await sleep(gap)
        gap = min(gap * 2, poll_s)
    result.waiting = sorted(todo.values())
    return result

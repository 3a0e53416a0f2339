"""Shared mailboxes: which trust shared mailbox each of the academy's goes into, as the academy's config names
it (phases.mail.shared_mailboxes), and what stops one being carried.

Microsoft Graph cannot create a shared mailbox (the mailbox resource has import and export only; Exchange's
admin centre or New-Mailbox -Shared makes one, with its own user account): the trust makes it first and names
it. A shared mailbox's account has sign-in blocked (microsoft-365/admin/email/about-shared-mailboxes), so a
named target whose account someone signs in with, or that the identity mapping gives a person, is refused:
pouring the office's mail into it would show that mail to whoever signs in there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migrations.core.store import StateStore
from migrations.graph.client import GraphError, TenantConnection

ADD_SHARED = (
    "Microsoft Graph cannot create a shared mailbox: make it in the trust (Microsoft 365 admin centre, "
    "Teams & groups > Shared mailboxes > Add a shared mailbox)"
)


@dataclass(frozen=True)
class Named:
    source: str  # the address config names in the academy's tenant
    target: str  # the trust shared mailbox's address


@dataclass(frozen=True)
class Resolved:
    """A named pair as the tenants hold it now: accounts and mailboxes, or why it is not carried."""

    named: Named
    source_user: str | None = None
    source_mailbox: str | None = None
    target_user: str | None = None
    target_mailbox: str | None = None
    problem: tuple[str, str, str] | None = None  # finding kind, message, handling


def named(academy: Any) -> list[Named]:
    return [Named(m.source, m.target) for m in academy.phases.mail.shared_mailboxes]


async def user_by_address(conn: TenantConnection, address: str) -> dict[str, Any] | None:
    """The account whose UPN is the address (a shared mailbox's account is made with its address as UPN),
    else the one whose primary mail it is."""
    select = "id,userPrincipalName,mail,displayName,accountEnabled"
    resp = await conn.request("GET", f"/users/{address}", counts_as_write=False, params={"$select": select})
    if resp.ok:
        return dict(resp.body)
    if resp.status not in (400, 404):
        raise GraphError("GET", f"/users/{address}", resp)
    quoted = address.replace("'", "''")
    found = await conn.request(
        "GET", "/users", counts_as_write=False, params={"$filter": f"mail eq '{quoted}'", "$select": select}
    )
    if not found.ok:
        raise GraphError("GET", "/users", found)
    values = found.body.get("value") or []
    return dict(values[0]) if len(values) == 1 else None


def people_targets(store: StateStore) -> set[str]:
    """Every trust account the identity mapping gives a person, in any academy (UPNs, lower case)."""
    return {
        str(r["target_key"]).lower()
        for r in store.rows(
            "SELECT target_key FROM mappings WHERE kind = 'user' AND action IN ('create', 'match') "
            "AND target_key IS NOT NULL"
        )
    }


def carried_people(store: StateStore, code: str) -> set[str]:
    """The academy's source accounts the identity mapping carries as people (ids)."""
    return {
        str(r["source_id"])
        for r in store.rows(
            "SELECT source_id FROM mappings WHERE academy = ? AND kind = 'user' "
            "AND action IN ('create', 'match')",
            (code,),
        )
    }


def known(store: StateStore, code: str) -> dict[str, tuple[str, str | None]]:
    """Source address -> (source account id, trust account id) as an earlier discovery resolved them: after
    the domain cut-over the academy's addresses have moved, so later passes find the accounts by id."""
    return {
        str(r["display"]).lower(): (str(r["source_user"]), r["target_user"])
        for r in store.rows(
            "SELECT display, source_user, target_user FROM mail_mailboxes "
            "WHERE academy = ? AND kind = 'shared'",
            (code,),
        )
    }

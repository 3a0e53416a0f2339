"""A permission as Graph lists it, reduced to what decides whether and how it is carried.

A grant's signature is what makes two grants the same access: the kind, the principal (a user or group id)
and the roles, or for a link its type (with its expiry, the one restriction Graph lets trustfold set) and
scope. Plans, reconciliation and verification all compare signatures, never permission ids (the trust tenant
gives its own). A link's other restrictions (block-download, a password) and a "specific people" link's
people are read too: plan.py decides from them, never silently dropping one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Signature = tuple[str, str, str]  # (kind, principal or link type, roles or link scope)


@dataclass(frozen=True)
class Grant:
    perm_id: str
    kind: str  # user | group | link | siteUser | siteGroup | other
    principal: str  # directory object id, '' when the grant names none
    display: str
    roles: tuple[str, ...]
    link_type: str = ""
    link_scope: str = ""
    inherited: bool = False
    prevents_download: bool = False  # link.preventsDownload: view in the browser only
    has_password: bool = False
    expires: str = ""  # the permission's expirationDateTime, '' when it never expires
    people: tuple[tuple[str, str], ...] = ()  # (user id, display name) a users-scope link names

    @property
    def owner(self) -> bool:
        return "owner" in self.roles

    def signature(self, principal: str | None = None) -> Signature:
        if self.kind == "link":
            return ("link", link_kind(self.link_type, self.expires), self.link_scope)
        return (
            self.kind,
            principal if principal is not None else self.principal,
            ",".join(sorted(self.roles)),
        )


def parse(perm: dict[str, Any]) -> Grant:
    """grantedToV2 names a user or group (siteUser beside them is SharePoint's echo of the same identity);
    a siteUser or siteGroup alone is a SharePoint principal with no directory object behind it."""
    roles = tuple(sorted(str(r) for r in perm.get("roles") or []))
    inherited = bool(perm.get("inheritedFrom"))
    pid = str(perm.get("id", ""))
    link = perm.get("link")
    if isinstance(link, dict) and link.get("scope"):
        people = []
        for ident in perm.get("grantedToIdentitiesV2") or []:
            who = (ident or {}).get("user") if isinstance(ident, dict) else None
            if isinstance(who, dict) and who.get("id"):
                people.append((str(who["id"]), str(who.get("displayName") or who["id"])))
        return Grant(
            pid,
            "link",
            "",
            f"{link.get('scope')} {link.get('type')} link",
            roles,
            str(link.get("type", "")),
            str(link.get("scope", "")),
            inherited,
            prevents_download=link.get("preventsDownload") is True,
            has_password=perm.get("hasPassword") is True,
            expires=normal_time(perm.get("expirationDateTime")),
            people=tuple(people),
        )
    ident = perm.get("grantedToV2") or {}
    for kind in ("user", "group"):
        who = ident.get(kind)
        if isinstance(who, dict) and who.get("id"):
            name = str(who.get("displayName") or who.get("email") or who["id"])
            return Grant(pid, kind, str(who["id"]), name, roles, inherited=inherited)
    for kind in ("siteUser", "siteGroup"):
        who = ident.get(kind)
        if isinstance(who, dict):
            name = str(who.get("displayName") or who.get("loginName") or "")
            return Grant(pid, kind, "", name, roles, inherited=inherited)
    return Grant(pid, "other", "", "unknown principal", roles, inherited=inherited)


def normal_time(value: Any) -> str:
    """An expirationDateTime in one spelling (UTC, whole seconds, 'Z'), so source and copy compare equal
    however each tenant writes it; '' for none. Unreadable text is kept as it is (compared, never dropped)."""
    if not value:
        return ""
    text = str(value)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expired(expires: str, at: datetime | None = None) -> bool:
    """Whether an expiry (normal_time's spelling) is already past."""
    if not expires:
        return False
    try:
        when = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    except ValueError:
        return False
    return when <= (at or datetime.now(UTC))


def link_kind(link_type: str, expires: str) -> str:
    """A link's type in its signature: 'view', or 'view until <expiry>' for a link that expires."""
    return f"{link_type} until {expires}" if expires else link_type


def split_kind(kind: str) -> tuple[str, str]:
    """(link type, expiry or '') from link_kind's text."""
    link_type, _, expires = kind.partition(" until ")
    return link_type, expires


def link_request(g: Grant) -> dict[str, Any]:
    body: dict[str, Any] = {"type": g.link_type, "scope": g.link_scope}
    if g.expires:
        body["expirationDateTime"] = g.expires
    return body

"""A permission as Graph lists it, reduced to what decides whether and how it is carried.

A grant's signature is what makes two grants the same access: the kind, the principal (a user or group id)
and the roles, or for a link its type and scope. Plans, reconciliation and verification all compare
signatures, never permission ids (the trust tenant gives its own).
"""

from __future__ import annotations

from dataclasses import dataclass
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

    @property
    def owner(self) -> bool:
        return "owner" in self.roles

    def signature(self, principal: str | None = None) -> Signature:
        if self.kind == "link":
            return ("link", self.link_type, self.link_scope)
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
        return Grant(
            pid,
            "link",
            "",
            f"{link.get('scope')} {link.get('type')} link",
            roles,
            str(link.get("type", "")),
            str(link.get("scope", "")),
            inherited,
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


def link_request(g: Grant) -> dict[str, Any]:
    return {"type": g.link_type, "scope": g.link_scope}

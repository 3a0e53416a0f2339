"""Item permissions in the sandbox: direct grants on drive items, what they inherit, links, the tenant's
sharing policy and the record of every invitation e-mail requested.

A drive item keeps its direct permissions in `item["_perms"]` (saved with the drive store). Inherited
permissions are computed from the ancestors and listed with the same ids as on the item they come from, never
with `inheritedFrom` (OneDrive for Business and SharePoint libraries do not return it); the drive's own
permissions (the OneDrive owner, a library's site groups) sit on its root and are never stored. An item
first shared with `retainInheritedPermissions: false` keeps `_noinherit`: it and its descendants see nothing
above it. A sharing change takes the drive's next sequence number so drive delta returns the item, and
`_shseq` remembers it for `Prefer: deltashowsharingchanges`. Behaviour and sources: docs/sandbox.md
("Item permissions").
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from sandbox.errors import GraphError, now_iso

if TYPE_CHECKING:  # drives_state renders the shared facet with this module: no import cycle at run time
    from sandbox.drives_state import DriveStore

ROLES = ("read", "write")
LINK_ROLES = {"view": "read", "edit": "write"}
SCOPES = ("anonymous", "organization", "users")
WIDTH = {"users": 0, "organization": 1, "anonymous": 2}
# SharePoint's tenant sharing capability values (admin/sharepoint/settings sharingCapability).
CAPABILITIES = (
    "disabled",
    "existingExternalUserSharingOnly",
    "externalUserSharingOnly",
    "externalUserAndGuestSharing",
)


# ---- policy and invitation log (per tenant, on the drive store) ------------------------------------------
# SharePoint Online: "Unique security scopes per list or library" 50,000 (sharepoint-online-limits).
UNIQUE_SCOPES_LIMIT = 50_000


def policy(store: DriveStore) -> dict[str, Any]:
    """The tenant's sharing policy; anonymous ("Anyone") links need externalUserAndGuestSharing."""
    current = store.sharing_policy
    if current is None:
        current = {"sharingCapability": "externalUserAndGuestSharing", "organizationLinks": True}
        store.sharing_policy = current
    return current


def unique_scopes(store: DriveStore, drive: str) -> int:
    """Items of the drive (a library, or a OneDrive's) with permissions of their own."""
    return sum(
        1
        for it in store.items.values()
        if it.get("_drive") == drive and (it.get("_perms") or it.get("_noinherit"))
    )


def check_scope_limit(store: DriveStore, item: dict[str, Any]) -> None:
    """Sharing an item that still inherits breaks inheritance: a new unique scope in its library, refused
    past the limit with SharePoint's own words. Counted only then, so sharing an item shared already costs
    nothing."""
    # Read with its default, never written into the policy: a tenant saved before the limit was kept keeps
    # exactly the policy it had (the legacy-store rollback test compares policies whole).
    limit = int(policy(store).get("uniqueScopesLimit", UNIQUE_SCOPES_LIMIT))
    if item.get("_perms") or item.get("_noinherit") or len(store.items) < limit:
        return  # already unique, or the whole tenant holds fewer items than the limit: no count needed
    if unique_scopes(store, item["_drive"]) >= limit:
        raise GraphError(
            400,
            "invalidRequest",
            "You cannot break inheritance for this item because there are too many items with unique "
            "permissions in this list.",
        )


def invitations(store: DriveStore) -> list[dict[str, Any]]:
    """Every invitation e-mail requested (saved with the drive store, like the policy)."""
    log = store.invitation_log
    if log is None:
        log = []
        store.invitation_log = log
    return log


# ---- identities -----------------------------------------------------------------------------------------
def _pid(item: dict[str, Any], *parts: str) -> str:
    item["_pn"] = int(item.get("_pn", 0)) + 1
    raw = "|".join((item["id"], str(item["_pn"]), *parts))
    return "aT" + hashlib.sha256(raw.encode()).hexdigest()[:30]


def _site_user(n: int, name: str, login: str) -> dict[str, Any]:
    return {"id": str(n), "displayName": name, "loginName": login}


def user_grant(user: dict[str, Any], roles: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "kind": "user",
        "principal": {
            "id": user["id"],
            "displayName": user.get("displayName") or "",
            "email": user.get("mail") or user.get("userPrincipalName") or "",
            "login": user.get("userPrincipalName") or "",
        },
        "roles": list(roles),
        **extra,
    }


def group_grant(group: dict[str, Any], roles: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "kind": "group",
        "principal": {
            "id": group["id"],
            "displayName": group.get("displayName") or "",
            "email": group.get("mail") or "",
        },
        "roles": list(roles),
        **extra,
    }


def former_user_grant(name: str, login: str, roles: list[str]) -> dict[str, Any]:
    """A grant whose directory account is gone: SharePoint still lists the site user."""
    return {"kind": "siteUser", "principal": {"displayName": name, "login": login}, "roles": list(roles)}


def link_grant(
    link_type: str,
    scope: str,
    *,
    prevents_download: bool = False,
    has_password: bool = False,
    expires: str | None = None,
    people: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A sharing link. Its restrictions are what SharePoint lets a person set (block download, a password,
    an expiry); a "specific people" (users) link names its people (grantedToIdentitiesV2)."""
    grant: dict[str, Any] = {
        "kind": "link",
        "link": {"type": link_type, "scope": scope, "preventsDownload": prevents_download},
        "roles": [LINK_ROLES[link_type]],
        "hasPassword": has_password,
        **extra,
    }
    if expires:
        grant["expirationDateTime"] = expires
    if people:
        grant["people"] = [{"id": u["id"], "displayName": u.get("displayName") or ""} for u in people]
    return grant


def site_group_grant(name: str, roles: list[str]) -> dict[str, Any]:
    """A grant to a SharePoint site group (no directory object behind it)."""
    return {"kind": "siteGroup", "principal": {"displayName": name}, "roles": list(roles)}


# ---- changes --------------------------------------------------------------------------------------------
def _changed(store: DriveStore, item: dict[str, Any], *, touch: bool = True) -> None:
    if touch:
        if item.get("_shseq") != item.get("_seq"):
            item["_cseq"] = item.get("_seq", 0)  # its last change that was not to its sharing
        store._touch(item)
        item["_shseq"] = item["_seq"]


def add(
    store: DriveStore, item: dict[str, Any], grant: dict[str, Any], *, touch: bool = True
) -> dict[str, Any]:
    if item["_parent"] is None and store.drives[item["_drive"]]["driveType"] == "business":
        # A library's root can be shared (its site's sharing); a OneDrive's root is its owner's alone.
        raise GraphError(400, "invalidRequest", "Permissions cannot be added to the root of a OneDrive.")
    perm = dict(grant)
    perm["id"] = _pid(item, perm["kind"], str(perm.get("principal", perm.get("link"))))
    perm.setdefault("at", now_iso())
    item.setdefault("_perms", []).append(perm)
    _changed(store, item, touch=touch)
    return perm


def start_afresh(item: dict[str, Any]) -> None:
    """retainInheritedPermissions false (driveitem-invite, driveitem-createlink): "all existing permissions
    are removed when sharing for the first time". An item with grants of its own was shared already."""
    if not item.get("_perms"):
        item["_noinherit"] = True


def find(item: dict[str, Any], pid: str) -> dict[str, Any] | None:
    return next((p for p in item.get("_perms", []) if p["id"] == pid), None)


def remove(store: DriveStore, item: dict[str, Any], pid: str) -> None:
    item["_perms"] = [p for p in item.get("_perms", []) if p["id"] != pid]
    if not item["_perms"]:
        del item["_perms"]
    _changed(store, item)


def set_roles(store: DriveStore, item: dict[str, Any], perm: dict[str, Any], roles: list[str]) -> None:
    perm["roles"] = list(roles)
    _changed(store, item)


# ---- reading --------------------------------------------------------------------------------------------
def _root_perms(store: DriveStore, drive: dict[str, Any]) -> list[dict[str, Any]]:
    """What the drive itself grants: a OneDrive's owner, a library's three site groups."""
    if drive["driveType"] == "business":
        owner = drive["owner"]["user"]
        return [
            {
                "id": "owner",
                "kind": "user",
                "principal": {
                    "id": owner.get("id"),
                    "displayName": owner.get("displayName", ""),
                    "email": "",
                    "login": owner.get("displayName", ""),
                },
                "roles": ["owner"],
            }
        ]
    site = store.sites.get(drive.get("_site", ""), {})
    title = site.get("displayName", "Site")
    return [
        {
            "id": f"site-{n}",
            "kind": "siteGroup",
            "principal": {"displayName": f"{title} {label}"},
            "roles": [r],
        }
        for n, (label, r) in enumerate((("Owners", "owner"), ("Members", "write"), ("Visitors", "read")), 3)
    ]


def effective(store: DriveStore, item: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(permission, item it is inherited from or None): direct first, then each ancestor's, root last."""
    out: list[tuple[dict[str, Any], dict[str, Any] | None]] = [(p, None) for p in item.get("_perms", [])]
    cur = item
    while not cur.get("_noinherit") and cur["_parent"] is not None:
        cur = store.items[cur["_parent"]]
        out += [(p, cur) for p in cur.get("_perms", [])]
    if cur.get("_noinherit"):
        return out  # inheritance broken here without keeping what was inherited: nothing from above
    drive = store.drives[item["_drive"]]
    root = store.items[drive["_root"]]
    out += [(p, None if item is root else root) for p in _root_perms(store, drive)]
    return out


def render(
    store: DriveStore, perm: dict[str, Any], source: dict[str, Any] | None, base_url: str = ""
) -> dict[str, Any]:
    """Graph's permission resource (v1.0): grantedToV2 for people and groups, link for links."""
    out: dict[str, Any] = {"id": perm["id"], "roles": list(perm["roles"])}
    p = perm.get("principal") or {}
    n = int(hashlib.sha256(str(p).encode()).hexdigest()[:4], 16) % 900 + 10
    if perm["kind"] == "user":
        out["grantedToV2"] = {
            "user": {k: p[k] for k in ("id", "displayName") if p.get(k)},
            "siteUser": _site_user(n, p.get("displayName", ""), f"i:0#.f|membership|{p.get('login', '')}"),
        }
        if perm.get("invitation"):
            out["invitation"] = dict(perm["invitation"])
    elif perm["kind"] == "group":
        out["grantedToV2"] = {
            "group": {k: p[k] for k in ("id", "displayName") if p.get(k)},
            "siteUser": _site_user(
                n, p.get("displayName", ""), f"c:0o.c|federateddirectoryclaimprovider|{p.get('id', '')}"
            ),
        }
    elif perm["kind"] == "siteUser":
        out["grantedToV2"] = {
            "siteUser": _site_user(n, p.get("displayName", ""), f"i:0#.f|membership|{p['login']}")
        }
    elif perm["kind"] == "siteGroup":
        out["grantedToV2"] = {"siteGroup": {"id": str(n), "displayName": p.get("displayName", "")}}
    else:
        link = perm["link"]
        out["link"] = {
            "type": link["type"],
            "scope": link["scope"],
            "webUrl": f"https://{store.host}/:f:/s/{perm['id'][:12]}",
            "preventsDownload": bool(link.get("preventsDownload", False)),
        }
        if perm.get("_app"):
            out["link"]["application"] = {"id": perm["_app"], "displayName": perm["_app"]}
        out["hasPassword"] = bool(perm.get("hasPassword", False))
        out["grantedToIdentitiesV2"] = [
            {"user": {k: u[k] for k in ("id", "displayName") if u.get(k)}} for u in perm.get("people") or []
        ]
    if perm.get("expirationDateTime"):
        out["expirationDateTime"] = perm["expirationDateTime"]
    # `source` (the item a grant is inherited from) is never rendered: "OneDrive for Business and SharePoint
    # document libraries don't return the inheritedFrom property" (resources/permission), and every drive
    # here is one of those. Callers tell inherited grants apart only by comparing with the parent's list.
    return out


def shared_facet(item: dict[str, Any]) -> dict[str, Any]:
    """The `shared` facet of an item holding direct grants: the widest scope among them."""
    perms = item.get("_perms") or []
    if not perms:
        return {}
    widest = max(
        (p["link"]["scope"] if p["kind"] == "link" else "users" for p in perms), key=lambda s: WIDTH[s]
    )
    return {"shared": {"scope": widest, "sharedDateTime": min(p.get("at", "") for p in perms)}}


def inherited_scope(store: DriveStore, item: dict[str, Any]) -> dict[str, Any]:
    """The nearest ancestor's `shared` facet, for delta without `Prefer: hierarchicalsharing`."""
    cur = item
    while cur.get("_parent") is not None:
        cur = store.items[cur["_parent"]]
        facet = shared_facet(cur)
        if facet:
            return facet
    return {}


SHOW_CHANGES = ("deltashowremovedasdeleted", "deltatraversepermissiongaps", "deltashowsharingchanges")
# driveitem-delta: "In order to process permissions correctly your application will need to request
# Sites.FullControl.All"; the SharePoint team's scanning guidance says that without it permission changes are
# scoped down. The stricter reading emulated: without the role, sharing changes are silently left out.
FULL_CONTROL = "Sites.FullControl.All"


def scoped_out(item: dict[str, Any], since: int) -> bool:
    """An item whose only changes since the token were to its sharing: not shown to a caller without
    Sites.FullControl.All (a full enumeration, since 0, still lists every item; a new item still shows)."""
    return (
        since > 0
        and not item.get("_deleted")
        and int(item.get("_shseq", -1)) == int(item.get("_seq", 0))
        and int(item.get("_cseq", 0)) <= since
    )


def annotate_delta(
    store: DriveStore,
    prefer: str,
    items: list[dict[str, Any]],
    rendered: list[dict[str, Any]],
    since: int,
    *,
    full_control: bool = True,
) -> None:
    """Sharing information on a delta page, per the Prefer header (see docs/sandbox.md): without
    hierarchicalsharing every item shows the sharing it inherits; with it, only roots of sharing do, and an
    empty `shared` facet marks the drive root and items whose own sharing was removed. sharedChanged needs
    deltashowsharingchanges together with deltashowremovedasdeleted and deltatraversepermissiongaps."""
    prefs = {p.strip().lower() for p in prefer.split(",") if p.strip()}
    hierarchical = "hierarchicalsharing" in prefs
    changes = full_control and all(p in prefs for p in SHOW_CHANGES)
    for raw, out in zip(items, rendered, strict=True):
        if raw.get("_deleted"):
            continue
        if "shared" not in out:
            if not hierarchical:
                out.update(inherited_scope(store, raw))
            elif raw.get("_parent") is None or "_shseq" in raw:
                out["shared"] = {}
        if changes and since > 0 and int(raw.get("_shseq", 0)) > since:
            out["@microsoft.graph.sharedChanged"] = "True"

"""Reading the sharing of source drives: only the items that are shared, never a request per item.

Drive delta with `Prefer: hierarchicalsharing, deltashowsharingchanges` gives the `shared` facet on the roots
of sharing (items holding their own grants) and marks items whose sharing changed with
`@microsoft.graph.sharedChanged`; only those items' permissions are then read, twenty to a `$batch` (each
still costs SharePoint 5 resource units). The first pass reads every shared item; later passes follow the
stored delta link and read only what changed, so sharing changes made at source are carried until cut-over.

OneDrive for Business and SharePoint libraries never send `inheritedFrom` (Graph's permission resource): an
item with permissions of its own lists what it inherited beside what it was given, the site's Owners, Members
and Visitors groups included. The scan reads each shared item's parent in the same `$batch` and takes a grant
the parent lists too (same id and roles, or the same principal and roles) as inherited: it is carried, once,
by the item it comes from. Such grants are stored with `inheritedFrom` {"id": parent, "deducedBy":
"trustfold"}, so everything downstream reads one property whichever way the answer came.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from migrations.core.store import StateStore, dumps, now
from migrations.files.scan import batch_get
from migrations.graph.client import GraphError, TenantConnection
from migrations.graph.roles import granted_roles
from migrations.graph.sharepoint_window import SharePointBudget
from migrations.permissions.grants import Grant, parse

log = logging.getLogger("trustfold.permissions")
# deltashowsharingchanges works only beside the other two (driveitem-delta, "Scanning permissions
# hierarchies"); hierarchicalsharing puts the shared facet on roots of sharing only.
PREFER = {
    "Prefer": ", ".join(
        (
            "hierarchicalsharing",
            "deltashowremovedasdeleted",
            "deltatraversepermissiongaps",
            "deltashowsharingchanges",
        )
    )
}
PERMISSION_RU = 5
LINK_PREFIX = "sharing:"
# driveitem-delta: "In order to process permissions correctly your application will need to request
# Sites.FullControl.All" (Microsoft Graph's); without it delta leaves sharing changes out and says nothing.
SCAN_ROLE = "Sites.FullControl.All"


async def require_scan_role(ref: Any, tenant_id: str, graph_url: str | None, code: str) -> None:
    """Refuse (exit 1, naming the fix) to scan sharing with a token that lacks Sites.FullControl.All: a scan
    that silently misses sharing changes would carry stale access into the trust."""
    from migrations.core.errors import PlanningError

    if SCAN_ROLE in await granted_roles(ref, tenant_id, graph_url):
        return
    raise PlanningError(
        f"the sharing scan for {code} needs Microsoft Graph application permission {SCAN_ROLE} in its legacy "
        f"tenant {tenant_id}: without it drive delta leaves sharing changes out "
        "(learn.microsoft.com/graph/api/driveitem-delta); add it to app "
        f"{ref.client_id or ''} and grant admin consent (`trustfold preflight {code}` names it)"
    )


@dataclass
class ScanCounts:
    drives: int = 0
    delta_requests: int = 0
    shared_items: int = 0
    permission_reads: int = 0
    removed: int = 0
    ru: dict[str, int] = field(default_factory=dict)  # SharePoint units the scan spent, per tenant
    items: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, int]:
        return {
            "drives": self.drives,
            "delta_requests": self.delta_requests,
            "shared_items": self.shared_items,
            "permission_reads": self.permission_reads,
            "removed": self.removed,
        }


def source_drives(store: StateStore, code: str) -> list[tuple[str, str]]:
    """(drive key, source drive id) for every drive the files phase scanned."""
    return [
        (r["drive_key"], r["source_drive_id"])
        for r in store.rows(
            "SELECT drive_key, source_drive_id FROM drives WHERE academy = ? AND source_drive_id IS NOT NULL "
            "ORDER BY drive_key",
            (code,),
        )
    ]


async def _changes(
    conn: TenantConnection, budget: SharePointBudget, did: str, link: str | None, counts: ScanCounts
) -> tuple[dict[str, dict[str, Any]], str, bool]:
    """Items of one delta round (last occurrence wins), the new delta link, and whether it was a full read."""
    url, full = link or f"/drives/{did}/root/delta", not link
    seen: dict[str, dict[str, Any]] = {}
    while True:
        async with budget.spend(conn.tenant_id, 1 if "token=" in url else 2):
            counts.delta_requests += 1
            resp = await conn.request("GET", url, headers=PREFER, counts_as_write=False)
        if resp.status == 410:
            log.info("sharing delta for drive %s answered 410: reading all sharing again", did)
            url, full, seen = f"/drives/{did}/root/delta", True, {}
            continue
        if not resp.ok:
            raise GraphError("GET", url, resp)
        for raw in resp.body.get("value", []):
            seen[str(raw["id"])] = raw
        nxt = resp.body.get("@odata.nextLink")
        if nxt:
            url = conn.relative(nxt)
            continue
        return seen, conn.relative(resp.body.get("@odata.deltaLink", "")), full


def _wanted(raw: dict[str, Any], full: bool, known: set[str]) -> bool:
    """A full read takes every root of sharing (a non-empty `shared` facet); a later one what changed, a
    root not seen before, and a known root whose facet came back empty (its own sharing was removed)."""
    if "deleted" in raw or "root" in raw:
        return False
    shared = raw.get("shared")
    if full:
        return bool(shared)
    changed = str(raw.get("@microsoft.graph.sharedChanged", "")).lower() == "true"
    known_here = str(raw["id"]) in known
    return changed or (bool(shared) and not known_here) or (shared == {} and known_here)


def mark_inherited(
    perms: list[dict[str, Any]], parent: list[dict[str, Any]] | None, parent_id: str
) -> list[dict[str, Any]]:
    """`perms` with every grant the parent also lists marked inherited. A grant counts as the parent's when
    the parent lists the same id with the same roles, or (people and groups; a link is its own) the same
    principal with the same roles; a grant whose roles differ from the parent's is the item's own. With no
    parent to compare (a root, or a parent gone) nothing is marked: carried explicitly, never widened."""
    if not parent:
        return list(perms)
    same = {(str(p.get("id", "")), tuple(sorted(map(str, p.get("roles") or [])))) for p in parent}
    sigs = {_principal(g) for g in map(parse, parent) if g.kind != "link"}
    out = []
    for p in perms:
        g = parse(p)
        if not g.inherited and ((g.perm_id, g.roles) in same or (g.kind != "link" and _principal(g) in sigs)):
            p = {**p, "inheritedFrom": {"id": parent_id, "deducedBy": "trustfold"}}
        out.append(p)
    return out


def _principal(g: Grant) -> tuple[str, str, str]:
    """Who a grant is to, with its roles. SharePoint's own principals (site groups, site users) have no
    directory id: their name tells one from another (a site's Visitors from a Governors group)."""
    return (g.kind, g.principal or g.display, ",".join(sorted(g.roles)))


async def read_with_parents(
    conn: TenantConnection,
    budget: SharePointBudget,
    items: dict[str, tuple[str, str | None]],
    have: dict[str, list[dict[str, Any]]] | None = None,
) -> tuple[dict[str, list[dict[str, Any]] | None], int]:
    """Permissions of each item (item id -> (drive id, the item to compare with: its parent, or an ancestor
    whose list the parent's equals)), inherited grants marked, read in one series of $batch with the items
    compared with (unless `have` holds their lists already); None for an item that is gone. Also the number
    of reads made."""
    have = have or {}
    paths: dict[str, str] = {iid: f"/drives/{did}/items/{iid}/permissions" for iid, (did, _) in items.items()}
    for did, parent in items.values():
        if parent and parent not in paths and parent not in have:
            paths[parent] = f"/drives/{did}/items/{parent}/permissions"
    order = sorted(paths)
    answers = await batch_get(conn, budget, [(paths[i], PERMISSION_RU) for i in order])
    read: dict[str, list[dict[str, Any]] | None] = dict(have)
    for iid, resp in zip(order, answers, strict=True):
        if resp.status == 404:
            read[iid] = None
        elif not resp.ok:
            raise GraphError("GET", paths[iid], resp)
        else:
            read[iid] = list(resp.body.get("value", []))
    out: dict[str, list[dict[str, Any]] | None] = {}
    for iid, (_, parent) in items.items():
        perms = read[iid]
        out[iid] = (
            None
            if perms is None
            else mark_inherited(perms, read.get(parent) if parent else None, parent or "")
        )
    return out, len(order)


def _bases(
    store: StateStore,
    code: str,
    drive_key: str,
    seen: dict[str, dict[str, Any]],
    wanted: list[str],
    stored: dict[str, list[dict[str, Any]]],
) -> dict[str, str | None]:
    """What each shared item is compared with to tell its inherited grants. An item inheriting its
    permissions lists exactly what its nearest ancestor with permissions of its own lists, so the nearest
    such ancestor whose list is at hand serves: one shared in this pass (read anyway) or one stored from an
    earlier pass (delta would have flagged a change). An ancestor unique but shared with nobody (an empty
    `shared` facet) stops the walk: the parent itself is read. At the root: a library's is read (its site
    groups and any sharing of the library); a OneDrive's holds only its owner, whose grant is never carried,
    so nothing is read and nothing is marked (None)."""
    up = {
        r["item_id"]: r["parent_id"]
        for r in store.rows(
            "SELECT item_id, parent_id FROM drive_items WHERE academy = ? AND drive_key = ?",
            (code, drive_key),
        )
    }
    for iid, raw in seen.items():
        ref = raw.get("parentReference") or {}
        if "root" in raw:
            up[iid] = None
        elif ref.get("id"):
            up[iid] = str(ref["id"])
    onedrive = bool(
        store.rows(
            "SELECT 1 FROM drives WHERE academy = ? AND drive_key = ? AND kind = 'onedrive'",
            (code, drive_key),
        )
    )
    chosen = set(wanted)
    out: dict[str, str | None] = {}
    for iid in wanted:
        parent = up.get(iid)
        walk, basis = parent, parent
        while walk is not None:
            raw = seen.get(walk) or {}
            if walk in chosen or walk in stored:
                basis = walk
                break
            if raw.get("shared") == {} and "root" not in raw:
                basis = parent  # unique, shared with nobody: its list is its own
                break
            if up.get(walk) is None:  # the root (or as far up as is known)
                basis = None if onedrive else walk
                break
            walk = up.get(walk)
        out[iid] = basis
    return out


def _has_content(store: StateStore, code: str, drive_key: str) -> bool:
    """Whether the files scan saw anything below the drive's root."""
    return bool(
        store.rows(
            "SELECT 1 FROM drive_items WHERE academy = ? AND drive_key = ? AND parent_id IS NOT NULL "
            "AND deleted = 0 LIMIT 1",
            (code, drive_key),
        )
    )


async def scan_sharing(
    store: StateStore, code: str, conn: TenantConnection, budget: SharePointBudget, fresh_seconds: float = 0.0
) -> ScanCounts:
    """Bring share_items up to date for every scanned source drive; one transaction per drive holds its
    permissions and its new delta link together, so a crash re-reads at most one drive. Drives read less
    than fresh_seconds ago are not read again (a run right after its plan: each delta call costs a unit)."""
    counts = ScanCounts()
    horizon = (
        (datetime.now(UTC) - timedelta(seconds=fresh_seconds)).isoformat(timespec="milliseconds")
        if fresh_seconds > 0
        else None
    )
    for drive_key, did in source_drives(store, code):
        counts.drives += 1
        row = store.rows(
            "SELECT link, updated_at FROM delta_links WHERE academy = ? AND resource = ?",
            (code, LINK_PREFIX + drive_key),
        )
        if horizon and row and row[0]["updated_at"] >= horizon:
            continue
        if not row and not _has_content(store, code, drive_key):
            # Nothing below the root to share (most pupils' OneDrives): two units saved per drive and pass.
            # A later files scan that finds content makes this drive's first sharing read a full one.
            continue
        known = {
            r["item_id"]
            for r in store.rows(
                "SELECT item_id FROM share_items WHERE academy = ? AND drive_key = ? AND removed = 0",
                (code, drive_key),
            )
        }
        seen, link, full = await _changes(conn, budget, did, row[0]["link"] if row else None, counts)
        wanted = sorted(iid for iid, raw in seen.items() if _wanted(raw, full, known))
        gone = {iid for iid, raw in seen.items() if "deleted" in raw} & known
        if full:
            gone |= known - set(wanted)
        stored = {
            r["item_id"]: json.loads(r["permissions"])
            for r in store.rows(
                "SELECT item_id, permissions FROM share_items WHERE academy = ? AND drive_key = ? "
                "AND removed = 0",
                (code, drive_key),
            )
            if r["item_id"] not in gone
        }
        bases = _bases(store, code, drive_key, seen, wanted, stored)
        items = {iid: (did, bases[iid]) for iid in wanted}
        used = {b for b in bases.values() if b is not None and b in stored}
        read, reads = await read_with_parents(conn, budget, items, {b: stored[b] for b in used})
        counts.permission_reads += reads
        at = now()
        rows: list[tuple[Any, ...]] = []
        for iid in wanted:
            perms = read[iid]
            if perms is None:
                gone.add(iid)
                continue
            direct = [p for p in perms if not p.get("inheritedFrom")]
            rows.append((code, drive_key, iid, dumps(perms), 0 if direct else 1, at))
            counts.shared_items += 1
            counts.items.add(f"{drive_key}|{iid}")
        with store.tx() as tx:
            tx.executemany(
                "INSERT INTO share_items (academy, drive_key, item_id, permissions, removed, read_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (academy, drive_key, item_id) DO UPDATE SET "
                "permissions = excluded.permissions, removed = excluded.removed, read_at = excluded.read_at",
                rows,
            )
            tx.executemany(
                "UPDATE share_items SET removed = 1, read_at = ? WHERE academy = ? AND drive_key = ? "
                "AND item_id = ?",
                [(at, code, drive_key, iid) for iid in sorted(gone)],
            )
            tx.execute(
                "INSERT INTO delta_links (academy, resource, link, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (academy, resource) DO UPDATE SET link = excluded.link, "
                "updated_at = excluded.updated_at",
                (code, LINK_PREFIX + drive_key, link, at),
            )
        counts.removed += len(gone)
    return counts


def shared_items(store: StateStore, code: str) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(drive key, source item id, permissions as read) of every item that holds grants of its own."""
    return [
        (r["drive_key"], r["item_id"], json.loads(r["permissions"]))
        for r in store.rows(
            "SELECT drive_key, item_id, permissions FROM share_items WHERE academy = ? AND removed = 0 "
            "ORDER BY drive_key, item_id",
            (code,),
        )
    ]

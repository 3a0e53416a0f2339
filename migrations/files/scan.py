"""Which drives move where, and what they hold: source drives read with drive delta into the state store
(a later scan reads only changes; 410 answers a full resync), target drives read whole at plan time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from migrations.core.journal import Journal
from migrations.core.store import StateStore, now
from migrations.graph.client import MAX_BATCH, BatchItem, GraphError, GraphResponse, TenantConnection
from migrations.graph.concurrently import bounded
from migrations.graph.sharepoint_admin import onedrive_not_yet
from migrations.graph.sharepoint_window import SharePointBudget
from trust import Academy

log = logging.getLogger("trustfold.files")
BATCHES_IN_FLIGHT = 4  # $batch requests batch_get keeps in flight
USERS_PHASE = "users"  # whose journal holds the trust user ids trustfold created (step key user:<source id>)


@dataclass
class DrivePair:
    key: str  # "onedrive:<source user id>" | "library:<site>/<library>"
    kind: str  # onedrive | library
    label: str  # for people: a UPN or site/library
    source_ref: str  # Graph path of the source drive
    target_ref: str  # 'user:<trust user id>' (its mapped UPN before it exists) | 'site:<site>/<library>'
    target_upn: str = ""  # a OneDrive's mapped trust UPN: where its URL will be, for path-length estimates
    # A folder pair (a Teams channel's files folder, key "channel:<team>/<channel>"): refs are
    # 'drive:<drive id>' and only the subtree under source_folder is carried, into target_folder. SharePoint
    # answers delta only at a drive's root (driveitem-delta), so the whole source drive is scanned.
    source_folder: str = ""
    target_folder: str = ""


@dataclass
class TreeItem:
    id: str
    parent: str | None
    name: str
    folder: bool
    size: int = 0
    hash: str | None = None
    ctag: str | None = None
    created: str | None = None
    modified: str | None = None


@dataclass
class Tree:
    """A drive's live items by id, with a (parent id, lower-case name) index."""

    drive_id: str
    root: str = ""
    web_path: str = ""
    items: dict[str, TreeItem] = field(default_factory=dict)
    by_name: dict[tuple[str, str], str] = field(default_factory=dict)
    # Where the read ended (relative deltaLink): a later delta from it returns only what changed since.
    delta_link: str = ""

    def add(self, it: TreeItem) -> None:
        old = self.items.get(it.id)
        if old is not None and old.parent is not None:
            self.by_name.pop((old.parent, old.name.lower()), None)
        self.items[it.id] = it
        if it.parent is None:
            self.root = it.id
        else:
            self.by_name[(it.parent, it.name.lower())] = it.id

    def remove(self, iid: str) -> None:
        old = self.items.pop(iid, None)
        if old is not None and old.parent is not None:
            self.by_name.pop((old.parent, old.name.lower()), None)

    def child(self, parent: str, name: str) -> TreeItem | None:
        cid = self.by_name.get((parent, name.lower()))
        return self.items.get(cid) if cid else None

    def find(self, path: str) -> TreeItem | None:
        cur = self.items.get(self.root)
        for part in [p for p in path.split("/") if p]:
            if cur is None:
                return None
            cur = self.child(cur.id, part)
        return cur

    def subtree(self, folder: str) -> Tree:
        """The items under `folder`, with `folder` as the root (a channel's files folder as its own drive)."""
        out = Tree(drive_id=self.drive_id, web_path=self.web_path, delta_link=self.delta_link)
        if folder not in self.items:
            return out
        kids: dict[str, list[TreeItem]] = {}
        for it in self.items.values():
            if it.parent is not None:
                kids.setdefault(it.parent, []).append(it)
        top = self.items[folder]
        out.add(TreeItem(top.id, None, top.name, True, created=top.created, modified=top.modified))
        queue = [folder]
        while queue:
            for child in kids.get(queue.pop(), []):
                out.add(child)
                if child.folder:
                    queue.append(child.id)
        return out

    def path(self, iid: str) -> str:
        parts: list[str] = []
        cur = self.items.get(iid)
        while cur is not None and cur.parent is not None:
            parts.append(cur.name)
            cur = self.items.get(cur.parent)
        return "/".join(reversed(parts))


def tree_item(raw: dict[str, Any]) -> TreeItem:
    fs = raw.get("fileSystemInfo") or {}
    return TreeItem(
        id=raw["id"],
        parent=None if "root" in raw else (raw.get("parentReference") or {}).get("id"),
        name=raw.get("name", ""),
        folder="folder" in raw or "root" in raw,
        size=int(raw.get("size") or 0),
        hash=((raw.get("file") or {}).get("hashes") or {}).get("quickXorHash"),
        ctag=raw.get("cTag"),
        created=fs.get("createdDateTime"),
        modified=fs.get("lastModifiedDateTime"),
    )


async def _site_path(conn: TenantConnection, budget: SharePointBudget, site: str) -> str:
    """Graph path of a site found by its URL name (app-only search; the tenant's host is not configured)."""
    async with budget.spend(conn.tenant_id, 1):
        body = await conn.get("/sites", {"search": site})
    for s in body.get("value", []):
        if s.get("name", "").lower() == site.lower():
            return f"/sites/{s['id']}"
    raise LookupError(f"site '{site}' not found in tenant {conn.tenant_id}")


async def drive_id(conn: TenantConnection, budget: SharePointBudget, ref: str) -> dict[str, Any] | None:
    """Resolve 'user:<id or upn>', 'site:<site>/<library>' or 'drive:<id>' to the drive JSON; None if
    there is none (a user with no OneDrive)."""
    kind, _, rest = ref.partition(":")
    if kind == "drive":
        async with budget.spend(conn.tenant_id, 1):
            return dict(await conn.get(f"/drives/{quote(rest)}"))
    if kind == "user":
        async with budget.spend(conn.tenant_id, 1):
            resp = await conn.request("GET", f"/users/{quote(rest)}/drive", counts_as_write=False)
        if onedrive_not_yet(resp):
            return None
        if not resp.ok:
            raise GraphError("GET", f"/users/{rest}/drive", resp)
        return dict(resp.body)
    site, _, library = rest.partition("/")
    path = await _site_path(conn, budget, site)
    async with budget.spend(conn.tenant_id, 1):
        body = await conn.get(f"{path}/drives")
    for d in body.get("value", []):
        if d.get("name", "").lower() == library.lower():
            return dict(d)
    raise LookupError(f"library '{library}' not found on site '{site}' in tenant {conn.tenant_id}")


def drive_pairs(store: StateStore, academy: Academy) -> list[DrivePair]:
    """Each mapped user's OneDrive to the mapped trust user's, each configured library to its target."""
    files = academy.files
    pairs: list[DrivePair] = []
    for lib in files.libraries:
        key = f"library:{lib.source_site}/{lib.source_library}"
        pairs.append(
            DrivePair(
                key,
                "library",
                f"{lib.source_site}/{lib.source_library} -> {lib.target_site}/{lib.target_library}",
                f"site:{lib.source_site}/{lib.source_library}",
                f"site:{lib.target_site}/{lib.target_library}",
            )
        )
    if files.onedrive:
        # The trust user by id, never by UPN: a domain cut-over (keep_academy_domain) or a stale-name rename
        # changes the UPN the mapping recorded, and /users/{old upn}/drive then answers 404 as if the user
        # had no OneDrive. A user not created yet has no id and no OneDrive either: its mapped UPN is asked.
        created = {
            k: str(h["target_id"])
            for k, h in Journal.state(store, academy.code, USERS_PHASE).items()
            if h["event"] == "done" and h["op"] == "create-user" and h["target_id"]
        }
        for r in store.rows(
            "SELECT source_id, source_key, target_key, action, data FROM mappings "
            "WHERE academy = ? AND kind = 'user' AND action IN ('create', 'match') ORDER BY source_key",
            (academy.code,),
        ):
            data = json.loads(r["data"] or "{}")
            if r["action"] == "match":
                target = data.get("target_id")
            else:
                target = created.get(f"user:{r['source_id']}") or r["target_key"]
            if not target:
                continue
            pairs.append(
                DrivePair(
                    f"onedrive:{r['source_id']}",
                    "onedrive",
                    f"{r['source_key']} -> {r['target_key']}",
                    f"user:{r['source_id']}",
                    f"user:{target}",
                    r["target_key"] or "",
                )
            )
    return pairs


async def batch_get(
    conn: TenantConnection, budget: SharePointBudget, paths: list[tuple[str, int]]
) -> list[GraphResponse]:
    """GETs twenty to a $batch (each still costs its resource units); 5xx items are retried alone. Up to
    BATCHES_IN_FLIGHT batches at once: a discovery of hundreds of OneDrives is otherwise one round trip after
    another while the budget (which the SharePoint window still keeps) sits idle."""

    async def one(chunk: list[tuple[str, int]]) -> list[GraphResponse]:
        async with budget.spend(conn.tenant_id, sum(ru for _, ru in chunk)):
            got = await conn.batch([BatchItem("GET", p) for p, _ in chunk])
        out: list[GraphResponse] = []
        for (path, _), resp in zip(chunk, got, strict=True):
            if not isinstance(resp, GraphResponse) or resp.status >= 500:
                resp = await conn.request("GET", path, counts_as_write=False)
            out.append(resp)
        return out

    chunks = [paths[i : i + MAX_BATCH] for i in range(0, len(paths), MAX_BATCH)]
    answers = await bounded([one(chunk) for chunk in chunks], BATCHES_IN_FLIGHT)
    return [resp for chunk in answers for resp in chunk]


async def resolve_drives(
    conn: TenantConnection, budget: SharePointBudget, refs: list[str]
) -> dict[str, dict[str, Any] | None]:
    """Drive JSON per ref ('user:<id or upn>', 'site:<site>/<library>'); None for a user without OneDrive."""
    out: dict[str, dict[str, Any] | None] = {}
    users = [r for r in refs if r.startswith("user:")]
    answers = await batch_get(conn, budget, [(f"/users/{quote(r[5:])}/drive", 1) for r in users])
    for ref, resp in zip(users, answers, strict=True):
        if onedrive_not_yet(resp):
            out[ref] = None
        elif not resp.ok:
            raise GraphError("GET", f"/users/{ref[5:]}/drive", resp)
        else:
            out[ref] = dict(resp.body)
    libraries = [r for r in refs if not r.startswith("user:")]
    found = await bounded([drive_id(conn, budget, ref) for ref in libraries], BATCHES_IN_FLIGHT)
    out.update(zip(libraries, found, strict=True))
    return out


async def scan_sources(
    store: StateStore,
    academy: Academy,
    pairs: list[DrivePair],
    conn: TenantConnection,
    budget: SharePointBudget,
    *,
    full: bool = False,
    recheck_missing: bool = False,
    fresh_seconds: float = 0.0,
) -> dict[str, dict[str, int]]:
    """Bring drive_items up to date for every source drive with drive delta; change counts per drive key
    ({"missing": 1} for a user with no OneDrive). Users found without a OneDrive are asked again only by
    discovery (recheck_missing): most pupils have none, and asking costs a resource unit each time. Drives
    scanned less than fresh_seconds ago are not read again (a run straight after its plan reuses the plan's
    scan: every delta call costs a unit, and a trust has hundreds of OneDrives per academy)."""
    code = academy.code
    known = {
        r["drive_key"]: r
        for r in store.rows(
            "SELECT drive_key, source_drive_id, delta_link, scanned_at FROM drives WHERE academy = ?", (code,)
        )
    }
    result: dict[str, dict[str, int]] = {}
    if fresh_seconds > 0 and not full:
        horizon = datetime.now(UTC) - timedelta(seconds=fresh_seconds)
        for p in pairs:
            row = known.get(p.key)
            scanned = row["scanned_at"] if row and row["source_drive_id"] else None
            if scanned and datetime.fromisoformat(scanned) >= horizon:
                result[p.key] = {"changed": 0, "deleted": 0, "missing": 0, "fresh": 1}
        pairs = [p for p in pairs if p.key not in result]
    if not (recheck_missing or full):
        for p in pairs:
            if p.key in known and not known[p.key]["source_drive_id"]:
                result[p.key] = {"changed": 0, "deleted": 0, "missing": 1}
        pairs = [p for p in pairs if p.key not in result]
    unknown = [p for p in pairs if p.key not in known or not known[p.key]["source_drive_id"]]
    unknown_keys = {p.key for p in unknown}
    found = await resolve_drives(conn, budget, [p.source_ref for p in unknown])
    work: list[tuple[DrivePair, str, str]] = []  # pair, drive id, first URL
    for pair in pairs:
        row = known.get(pair.key)
        if pair.key in unknown_keys:
            drive = found[pair.source_ref]
            if drive is None:
                _save_drive(store, code, pair, None, None)
                result[pair.key] = {"changed": 0, "deleted": 0, "missing": 1}
                continue
            did, link = drive["id"], None
        else:
            assert row is not None  # a pair not in unknown_keys has a stored drive row
            did, link = row["source_drive_id"], None if full else row["delta_link"]
        work.append((pair, did, link or f"/drives/{did}/root/delta"))
    firsts = await batch_get(conn, budget, [(url, 1 if "token=" in url else 2) for _, _, url in work])
    # Drives are independent (each page is stored in its own transaction): follow their next pages side by
    # side rather than one round trip after another.
    follows = await bounded(
        [
            _follow(store, code, pair, did, url, first, conn, budget)
            for (pair, did, url), first in zip(work, firsts, strict=True)
        ],
        BATCHES_IN_FLIGHT,
    )
    for (pair, _, _), counts in zip(work, follows, strict=True):
        result[pair.key] = counts
    return result


async def _follow(
    store: StateStore,
    code: str,
    pair: DrivePair,
    did: str,
    url: str,
    resp: GraphResponse | None,
    conn: TenantConnection,
    budget: SharePointBudget,
) -> dict[str, int]:
    counts = {"changed": 0, "deleted": 0, "missing": 0}
    resync = "token=" not in url
    while True:
        if resp is None:
            async with budget.spend(conn.tenant_id, 1 if "token=" in url else 2):
                resp = await conn.request("GET", url, counts_as_write=False)
        if resp.status == 410:
            # The service lost our place: read everything again and replace what we hold.
            log.info("delta for %s answered 410: full resync", pair.key)
            counts["resynced"] = 1
            resync, url, resp = True, f"/drives/{did}/root/delta", None
            continue
        if not resp.ok:
            raise GraphError("GET", url, resp)
        body = resp.body
        if resync:
            resync = False
            with store.tx() as tx:
                tx.execute("DELETE FROM drive_items WHERE academy = ? AND drive_key = ?", (code, pair.key))
        _store_page(store, code, pair.key, body.get("value", []), counts)
        next_link = body.get("@odata.nextLink")
        if next_link:
            url, resp = conn.relative(next_link), None
            continue
        _save_drive(store, code, pair, did, conn.relative(body.get("@odata.deltaLink", "")))
        return counts


def _store_page(
    store: StateStore, code: str, key: str, values: list[dict[str, Any]], counts: dict[str, int]
) -> None:
    with store.tx() as tx:
        for raw in values:
            it = tree_item(raw)
            deleted = 1 if "deleted" in raw else 0
            counts["deleted" if deleted else "changed"] += 1
            tx.execute(
                "INSERT INTO drive_items (academy, drive_key, item_id, parent_id, name, folder, size, "
                "hash, created, modified, ctag, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (academy, drive_key, item_id) DO UPDATE SET parent_id = excluded.parent_id, "
                "name = CASE WHEN excluded.deleted = 1 THEN drive_items.name ELSE excluded.name END, "
                "folder = CASE WHEN excluded.deleted = 1 THEN drive_items.folder "
                "ELSE excluded.folder END, "
                "size = excluded.size, hash = excluded.hash, created = excluded.created, "
                "modified = excluded.modified, ctag = excluded.ctag, deleted = excluded.deleted",
                (
                    code,
                    key,
                    it.id,
                    it.parent,
                    it.name,
                    int(it.folder),
                    it.size,
                    it.hash,
                    it.created,
                    it.modified,
                    it.ctag,
                    deleted,
                ),
            )


def _save_drive(
    store: StateStore, code: str, pair: DrivePair, source_drive: str | None, link: str | None
) -> None:
    with store.tx() as tx:
        tx.execute(
            "INSERT INTO drives (academy, drive_key, kind, label, source_drive_id, target_ref, delta_link, "
            "scanned_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (academy, drive_key) DO UPDATE SET "
            "source_drive_id = excluded.source_drive_id, delta_link = excluded.delta_link, "
            "scanned_at = excluded.scanned_at, label = excluded.label, target_ref = excluded.target_ref",
            (code, pair.key, pair.kind, pair.label, source_drive, pair.target_ref, link, now()),
        )


def source_tree(store: StateStore, code: str, key: str) -> tuple[Tree, list[TreeItem]]:
    """The scanned source drive as a tree, plus its items deleted at source."""
    tree = Tree(drive_id="")
    deleted: list[TreeItem] = []
    for r in store.rows(
        "SELECT * FROM drive_items WHERE academy = ? AND drive_key = ? ORDER BY item_id", (code, key)
    ):
        it = TreeItem(
            r["item_id"],
            r["parent_id"],
            r["name"],
            bool(r["folder"]),
            r["size"],
            r["hash"],
            r["ctag"],
            r["created"],
            r["modified"],
        )
        (deleted.append(it) if r["deleted"] else tree.add(it))
    return tree, deleted


async def read_targets(
    conn: TenantConnection, budget: SharePointBudget, drives: list[dict[str, Any]]
) -> dict[str, Tree]:
    """Target drives' whole live trees (delta without a token: the cheapest complete read), first pages
    batched."""
    trees: dict[str, Tree] = {}
    firsts = await batch_get(conn, budget, [(f"/drives/{d['id']}/root/delta", 2) for d in drives])
    for drive, resp in zip(drives, firsts, strict=True):
        web = str(drive.get("webUrl", ""))
        tree = Tree(
            drive_id=drive["id"], web_path=web.split("://", 1)[-1].partition("/")[2].replace("%20", " ")
        )
        url = f"/drives/{drive['id']}/root/delta"
        while True:
            if not resp.ok:
                raise GraphError("GET", url, resp)
            for raw in resp.body.get("value", []):
                if "deleted" in raw:
                    tree.remove(raw["id"])
                else:
                    tree.add(tree_item(raw))
            nxt = resp.body.get("@odata.nextLink")
            if not nxt:
                tree.delta_link = conn.relative(str(resp.body.get("@odata.deltaLink") or ""))
                break
            url = conn.relative(nxt)
            async with budget.spend(conn.tenant_id, 1):
                resp = await conn.request("GET", url, counts_as_write=False)
        trees[drive["id"]] = tree
    return trees


async def read_target(conn: TenantConnection, budget: SharePointBudget, drive: dict[str, Any]) -> Tree:
    return (await read_targets(conn, budget, [drive]))[drive["id"]]

"""Files verification that reads only what changed since the run, and trusts what the run itself checked.

A run keeps, per target drive, where the plan's whole read of that drive ended (its delta token), but only
when every copy recorded in the drive (file_copies: size and the quickXorHash the run checked) matched the
tree as read: the token is then a baseline, a point at which the trust tenant held exactly what trustfold
recorded. Verify reads each target drive by delta from its baseline: items changed since are compared live;
items unchanged since are what the run recorded. Source drives come up to date by their own delta tokens
(files/scan.py), so a change at source since the run shows as a content difference. A drive with no
baseline, or whose token the service no longer honours (410 resyncRequired), is read whole, and the result
says so. A drive found clean moves its baseline forward, so the next verify reads less again.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from migrations.core.registry import PhaseEnv
from migrations.core.store import StateStore, now
from migrations.files.scan import (
    DrivePair,
    Tree,
    TreeItem,
    batch_get,
    drive_pairs,
    read_targets,
    resolve_drives,
    scan_sources,
    source_tree,
    tree_item,
)
from migrations.graph.client import GraphError, GraphResponse, TenantConnection
from migrations.graph.sharepoint_window import SharePointBudget

log = logging.getLogger("trustfold.files")
BASELINE = "files-verify:"  # delta_links resource: this prefix and the pair's target ref


def _matches(live: TreeItem | None, rec: Any) -> bool:
    return live is not None and live.size == rec["size"] and live.hash == rec["hash"]


def keep_baselines(store: StateStore, code: str, trees: dict[str, Tree], drive_ids: dict[str, str]) -> None:
    """Before a run writes: each target drive read whole in this process becomes a baseline when every copy
    recorded in it matches the tree as read; otherwise any older baseline is dropped (verify then reads
    that drive whole and reports what differs). The run's own writes come after the token, so verify sees
    them through delta and compares them live."""
    recs: dict[str, list[Any]] = {}
    for r in store.rows(
        "SELECT target_drive, target_id, size, hash FROM file_copies WHERE academy = ? AND folder = 0",
        (code,),
    ):
        recs.setdefault(r["target_drive"], []).append(r)
    with store.tx() as tx:
        for ref, did in sorted(drive_ids.items()):
            tree = trees.get(did)
            if tree is None:
                continue
            clean = bool(tree.delta_link) and all(
                _matches(tree.items.get(r["target_id"]), r) for r in recs.get(did, [])
            )
            if clean:
                _save_baseline(tx, code, ref, did, tree.delta_link)
            else:
                tx.execute(
                    "DELETE FROM delta_links WHERE academy = ? AND resource = ?", (code, BASELINE + ref)
                )


def _save_baseline(tx: Any, code: str, ref: str, drive: str, link: str) -> None:
    tx.execute(
        "INSERT INTO delta_links (academy, resource, link, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (academy, resource) DO UPDATE SET link = excluded.link, "
        "updated_at = excluded.updated_at",
        (code, BASELINE + ref, json.dumps({"drive": drive, "link": link}), now()),
    )


def _baselines(store: StateStore, code: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for r in store.rows(
        "SELECT resource, link FROM delta_links WHERE academy = ? AND resource LIKE ?", (code, BASELINE + "%")
    ):
        try:
            data = json.loads(r["link"])
            out[r["resource"][len(BASELINE) :]] = {"drive": str(data["drive"]), "link": str(data["link"])}
        except (ValueError, KeyError, TypeError):
            continue  # unreadable: that drive is read whole
    return out


@dataclass
class _Changes:
    """A target drive's items changed since its baseline; `link` is where this read ended."""

    items: dict[str, TreeItem] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    link: str = ""


class _Expired(Exception):
    pass


class _Gone(Exception):
    pass


async def _changes(
    conn: TenantConnection, budget: SharePointBudget, links: dict[str, str]
) -> dict[str, _Changes | None]:
    """Delta from each drive's baseline (1 RU a page, first pages batched). None: the token has expired
    (410); a drive that no longer exists (404) raises nothing here but is absent from the answer."""
    ids = sorted(links)
    firsts = await batch_get(conn, budget, [(links[d], 1) for d in ids])
    out: dict[str, _Changes | None] = {}
    for did, first in zip(ids, firsts, strict=True):
        try:
            out[did] = await _follow(conn, budget, links[did], first)
        except _Expired:
            out[did] = None
        except _Gone:
            continue
    return out


async def _follow(
    conn: TenantConnection, budget: SharePointBudget, url: str, resp: GraphResponse
) -> _Changes:
    got = _Changes()
    while True:
        if resp.status == 410:
            raise _Expired
        if resp.status == 404:
            raise _Gone
        if not resp.ok:
            raise GraphError("GET", url, resp)
        for raw in resp.body.get("value", []):
            if "deleted" in raw:
                got.items.pop(raw["id"], None)
                got.deleted.add(raw["id"])
            else:
                got.deleted.discard(raw["id"])
                got.items[raw["id"]] = tree_item(raw)
        nxt = resp.body.get("@odata.nextLink")
        if not nxt:
            got.link = conn.relative(str(resp.body.get("@odata.deltaLink") or ""))
            return got
        url = conn.relative(nxt)
        async with budget.spend(conn.tenant_id, 1):
            resp = await conn.request("GET", url, counts_as_write=False)


@dataclass
class _View:
    """What verify knows of one target drive: read whole (`tree`), or changes since a trusted baseline."""

    drive_id: str
    tree: Tree | None = None
    changes: _Changes | None = None
    how: str = "full"  # full | delta

    def live(self, rec: Any) -> TreeItem | None:
        """The recorded copy as it is now: read live when read, else as the run recorded and checked it.
        A copy recorded in another drive (the pair now maps elsewhere) is not in this one."""
        target_id = rec["target_id"]
        if self.tree is not None:
            return self.tree.items.get(target_id)
        assert self.changes is not None
        if rec["target_drive"] != self.drive_id or target_id in self.changes.deleted:
            return None
        if target_id in self.changes.items:
            return self.changes.items[target_id]
        return TreeItem(target_id, None, "", False, int(rec["size"] or 0), rec["hash"])

    def trusted(self, rec: Any) -> bool:
        return (
            self.changes is not None
            and rec["target_drive"] == self.drive_id
            and rec["target_id"] not in self.changes.items
            and rec["target_id"] not in self.changes.deleted
        )

    @property
    def link(self) -> str:
        if self.tree is not None:
            return self.tree.delta_link
        return self.changes.link if self.changes is not None else ""


async def _views(
    store: StateStore, code: str, target: TenantConnection, budget: SharePointBudget, refs: list[str]
) -> tuple[dict[str, _View | None], list[str]]:
    """Each target ref's view (None: no target drive), and notes on the drives read whole and why."""
    baselines = _baselines(store, code)
    notes: list[str] = []
    changes = await _changes(
        target, budget, {b["drive"]: b["link"] for ref, b in baselines.items() if ref in refs}
    )
    views: dict[str, _View | None] = {}
    whole: list[str] = []  # refs read whole
    expired = 0
    for ref in refs:
        base = baselines.get(ref)
        if base is None:
            whole.append(ref)
            continue
        if base["drive"] not in changes:
            views[ref] = None  # the drive answered 404: it is gone
            continue
        got = changes[base["drive"]]
        if got is None:
            expired += 1
            whole.append(ref)
            continue
        views[ref] = _View(base["drive"], changes=got, how="delta")
    if expired:
        notes.append(
            f"{expired} target drive(s) read in full: their delta token from the run has expired "
            "(410 resyncRequired)"
        )
    unbased = len(whole) - expired
    if unbased:
        notes.append(f"{unbased} target drive(s) read in full: no delta token from a run to start from")
    found = await resolve_drives(target, budget, whole)
    trees = await read_targets(target, budget, [d for d in found.values() if d is not None])
    for ref in whole:
        d = found[ref]
        views[ref] = None if d is None else _View(str(d["id"]), tree=trees[d["id"]])
    return views, notes


def _advance(store: StateStore, code: str, ref: str, view: _View) -> None:
    if view.link:
        with store.tx() as tx:
            _save_baseline(tx, code, ref, view.drive_id, view.link)


async def verify_files(
    env: PhaseEnv,
    source: TenantConnection,
    target: TenantConnection,
    budget: SharePointBudget,
    pairs: list[DrivePair] | None = None,
) -> dict[str, Any]:
    """The drives of the academy's config, or the given pairs (a channel's files folder as a folder pair)."""
    code = env.academy.code
    differences: list[dict[str, str]] = []
    drives: list[dict[str, Any]] = []
    checked = trusted = 0
    skipped_ids = {
        r["object_id"]
        for r in env.store.rows(
            "SELECT object_id FROM file_findings WHERE academy = ? "
            "AND kind IN ('file-too-large', 'changed-in-both')",
            (code,),
        )
    }
    clock = time.monotonic()
    if pairs is None:
        pairs = drive_pairs(env.store, env.academy)
    scanned = await scan_sources(env.store, env.academy, pairs, source, budget)
    stages = {"sources": time.monotonic() - clock}
    notes: list[str] = []
    resynced = sum(1 for c in scanned.values() if c.get("resynced"))
    if resynced:
        notes.append(
            f"{resynced} source drive(s) read in full: their delta token had expired (410 resyncRequired)"
        )
    work: list[tuple[DrivePair, Tree, list[TreeItem]]] = []
    for pair in pairs:
        if scanned[pair.key].get("missing"):
            continue
        src, _ = source_tree(env.store, code, pair.key)
        if pair.source_folder:
            src = src.subtree(pair.source_folder)
        files = [i for i in src.items.values() if not i.folder]
        if files:
            work.append((pair, src, files))
    views, read_notes = await _views(
        env.store, code, target, budget, sorted({p.target_ref for p, _, _ in work})
    )
    notes += read_notes
    stages["targets"] = time.monotonic() - clock - stages["sources"]
    clean: dict[str, bool] = {}  # target ref -> every file of it matched
    for pair, src, files in work:
        view = views[pair.target_ref]
        if view is None:
            differences.append(
                {"kind": "drive-missing", "object": pair.label, "message": "no target OneDrive"}
            )
            continue
        recs = {
            r["source_id"]: r
            for r in env.store.rows(
                "SELECT * FROM file_copies WHERE academy = ? AND drive_key = ?", (code, pair.key)
            )
        }
        matched = nbytes = 0
        ok = True
        for it in files:
            checked += 1
            where = f"{pair.label.split(' -> ')[0]}/{src.path(it.id)}"
            if it.id in skipped_ids:
                continue
            rec = recs.get(it.id)
            as_run = rec is not None and view.trusted(rec)
            live = view.live(rec) if rec is not None else None
            found = _difference(where, it, rec, live, as_run)
            if found is not None:
                differences.append(found)
                ok = False
                continue
            trusted += int(as_run)
            matched += 1
            nbytes += it.size
        # Every copy recorded in the drive, not only this pair's files, must hold for the baseline to move.
        clean[pair.target_ref] = (
            clean.get(pair.target_ref, True) and ok and _all_recorded_match(env.store, code, view)
        )
        drives.append({"drive": pair.label, "files": len(files), "matched": matched, "bytes": nbytes})
    for ref, is_clean in clean.items():
        view = views[ref]
        if is_clean and view is not None:
            _advance(env.store, code, ref, view)
    stages["compare"] = time.monotonic() - clock - stages["sources"] - stages["targets"]
    return {
        "checked": checked,
        "differences": differences,
        "drives": drives,
        "files": sum(d["files"] for d in drives),
        "matched": sum(d["matched"] for d in drives),
        "bytes": sum(d["bytes"] for d in drives),
        "trusted": trusted,
        "target_reads": {
            "delta": sum(1 for v in views.values() if v is not None and v.how == "delta"),
            "full": sum(1 for v in views.values() if v is not None and v.how == "full"),
        },
        "notes": notes,
        "seconds": {k: round(v, 2) for k, v in stages.items()},  # where verify's time went
    }


def _all_recorded_match(store: StateStore, code: str, view: _View) -> bool:
    """Whether the drive holds every copy recorded in it as recorded (items changed since, read live)."""
    for r in store.rows(
        "SELECT target_drive, target_id, size, hash FROM file_copies "
        "WHERE academy = ? AND target_drive = ? AND folder = 0",
        (code, view.drive_id),
    ):
        if not _matches(view.live(r), r):
            return False
    return True


def _difference(
    where: str, it: TreeItem, rec: Any, live: TreeItem | None, trusted: bool
) -> dict[str, str] | None:
    if live is None:
        return {"kind": "file-missing", "object": where, "message": "not in the trust tenant"}
    if live.size != it.size or live.hash != it.hash:
        return {
            "kind": "file-content",
            "object": where,
            "message": f"size/quickXorHash differ ({live.size} vs {it.size} bytes)",
        }
    ours = bool(rec and rec["created"])
    # An item unchanged since the baseline kept the timestamps the run gave it: only a live item shows them.
    if ours and not trusted and it.modified and live.modified and live.modified[:19] != it.modified[:19]:
        return {
            "kind": "file-timestamps",
            "object": where,
            "message": f"lastModified {live.modified} in the trust tenant, {it.modified} at source",
        }
    return None

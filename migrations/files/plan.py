"""The files plan: for every drive pair, the folders to create, files to copy, moves and deletions to apply,
decided from the source scan, the live target tree and what earlier runs copied (file_copies).

A second plan after the source changed holds only new and changed files (by hash), renames and moves as
PATCHes, and deletions only when asked (--propagate-deletes); content users changed in the trust tenant since
the copy is never overwritten. Every name, path or size problem becomes a finding with the rule applied.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from migrations.core.journal import Journal
from migrations.core.plan import Plan
from migrations.core.steps import Step
from migrations.core.store import StateStore
from migrations.files import names
from migrations.files.orphans import Unfinished, unfinished_copies
from migrations.files.scan import (
    DrivePair,
    Tree,
    TreeItem,
    read_targets,
    resolve_drives,
    scan_sources,
    source_tree,
)
from migrations.graph.client import TenantConnection
from migrations.graph.sharepoint_window import SharePointBudget
from trust import Academy

PHASE = "files"


@dataclass
class PlanContext:
    """What planning learnt that running needs: target trees and drive ids (kept in memory only)."""

    targets: dict[str, Tree] = field(default_factory=dict)  # target drive id -> live tree
    pairs: dict[str, DrivePair] = field(default_factory=dict)
    drive_ids: dict[str, str] = field(
        default_factory=dict
    )  # target ref -> the target drive id it resolved to


@dataclass
class _Findings:
    rows: list[dict[str, str]] = field(default_factory=list)

    def add(self, kind: str, object_id: str, display: str, message: str, handling: str) -> None:
        self.rows.append(
            {
                "kind": kind,
                "object_id": object_id,
                "display": display,
                "message": message,
                "handling": handling,
            }
        )


def copies(store: StateStore, code: str, key: str) -> dict[str, dict[str, Any]]:
    return {
        r["source_id"]: dict(r)
        for r in store.rows("SELECT * FROM file_copies WHERE academy = ? AND drive_key = ?", (code, key))
    }


def _walk(tree: Tree) -> list[TreeItem]:
    """Top-down (breadth first, siblings by name) so parents are placed before children."""
    kids: dict[str, list[TreeItem]] = {}
    for it in tree.items.values():
        if it.parent is not None:
            kids.setdefault(it.parent, []).append(it)
    out: list[TreeItem] = []
    queue = deque([tree.root])
    while queue:
        for child in sorted(kids.get(queue.popleft(), []), key=lambda i: (i.name.lower(), i.id)):
            out.append(child)
            if child.folder:
                queue.append(child.id)
    return out


async def plan_files(
    academy: Academy,
    store: StateStore,
    pairs: list[DrivePair],
    source: TenantConnection,
    target: TenantConnection,
    budget: SharePointBudget,
    *,
    propagate_deletes: bool = False,
    full_scan: bool = False,
    estimate_targets: bool = False,
    fresh_seconds: float = 0.0,
    phase: str = PHASE,
) -> tuple[Plan, PlanContext]:
    """The plan, and what running it needs. With estimate_targets (discovery, before users exist in the
    trust tenant) targets are taken as empty at their expected paths: findings are right, steps indicative.
    `phase` is the journal the steps go in (the teams phase carries channel folders under its own)."""
    code = academy.code
    limit = names.size_limit(academy.files.max_file_size_gb)
    ctx = PlanContext()
    steps: list[Step] = []
    notes: list[str] = []
    findings = _Findings()
    already = 0
    # Copies a run started but did not finish, with the args their intent journaled: decisions made then
    # (a conflict rename above all) stand, so a resumed upload continues under the same name.
    in_doubt = {
        k: dict(v["data"].get("args") or {})
        for k, v in Journal.state(store, code, phase).items()
        if v["event"] == "intent" and k.startswith("mkdir:")
    }
    # Copies started and not finished (in doubt, or failed after their upload may have landed).
    unfinished = unfinished_copies(store, code, phase)
    scanned = await scan_sources(
        store,
        academy,
        pairs,
        source,
        budget,
        full=full_scan,
        recheck_missing=estimate_targets,
        fresh_seconds=fresh_seconds,
    )
    live: list[tuple[DrivePair, Tree, list[TreeItem]]] = []
    for pair in pairs:
        ctx.pairs[pair.key] = pair
        if scanned[pair.key].get("missing"):
            continue  # the user has no OneDrive: nothing to move
        src, deleted = source_tree(store, code, pair.key)
        if pair.source_folder:
            src = src.subtree(pair.source_folder)
        if src.root and (len(src.items) > 1 or deleted):
            live.append((pair, src, deleted))
    if estimate_targets:
        tdrives: dict[str, dict[str, Any] | None] = {
            p.target_ref: {"id": f"planned:{p.target_ref}", "webUrl": _expected_url(p)} for p, _, _ in live
        }
        trees = {
            d["id"]: Tree(
                drive_id=d["id"],
                root="root",
                web_path=d["webUrl"],
                items={"root": TreeItem("root", None, "root", True)},
            )
            for d in tdrives.values()
            if d is not None
        }
    else:
        tdrives = await resolve_drives(target, budget, sorted({p.target_ref for p, _, _ in live}))
        trees = await read_targets(target, budget, [d for d in tdrives.values() if d is not None])
        ctx.drive_ids.update({ref: str(d["id"]) for ref, d in tdrives.items() if d is not None})
    ctx.targets.update(trees)
    for pair, src, deleted in live:
        tdrive = tdrives[pair.target_ref]
        if tdrive is None:
            notes.append(
                f"{pair.label}: the trust user has no OneDrive yet (run the users phase; OneDrive is "
                "provisioned for licensed users); its files are not planned"
            )
            continue
        tree = trees[tdrive["id"]]
        source_drive = store.rows(
            "SELECT source_drive_id FROM drives WHERE academy = ? AND drive_key = ?", (code, pair.key)
        )[0]["source_drive_id"]
        done = copies(store, code, pair.key)
        # A folder pair lands under its target folder; a drive pair at the target's root.
        top = tree.items.get(pair.target_folder) if pair.target_folder else None
        if pair.target_folder and top is None:
            notes.append(
                f"{pair.label}: the target folder is not in the trust tenant; its files are not planned"
            )
            continue
        home_root = top.id if top is not None else tree.root
        placed: dict[str, str] = {src.root: tree.path(home_root)}  # source folder id -> target relative path
        too_long: set[str] = set()
        recreated: set[str] = set()  # source folders whose target becomes a new folder of ours
        taken: dict[str, set[str]] = {}
        base = {"drive_key": pair.key, "target_drive": tdrive["id"]}

        def fits(rel: str, web_path: str = tree.web_path) -> bool:
            return names.path_length(web_path, rel) <= names.MAX_PATH

        for it in _walk(src):
            parent_rel = placed.get(it.parent or "")
            display = f"{pair.label.split(' -> ')[0]}/{src.path(it.id)}"
            at_root = it.parent == src.root
            fixed = names.safe_name(it.name, library_root=at_root and pair.kind == "library")
            siblings = taken.setdefault(it.parent or "", set())
            name = names.dedupe(fixed.name, siblings)
            siblings.add(name.lower())
            if fixed.reason or name != fixed.name:
                findings.add(
                    "forbidden-name",
                    it.id,
                    display,
                    fixed.reason or "another item in the folder has this name once made safe",
                    f"copied as '{name}'",
                )
            if it.folder:
                if parent_rel is None or it.parent in too_long:
                    too_long.add(it.id)
                    continue
                rel = f"{parent_rel}/{name}".lstrip("/")
                if not fits(rel):
                    too_long.add(it.id)
                    findings.add(
                        "path-too-long",
                        it.id,
                        display,
                        f"the folder's path in the trust tenant would pass {names.MAX_PATH} characters",
                        f"not created; files inside are placed under '{names.LONG_PATHS_FOLDER}/'",
                    )
                    continue
                folder_steps, placed[it.id] = _folder_steps(
                    it,
                    rel,
                    done.get(it.id),
                    tree,
                    base,
                    notes,
                    display,
                    _home(it, src, done, home_root, recreated),
                    in_doubt,
                    findings,
                    code,
                )
                if it.id in done and any(s.op == "mkdir" for s in folder_steps):
                    recreated.add(it.id)  # a new folder of ours replaces the one it was merged into
                steps.extend(folder_steps)
                continue
            # files
            if it.size > limit:
                findings.add(
                    "file-too-large",
                    it.id,
                    display,
                    f"{it.size / 1024**3:.1f} GB is over the {limit // 1024**3} GB limit",
                    "not copied; move it by other means (for example Azure storage) and record where",
                )
                continue
            wanted = f"{parent_rel}/{name}".lstrip("/") if parent_rel is not None else None
            rel = wanted or ""
            if wanted is None or it.parent in too_long or not fits(rel):
                rel = f"{names.LONG_PATHS_FOLDER}/{names.long_path_name(it.id, name)}"
                findings.add(
                    "path-too-long",
                    it.id,
                    display,
                    f"the path in the trust tenant would pass {names.MAX_PATH} characters",
                    f"copied to '{rel}'",
                )
                if tree.find(names.LONG_PATHS_FOLDER) is None and not any(
                    s.op == "mkdir"
                    and s.args["path"] == names.LONG_PATHS_FOLDER
                    and s.args["target_drive"] == tdrive["id"]
                    for s in steps
                ):
                    steps.append(
                        Step(
                            f"mkdir:{pair.key}:long-paths",
                            "mkdir",
                            {**base, "path": names.LONG_PATHS_FOLDER, "source_id": "", "absent": True},
                        )
                    )
            if it.size == 0:
                findings.add(
                    "zero-byte",
                    it.id,
                    display,
                    "an empty file (upload sessions cannot carry zero bytes)",
                    "copied by simple upload, timestamps set after",
                )
            step, is_already = _file_step(
                it,
                rel,
                done.get(it.id),
                tree,
                base,
                source_drive,
                code,
                notes,
                display,
                unfinished,
                findings,
                _home(it, src, done, home_root, recreated),
            )
            if step is not None:
                steps.append(step)
            already += int(is_already)
        # Deleted at source
        for it in deleted:
            rec = done.get(it.id)
            if rec is None or not rec["created"]:
                continue
            if rec["target_id"] not in tree.items:
                continue
            if propagate_deletes:
                steps.append(
                    Step(
                        f"delete:{pair.key}:{it.id}",
                        "delete",
                        {
                            **base,
                            "source_id": it.id,
                            "target_id": rec["target_id"],
                            "path": rec["path"],
                            "folder": bool(rec["folder"]),
                            "target_ctag": rec["target_ctag"],
                        },
                    )
                )
            else:
                notes.append(
                    f"{pair.label.split(' -> ')[0]}: '{rec['path']}' was deleted at source; kept in the "
                    "trust tenant (run with --propagate-deletes to delete it there too)"
                )
    if phase == PHASE:
        _save_findings(store, code, findings.rows)
    else:
        # Another phase's folders (channel files): their findings join the files phase's, never replace them.
        _add_findings(store, code, findings.rows)
    plan = Plan(code, phase, steps, notes, already)
    return plan, ctx


def _home(
    it: TreeItem, src: Tree, done: dict[str, dict[str, Any]], home_root: str, recreated: set[str]
) -> str | None:
    """The target id of the folder this item belongs in (its source parent's copy), if known."""
    if it.parent == src.root:
        return home_root
    if it.parent in recreated:
        return None  # its folder is about to be created: the item has to move there
    rec = done.get(it.parent or "")
    return str(rec["target_id"]) if rec else None


def _in_place(live: TreeItem | None, home: str | None, rel: str) -> bool:
    """Already in the right folder under the right name (a renamed parent moves its children with it)."""
    return (
        live is not None and home is not None and live.parent == home and live.name == rel.rpartition("/")[2]
    )


def _expected_url(pair: DrivePair) -> str:
    """Where a target drive's content will sit, as SharePoint counts path length (after the host)."""
    kind, _, rest = pair.target_ref.partition(":")
    if kind == "site":
        site, _, library = rest.partition("/")
        return f"sites/{site}/{'Shared Documents' if library == 'Documents' else library}"
    return f"personal/{re.sub(r'[^a-z0-9]', '_', (pair.target_upn or rest).lower())}/Documents"


def _conflict(rel: str, code: str) -> str:
    parent, _, leaf = rel.rpartition("/")
    return f"{parent}/{names.conflict_name(leaf, code)}".lstrip("/")


def _folder_steps(
    it: TreeItem,
    rel: str,
    rec: dict[str, Any] | None,
    tree: Tree,
    base: dict[str, Any],
    notes: list[str],
    display: str,
    home: str | None,
    in_doubt: dict[str, dict[str, Any]],
    findings: _Findings,
    code: str,
) -> tuple[list[Step], str]:
    """The folder's steps and the path its children go under. Nothing trustfold did not create is ever
    renamed or moved: a folder of ours that must take a name the trust tenant already uses gets the conflict
    name, and a folder that was merged into the trust's own folder, then renamed or moved at source, is
    created afresh at its new path (our copies then move into it; the trust's folder stays where it is)."""
    key = base["drive_key"]
    fs = {"created": it.created, "modified": it.modified}
    live = tree.items.get(rec["target_id"]) if rec is not None else None
    if rec is not None and live is None:
        notes.append(f"{display}: folder deleted in the trust tenant after it was copied; not created again")
        return [], rel
    if rec is None or live is None or not rec["created"]:
        if rec is not None and live is not None and _in_place(live, home, rel):
            return [], rel  # merged into the trust's folder of that name, and still there
        journaled = in_doubt.get(f"mkdir:{key}:{it.id}")
        if rec is None and journaled is not None and journaled.get("path"):
            # Decided once: a create left in doubt goes on under the path (and conflict name) it journaled.
            args = {**base, **fs, "path": journaled["path"], "source_id": it.id}
            args["absent"] = bool(journaled.get("absent"))
            return [Step(f"mkdir:{key}:{it.id}", "mkdir", args)], str(journaled["path"])
        occupant = tree.find(rel)
        if occupant is not None and not occupant.folder:
            # A file of the trust's holds the name: the folder is created beside it, never in its place.
            renamed = _conflict(rel, code)
            findings.add(
                "name-conflict",
                it.id,
                display,
                f"'{rel}' is a file in the trust tenant",
                f"folder created as '{renamed.rpartition('/')[2]}'; the existing file is left as it is",
            )
            rel = renamed
        # Created, or found already there (pre-existing, or made by a run that stopped before recording it).
        # `absent` tells a rollback of an in-doubt mkdir whether a folder at that path can be ours.
        args = {**base, **fs, "path": rel, "source_id": it.id, "absent": tree.find(rel) is None}
        return [Step(f"mkdir:{key}:{it.id}", "mkdir", args)], rel
    if _in_place(live, home, rel):
        return [], rel
    occupant = tree.find(rel)
    if occupant is not None and occupant.id != rec["target_id"]:
        # The new name is taken in the trust tenant by something that is not this folder: ours moves to
        # the conflict name; the occupant is never touched.
        renamed = _conflict(rel, code)
        findings.add(
            "name-conflict",
            it.id,
            display,
            f"'{rel}' already exists in the trust tenant",
            f"folder moved to '{renamed}'; the existing item is left as it is",
        )
        rel = renamed
    current = tree.path(rec["target_id"])
    if _in_place(live, home, rel) or current == rel:
        return [], rel
    move = {
        **base,
        "source_id": it.id,
        "target_id": rec["target_id"],
        "from": current,
        "path": rel,
        "folder": True,
    }
    return [Step(f"move:{key}:{it.id}", "move", move)], rel


def _file_step(
    it: TreeItem,
    rel: str,
    rec: dict[str, Any] | None,
    tree: Tree,
    base: dict[str, Any],
    source_drive: str,
    code: str,
    notes: list[str],
    display: str,
    unfinished: dict[str, Unfinished],
    findings: _Findings,
    home: str | None,
) -> tuple[Step | None, bool]:
    key = base["drive_key"]
    copy_args = {
        **base,
        "source_drive": source_drive,
        "source_id": it.id,
        "size": it.size,
        "hash": it.hash,
        "ctag": it.ctag,
        "created": it.created,
        "modified": it.modified,
    }
    if rec is not None and not rec["created"] and rec["target_id"] in tree.items:
        # Adopted: the trust's own identical file. It is never moved, renamed or overwritten; once the
        # source file moves or changes, it is copied like any new file (beside the trust's, by the rules).
        theirs = tree.items[rec["target_id"]]
        same = rec["hash"] == it.hash and rec["size"] == it.size
        if same and (_in_place(theirs, home, rel) or tree.path(theirs.id) == rel):
            return None, True
        rec = None
    if rec is not None:
        live = tree.items.get(rec["target_id"])
        if live is None:
            notes.append(f"{display}: deleted in the trust tenant after it was copied; not copied again")
            return None, False
        current = tree.path(rec["target_id"])
        occupant = tree.find(rel)
        if occupant is not None and occupant.id != rec["target_id"]:
            # The source name is taken in the target by content we did not copy: the conflict name stands.
            renamed = _conflict(rel, code)
            findings.add(
                "name-conflict",
                it.id,
                display,
                f"'{rel}' already holds other content in the trust tenant",
                f"kept as '{renamed.rpartition('/')[2]}'; the existing item is left as it is",
            )
            rel = renamed
        if rec["hash"] == it.hash and rec["size"] == it.size:
            if current != rel and not _in_place(live, home, rel):
                return (
                    Step(
                        f"move:{key}:{it.id}",
                        "move",
                        {
                            **base,
                            "source_id": it.id,
                            "target_id": rec["target_id"],
                            "from": current,
                            "path": rel,
                            "folder": False,
                        },
                    ),
                    False,
                )
            return None, True
        if live.ctag != rec["target_ctag"]:
            findings.add(
                "changed-in-both",
                it.id,
                display,
                "changed at source and, since the copy, in the trust tenant",
                "the trust tenant's version is kept; the source version is not copied",
            )
            return None, False
        return (
            Step(
                f"copy:{key}:{it.id}", "copy", {**copy_args, "path": current, "replace_id": rec["target_id"]}
            ),
            False,
        )
    u = unfinished.get(f"copy:{key}:{it.id}")
    journaled = u.args if u is not None and u.event in ("intent", "failed") else {}
    if journaled.get("path") and not journaled.get("replace_id") and u is not None:
        # Decided once: the path (and any conflict rename) this copy's intent recorded, while the copy is
        # in doubt or an upload of ours sits there unrecorded (the run then records or replaces it).
        there = tree.find(journaled["path"])
        landed = there is not None and u.holds_ours(there.size, there.hash, there.created)
        if u.event == "intent" or landed:
            return Step(
                f"copy:{key}:{it.id}", "copy", {**copy_args, "path": journaled["path"], "replace_id": None}
            ), False
    occupant = tree.find(rel)
    if occupant is not None:
        if not occupant.folder and occupant.size == it.size and occupant.hash == it.hash:
            return (
                Step(
                    f"adopt:{key}:{it.id}",
                    "adopt",
                    {**copy_args, "path": rel, "target_id": occupant.id, "target_ctag": occupant.ctag},
                ),
                False,
            )
        parent, _, leaf = rel.rpartition("/")
        renamed = names.conflict_name(leaf, code)
        new_rel = f"{parent}/{renamed}".lstrip("/")
        findings.add(
            "name-conflict",
            it.id,
            display,
            f"'{rel}' already holds different content in the trust tenant",
            f"copied as '{renamed}'; the existing file is left as it is",
        )
        rel = new_rel
    return Step(f"copy:{key}:{it.id}", "copy", {**copy_args, "path": rel, "replace_id": None}), False


FILE_KINDS = (
    "forbidden-name",
    "path-too-long",
    "file-too-large",
    "zero-byte",
    "name-conflict",
    "changed-in-both",
)


def _add_findings(store: StateStore, code: str, rows: list[dict[str, str]]) -> None:
    with store.tx() as tx:
        tx.executemany(
            "INSERT OR REPLACE INTO file_findings (academy, kind, object_id, display, message, handling) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(code, r["kind"], r["object_id"], r["display"], r["message"], r["handling"]) for r in rows],
        )


def _save_findings(store: StateStore, code: str, rows: list[dict[str, str]]) -> None:
    with store.tx() as tx:
        tx.execute("DELETE FROM file_findings WHERE academy = ?", (code,))
        tx.executemany(
            "INSERT OR REPLACE INTO file_findings (academy, kind, object_id, display, message, handling) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(code, r["kind"], r["object_id"], r["display"], r["message"], r["handling"]) for r in rows],
        )
    # Keep the discover findings (what the report shows) in step with the latest files scan.
    current = {s["phase"]: s for s in store.phase_statuses(code)}.get("discover")
    if current is not None:
        detail = current.get("detail") or {}
        if isinstance(detail, str):
            detail = json.loads(detail)
        kept = [f for f in detail.get("findings", []) if f.get("kind") not in FILE_KINDS]
        detail["findings"] = rows + kept
        store.set_phase_status(code, "discover", current["status"], detail)

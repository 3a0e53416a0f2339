"""The files phase's operations: each one's description and, beside it, its undo. phase.py's executor
carries the forward steps out; core/undo.py carries the undos out in the order FilesRules gives.

Only what trustfold created is undone (a done copy or folder with `created`), and never what changed in the
trust tenant since. A step left in doubt (intent without outcome), or one that failed after an upload of ours
may have landed unrecorded, is undone by what is at its path: a folder carrying the creation time we sent, a
file holding content one of its intents meant to upload (files/orphans.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from migrations.core.steps import History, Outcome, SideWrite, Step, UndoStep, register_operation
from migrations.core.undo import UndoRules
from migrations.files.orphans import content, holds_ours
from migrations.files.transfer import CopyError, UploadSessions
from migrations.graph.client import GraphError, TenantConnection
from migrations.graph.sharepoint_window import SharePointBudget


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def depth(path: str) -> int:
    return path.count("/")


@dataclass
class FilesUndo:
    """What the undo of a files step works with."""

    code: str
    target: TenantConnection
    budget: SharePointBudget
    sessions: UploadSessions


@dataclass
class _Op:
    """An operation that leaves nothing for rollback to undo: `kept` says why (the line a rollback prints)."""

    name: str
    text: Callable[[dict[str, Any]], str]
    kept: str = ""
    batchable: bool = False
    reversible: bool = False

    @property
    def undo_name(self) -> str:
        return "undo-" + self.name

    def describe(self, step: Step) -> str:
        return self.text(step.args)

    def undo_step(self, phase: str, key: str, h: History) -> UndoStep | None:
        return None

    def describe_undo(self, step: UndoStep) -> str:
        return f"{step.args.get('path', step.key)}: {self.kept}"

    async def undo(self, step: UndoStep, ctx: FilesUndo, found: Callable[[str], None]) -> Outcome:
        return Outcome("kept", step.target_id, {}, self.kept)


@dataclass(kw_only=True)
class _Created(_Op):
    """mkdir and copy: what they created is deleted, unless it changed in the trust tenant since."""

    undo_text: Callable[[dict[str, Any]], str]
    reversible: bool = True

    def describe_undo(self, step: UndoStep) -> str:
        return self.undo_text(step.args)

    def undo_step(self, phase: str, key: str, h: History) -> UndoStep | None:
        # A kept item (undo-skipped) is checked again: it goes once it is as trustfold left it.
        folder = self.name == "mkdir"
        done, intent = h.done, h.args
        contents = sorted({c for c in (content(a) for a in h.intents) if c is not None}) if not folder else []
        if done is not None and done.data.get("created") and done.target_id:
            d = done.data
            args = {
                "drive_key": d.get("drive_key", ""),
                "target_drive": d["target_drive"],
                "target_id": done.target_id,
                "path": d.get("path", ""),
                "target_ctag": d.get("target_ctag"),
                "folder": folder,
            }
            if h.latest == "intent":
                # A replacement of our copy was in flight: its content may be the new one.
                args["in_doubt_hash"] = intent.get("hash")
            return UndoStep(phase, key, self.name, done.target_id, {}, args)
        if (
            h.latest in ("intent", "failed", "undo-intent", "undo-failed", "undo-skipped")
            and intent
            and done is None
            and (h.forward == "intent" or contents)
        ):
            # In doubt, or failed after an upload of ours may have landed unrecorded (found by the contents
            # its intents journaled).
            args = {
                "drive_key": intent.get("drive_key", ""),
                "target_drive": intent["target_drive"],
                "target_id": None,
                "path": intent.get("path", ""),
                "folder": folder,
                "hash": intent.get("hash"),
                "size": intent.get("size"),
                "absent": bool(intent.get("absent")),
                "created": intent.get("created"),
                "in_doubt": True,
                "contents": contents,
                "after_failure": h.forward == "failed",
            }
            return UndoStep(phase, key, self.name, None, {}, args, in_doubt=True)
        return None

    async def undo(self, step: UndoStep, ctx: FilesUndo, found: Callable[[str], None]) -> Outcome:
        """Undone | kept (changed since, or not ours). Transient errors are retried by the connection's one
        retry layer; anything else raises, so the step is journaled undo-failed and tried again."""
        a = step.args
        outcome = await _undo_item(ctx, step.key, a)
        if outcome.status == "undone" and outcome.target_id:
            outcome.writes = [
                SideWrite(
                    "DELETE FROM file_copies WHERE academy = ? AND drive_key = ? AND target_id = ?",
                    (ctx.code, a["drive_key"], outcome.target_id),
                )
            ]
        return outcome


async def _undo_item(ctx: FilesUndo, key: str, a: dict[str, Any]) -> Outcome:
    target, budget = ctx.target, ctx.budget
    if a.get("target_id"):
        result = await delete_unchanged(target, budget, a)
        if result == "kept":
            why = (
                "holds content trustfold did not create"
                if a["folder"]
                else "changed in the trust tenant since it was copied"
            )
            return Outcome("kept", a["target_id"], {}, why)
        return Outcome("undone", a["target_id"], {}, "already gone" if result == "gone" else "")
    # In doubt: the forward step journaled its intent and no outcome. Find what may be ours by path.
    if not a["folder"]:
        saved = ctx.sessions.get(key)
        if saved:
            # An upload that never completed: cancel its session so no item can appear later.
            with contextlib.suppress(httpx.HTTPError):  # an expired session is gone anyway
                await target.http.delete(saved["url"])
            ctx.sessions.drop(key)
    path = f"/drives/{a['target_drive']}/root:/{quote(a['path'])}:"
    async with budget.spend(target.tenant_id, 1):
        resp = await target.request("GET", path, counts_as_write=False)
    if resp.status == 404:
        return Outcome("undone", None, {}, "nothing was created")
    if not resp.ok:
        raise GraphError("GET", path, resp)
    item = dict(resp.body)
    found = {**a, "target_id": item["id"], "target_ctag": item.get("cTag")}
    if a["folder"]:
        if not a.get("absent"):
            return Outcome("undone", None, {}, "the folder was there before the run; left as it is")
        if "folder" not in item or not sent_by_us(a, item):
            return Outcome("undone", None, {}, "the item at this path is not a folder trustfold made; left")
        return await _undo_item(ctx, key, found)
    quick_xor = ((item.get("file") or {}).get("hashes") or {}).get("quickXorHash")
    created = (item.get("fileSystemInfo") or {}).get("createdDateTime")
    contents = [tuple(c) for c in a.get("contents") or ()]
    if not contents and a.get("hash") and a.get("size") is not None:  # undo args journaled before contents
        contents = [(int(a["size"]), a["hash"], "")]
    if "folder" not in item and holds_ours(contents, int(item.get("size") or 0), quick_xor, created):
        return await _undo_item(ctx, key, found)
    if a.get("after_failure"):
        return Outcome("undone", None, {}, "nothing of trustfold's at this path; the file there is left")
    return Outcome("kept", item["id"], {}, "the file at this path is not the copy trustfold made")


def sent_by_us(a: dict[str, Any], item: dict[str, Any]) -> bool:
    """A folder found where our create met a 409 (or was in doubt) carries the source creation time we sent
    with it (its modification time moves as content lands in it). A folder of trustfold's own making
    ('Long paths') has no source time: there the journal alone decides."""
    sent = a.get("created")
    if not sent:
        return True
    found = (item.get("fileSystemInfo") or {}).get("createdDateTime")
    return bool(found) and str(sent)[:19] == str(found)[:19]


async def delete_unchanged(target: TenantConnection, budget: SharePointBudget, a: dict[str, Any]) -> str:
    """Delete an item of ours unless it changed since: 'deleted', 'gone' or 'kept'. (Also the forward
    action of a delete propagated from the source.)"""
    path = f"/drives/{a['target_drive']}/items/{a['target_id']}"
    async with budget.spend(target.tenant_id, 1):
        resp = await target.request("GET", path, counts_as_write=False)
    if resp.status == 404:
        return "gone"
    if not resp.ok:
        raise GraphError("GET", path, resp)
    if a["folder"]:
        async with budget.spend(target.tenant_id, 2):
            kids = await target.get(f"{path}/children", {"$top": "1"})
        if kids.get("value"):
            return "kept"
    elif resp.body.get("cTag") != a.get("target_ctag"):
        quick_xor = ((resp.body.get("file") or {}).get("hashes") or {}).get("quickXorHash")
        if not (a.get("in_doubt_hash") and quick_xor == a["in_doubt_hash"]):
            return "kept"
    async with budget.spend(target.tenant_id, 2):
        resp = await target.request(
            "DELETE", path, counts_as_write=False, headers={"If-Match": resp.body.get("eTag", "*")}
        )
    if resp.status not in (204, 404):
        if resp.status == 412:
            return "kept"
        raise GraphError("DELETE", path, resp)
    return "deleted"


class FilesRules(UndoRules):
    """Files together, then folders one depth at a time from the deepest: a folder is reached only once
    everything of ours inside it has been dealt with."""

    errors = (GraphError, CopyError)

    def stages(self, steps: list[UndoStep]) -> list[list[UndoStep]]:
        levels: dict[tuple[bool, int], list[UndoStep]] = {}
        for step in steps:
            folder = bool(step.args["folder"])
            levels.setdefault((folder, -depth(step.args["path"]) if folder else 0), []).append(step)
        return [levels[level] for level in sorted(levels)]

    def kept(self, step: UndoStep, outcome: Outcome) -> dict[str, str] | None:
        return {"object": step.args["path"], "message": outcome.message}


def in_undo_order(steps: list[UndoStep]) -> list[UndoStep]:
    """Files first, then folders deepest first, so a folder is empty (of our files) when we reach it."""
    return sorted(steps, key=lambda s: (s.args["folder"], -depth(s.args["path"]), s.args["path"]))


for _op in (
    _Created(
        "mkdir",
        lambda a: f"create folder '{a['path']}'",
        undo_text=lambda a: f"delete created folder '{a['path']}' if empty",
    ),
    _Created(
        "copy",
        lambda a: f"{'update' if a.get('replace_id') else 'copy'} '{a['path']}' ({_size(int(a['size']))})",
        undo_text=lambda a: f"delete copied file '{a['path']}'",
    ),
    _Op(
        "move",
        lambda a: f"move '{a['from']}' to '{a['path']}'",
        kept="a move of trustfold's own copy: the copy's undo deletes it where it now is",
    ),
    _Op(
        "adopt",
        lambda a: f"record '{a['path']}' as already present (identical content)",
        kept="already present before the run: not trustfold's to delete",
    ),
    _Op(
        "delete",
        lambda a: f"delete '{a['path']}' (deleted at source)",
        kept="deleted because the source deleted it: not brought back",
    ),
):
    register_operation(_op)  # type: ignore[arg-type]

"""The mail phase's operations: what each journaled step is, the line it prints, and its undo.

The copy itself is driven by mail/transfer.py (item by item, streaming), not by the core runner: these
operations give the journal's steps their descriptions and rollback its undos. An item's undo deletes the
copy trustfold imported (its id from the journal's done outcome); a folder's undo deletes a folder trustfold
created, only once it is empty (a trust user's own items keep it, reported as kept).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migrations.core.steps import History, Outcome, Step, UndoStep, register_operation
from migrations.core.store import StateStore
from migrations.graph.client import BatchItem, GraphError, GraphResponse, TenantConnection
from migrations.graph.mailbox_window import MailboxWindows
from migrations.mail import records
from migrations.mail.records import MAILBOX_ROOT


@dataclass
class UndoContext:
    code: str
    target: TenantConnection
    windows: MailboxWindows
    store: StateStore


async def _call(ctx: UndoContext, mailbox: str, method: str, path: str) -> GraphResponse:
    # The mailbox's own retry layer: a 429 slows this mailbox, not the trust tenant's other work.
    return await ctx.windows.of(mailbox).request(ctx.target, method, path)


class _Base:
    name = ""
    batchable = False
    reversible = False

    @property
    def undo_name(self) -> str:
        return f"undo-{self.name}"

    def describe(self, step: Step) -> str:
        raise NotImplementedError

    def request(self, step: Step, ctx: Any) -> BatchItem:
        raise NotImplementedError("mail steps are carried out by migrations/mail/transfer.py")

    def outcome(self, step: Step, resp: GraphResponse, ctx: Any) -> Outcome | None:
        raise NotImplementedError("mail steps are carried out by migrations/mail/transfer.py")

    async def reconcile(self, step: Step, ctx: Any) -> Outcome | None:
        return None

    def undo_step(self, phase: str, key: str, history: History) -> UndoStep | None:
        return None

    def describe_undo(self, step: UndoStep) -> str:
        return f"leave {step.key} in place"

    async def undo(self, step: UndoStep, ctx: Any, found: Callable[[str], None]) -> Outcome:
        return Outcome("kept", step.target_id, {}, "not reversible")


class CopyMailbox(_Base):
    name = "mail-mailbox"

    def describe(self, step: Step) -> str:
        a = step.args
        return f"copy mailbox {a['display']} ({a['folders']} folders, {a['items']} items) to the trust user's"


class ImportItem(_Base):
    """An item imported (create) or brought up to date (update): its undo deletes the trust copy."""

    name = "mail-import"
    reversible = True

    @property
    def undo_name(self) -> str:
        return "undo-mail-import"

    def describe(self, step: Step) -> str:
        a = step.args
        return f"import {a.get('type') or 'item'} into {a['mailbox']}: {a['folder']}"

    def undo_step(self, phase: str, key: str, history: History) -> UndoStep | None:
        args = history.args or {}
        if history.done is None or not history.done.target_id:
            if history.forward != "intent" or not args.get("target_folder"):
                return None
            # An import in doubt (killed before its outcome): it may have landed. The undo looks for it.
            target = history.resolved
            return UndoStep(
                phase,
                key,
                self.name,
                target,
                {},
                {
                    k: args.get(k, "")
                    for k in ("mailbox", "target_mailbox", "folder", "target_folder", "type", "size")
                },
                in_doubt=target is None,
            )
        return UndoStep(
            phase,
            key,
            self.name,
            history.done.target_id,
            history.done.data,
            {
                "mailbox": args.get("mailbox", ""),
                "target_mailbox": args.get("target_mailbox", ""),
                "folder": args.get("folder", ""),
                "target_folder": history.done.data.get("target_folder") or args.get("target_folder", ""),
            },
        )

    def describe_undo(self, step: UndoStep) -> str:
        return f"delete the imported item from {step.args['mailbox']}: {step.args['folder']}"

    async def undo(self, step: UndoStep, ctx: Any, found: Callable[[str], None]) -> Outcome:
        assert isinstance(ctx, UndoContext)
        a = step.args
        if step.target_id is None:
            landed = await _in_doubt_copy(ctx, a)
            if landed is None:
                return Outcome("undone", None, {}, "the interrupted import never landed")
            if landed == "":
                return Outcome(
                    "kept", None, {}, "an interrupted import cannot be told apart from other new items: left"
                )
            found(landed)
            step.target_id = landed
        path = f"{MAILBOX_ROOT}/{a['target_mailbox']}/folders/{a['target_folder']}/items/{step.target_id}"
        resp = await _call(ctx, a["target_mailbox"], "DELETE", path)
        if resp.ok or resp.status == 404:
            forget = records.forget_target_item(ctx.code, a["target_mailbox"], str(step.target_id))
            # The folder's delta link has passed this item: the next pass must read the folder whole again.
            again = records.forget_delta(ctx.code, a["target_folder"])
            return Outcome("undone", step.target_id, {}, "", [forget, again])
        return Outcome("failed", step.target_id, {}, resp.error_message)


async def _in_doubt_copy(ctx: UndoContext, a: dict[str, Any]) -> str | None:
    """The copy an interrupted import left, by elimination as the run's reconcile finds it (transfer.py):
    its id, None when nothing landed, "" when several items could be it."""
    tm, tf = str(a["target_mailbox"]), str(a["target_folder"])
    base = records.baseline(ctx.store, ctx.code, tm, tf) or set()
    ours = {
        r["target_item"]
        for r in ctx.store.rows(
            "SELECT target_item FROM mail_items WHERE academy = ? AND target_mailbox = ?", (ctx.code, tm)
        )
    }
    listed: list[dict[str, Any]] = []
    url: str | None = f"{MAILBOX_ROOT}/{tm}/folders/{tf}/items"
    while url:
        resp = await _call(ctx, tm, "GET", url)
        if resp.status == 404:
            return None
        if not resp.ok:
            raise GraphError("GET", url, resp)
        listed += resp.body.get("value", [])
        nxt = resp.body.get("@odata.nextLink")
        url = ctx.target.relative(nxt) if nxt else None
    candidates = [
        str(i["id"])
        for i in listed
        if str(i["id"]) not in base
        and str(i["id"]) not in ours
        and i.get("type") == a.get("type")
        and int(i.get("size") or -1) == int(a.get("size") or -2)
    ]
    if not candidates:
        return None
    return candidates[0] if len(candidates) == 1 else ""


class UpdateItem(ImportItem):
    name = "mail-update"

    def describe(self, step: Step) -> str:
        a = step.args
        return f"update {a.get('type') or 'item'} in {a['mailbox']}: {a['folder']}"


class CreateFolder(_Base):
    name = "mail-folder"
    reversible = True

    def describe(self, step: Step) -> str:
        return f"create folder {step.args['path']} in {step.args['mailbox']}"

    def undo_step(self, phase: str, key: str, history: History) -> UndoStep | None:
        args = history.args or {}
        if history.done is None and history.forward == "intent":
            # Killed after the intent, before the outcome: the POST may have made the folder. The run had
            # found no folder of that name under the parent before it asked, so one there now is ours.
            return UndoStep(
                phase,
                key,
                self.name,
                history.resolved,
                {},
                {
                    "mailbox": args.get("mailbox", ""),
                    "target_mailbox": args.get("target_mailbox", ""),
                    "path": args.get("path", ""),
                    "parent": args.get("parent"),
                },
                in_doubt=history.resolved is None,
            )
        if history.done is None or not history.done.target_id or not history.done.data.get("created"):
            return None  # a well-known or pre-existing folder: the trust user's, never removed
        return UndoStep(
            phase,
            key,
            self.name,
            history.done.target_id,
            history.done.data,
            {
                "mailbox": args.get("mailbox", ""),
                "target_mailbox": args.get("target_mailbox", ""),
                "path": args.get("path", ""),
            },
        )

    def describe_undo(self, step: UndoStep) -> str:
        return f"delete folder {step.args['path']} from {step.args['mailbox']} (once empty)"

    async def undo(self, step: UndoStep, ctx: Any, found: Callable[[str], None]) -> Outcome:
        assert isinstance(ctx, UndoContext)
        a = step.args
        if step.target_id is None:
            landed = await _in_doubt_folder(ctx, a)
            if landed is None:
                return Outcome("undone", None, {}, "the interrupted folder creation never landed")
            found(landed)
            step.target_id = landed
        base = f"{MAILBOX_ROOT}/{a['target_mailbox']}/folders/{step.target_id}"
        items = await _call(ctx, a["target_mailbox"], "GET", f"{base}/items?$top=1")
        if items.status == 404:
            return Outcome(
                "undone", step.target_id, {}, "", [records.forget_folder(ctx.code, str(step.target_id))]
            )
        if items.ok and items.body.get("value"):
            return Outcome(
                "kept", step.target_id, {}, "it holds items trustfold did not import: left in place"
            )
        kids = await _call(ctx, a["target_mailbox"], "GET", f"{base}/childFolders?$top=1")
        if kids.ok and kids.body.get("value"):
            return Outcome(
                "kept", step.target_id, {}, "it holds folders trustfold did not create: left in place"
            )
        resp = await _call(ctx, a["target_mailbox"], "DELETE", base)
        if resp.ok or resp.status == 404:
            return Outcome(
                "undone", step.target_id, {}, "", [records.forget_folder(ctx.code, str(step.target_id))]
            )
        return Outcome("failed", step.target_id, {}, resp.error_message)


async def _in_doubt_folder(ctx: UndoContext, a: dict[str, Any]) -> str | None:
    """The folder an interrupted creation left: by name under the same parent, never a well-known one."""
    tm = str(a["target_mailbox"])
    parent = a.get("parent")
    url: str | None = f"{MAILBOX_ROOT}/{tm}/folders" + (f"/{parent}/childFolders" if parent else "")
    name = str(a.get("path", "")).rsplit("/", 1)[-1]
    while url:
        resp = await _call(ctx, tm, "GET", url)
        if resp.status == 404:
            return None  # the parent is gone, and with it anything made under it
        if not resp.ok:
            raise GraphError("GET", url, resp)
        for f in resp.body.get("value", []):
            if str(f.get("displayName")) == name and not f.get("wellKnownName"):
                return str(f["id"])
        nxt = resp.body.get("@odata.nextLink")
        url = ctx.target.relative(nxt) if nxt else None
    return None


class DeleteItem(_Base):
    name = "mail-delete"

    def describe(self, step: Step) -> str:
        return f"delete {step.args['mailbox']}: {step.args['folder']} item deleted at source"


for _op in (CopyMailbox(), ImportItem(), UpdateItem(), CreateFolder(), DeleteItem()):
    register_operation(_op)

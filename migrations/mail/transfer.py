"""Copying one mailbox: folders re-created by path, items exported (20 a request) and imported one by one.

Streaming: a folder's items come page by page from item delta; each page is exported in batches sized by
the items' sizes (mail/streaming.py), each answer read as it arrives into per-item spools (memory while
small, disk when large), and each item's import POST streamed from its spool, so a batch holds at most
streaming.HELD_BOUND bytes in memory whatever its items weigh.

Journal, per item (step key `item:{source mailbox}:{source item}`): intent before the import POST, outcome
with the mail_items row after, in one transaction. A process killed between the POST and the outcome leaves
the item in the trust mailbox and the journal in doubt. The import stream is opaque (no marker can ride in
it), so an in-doubt item is recognised by elimination: imports into one target folder go one at a time, so at
most one item per folder is ever in doubt; the candidates are the folder's items that were neither there
before trustfold's first import (the baseline) nor imported by trustfold (mail_items). One candidate of the
item's class and size is adopted; none means the POST never landed and the item is imported; several
(the trust user's own new mail of the same class and size) leave it in doubt as a finding, never imported
twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from migrations.core import killpoints
from migrations.core.journal import Journal
from migrations.core.runs import Tally
from migrations.core.steps import Outcome, SideWrite, Step
from migrations.core.store import StateStore
from migrations.graph.client import (
    GraphError,
    GraphResponse,
    TenantConnection,
    Transient,
    parse_retry_after,
)
from migrations.graph.mailbox_window import MailboxThrottled, MailboxWindow, MailboxWindows
from migrations.mail import records
from migrations.mail.discovery import list_folders
from migrations.mail.records import MAILBOX_ROOT, Folder, Imported, Mailbox
from migrations.mail.streaming import (
    CHUNK,
    Exported,
    ExportScanner,
    Held,
    MalformedExport,
    Spool,
    export_batches,
    import_body,
)

DELTA_PAGE = {"Prefer": "odata.maxpagesize=100"}
RENEW_MARGIN_S = 60.0  # renew an import URL this long before it expires


def item_key(mailbox: str, item: str) -> str:
    return f"item:{mailbox}:{item}"


def folder_key(mailbox: str, folder: str) -> str:
    return f"folder:{mailbox}:{folder}"


@dataclass
class MailCounts:
    items: int = 0
    updated: int = 0
    bytes: int = 0
    reconciled: int = 0
    skipped: int = 0
    deletions_seen: int = 0
    deleted: int = 0
    requests: int = 0
    export_requests: int = 0
    peak_held: int = 0  # the most bytes one export batch held in memory


@dataclass
class Copier:
    """Copies mailboxes of one academy; one Copier per run."""

    store: StateStore
    code: str
    journal: Journal
    source: TenantConnection
    target: TenantConnection
    windows: MailboxWindows
    tally: Tally
    propagate_deletes: bool = False
    progress: Callable[[], None] = lambda: None
    counts: MailCounts = field(default_factory=MailCounts)
    in_doubt: set[str] = field(default_factory=set)
    # Per source mailbox, each folder's item count as the plan read it moments before in the same command
    # (None or a mailbox absent: read now). Each is used once.
    counts_now: dict[str, dict[str, int]] | None = None
    _sessions: dict[str, tuple[str, float]] = field(default_factory=dict)

    # ---- requests ------------------------------------------------------------------------------------------
    async def _call(self, conn: TenantConnection, mailbox: str, method: str, path: str, **kw: Any) -> Any:
        """One request on a mailbox, inside its Outlook window; a 429 slows that mailbox (its own retry
        layer), never the tenant's other mailboxes, and never fails it."""
        return await self.windows.of(mailbox).request(conn, method, path, sent=self._sent, **kw)

    def _sent(self) -> None:
        self.counts.requests += 1

    async def _import_url(self, target_mailbox: str, renew: bool = False) -> str:
        got = self._sessions.get(target_mailbox)
        if got and not renew and got[1] - RENEW_MARGIN_S > time.time():
            return got[0]
        path = f"{MAILBOX_ROOT}/{target_mailbox}/createImportSession"
        resp = await self._call(self.target, target_mailbox, "POST", path, json={}, idempotent=True)
        if not resp.ok:
            raise GraphError("POST", path, resp)
        expires = _epoch(resp.body.get("expirationDateTime")) or time.time() + 300
        self._sessions[target_mailbox] = (str(resp.body["importUrl"]), expires)
        return str(resp.body["importUrl"])

    async def _post_import(
        self, target_mailbox: str, fields: dict[str, Any], data: Spool, size: int
    ) -> httpx.Response:
        """POST one item to the mailbox's import URL (pre-authenticated: no Authorization header), its Data
        streamed from the spool; an expired URL is renewed and the item sent again; throttling waits, within
        the mailbox's own window and retry layer."""
        window: MailboxWindow = self.windows.of(target_mailbox)
        renewed = False
        async for attempt in window.retrying():
            with attempt:
                url = await self._import_url(target_mailbox)
                length, content = import_body(fields, data)
                async with window.slot(self.target, upload=size):
                    try:
                        r = await self.target.http.post(
                            url,
                            content=content,
                            headers={"Content-Type": "application/json", "Content-Length": str(length)},
                            timeout=300,
                        )
                    except (httpx.TransportError, httpx.StreamError) as exc:
                        # Not known to have landed or not: the caller's reconcile decides (no blind resend).
                        raise _Unclear(f"import connection lost ({type(exc).__name__})") from exc
                self.counts.requests += 1
                if r.status_code == 429 or r.status_code == 503:
                    retry = parse_retry_after(r.headers.get("retry-after"))
                    window.throttle(retry)
                    raise Transient(f"import throttled ({r.status_code})", retry)
                if r.status_code in (401, 403, 404) and not renewed:
                    # The URL's embedded token expired (or the session was deleted): a new session, once.
                    renewed = True
                    await self._import_url(target_mailbox, renew=True)
                    raise Transient("import URL expired: renewed", 0.0)
                if r.status_code >= 500:
                    raise _Unclear(f"import answered {r.status_code}")
                return r
        raise AssertionError("unreachable")

    # ---- folders -------------------------------------------------------------------------------------------
    async def ensure_folders(self, m: Mailbox, rows: list[Folder]) -> dict[str, str]:
        """Source folder id -> target folder id: well-known folders map to the target's own, others are
        created by path under them (journaled, reconciled by name under the same parent)."""
        assert m.target_mailbox
        tm = m.target_mailbox
        known: dict[str, str] = {}
        top = await self._children(tm, None)
        by_wk = {str(f.get("wellKnownName")): str(f["id"]) for f in top if f.get("wellKnownName")}
        done = {f.source_folder: f.target_folder for f in rows if f.target_folder}
        for f in sorted(rows, key=lambda r: r.path.count("/")):
            if f.source_folder in done:
                known[f.source_folder] = str(done[f.source_folder])
                continue
            if f.well_known and f.well_known in by_wk:
                target, created = by_wk[f.well_known], False
                self.journal.outcomes(
                    [
                        (
                            self._folder_step(m, f, None),
                            Outcome(
                                "already",
                                target,
                                {"created": False},
                                "",
                                [
                                    records.folder_target(
                                        self.code, m.source_mailbox, f.source_folder, target, False
                                    )
                                ],
                            ),
                        )
                    ]
                )
                known[f.source_folder] = target
                continue
            parent = known.get(f.parent_folder or "") if f.parent_folder else None
            name = f.path.rsplit("/", 1)[-1]
            siblings = await self._children(tm, parent)
            same = [s for s in siblings if str(s.get("displayName")) == name]
            step = self._folder_step(m, f, parent)
            key = folder_key(m.source_mailbox, f.source_folder)
            if same:
                # Already there: ours if an earlier run's create was in doubt, else the trust user's own.
                created = key in self.in_doubt
                target = str(same[0]["id"])
                self.journal.outcomes(
                    [
                        (
                            step,
                            Outcome(
                                "already",
                                target,
                                {"created": created},
                                "",
                                [
                                    records.folder_target(
                                        self.code, m.source_mailbox, f.source_folder, target, created
                                    )
                                ],
                            ),
                        )
                    ]
                )
                known[f.source_folder] = target
                continue
            self.journal.intents([step])
            path = (
                f"{MAILBOX_ROOT}/{tm}/folders/{parent}/childFolders"
                if parent
                else f"{MAILBOX_ROOT}/{tm}/folders"
            )
            resp = await self._call(
                self.target, tm, "POST", path, json={"displayName": name, "type": f.folder_class}
            )
            if not resp.ok:
                self.journal.outcomes([(step, Outcome("failed", None, {}, resp.error_message))])
                self.tally.fail(step.describe(), resp.error_message)
                continue
            target = str(resp.body["id"])
            self.journal.outcomes(
                [
                    (
                        step,
                        Outcome(
                            "done",
                            target,
                            {"created": True},
                            "",
                            [
                                records.folder_target(
                                    self.code, m.source_mailbox, f.source_folder, target, True
                                )
                            ],
                        ),
                    )
                ]
            )
            records.save_baseline(self.store, self.code, tm, target, set())
            known[f.source_folder] = target
        return known

    def _folder_step(self, m: Mailbox, f: Folder, parent: str | None) -> Step:
        return Step(
            folder_key(m.source_mailbox, f.source_folder),
            "mail-folder",
            {
                "mailbox": m.display,
                "target_mailbox": m.target_mailbox,
                "path": f.path,
                "parent": parent,
                "class": f.folder_class,
            },
        )

    async def _children(self, mailbox: str, parent: str | None) -> list[dict[str, Any]]:
        path = f"{MAILBOX_ROOT}/{mailbox}/folders" + (f"/{parent}/childFolders" if parent else "")
        return await self._all(self.target, mailbox, path)

    async def _all(self, conn: TenantConnection, mailbox: str, path: str, **kw: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        url: str | None = path
        while url:
            resp = await self._call(conn, mailbox, "GET", url, **kw)
            if not resp.ok:
                raise GraphError("GET", url, resp)
            out += resp.body.get("value", [])
            nxt = resp.body.get("@odata.nextLink")
            url, kw = (conn.relative(nxt), {}) if nxt else (None, kw)
        return out

    # ---- items ---------------------------------------------------------------------------------------------
    async def copy_mailbox(self, m: Mailbox, rows: list[Folder]) -> None:
        assert m.target_mailbox
        targets = await self.ensure_folders(m, rows)
        done = records.imported(self.store, self.code, m.source_mailbox)
        # A folder never read before (no delta link) that holds nothing now has nothing to copy: its item
        # delta is left for the pass that finds something in it (a full delta then, as now). One folder list
        # (counts as they are now) instead of a baseline and a delta call per folder: most folders of most
        # mailboxes are empty.
        counts = await self._source_counts(m)
        folders = [
            f
            for f in rows
            if f.source_folder in targets and (f.delta_link or counts.get(f.source_folder, 1) > 0)
        ]
        # Folders of one mailbox side by side (imports into one folder stay one at a time: see the module).
        gate = asyncio.Semaphore(4)

        async def one(f: Folder) -> None:
            async with gate:
                await self.copy_folder(m, f, targets[f.source_folder], done)

        async with asyncio.TaskGroup() as group:
            for f in folders:
                group.create_task(one(f))

    async def _source_counts(self, m: Mailbox) -> dict[str, int]:
        """Each source folder's item count now (a folder gone since discovery is absent)."""
        known = (self.counts_now or {}).pop(m.source_mailbox, None)
        if known is not None:
            return known
        raw = await list_folders(self.source, self.windows, m.source_mailbox)
        return {str(f["id"]): int(f.get("totalItemCount") or 0) for f in raw}

    async def copy_folder(self, m: Mailbox, f: Folder, target_folder: str, done: dict[str, Imported]) -> None:
        assert m.target_mailbox
        tm = m.target_mailbox
        if records.baseline(self.store, self.code, tm, target_folder) is None:
            items = await self._all(
                self.target,
                tm,
                f"{MAILBOX_ROOT}/{tm}/folders/{target_folder}/items",
                params={"$select": "id"},
            )
            records.save_baseline(self.store, self.code, tm, target_folder, {str(i["id"]) for i in items})
        url: str | None = f.delta_link and self.source.relative(f.delta_link)
        if not url:
            url = f"{MAILBOX_ROOT}/{m.source_mailbox}/folders/{f.source_folder}/items/delta"
        while url:
            # Pages of 100, not Outlook's default 10: a tenth of the delta requests per item. A preference
            # (delta-query-messages), sent on every page; $top is not used, as it could be read as a total.
            resp = await self._call(self.source, m.source_mailbox, "GET", url, headers=DELTA_PAGE)
            if resp.status == 410:
                url = f"{MAILBOX_ROOT}/{m.source_mailbox}/folders/{f.source_folder}/items/delta"
                continue
            if not resp.ok:
                raise GraphError("GET", url, resp)
            page = resp.body.get("value", [])
            removed = [i for i in page if "@removed" in i]
            await self._deletions(m, f, removed, done)
            todo = []
            for i in page:
                if "@removed" in i:
                    continue
                had = done.get(str(i["id"]))
                if had is None or (had.source_change_key != i.get("changeKey")):
                    todo.append(i)
            for batch in export_batches(todo):
                await self._export_import(m, f, target_folder, batch, done)
            nxt, last = resp.body.get("@odata.nextLink"), resp.body.get("@odata.deltaLink")
            if last:
                records.save_delta(self.store, self.code, m.source_mailbox, f.source_folder, str(last))
            url = self.source.relative(nxt) if nxt else None

    async def _export_import(
        self, m: Mailbox, f: Folder, target_folder: str, page: list[dict[str, Any]], done: dict[str, Imported]
    ) -> None:
        held = Held()
        answers = await self._export(m, [str(i["id"]) for i in page], held)
        meta = {str(i["id"]): i for i in page}
        try:
            for a in answers:
                sid = a.item_id
                info = meta.get(sid, {})
                if a.fields.get("error") or a.data is None or not a.data.length:
                    err = a.fields.get("error") or {}
                    message = str(err.get("message") or "no data exported") if isinstance(err, dict) else ""
                    self._finding("mail-export-refused", sid, m, f, message or "no data exported")
                    continue
                await self._import_one(m, f, target_folder, info, a, done)
                a.close()  # this item's spool goes before the next item is sent
                self.progress()
        finally:
            for a in answers:
                a.close()
            self.counts.peak_held = max(self.counts.peak_held, held.peak)

    async def _export(self, m: Mailbox, ids: list[str], held: Held) -> list[Exported]:
        """One exportItems request (mailbox-exportitems), its answer read as it arrives: each item's data
        into its own spool, counted in `held`. Throttling and 5xx are retried in the mailbox's layer."""
        path = f"{MAILBOX_ROOT}/{m.source_mailbox}/exportItems"
        window = self.windows.of(m.source_mailbox)
        try:
            async for attempt in window.retrying():
                with attempt:
                    return await self._export_once(window, path, ids, held)
        except MailboxThrottled as exc:
            raise GraphError("POST", path, exc.response) from exc
        except Transient as exc:
            raise GraphError(
                "POST",
                path,
                GraphResponse(599, {}, {"error": {"code": "retriesExhausted", "message": str(exc)}}),
            ) from exc
        raise AssertionError("unreachable")

    async def _export_once(
        self, window: MailboxWindow, path: str, ids: list[str], held: Held
    ) -> list[Exported]:
        out: list[Exported] = []
        scanner = ExportScanner(held)
        try:
            async with window.slot(self.source):
                request = await _native(self.source, "POST", path, {"itemIds": ids})
                self.counts.requests += 1
                self.counts.export_requests += 1
                self.source.stats.requests += 1
                try:
                    r = await self.source.http.send(request, stream=True)
                except (httpx.TransportError, httpx.StreamError) as exc:
                    raise Transient(f"export connection lost ({type(exc).__name__})") from exc
                try:
                    headers = {k.lower(): v for k, v in r.headers.items()}
                    retry = parse_retry_after(r.headers.get("retry-after"))
                    if r.status_code == 429 or (r.status_code == 503 and retry is not None):
                        window.throttle(retry)
                        raise MailboxThrottled(GraphResponse(r.status_code, headers, None))
                    if r.status_code >= 500:
                        raise Transient(f"export answered {r.status_code}", retry)
                    if r.status_code != 200:
                        body = await r.aread()
                        raise GraphError(
                            "POST", path, GraphResponse(r.status_code, headers, _json_or_none(body))
                        )
                    async for chunk in r.aiter_bytes(CHUNK):
                        out += scanner.feed(chunk)
                    scanner.finish()
                except (httpx.TransportError, httpx.StreamError) as exc:
                    raise Transient(f"export interrupted ({type(exc).__name__})") from exc
                except MalformedExport as exc:
                    raise Transient(f"export answer unreadable: {exc}") from exc
                finally:
                    await r.aclose()
        except BaseException:
            for a in out:
                a.close()
            raise
        return out

    async def _import_one(
        self,
        m: Mailbox,
        f: Folder,
        target_folder: str,
        info: dict[str, Any],
        exported: Exported,
        done: dict[str, Imported],
    ) -> None:
        assert m.target_mailbox and exported.data is not None
        tm, sid = m.target_mailbox, exported.item_id
        # Outlook counts the bytes uploaded; the item's own size when the list gave it, else its data's.
        size = int(info.get("size") or exported.data.length * 3 // 4)
        had = done.get(sid)
        key = item_key(m.source_mailbox, sid)
        if had is None and key in self.in_doubt:
            adopted = await self._reconcile(m, f, target_folder, info, done)
            if isinstance(adopted, str):
                return  # ambiguous: a finding, never imported twice
            if adopted is not None:
                self._settle(m, f, key, sid, info, exported, adopted, done, status="already")
                self.counts.reconciled += 1
                self.tally.reconciled += 1
                return
        if had is not None and key in self.in_doubt:
            # An update a crash left in doubt: Exchange keeps the item's id and gives it a new change key when
            # an update lands, so a copy whose change key moved since we recorded it holds the update (or a
            # trust user's own change, which is then kept, never overwritten): recorded, not sent again.
            landed = await self._update_landed(had)
            if landed is not None:
                self._settle(m, f, key, sid, info, exported, landed, done, status="already", update=True)
                self.counts.reconciled += 1
                self.tally.reconciled += 1
                return
        mode = "update" if had is not None else "create"
        body: dict[str, Any] = {"FolderId": had.target_folder if had else target_folder, "Mode": mode}
        if had is not None:
            body["ItemId"], body["ChangeKey"] = had.target_item, had.target_change_key
        step = Step(
            key,
            "mail-import" if had is None else "mail-update",
            {
                "mailbox": m.display,
                "target_mailbox": tm,
                "folder": f.path,
                "target_folder": body["FolderId"],
                "type": info.get("type"),
                "size": size,
            },
        )
        self.journal.intents([step])
        try:
            r = await self._post_import(tm, body, exported.data, size)
        except (_Unclear, Transient) as exc:
            # Unknown whether it landed: left in doubt for the next run's reconcile (never resent blind).
            self.in_doubt.add(key)
            self.tally.fail(step.describe(), str(exc))
            return
        killpoints.reached("mail.imported")
        if r.status_code >= 400:
            message = _error_message(r)
            if had is not None and r.status_code in (404, 409):
                message = "changed or removed in the trust mailbox since trustfold imported it: not updated"
                self._finding("mail-update-conflict", sid, m, f, message)
            else:
                self._finding("mail-import-refused", sid, m, f, message)
            self.journal.outcomes([(step, Outcome("skipped", None, {"skipped": True}, message))])
            self.counts.skipped += 1
            self.tally.skipped += 1
            return
        got = r.json()
        new = (str(got["itemId"]), str(got.get("changeKey") or ""))
        self._settle(
            m, f, key, sid, info, exported, new, done, status="done", step=step, update=had is not None
        )
        self.counts.bytes += size
        if had is None:
            self.counts.items += 1
        else:
            self.counts.updated += 1

    def _settle(
        self,
        m: Mailbox,
        f: Folder,
        key: str,
        sid: str,
        info: dict[str, Any],
        exported: Exported,
        target: tuple[str, str],
        done: dict[str, Imported],
        *,
        status: str,
        step: Step | None = None,
        update: bool = False,
    ) -> None:
        assert m.target_mailbox
        had = done.get(sid)
        row = Imported(
            sid,
            f.source_folder,
            str(exported.fields.get("changeKey") or info.get("changeKey") or ""),
            m.target_mailbox,
            had.target_folder if had else str(self._target_of(m, f)),
            target[0],
            target[1],
            int(info.get("size") or 0),
            str(info.get("type") or ""),
        )
        step = step or Step(
            key,
            "mail-import",
            {
                "mailbox": m.display,
                "target_mailbox": m.target_mailbox,
                "folder": f.path,
                "target_folder": row.target_folder,
            },
        )
        writes: list[SideWrite] = [records.imported_row(self.code, m.source_mailbox, row)]
        data = {"target_folder": row.target_folder, "change_key": target[1], "updated": update}
        self.journal.outcomes([(step, Outcome(status, target[0], data, "", writes))])
        done[sid] = row
        self.in_doubt.discard(key)
        if status == "done":
            self.tally.done += 1
        else:
            self.tally.already += 1

    def _target_of(self, m: Mailbox, f: Folder) -> str | None:
        rows = self.store.rows(
            "SELECT target_folder FROM mail_folders WHERE academy = ? AND source_mailbox = ? "
            "AND source_folder = ?",
            (self.code, m.source_mailbox, f.source_folder),
        )
        return rows[0]["target_folder"] if rows else None

    async def _update_landed(self, had: Imported) -> tuple[str, str] | None:
        """The copy's (id, change key) when its change key is no longer the one trustfold recorded; None when
        it is unchanged (the update never landed) or gone (the update then meets Exchange's own answer)."""
        path = f"{MAILBOX_ROOT}/{had.target_mailbox}/folders/{had.target_folder}/items/{had.target_item}"
        now = await self._call(self.target, had.target_mailbox, "GET", path)
        if now.status == 404:
            return None
        if not now.ok:
            raise GraphError("GET", path, now)
        key = str(now.body.get("changeKey") or "")
        return (had.target_item, key) if key and key != (had.target_change_key or "") else None

    async def _reconcile(
        self, m: Mailbox, f: Folder, target_folder: str, info: dict[str, Any], done: dict[str, Imported]
    ) -> tuple[str, str] | str | None:
        """The in-doubt item's copy in the target folder (id, change key), None when the POST never landed,
        "ambiguous" when it cannot be told apart (a finding; never imported twice)."""
        assert m.target_mailbox
        tm = m.target_mailbox
        base = records.baseline(self.store, self.code, tm, target_folder) or set()
        ours = {i.target_item for i in done.values()}
        ours |= {
            r["target_item"]
            for r in self.store.rows(
                "SELECT target_item FROM mail_items WHERE academy = ? AND target_mailbox = ?", (self.code, tm)
            )
        }
        listed = await self._all(self.target, tm, f"{MAILBOX_ROOT}/{tm}/folders/{target_folder}/items")
        candidates = [
            i
            for i in listed
            if str(i["id"]) not in base
            and str(i["id"]) not in ours
            and i.get("type") == info.get("type")
            and int(i.get("size") or -1) == int(info.get("size") or -2)
        ]
        if len(candidates) == 1:
            return str(candidates[0]["id"]), str(candidates[0].get("changeKey") or "")
        if not candidates:
            return None
        self._finding(
            "mail-in-doubt",
            str(info.get("id")),
            m,
            f,
            f"an import interrupted by a crash may have landed: {len(candidates)} items of the same class "
            "and size arrived in the trust folder since, so trustfold cannot tell which one is the copy. Not "
            "imported again; check the folder",
        )
        return "ambiguous"

    async def _deletions(
        self, m: Mailbox, f: Folder, removed: list[dict[str, Any]], done: dict[str, Imported]
    ) -> None:
        for i in removed:
            sid = str(i["id"])
            had = done.get(sid)
            if had is None:
                continue
            self.counts.deletions_seen += 1
            if not self.propagate_deletes:
                self._finding(
                    "mail-deleted-at-source",
                    sid,
                    m,
                    f,
                    "deleted in the academy's mailbox; kept in the trust (--propagate-deletes removes it)",
                )
                continue
            path = f"{MAILBOX_ROOT}/{had.target_mailbox}/folders/{had.target_folder}/items/{had.target_item}"
            now = await self._call(self.target, had.target_mailbox, "GET", path)
            if now.status == 404:
                changed = False
            elif not now.ok:
                raise GraphError("GET", path, now)
            else:
                changed = str(now.body.get("changeKey") or "") != (had.target_change_key or "")
            if changed:
                self._finding(
                    "mail-delete-kept",
                    sid,
                    m,
                    f,
                    "deleted at source but changed in the trust since trustfold imported it: kept",
                )
                continue
            step = Step(
                f"delete:{m.source_mailbox}:{sid}",
                "mail-delete",
                {"mailbox": m.display, "folder": f.path, "target_item": had.target_item},
            )
            self.journal.intents([step])
            if now.status != 404:
                resp = await self._call(self.target, had.target_mailbox, "DELETE", path)
                if not resp.ok and resp.status != 404:
                    self.journal.outcomes(
                        [(step, Outcome("failed", had.target_item, {}, resp.error_message))]
                    )
                    self.tally.fail(step.describe(), resp.error_message)
                    continue
            self.journal.outcomes(
                [
                    (
                        step,
                        Outcome(
                            "done",
                            had.target_item,
                            {},
                            "",
                            [records.forget_item(self.code, m.source_mailbox, sid)],
                        ),
                    )
                ]
            )
            done.pop(sid, None)
            self.counts.deleted += 1

    def _finding(self, kind: str, sid: str, m: Mailbox, f: Folder, message: str) -> None:
        records.add_finding(
            self.store,
            self.code,
            kind,
            sid,
            f"{m.display}: {f.path}",
            message,
            "not carried" if kind != "mail-deleted-at-source" else "reported",
        )


async def _native(conn: TenantConnection, method: str, path: str, body: Any) -> httpx.Request:
    """An authenticated request built by the connection's Graph adapter, to be sent streaming (the adapter's
    own send reads the whole answer)."""
    from kiota_abstractions.method import Method
    from kiota_abstractions.request_information import RequestInformation

    info = RequestInformation()
    info.http_method = Method[method.upper()]
    info.url = conn.url(path)
    info.headers.try_add("Content-Type", "application/json")
    info.headers.try_add("x-ms-throttle-priority", "Low")
    info.content = json.dumps(body).encode()
    request: httpx.Request = await conn.adapter.convert_to_native_async(info)
    return request


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


class _Unclear(Exception):
    """The import may or may not have landed (connection lost, 5xx)."""


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return (
            datetime.fromisoformat(
                text.replace("Z", "+00:00")[:26] + ("+00:00" if text.endswith("Z") else "")
            )
            .astimezone(UTC)
            .timestamp()
        )
    except ValueError:
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None


def _error_message(r: httpx.Response) -> str:
    try:
        err = r.json().get("error") or {}
        return f"{r.status_code} {err.get('code', '')}: {err.get('message', '')}".strip()
    except ValueError:
        return f"{r.status_code}"

"""Mail verification, per folder: the source's item count against what trustfold carried (imported, or
reported as not carried), every imported item still in its trust folder, and a sample of items compared
field by field through the ordinary Outlook endpoints, as a user would see them.

The ordinary endpoints (learn.microsoft.com/graph/api/message-get, event-get, contact-get) read the same
items the mailbox API imported; the fields compared are those the resources define that a copy must keep
(never ids, change keys, creation or modification times, which belong to the trust mailbox).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from migrations.core.store import StateStore
from migrations.graph.client import GraphError, GraphResponse, TenantConnection
from migrations.graph.mailbox_window import MailboxWindows
from migrations.mail import records
from migrations.mail.discovery import list_folders
from migrations.mail.records import MAILBOX_ROOT, Imported, Mailbox

SAMPLE_PER_FOLDER = 3
# Per item class: the ordinary endpoint under /users/{id} and the fields a faithful copy keeps.
COMPARED: dict[str, tuple[str, tuple[str, ...]]] = {
    "IPM.Note": (
        "messages",
        (
            "subject",
            "from",
            "toRecipients",
            "ccRecipients",
            "receivedDateTime",
            "sentDateTime",
            "internetMessageId",
            "body",
            "importance",
            "isRead",
            "hasAttachments",
            "categories",
        ),
    ),
    "IPM.Appointment": (
        "events",
        ("subject", "start", "end", "isAllDay", "recurrence", "location", "attendees", "organizer", "body"),
    ),
    "IPM.Contact": (
        "contacts",
        ("displayName", "givenName", "surname", "companyName", "jobTitle", "emailAddresses", "mobilePhone"),
    ),
}
# The ordinary endpoints see events and contacts of the default calendar and contacts folders only.
ORDINARY_FOLDERS = {"IPM.Appointment": "calendar", "IPM.Contact": "contacts"}


async def _call(conn: TenantConnection, windows: MailboxWindows, mailbox: str, path: str) -> GraphResponse:
    # The mailbox's own retry layer: a 429 slows this mailbox, not the tenant's other work.
    return await windows.of(mailbox).request(conn, "GET", path)


async def _all(
    conn: TenantConnection, windows: MailboxWindows, mailbox: str, path: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    url: str | None = path
    while url:
        resp = await _call(conn, windows, mailbox, url)
        if not resp.ok:
            raise GraphError("GET", url, resp)
        out += resp.body.get("value", [])
        nxt = resp.body.get("@odata.nextLink")
        url = conn.relative(nxt) if nxt else None
    return out


def _sample(items: list[Imported]) -> list[Imported]:
    """A few items per folder, the same ones every time (by a hash of their id), of comparable classes."""
    usable = [i for i in items if (i.item_type or "") in COMPARED]
    return sorted(usable, key=lambda i: hashlib.sha256(i.source_item.encode()).hexdigest())[
        :SAMPLE_PER_FOLDER
    ]


VERIFY_AHEAD = 8  # mailboxes verified at once (each within its own Outlook window)


async def verify_mail(
    store: StateStore, code: str, source: TenantConnection, target: TenantConnection, windows: MailboxWindows
) -> dict[str, Any]:
    """Every carried mailbox, several at once (one after another, verify waited on a folder list per
    mailbox for ~250 mailboxes an academy); differences in mailbox order."""
    not_carried = {
        r["object_id"]
        for r in store.rows(
            "SELECT object_id FROM mail_findings WHERE academy = ? AND handling = 'not carried'", (code,)
        )
    }
    gate = asyncio.Semaphore(VERIFY_AHEAD)

    async def one(m: Mailbox) -> tuple[int, int, list[dict[str, str]]]:
        async with gate:
            return await _verify_mailbox(store, code, source, target, windows, m, not_carried)

    carried = [m for m in records.mailboxes(store, code) if m.target_mailbox]
    # gather, not a TaskGroup: the first GraphError reaches the caller as itself.
    parts = await asyncio.gather(*(one(m) for m in carried))
    return {
        "checked": sum(p[0] for p in parts),
        "differences": [d for p in parts for d in p[2]],
        "sampled": sum(p[1] for p in parts),
    }


async def _verify_mailbox(
    store: StateStore,
    code: str,
    source: TenantConnection,
    target: TenantConnection,
    windows: MailboxWindows,
    m: Mailbox,
    not_carried: set[str],
) -> tuple[int, int, list[dict[str, str]]]:
    """(folders checked, items sampled, differences) for one carried mailbox."""
    differences: list[dict[str, str]] = []
    checked = sampled = 0
    live = {str(f["id"]): f for f in await list_folders(source, windows, m.source_mailbox)}
    mine = records.imported(store, code, m.source_mailbox)
    source_ids: dict[str, set[str]] = {}
    for f in records.folders(store, code, m.source_mailbox):
        if not f.target_folder:
            continue
        checked += 1
        where = f"{m.display}: {f.path}"
        ours = [i for i in mine.values() if i.source_folder == f.source_folder]
        if not ours and not int((live.get(f.source_folder) or {}).get("totalItemCount") or 0):
            # Nothing carried into it and nothing in it at source (the count read with the folder list
            # just now): no item to look for on either side. Most folders of most mailboxes are so.
            continue
        path = f"{MAILBOX_ROOT}/{m.target_mailbox}/folders/{f.target_folder}/items"
        present = {str(i["id"]) for i in await _all(target, windows, str(m.target_mailbox), path)}
        gone = [i for i in ours if i.target_item not in present]
        if gone:
            differences.append(
                {
                    "kind": "mail-item-missing",
                    "object": where,
                    "message": f"{len(gone)} imported items are no longer in the trust folder",
                }
            )
        if f.source_folder not in live:
            continue  # the folder went at source since: deletions are reported by the pass, not here
        src_path = f"{MAILBOX_ROOT}/{m.source_mailbox}/folders/{f.source_folder}/items"
        ids = source_ids.setdefault(
            f.source_folder,
            {str(i["id"]) for i in await _all(source, windows, m.source_mailbox, src_path)},
        )
        carried = {i.source_item for i in ours} | (ids & not_carried)
        missing = ids - carried
        if missing:
            differences.append(
                {
                    "kind": "mail-count",
                    "object": where,
                    "message": f"{len(ids)} items at source, {len(ids & carried)} carried: "
                    f"{len(missing)} not yet in the trust (run the mail phase again)",
                }
            )
        for item in _sample(ours):
            if item.item_type in ORDINARY_FOLDERS and f.well_known != ORDINARY_FOLDERS[item.item_type]:
                continue
            sampled += 1
            differences += await _compare(source, target, windows, m, item, where)
    return checked, sampled, differences


async def _compare(
    source: TenantConnection,
    target: TenantConnection,
    windows: MailboxWindows,
    m: Mailbox,
    item: Imported,
    where: str,
) -> list[dict[str, str]]:
    assert m.target_user and m.target_mailbox
    endpoint, fields = COMPARED[str(item.item_type)]
    src = await _call(
        source, windows, m.source_mailbox, f"/users/{m.source_user}/{endpoint}/{item.source_item}"
    )
    dst = await _call(
        target, windows, m.target_mailbox, f"/users/{m.target_user}/{endpoint}/{item.target_item}"
    )
    if src.status == 404:
        return []  # gone at source since the pass: the next pass reports the deletion
    if dst.status == 404:
        return [
            {"kind": "mail-item-missing", "object": where, "message": "a sampled item is gone from the trust"}
        ]
    for resp, path in ((src, endpoint), (dst, endpoint)):
        if not resp.ok:
            raise GraphError("GET", f"/users/…/{path}", resp)
    differ = [k for k in fields if src.body.get(k) != dst.body.get(k)]
    if not differ:
        return []
    return [
        {
            "kind": "mail-item-differs",
            "object": where,
            "message": f"a sampled {endpoint[:-1]} differs from its source in {', '.join(differ)}",
        }
    ]

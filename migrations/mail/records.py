"""What the mail phase keeps in the state store: mailboxes, folders, imported items, baselines, findings.

Item rows are written only as SideWrites of a journal outcome (one transaction with it), so the store never
says an item was imported unless the journal does too, and the other way round.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from migrations.core.steps import SideWrite
from migrations.core.store import StateStore, dumps, now

PHASE = "mail"
MAILBOX_ROOT = "/admin/exchange/mailboxes"


@dataclass(frozen=True)
class Mailbox:
    source_mailbox: str
    kind: str  # primary | shared | archive
    source_user: str
    display: str
    target_user: str | None
    target_mailbox: str | None
    size: int
    items: int


@dataclass(frozen=True)
class Folder:
    source_mailbox: str
    source_folder: str
    parent_folder: str | None
    path: str
    folder_class: str
    well_known: str | None
    items: int
    target_folder: str | None
    created: bool
    delta_link: str | None


@dataclass(frozen=True)
class Imported:
    source_item: str
    source_folder: str
    source_change_key: str | None
    target_mailbox: str
    target_folder: str
    target_item: str
    target_change_key: str | None
    size: int
    item_type: str | None


def save_mailbox(store: StateStore, code: str, m: Mailbox, data: dict[str, Any]) -> None:
    with store.tx() as tx:
        tx.execute(
            "INSERT INTO mail_mailboxes (academy, source_mailbox, kind, source_user, display, target_user, "
            "target_mailbox, size, items, data, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (academy, source_mailbox) DO UPDATE SET kind = excluded.kind, "
            "source_user = excluded.source_user, display = excluded.display, target_user = "
            "excluded.target_user, target_mailbox = excluded.target_mailbox, size = excluded.size, "
            "items = excluded.items, data = excluded.data, at = excluded.at",
            (
                code,
                m.source_mailbox,
                m.kind,
                m.source_user,
                m.display,
                m.target_user,
                m.target_mailbox,
                m.size,
                m.items,
                dumps(data),
                now(),
            ),
        )


def mailboxes(store: StateStore, code: str) -> list[Mailbox]:
    return [
        Mailbox(
            r["source_mailbox"],
            r["kind"],
            r["source_user"],
            r["display"],
            r["target_user"],
            r["target_mailbox"],
            int(r["size"]),
            int(r["items"]),
        )
        for r in store.rows(
            "SELECT * FROM mail_mailboxes WHERE academy = ? ORDER BY display, source_mailbox", (code,)
        )
    ]


def save_folders(store: StateStore, code: str, mailbox: str, folders: list[Folder]) -> None:
    """The source folders as discovered; where each went (target, created, delta link) is kept."""
    with store.tx() as tx:
        for f in folders:
            tx.execute(
                "INSERT INTO mail_folders (academy, source_mailbox, source_folder, parent_folder, path, "
                "class, well_known, items) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (academy, source_mailbox, source_folder) DO UPDATE SET "
                "parent_folder = excluded.parent_folder, path = excluded.path, class = excluded.class, "
                "well_known = excluded.well_known, items = excluded.items",
                (
                    code,
                    mailbox,
                    f.source_folder,
                    f.parent_folder,
                    f.path,
                    f.folder_class,
                    f.well_known,
                    f.items,
                ),
            )


def folders(store: StateStore, code: str, mailbox: str) -> list[Folder]:
    return [
        Folder(
            r["source_mailbox"],
            r["source_folder"],
            r["parent_folder"],
            r["path"],
            r["class"],
            r["well_known"],
            int(r["items"]),
            r["target_folder"],
            bool(r["created"]),
            r["delta_link"],
        )
        for r in store.rows(
            "SELECT * FROM mail_folders WHERE academy = ? AND source_mailbox = ? ORDER BY path",
            (code, mailbox),
        )
    ]


def folder_target(code: str, mailbox: str, folder: str, target: str, created: bool) -> SideWrite:
    return SideWrite(
        "UPDATE mail_folders SET target_folder = ?, created = ? WHERE academy = ? AND source_mailbox = ? "
        "AND source_folder = ?",
        (target, int(created), code, mailbox, folder),
    )


def save_delta(store: StateStore, code: str, mailbox: str, folder: str, link: str) -> None:
    with store.tx() as tx:
        tx.execute(
            "UPDATE mail_folders SET delta_link = ? WHERE academy = ? AND source_mailbox = ? "
            "AND source_folder = ?",
            (link, code, mailbox, folder),
        )


def imported_row(code: str, source_mailbox: str, i: Imported) -> SideWrite:
    return SideWrite(
        "INSERT INTO mail_items (academy, source_mailbox, source_item, source_folder, source_change_key, "
        "target_mailbox, target_folder, target_item, target_change_key, size, item_type, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (academy, source_mailbox, source_item) "
        "DO UPDATE SET source_change_key = excluded.source_change_key, target_item = excluded.target_item, "
        "target_change_key = excluded.target_change_key, size = excluded.size, at = excluded.at",
        (
            code,
            source_mailbox,
            i.source_item,
            i.source_folder,
            i.source_change_key,
            i.target_mailbox,
            i.target_folder,
            i.target_item,
            i.target_change_key,
            i.size,
            i.item_type,
            now(),
        ),
    )


def forget_item(code: str, source_mailbox: str, source_item: str) -> SideWrite:
    return SideWrite(
        "DELETE FROM mail_items WHERE academy = ? AND source_mailbox = ? AND source_item = ?",
        (code, source_mailbox, source_item),
    )


def forget_target_item(code: str, target_mailbox: str, target_item: str) -> SideWrite:
    return SideWrite(
        "DELETE FROM mail_items WHERE academy = ? AND target_mailbox = ? AND target_item = ?",
        (code, target_mailbox, target_item),
    )


def forget_delta(code: str, target_folder: str) -> SideWrite:
    """The source folders copied into `target_folder` are read whole by the next pass."""
    return SideWrite(
        "UPDATE mail_folders SET delta_link = NULL WHERE academy = ? AND target_folder = ?",
        (code, target_folder),
    )


def forget_folder(code: str, target_folder: str) -> SideWrite:
    """A folder trustfold created is gone: the next pass creates it again and reads its source whole."""
    return SideWrite(
        "UPDATE mail_folders SET target_folder = NULL, created = 0, delta_link = NULL WHERE academy = ? "
        "AND target_folder = ?",
        (code, target_folder),
    )


def imported(store: StateStore, code: str, source_mailbox: str) -> dict[str, Imported]:
    return {
        r["source_item"]: Imported(
            r["source_item"],
            r["source_folder"],
            r["source_change_key"],
            r["target_mailbox"],
            r["target_folder"],
            r["target_item"],
            r["target_change_key"],
            int(r["size"]),
            r["item_type"],
        )
        for r in store.rows(
            "SELECT * FROM mail_items WHERE academy = ? AND source_mailbox = ?", (code, source_mailbox)
        )
    }


def baseline(store: StateStore, code: str, target_mailbox: str, target_folder: str) -> set[str] | None:
    """The items the target folder held before trustfold's first import into it; None when not taken."""
    rows = store.rows(
        "SELECT item_id FROM mail_baseline WHERE academy = ? AND target_mailbox = ? AND target_folder = ?",
        (code, target_mailbox, target_folder),
    )
    return {r["item_id"] for r in rows if r["item_id"]} if rows else None


def save_baseline(
    store: StateStore, code: str, target_mailbox: str, target_folder: str, ids: set[str]
) -> None:
    # An empty folder still gets a row (item_id ''), so "taken, empty" differs from "not taken".
    with store.tx() as tx:
        tx.executemany(
            "INSERT OR IGNORE INTO mail_baseline (academy, target_mailbox, target_folder, item_id) "
            "VALUES (?, ?, ?, ?)",
            [(code, target_mailbox, target_folder, i) for i in sorted(ids | {""})],
        )


def add_finding(
    store: StateStore, code: str, kind: str, object_id: str, display: str, message: str, handling: str
) -> None:
    with store.tx() as tx:
        tx.execute(
            "INSERT INTO mail_findings (academy, kind, object_id, display, message, handling) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (academy, kind, object_id) DO UPDATE SET "
            "display = excluded.display, message = excluded.message, handling = excluded.handling",
            (code, kind, object_id, display, message, handling),
        )


def clear_findings(store: StateStore, code: str, kinds: tuple[str, ...]) -> None:
    with store.tx() as tx:
        tx.executemany("DELETE FROM mail_findings WHERE academy = ? AND kind = ?", [(code, k) for k in kinds])


def findings(store: StateStore, code: str) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in store.rows(
            "SELECT kind, object_id, display, message, handling FROM mail_findings WHERE academy = ? "
            "ORDER BY kind, display, object_id",
            (code,),
        )
    ]


def mailbox_data(store: StateStore, code: str, mailbox: str) -> dict[str, Any]:
    rows = store.rows(
        "SELECT data FROM mail_mailboxes WHERE academy = ? AND source_mailbox = ?", (code, mailbox)
    )
    return json.loads(rows[0]["data"]) if rows else {}

"""The report's mail section: mailboxes carried, items and gigabytes, and what was not carried and why."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migrations.core.store import StateStore

GB = 1024**3


def mail_summary(store: StateStore, code: str) -> dict[str, Any]:
    """{"mailboxes", "waiting", "items", "gb", "failures": [{"kind", "count", "why"}], "findings": [...]};
    {} before the mail phase has discovered anything."""
    boxes = store.rows("SELECT target_mailbox FROM mail_mailboxes WHERE academy = ?", (code,))
    if not boxes:
        return {}
    items = store.rows(
        "SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM mail_items WHERE academy = ?", (code,)
    )[0]
    rows = store.rows(
        "SELECT kind, object_id, display, message, handling FROM mail_findings WHERE academy = ? "
        "ORDER BY kind, display, object_id",
        (code,),
    )
    why: dict[str, Counter[str]] = {}
    for r in rows:
        why.setdefault(r["kind"], Counter())[r["message"]] += 1
    return {
        "mailboxes": sum(1 for b in boxes if b["target_mailbox"]),
        "waiting": sum(1 for b in boxes if not b["target_mailbox"]),
        "items": int(items["n"]),
        "gb": round(int(items["bytes"]) / GB, 3),
        "failures": [
            {"kind": k, "count": sum(c.values()), "why": c.most_common(1)[0][0]}
            for k, c in sorted(why.items())
        ],
        "findings": [
            {k: r[k] for k in ("kind", "object_id", "display", "message", "handling")} for r in rows
        ],
    }

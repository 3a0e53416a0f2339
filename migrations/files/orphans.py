"""Copies that may have landed without being recorded: what each unfinished copy step journaled it would
upload, so a file found at its path can be recognised as trustfold's own by size and quickXorHash.

A copy's intent carries its path and the source's size and hash. A run killed after the upload and before
the outcome leaves the file in the trust tenant with nothing recording it; if the source then changes, the
next intent carries another hash, and a failed attempt ends the step without a done outcome. Every intent
since the step's last done/undone outcome therefore counts: a file at the journaled path holding any of
those contents is ours (to record, replace or roll back); anything else is not, and is never touched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from migrations.core.store import StateStore

SETTLED = ("done", "undone")  # events after which earlier intents no longer describe anything in doubt


@dataclass
class Unfinished:
    """One copy step without a done outcome since its intents: the latest intent's args, the latest event,
    and every content (size, quickXorHash, source creation time) an intent since then meant to upload."""

    args: dict[str, Any]
    event: str
    contents: set[tuple[int, str, str]] = field(default_factory=set)

    def holds_ours(self, size: int | None, quick_xor: str | None, created: str | None) -> bool:
        return holds_ours(self.contents, size, quick_xor, created)


def content(args: dict[str, Any]) -> tuple[int, str, str] | None:
    """What a copy intent meant to upload, or None (a replacement, or no hash to know it by)."""
    if not args.get("hash") or args.get("size") is None or args.get("replace_id"):
        return None
    return int(args["size"]), str(args["hash"]), str(args.get("created") or "")[:19]


def holds_ours(contents: Any, size: int | None, quick_xor: str | None, created: str | None) -> bool:
    """A file is one of our uploads when its size and quickXorHash are those of an intent and it carries the
    source creation time the upload set (a trust user's identical upload has its own); zero-byte files get
    their timestamps in a second request, so for them size and hash decide."""
    if size is None or quick_xor is None:
        return False
    for c_size, c_hash, c_created in contents:
        if (int(size), quick_xor) != (int(c_size), c_hash):
            continue
        if int(size) == 0 or not c_created or str(created or "")[:19] == c_created:
            return True
    return False


def unfinished_copies(store: StateStore, academy: str, phase: str) -> dict[str, Unfinished]:
    """Per copy step key with intents and no done (or undone) since: what it journaled. `event` is the
    latest: intent (in doubt), failed, or an undo event of a rollback that met it."""
    out: dict[str, Unfinished] = {}
    for r in store.rows(
        "SELECT step_key, event, data FROM journal WHERE academy = ? AND phase = ? AND op = 'copy' "
        "ORDER BY seq",
        (academy, phase),
    ):
        key, event = r["step_key"], r["event"]
        if event in SETTLED:
            out.pop(key, None)
            continue
        if event == "intent":
            args = dict(json.loads(r["data"] or "{}").get("args") or {})
            u = out.setdefault(key, Unfinished(args, event))
            u.args, u.event = args, event
            c = content(args)
            if c is not None:
                u.contents.add(c)
        elif key in out:
            out[key].event = event
    return out

"""Stale mapping: a target name taken in the trust tenant after discover mapped an academy object to it.

`plan` re-checks every stored target name (UPNs for users, mailNicknames for groups) that is still to be
created against the trust tenant as it is now. A row trustfold computed takes the next deterministic number
(as discover would have chosen), with a note; a row the operator imported is theirs to change, so planning
stops (bad input, exit 2) naming the mapping file line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from migrations.core.journal import Journal
from migrations.core.store import StateStore, now
from migrations.graph.client import TenantConnection
from migrations.identity.context import marker_value
from migrations.identity.mapping import TargetDirectory, export_csv, read_target
from migrations.identity.plan import inventory
from trust import Academy, Trust
from trust.errors import ConfigError


@dataclass
class Renames:
    users: dict[str, str] = field(default_factory=dict)  # source id -> new target UPN
    groups: dict[str, str] = field(default_factory=dict)  # source id -> new target mailNickname
    notes: list[str] = field(default_factory=list)
    _rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # kind, source id, key, note

    def __bool__(self) -> bool:
        return bool(self.users or self.groups)


def _export_line(store: StateStore, academy: str, kind: str, source_id: str) -> int | None:
    """The row's line in `trustfold mapping export` (header is line 1), when the import line is unknown."""
    for n, line in enumerate(export_csv(store, academy).splitlines(), start=1):
        if line.startswith(f"{kind},{source_id},"):
            return n
    return None


async def recheck_targets(
    trust: Trust,
    academy: Academy,
    store: StateStore,
    target: TenantConnection,
    kinds: Iterable[str],
    *,
    save: bool,
) -> Renames:
    """Names to renumber; stored (with their notes) when `save`. Raises ConfigError for an imported row."""
    kinds = tuple(kinds)
    code = academy.code
    directory: TargetDirectory = await read_target(trust, target)
    done: set[str] = set()
    for phase in ("users", "groups"):
        done |= {k for k, h in Journal.state(store, code, phase).items() if h["event"] == "done"}
    rows = [
        {**dict(r), "data": json.loads(r["data"] or "{}")}
        for r in store.rows(
            "SELECT * FROM mappings WHERE academy = ? AND action = 'create' AND target_key IS NOT NULL "
            "ORDER BY kind DESC, source_key, source_id",
            (code,),
        )
    ]
    taken = {
        r["target_key"].lower()
        for r in store.rows(
            "SELECT target_key FROM mappings WHERE action <> 'skip' AND target_key IS NOT NULL", ()
        )
    }
    taken |= set(directory.users) | set(directory.groups)
    sources = {k: inventory(store, code, k) for k in ("user", "group")}
    out = Renames()
    for row in rows:
        kind, sid, key = row["kind"], row["source_id"], row["target_key"]
        if kind not in kinds or f"{kind}:{sid}" in done:
            continue
        existing = (directory.users if kind == "user" else directory.groups).get(key.lower())
        if existing is None or existing[1] == marker_value(academy, sid):
            continue  # free, or our own object from an earlier run
        if row["origin"] == "imported":
            where = row["data"].get("import_file") or f"the mapping file (`trustfold mapping export {code}`)"
            line = row["data"].get("import_line") or _export_line(store, code, kind, sid)
            raise ConfigError(
                where,
                f"{kind} {row['source_key'] or sid}: '{key}' now exists in the trust tenant (created "
                "after discover, not by trustfold); choose another target, or action match to adopt it, "
                "and import the file again",
                line=line,
                field="target_upn",
            )
        new = _next_name(trust, academy, kind, taken, sources[kind].get(sid, {}), sid)
        taken.add(new.lower())
        note = f"{key} was taken in the trust tenant after discover; numbered {new}"
        (out.users if kind == "user" else out.groups)[sid] = new
        out.notes.append(f"{row['source_key'] or sid}: {note}")
        out._rows.append((kind, sid, new, note))
    if save and out._rows:
        at = now()
        with store.tx() as tx:
            tx.executemany(
                "UPDATE mappings SET target_key = ?, note = ?, updated_at = ? "
                "WHERE academy = ? AND kind = ? AND source_id = ? AND origin = 'computed'",
                [(new, note, at, code, kind, sid) for kind, sid, new, note in out._rows],
            )
    return out


def _next_name(
    trust: Trust, academy: Academy, kind: str, taken: set[str], src: dict[str, Any], sid: str
) -> str:
    """The next free name by the same deterministic numbering discover uses (identity/mapping.py)."""
    n = 1
    if kind == "user":
        while True:
            candidate = trust.names.user_upn(
                academy,
                src.get("givenName"),
                src.get("surname"),
                src.get("mailNickname"),
                suffix=n,
                source_id=sid,
            )
            if candidate.lower() not in taken:
                return candidate
            n += 1
    base = trust.names.group_mail_nickname(
        academy, src.get("mailNickname") or src.get("displayName") or "group"
    )
    while True:
        n += 1
        candidate = f"{base[: 64 - len(str(n)) - 1]}-{n}"
        if candidate.lower() not in taken:
            return candidate

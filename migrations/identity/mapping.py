"""Mapping: each source user and group to its identity in the trust tenant, by trust/'s naming rules.

Collisions (with objects already in the trust tenant, or with another academy's mapping) are resolved by a
deterministic numeric suffix and noted, never merged: an existing target user is matched only when the
operator says `match` in an imported mapping file, and then only as the mapping guard allows
(migrations/identity/guard.py: acknowledged for objects trustfold did not create, never a protected one).
Guests are never created (a guest carried as a member would get a member's access and a staff licence).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from migrations.core.errors import PlanningError
from migrations.core.store import StateStore, dumps, now
from migrations.graph.client import TenantConnection
from migrations.identity.context import marker_property, marker_value
from migrations.identity.guard import ACKNOWLEDGE, Protection, read_protection, refusal
from migrations.safety.sanitise import clean_name, csv_row, csv_value
from trust import Academy, Trust
from trust.azure_rules import check as name_problem
from trust.errors import ConfigError

COLUMNS = ("kind", "source_id", "source_upn", "display_name", "target_upn", "action", "note", "acknowledge")
# Files exported before the mapping guard have no acknowledge column: they still import (a match in them is
# then refused unless the guard lets it stand without acknowledgement).
REQUIRED = COLUMNS[:-1]
GUEST_NOTE = (
    "guest account: never created as a member; invite it as a guest in the trust tenant (Entra admin centre, "
    "or Graph POST /invitations with User.Invite.All), then map it with match and acknowledge "
    f"{ACKNOWLEDGE}"
)
ACTIONS = ("create", "match", "skip")
T = TypeVar("T")


@dataclass
class TargetDirectory:
    """What the trust tenant already holds: UPN / mailNickname -> (id, provenance marker)."""

    users: dict[str, tuple[str, str | None]]
    groups: dict[str, tuple[str, str | None]]
    names: dict[str, str] = field(default_factory=dict)  # object id -> display name
    protection: Protection = field(default_factory=Protection)


async def read_target(trust: Trust, conn: TenantConnection, *, guarded: bool = False) -> TargetDirectory:
    """`guarded`: also read what protects trust objects (conditional access policies), which only judging a
    `match` needs (mapping import, the plan's guard): discovery and renumbering make no extra request."""
    marker = marker_property(trust)
    names: dict[str, str] = {}
    users: dict[str, tuple[str, str | None]] = {}
    async for u in conn.pages(
        "/users", {"$select": f"id,userPrincipalName,displayName,{marker}", "$top": 999}
    ):
        users[u["userPrincipalName"].lower()] = (u["id"], u.get(marker))
        names[u["id"]] = str(u.get("displayName") or u["userPrincipalName"])
    groups: dict[str, tuple[str, str | None]] = {}
    listed = [
        g
        async for g in conn.pages(
            "/groups",
            {"$select": f"id,mailNickname,displayName,isAssignableToRole,{marker}", "$top": 999},
        )
    ]
    for g in listed:
        groups[str(g.get("mailNickname") or "").lower()] = (g["id"], g.get(marker))
        names[g["id"]] = str(g.get("displayName") or g.get("mailNickname") or g["id"])
    protection = await read_protection(trust, conn, listed) if guarded else Protection()
    return TargetDirectory(users, groups, names, protection)


def _target_display(name: str) -> str:
    """The display name created in the trust tenant: spoofing and control characters removed or replaced
    (discovery records each such name as a spoofing-characters finding)."""
    return clean_name(name) if name else name


def _rows(store: StateStore, academy: str) -> list[dict[str, Any]]:
    out = []
    for r in store.rows(
        "SELECT * FROM mappings WHERE academy = ? ORDER BY kind DESC, source_key, source_id", (academy,)
    ):
        d = dict(r)
        d["data"] = json.loads(d["data"] or "{}")
        out.append(d)
    return out


def _claimed_elsewhere(store: StateStore, academy: str) -> dict[str, str]:
    """Target UPNs and mailNicknames other academies' mappings already create: key -> academy."""
    return {
        r["target_key"].lower(): r["academy"]
        for r in store.rows(
            "SELECT academy, target_key FROM mappings "
            "WHERE academy <> ? AND action = 'create' AND target_key IS NOT NULL",
            (academy,),
        )
    }


def compute_mapping(
    trust: Trust, academy: Academy, store: StateStore, target: TargetDirectory
) -> dict[str, int]:
    names = trust.names
    code = academy.code
    inv = {
        (r["kind"], r["object_id"]): json.loads(r["data"])
        for r in store.rows(
            "SELECT kind, object_id, data FROM inventory "
            "WHERE academy = ? AND removed = 0 AND kind IN ('user', 'group')",
            (code,),
        )
    }
    imported = {(r["kind"], r["source_id"]): r for r in _rows(store, code) if r["origin"] == "imported"}
    elsewhere = _claimed_elsewhere(store, code)
    taken: set[str] = set(elsewhere)
    taken.update(target.users, target.groups)
    rows: list[tuple[Any, ...]] = []
    for r in imported.values():
        if r["target_key"]:
            taken.add(r["target_key"].lower())
    opts = academy.phases.users
    users = sorted(
        ((oid, u) for (kind, oid), u in inv.items() if kind == "user"),
        key=lambda x: (str(x[1].get("userPrincipalName", "")).lower(), x[0]),
    )
    for sid, u in users:
        if ("user", sid) in imported:
            continue
        note, action = "", "create"
        if u.get("userType") == "Guest":
            note = (
                GUEST_NOTE if opts.include_guests else "guest account (phases.users.include_guests is false)"
            )
            action = "skip"
        elif u.get("accountEnabled") is False and not opts.include_disabled:
            action, note = "skip", "disabled account (phases.users.include_disabled is false)"
        target_upn = None
        if action == "create":
            mine = marker_value(academy, sid)
            suffix = 0
            while True:
                candidate = names.user_upn(
                    academy,
                    u.get("givenName"),
                    u.get("surname"),
                    u.get("mailNickname"),
                    suffix=suffix,
                    source_id=sid,
                )
                existing = target.users.get(candidate.lower())
                if existing and existing[1] == mine:
                    break  # created by trustfold for this very source user in an earlier run
                if candidate.lower() not in taken:
                    break
                suffix += 1
            if suffix:
                first = names.user_upn(
                    academy, u.get("givenName"), u.get("surname"), u.get("mailNickname"), source_id=sid
                )
                owner = elsewhere.get(first.lower())
                why = (
                    f"academy '{owner}'" if owner else "an existing trust-tenant object or another user here"
                )
                note = f"{first} is taken by {why}; numbered"
            target_upn = candidate
            taken.add(candidate.lower())
        rows.append(
            (
                "user",
                sid,
                u.get("userPrincipalName"),
                u.get("displayName"),
                target_upn,
                action,
                note,
                {"target_display_name": _target_display(u.get("displayName") or "") or None},
            )
        )
    groups = sorted(
        ((oid, g) for (kind, oid), g in inv.items() if kind == "group"),
        key=lambda x: (str(x[1].get("mailNickname", "")).lower(), x[0]),
    )
    for sid, g in groups:
        if ("group", sid) in imported:
            continue
        display = names.group_display_name(
            academy, _target_display(g.get("displayName") or g.get("mailNickname") or sid)
        )
        if not g.get("creatable", True):
            rows.append(
                (
                    "group",
                    sid,
                    g.get("mailNickname"),
                    g.get("displayName"),
                    None,
                    "skip",
                    "mail-enabled security group or distribution list: Graph cannot create it",
                    {"target_display_name": display},
                )
            )
            continue
        base = names.group_mail_nickname(academy, g.get("mailNickname") or g.get("displayName") or "group")
        nick, n = base, 1
        mine = marker_value(academy, sid)
        while nick.lower() in taken and target.groups.get(nick.lower(), (None, None))[1] != mine:
            n += 1
            nick = f"{base[: 64 - len(str(n)) - 1]}-{n}"
        taken.add(nick.lower())
        note = f"{base} is taken; numbered" if nick != base else ""
        rows.append(
            (
                "group",
                sid,
                g.get("mailNickname"),
                g.get("displayName"),
                nick,
                "create",
                note,
                {"target_display_name": display},
            )
        )
    at = now()
    with store.tx() as tx:
        tx.execute("DELETE FROM mappings WHERE academy = ? AND origin = 'computed'", (code,))
        tx.executemany(
            "INSERT INTO mappings (academy, kind, source_id, source_key, display_name, target_key, "
            "action, "
            "note, "
            "origin, data, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'computed', ?, ?)",
            [
                (code, k, sid, skey, dname, tkey, action, note, dumps(data), at)
                for k, sid, skey, dname, tkey, action, note, data in rows
            ],
        )
    counts: dict[str, int] = {}
    for r in _rows(store, code):
        counts[f"{r['kind']}s_{r['action']}"] = counts.get(f"{r['kind']}s_{r['action']}", 0) + 1
    return counts


def export_csv(store: StateStore, academy: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in _rows(store, academy):
        # Every cell through the sanitising layer: no formula, no control character (import reverses it).
        w.writerow(
            csv_row(
                [
                    r["kind"],
                    r["source_id"],
                    r["source_key"] or "",
                    r["display_name"] or "",
                    r["target_key"] or "",
                    r["action"],
                    r["note"] or "",
                    ACKNOWLEDGE if r["data"].get("acknowledged") else "",
                ]
            )
        )
    return buf.getvalue()


class _CountedLines:
    """The CSV text line by line, counting what the csv module has been given: on a csv.Error the last line
    handed over is the one it failed on (its own line_num does not count that line yet)."""

    def __init__(self, text: str):
        self.lines = iter(io.StringIO(text))
        self.count = 0

    def __iter__(self) -> _CountedLines:
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.count += 1
        return line


def _csv_checked(path: Path, source: _CountedLines, read: Callable[[], T]) -> T:
    """csv.Error (a field over the csv module's size limit, a stray NUL...) as bad input naming the line."""
    try:
        return read()
    except csv.Error as exc:
        raise ConfigError(path, f"not a readable CSV line ({exc})", line=max(source.count, 1)) from None


def _csv_records(path: Path, source: _CountedLines, reader: csv.DictReader[str]) -> Iterator[dict[str, str]]:
    while True:
        rec = _csv_checked(path, source, lambda: next(reader, None))
        if rec is None:
            return
        yield rec


def import_csv(
    trust: Trust, academy: Academy, store: StateStore, path: Path, target: TargetDirectory
) -> dict[str, int]:
    """Validate an edited mapping; store it only if every line is right (errors name file:line:column)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"cannot read mapping file: {exc}") from None
    source = _CountedLines(text)
    reader = csv.DictReader(source)
    header = _csv_checked(path, source, lambda: reader.fieldnames) or []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ConfigError(
            path, f"missing column(s) {', '.join(missing)}; expected header {','.join(COLUMNS)}", line=1
        )
    inv = {
        (r["kind"], r["object_id"]): r["data"]
        for r in store.rows(
            "SELECT kind, object_id, data FROM inventory WHERE academy = ? AND removed = 0", (academy.code,)
        )
    }
    if not inv:
        raise ConfigError(
            path, f"no inventory for {academy.code}; run `trustfold discover {academy.code}` first"
        )
    elsewhere = _claimed_elsewhere(store, academy.code)
    seen_sources: dict[tuple[str, str], int] = {}
    seen_targets: dict[str, int] = {}
    rows = []
    for n, rec in enumerate(_csv_records(path, source, reader), start=2):

        def bad(column: str, message: str, line: int = n) -> ConfigError:
            return ConfigError(path, message, line=line, field=column)

        kind = csv_value(rec.get("kind"))
        sid = csv_value(rec.get("source_id"))
        action = csv_value(rec.get("action"))
        target_key = csv_value(rec.get("target_upn"))
        acknowledge = csv_value(rec.get("acknowledge"))
        if kind not in ("user", "group"):
            raise bad("kind", f"'{kind}' is not a kind (user or group)")
        if action not in ACTIONS:
            raise bad("action", f"'{action}' is not an action ({', '.join(ACTIONS)})")
        if (kind, sid) not in inv:
            raise bad("source_id", f"{kind} '{sid}' is not in {academy.code}'s inventory")
        if acknowledge not in ("", ACKNOWLEDGE):
            raise bad(
                "acknowledge", f"'{acknowledge}' is not an acknowledgement (leave it empty or {ACKNOWLEDGE})"
            )
        if acknowledge and action != "match":
            raise bad("acknowledge", f"{ACKNOWLEDGE} acknowledges a match; this line's action is {action}")
        if (
            kind == "user"
            and action == "create"
            and json.loads(inv[(kind, sid)] or "{}").get("userType") == "Guest"
        ):
            raise bad("action", f"'{csv_value(rec.get('source_upn'))}' is a {GUEST_NOTE}; or skip it")
        if (kind, sid) in seen_sources:
            raise bad("source_id", f"{kind} '{sid}' appears twice (also line {seen_sources[(kind, sid)]})")
        seen_sources[(kind, sid)] = n
        shown = _target_display(csv_value(rec.get("display_name"))) or None
        if kind == "group" and shown:
            shown = trust.names.group_display_name(academy, shown)
        # Where the operator made this row: a stale-name refusal at plan time names the line to change.
        data: dict[str, Any] = {"target_display_name": shown, "import_file": str(path), "import_line": n}
        if action != "skip":
            if not target_key:
                raise bad("target_upn", f"action {action} needs a target")
            low = target_key.lower()
            if low in seen_targets:
                raise bad("target_upn", f"'{target_key}' is used twice (also line {seen_targets[low]})")
            seen_targets[low] = n
            if kind == "user":
                local, at_sign, domain = target_key.rpartition("@")
                if not at_sign:
                    raise bad("target_upn", f"'{target_key}' is not a UPN (local@domain)")
                problem = name_problem("upn_local", local)
                if problem:
                    raise bad("target_upn", f"'{target_key}': local part {problem}")
                if domain.lower() not in trust.settings.tenant.domains:
                    raise bad(
                        "target_upn",
                        f"'{domain}' is not a domain of the trust tenant "
                        f"({', '.join(trust.settings.tenant.domains)})",
                    )
                existing = target.users.get(low)
            else:
                problem = name_problem("mail_nickname", target_key)
                if problem:
                    raise bad("target_upn", f"group mailNickname '{target_key}' {problem}")
                existing = target.groups.get(low)
            if action == "match":
                if not existing:
                    raise bad("target_upn", f"match: no {kind} '{target_key}' exists in the trust tenant")
                refused = refusal(
                    academy,
                    target.protection,
                    kind,
                    target_key,
                    existing[0],
                    existing[1],
                    target.names.get(existing[0]),
                    acknowledge == ACKNOWLEDGE,
                )
                if refused:
                    raise bad(*refused)
                data["target_id"] = existing[0]
                data["target_name"] = target.names.get(existing[0])
                data["acknowledged"] = acknowledge == ACKNOWLEDGE
            elif low in elsewhere:
                raise bad("target_upn", f"'{target_key}' is already mapped by academy '{elsewhere[low]}'")
            elif existing and existing[1] != marker_value(academy, sid):
                raise bad(
                    "target_upn",
                    f"'{target_key}' already exists in the trust tenant; use action match to "
                    "adopt it, or choose another",
                )
        rows.append(
            (
                kind,
                sid,
                csv_value(rec.get("source_upn")),
                csv_value(rec.get("display_name")),
                target_key or None,
                action,
                csv_value(rec.get("note")),
                data,
            )
        )
    at = now()
    with store.tx() as tx:
        for kind, sid, skey, dname, tkey, action, note, data in rows:
            tx.execute(
                "DELETE FROM mappings WHERE academy = ? AND kind = ? AND source_id = ?",
                (academy.code, kind, sid),
            )
            tx.execute(
                "INSERT INTO mappings (academy, kind, source_id, source_key, display_name, target_key, "
                "action, "
                "note, origin, data, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'imported', ?, ?)",
                (academy.code, kind, sid, skey, dname, tkey, action, note, dumps(data), at),
            )
    return {"imported": len(rows)}


async def guard_matches(trust: Trust, academy: Academy, store: StateStore, conn: TenantConnection) -> None:
    """Every stored `match` checked against the trust tenant as it is now (PlanningError, exit 1): an object
    protected since the import, or a match stored before the guard existed without acknowledgement, stops
    the plan and names the mapping line to change."""
    matches = [r for r in _rows(store, academy.code) if r["action"] == "match"]
    if not matches:
        return
    target = await read_target(trust, conn, guarded=True)
    markers = {oid: marker for oid, marker in [*target.users.values(), *target.groups.values()]}
    problems = []
    for r in matches:
        tid = r["data"].get("target_id")
        if not tid or tid not in markers:
            continue  # gone from the trust tenant: the plan notes it where the object is used
        refused = refusal(
            academy,
            target.protection,
            r["kind"],
            r["target_key"],
            tid,
            markers[tid],
            target.names.get(tid),
            bool(r["data"].get("acknowledged")),
        )
        if refused:
            where = r["data"].get("import_file")
            line = f"{where}:{r['data'].get('import_line')}: " if where else ""
            problems.append(f"{line}{refused[0]}: {refused[1]}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PlanningError(
            f"mapping guard: {problems[0]}{more}; fix the mapping file and `trustfold mapping import "
            f"{academy.code} FILE`"
        )

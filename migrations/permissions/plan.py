"""What the trust tenant's copies should grant, and the steps that get them there.

Each direct grant on a shared source item is mapped through the reviewed mapping: a user or group the
identity phases created (or matched) is granted the same roles on the copy with `invite` (no e-mail, sign-in
required); an organisation link becomes an organisation link of the trust. Everything else is a finding with
its rule, never carried silently and never widened:

- anonymous ("Anyone") links: not re-created unless the academy allows them (phases.files.sharing
  .anonymous_links: allow); the DfE baseline forbids public data by default;
- organisation links when the academy forbids them (phases.files.sharing.organization_links: forbid);
- guests (listed for the operator: the trust decides whom to invite), users and groups not migrated (skipped
  in the mapping, disabled, or gone from the directory), SharePoint site principals;
- inherited grants: carried by the parent they come from, not repeated on every item;
- items not (yet) copied by the files phase: their sharing follows when they are.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from migrations.core.journal import Journal
from migrations.core.plan import Plan
from migrations.core.steps import Step
from migrations.core.store import StateStore
from migrations.permissions.grants import Grant, Signature, parse
from migrations.permissions.scan import shared_items
from trust import Academy

PHASE = "permissions"
FORWARD = ("share-invite", "share-link")


@dataclass
class Finding:
    kind: str
    object_id: str
    display: str
    message: str
    handling: str


@dataclass
class Target:
    drive: str
    item: str
    path: str
    drive_key: str
    source_item: str


@dataclass
class Expected:
    """Per target item: the grants it should hold (by signature), with display names for messages."""

    items: dict[str, Target] = field(default_factory=dict)  # target item id -> where it is
    grants: dict[str, Counter[Signature]] = field(default_factory=dict)
    names: dict[Signature, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    carried: Counter[str] = field(default_factory=Counter)


def _targets(store: StateStore, code: str, table: str, phase: str, key: str) -> dict[str, str]:
    """Source id -> trust-tenant id for mapped users or groups (created by trustfold, or matched)."""
    done = {k: h["target_id"] for k, h in Journal.state(store, code, phase).items() if h["event"] == "done"}
    out: dict[str, str] = {}
    for r in store.rows(
        "SELECT source_id, action, data FROM mappings WHERE academy = ? AND kind = ? AND action != 'skip'",
        (code, table),
    ):
        data = json.loads(r["data"] or "{}")
        tid = data.get("target_id") if r["action"] == "match" else done.get(f"{key}:{r['source_id']}")
        if tid:
            out[r["source_id"]] = str(tid)
    return out


def expected(store: StateStore, academy: Academy) -> Expected:
    code = academy.code
    rules = academy.phases.files.sharing
    users = _targets(store, code, "user", "users", "user")
    groups = _targets(store, code, "group", "groups", "group")
    guests = {
        r["object_id"]
        for r in store.rows(
            "SELECT object_id, data FROM inventory WHERE academy = ? AND kind = 'user'", (code,)
        )
        if json.loads(r["data"]).get("userType") == "Guest"
    }
    skipped = {
        r["source_id"]: r["note"] or "skipped in the mapping"
        for r in store.rows(
            "SELECT source_id, note FROM mappings WHERE academy = ? AND action = 'skip'", (code,)
        )
    }
    copies = {
        (r["drive_key"], r["source_id"]): Target(
            r["target_drive"], r["target_id"], r["path"], r["drive_key"], r["source_id"]
        )
        for r in store.rows(
            "SELECT drive_key, source_id, target_drive, target_id, path FROM file_copies WHERE academy = ?",
            (code,),
        )
    }
    names = {
        (r["drive_key"], r["item_id"]): r["name"]
        for r in store.rows("SELECT drive_key, item_id, name FROM drive_items WHERE academy = ?", (code,))
    }
    out = Expected()
    for drive_key, sid, perms in shared_items(store, code):
        target = copies.get((drive_key, sid))
        where = target.path if target else names.get((drive_key, sid), sid)

        def note(
            kind: str,
            g: Grant,
            message: str,
            handling: str,
            at: str = f"{drive_key}|{sid}",
            where: str = where,
        ) -> None:
            out.findings.append(Finding(kind, f"{at}|{g.perm_id}", where, message, handling))

        for g in sorted((parse(p) for p in perms), key=lambda g: g.perm_id):
            if g.inherited:
                note("sharing-inherited", g, f"{g.display}: inherited", "carried by the parent it comes from")
                continue
            if g.owner:
                note("sharing-owner", g, f"{g.display} owns it", "not carried: the trust drive has its owner")
                continue
            sig: Signature | None = None
            if g.kind == "link":
                if g.link_scope == "anonymous" and rules.anonymous_links != "allow":
                    note(
                        "sharing-anonymous-link",
                        g,
                        f"anyone with the link may {g.link_type} it",
                        "not re-created: public links are forbidden (DfE baseline; "
                        "phases.files.sharing.anonymous_links)",
                    )
                elif g.link_scope == "organization" and rules.organization_links == "forbid":
                    note(
                        "sharing-organization-link",
                        g,
                        f"everyone in the academy may {g.link_type} it",
                        "not re-created: organisation links are forbidden for this academy "
                        "(phases.files.sharing.organization_links)",
                    )
                elif g.link_scope == "users":
                    note(
                        "sharing-people-link",
                        g,
                        f"a link for specific people ({g.link_type})",
                        "not re-created: share with the people by name in the trust tenant",
                    )
                else:
                    sig = g.signature()
            elif g.kind == "user" and g.principal in users:
                sig = g.signature(users[g.principal])
            elif g.kind == "group" and g.principal in groups:
                sig = g.signature(groups[g.principal])
            elif g.kind == "user" and g.principal in guests:
                note(
                    "sharing-guest",
                    g,
                    f"guest {g.display} may {'/'.join(g.roles)}",
                    "listed, not carried: invite guests in the trust tenant deliberately",
                )
            elif g.kind in ("user", "group", "siteUser"):
                why = skipped.get(g.principal, "not in the mapping (account gone or never discovered)")
                note(
                    "sharing-unmigrated-user" if g.kind != "group" else "sharing-unmigrated-group",
                    g,
                    f"{g.display} may {'/'.join(g.roles)}: {why}",
                    "not carried: the principal has no identity in the trust tenant",
                )
            else:
                note(
                    "sharing-site-principal",
                    g,
                    f"{g.display} ({g.kind})",
                    "not carried: SharePoint site groups belong to the site; the trust site has its own",
                )
            if sig is None:
                continue
            if target is None:
                note(
                    "sharing-not-copied",
                    g,
                    f"{g.display}: the item is not in the trust tenant",
                    "carried when the files phase has copied the item",
                )
                continue
            out.items[target.item] = target
            out.grants.setdefault(target.item, Counter())[sig] += 1
            out.names[sig] = g.display
            out.carried["link-" + g.link_scope if g.kind == "link" else g.kind] += 1
    return out


def ours(store: StateStore, code: str) -> dict[str, dict[str, Any]]:
    """Every permission trustfold added in the trust tenant and has not removed: perm id -> record."""
    state = Journal.state(store, code, PHASE)
    out: dict[str, dict[str, Any]] = {}
    for key, h in state.items():
        if h["op"] not in FORWARD or h["event"] != "done":
            continue
        d = h["data"]
        for g in d.get("grants", []):
            out[g["perm_id"]] = {
                **g,
                "sig": tuple(g["sig"]),
                "target_drive": d["target_drive"],
                "target_item": d["target_item"],
                "path": d.get("path", ""),
                "step": key,
                "op": h["op"],
            }
    for key, h in state.items():
        gone = (key.startswith("undo:") and h["event"] == "undone") or (
            key.startswith("revoke:") and h["event"] == "done"
        )
        if gone:
            out.pop(key.split(":", 1)[1], None)
    return out


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("|".join(sorted(parts)).encode()).hexdigest()[:10]


def plan_permissions(store: StateStore, academy: Academy) -> tuple[Plan, Expected]:
    code = academy.code
    exp = expected(store, academy)
    mine = ours(store, code)
    have: dict[str, Counter[Signature]] = {}
    by_sig: dict[tuple[str, Signature], list[str]] = {}
    for pid, rec in sorted(mine.items()):
        have.setdefault(rec["target_item"], Counter())[rec["sig"]] += 1
        by_sig.setdefault((rec["target_item"], rec["sig"]), []).append(pid)
    steps: list[Step] = []
    already = 0
    for item_id in sorted(exp.items):
        t = exp.items[item_id]
        want, got = exp.grants[item_id], have.get(item_id, Counter())
        already += sum((want & got).values())
        missing = want - got
        base = {
            "drive_key": t.drive_key,
            "source_item": t.source_item,
            "target_drive": t.drive,
            "target_item": t.item,
            "path": t.path,
        }
        by_roles: dict[str, list[dict[str, str]]] = {}
        for sig, n in sorted(missing.items()):
            for _ in range(n):
                if sig[0] == "link":
                    steps.append(
                        Step(
                            f"link:{t.drive_key}:{t.source_item}:{sig[1]}:{sig[2]}",
                            "share-link",
                            {**base, "type": sig[1], "scope": sig[2]},
                        )
                    )
                else:
                    by_roles.setdefault(sig[2], []).append(
                        {"kind": sig[0], "id": sig[1], "display": exp.names.get(sig, sig[1])}
                    )
        for roles, recipients in sorted(by_roles.items()):
            ids = [r["id"] for r in recipients]
            steps.append(
                Step(
                    f"invite:{t.drive_key}:{t.source_item}:{roles}:{_digest(ids)}",
                    "share-invite",
                    {**base, "roles": roles.split(","), "recipients": recipients},
                )
            )
    for item_id, got in sorted(have.items()):
        extra = got - exp.grants.get(item_id, Counter())
        for sig, n in sorted(extra.items()):
            for pid in by_sig[(item_id, sig)][:n]:
                rec = mine[pid]
                steps.append(
                    Step(
                        f"revoke:{pid}",
                        "share-revoke",
                        {
                            "target_drive": rec["target_drive"],
                            "target_item": item_id,
                            "perm_id": pid,
                            "path": rec["path"],
                            "display": rec.get("display", sig[1]),
                        },
                    )
                )
    kinds = Counter(f.kind for f in exp.findings)
    notes = [
        "carried: " + (", ".join(f"{n} {k}" for k, n in sorted(exp.carried.items())) or "nothing"),
        "not carried: " + (", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "nothing"),
    ]
    return Plan(code, PHASE, steps, notes, already), exp


def save_findings(store: StateStore, code: str, findings: list[Finding]) -> None:
    with store.tx() as tx:
        tx.execute("DELETE FROM share_findings WHERE academy = ?", (code,))
        tx.executemany(
            "INSERT INTO share_findings (academy, kind, object_id, display, message, handling) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (academy, kind, object_id) DO NOTHING",
            [(code, f.kind, f.object_id, f.display, f.message, f.handling) for f in findings],
        )

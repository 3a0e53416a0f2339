"""What the trust tenant's copies should grant, and the steps that get them there.

Each direct grant on a shared source item is mapped through the reviewed mapping: a user or group the
identity phases created (or matched) is granted the same roles on the copy with `invite` (no e-mail, sign-in
required). Sharing keeps its audience (docs/contracts.md, "Sharing keeps its audience"): the copy never grants
more people than the source did, and narrower only with a finding. Everything else is a finding with its rule,
never carried silently and never widened:

- an organisation link ("people in your organization": one school in the legacy tenant) is carried as a grant
  of the same roles to the academy's people group (`<academy> Everyone`, created and kept equal to the
  academy's migrated members by this phase, once per academy); a trust-wide link only when the academy says
  `organization_links: trust-wide` (a finding in the report); none when it says `forbid`;
- a "specific people" link is carried as grants to its mapped people, never as a link;
- link restrictions: an expiry is re-applied where Graph can set one (links it creates); where it cannot (a
  grant to a group or a person), a password (OneDrive personal only) or block-download (not settable in
  v1.0), the stricter choice: not carried, with a finding; an expired link grants nothing and is not carried;
- anonymous ("Anyone") links: not re-created unless the academy allows them (phases.files.sharing
  .anonymous_links: allow); the DfE baseline forbids public data by default;
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
from migrations.permissions.grants import Grant, Signature, expired, parse, split_kind
from migrations.permissions.scan import shared_items
from trust import Academy, Trust

PHASE = "permissions"
FORWARD = ("share-invite", "share-link")
AUDIENCE = "audience"  # the step key of the academy's people group, and its placeholder before it exists
# Findings that say how something was carried rather than why it was not.
CARRIED_FINDINGS = ("sharing-trust-wide-link",)
# A grant SharePoint refused at run time for the library's limit of items with unique permissions: kept by the
# step's outcome (permissions/apply.py), not by a plan.
SCOPE_LIMIT_KIND = "sharing-scope-limit"


@dataclass
class Audience:
    """The academy's people group: who should be in it, and what the journal says of it."""

    display_name: str
    mail_nickname: str
    description: str
    members: dict[str, str]  # trust user id -> display name: the academy's migrated members (no guests)
    group_id: str | None = None  # the group, once created (journal)
    recorded: set[str] = field(default_factory=set)  # members its last membership sync left it with
    needed: bool = False  # some academy-wide sharing is carried to it

    @property
    def principal(self) -> str:
        return self.group_id or AUDIENCE


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
    audience: Audience | None = None


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


def audience_state(store: StateStore, code: str) -> tuple[str | None, set[str]]:
    """(group id, members recorded by its last membership sync) from the journal; (None, {}) before the group
    is created or after a rollback deleted it."""
    made = store.rows(
        "SELECT seq, event, target_id FROM journal WHERE academy = ? AND phase = ? AND step_key = ? "
        "ORDER BY seq DESC LIMIT 1",
        (code, PHASE, AUDIENCE),
    )
    if not made or made[0]["event"] != "done" or not made[0]["target_id"]:
        return None, set()
    synced = store.rows(
        "SELECT data FROM journal WHERE academy = ? AND phase = ? AND step_key LIKE 'audience-members:%' "
        "AND event = 'done' AND seq > ? ORDER BY seq DESC LIMIT 1",
        (code, PHASE, made[0]["seq"]),
    )
    members = set(json.loads(synced[0]["data"] or "{}").get("members", [])) if synced else set()
    return str(made[0]["target_id"]), members


def _audience(
    store: StateStore, trust: Trust, academy: Academy, users: dict[str, str], guests: set[str]
) -> Audience:
    display, nickname = trust.names.entra_group(academy, "everyone")
    names = {
        r["object_id"]: str(json.loads(r["data"]).get("displayName") or r["object_id"])
        for r in store.rows(
            "SELECT object_id, data FROM inventory WHERE academy = ? AND kind = 'user'", (academy.code,)
        )
    }
    gid, recorded = audience_state(store, academy.code)
    return Audience(
        display,
        nickname,
        f"{academy.name}: the academy's migrated people, granted its academy-wide sharing "
        f"(created by trustfold's permissions phase; {academy.code}|{academy.legacy_tenant.id})",
        {tid: names.get(sid, sid) for sid, tid in users.items() if sid not in guests},
        gid,
        recorded,
    )


def expected(store: StateStore, academy: Academy, trust: Trust) -> Expected:
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
    audience = _audience(store, trust, academy, users, guests)
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
    out = Expected(audience=audience)
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
            # (signature, display, what the report counts it as) of each grant the copy should hold
            carry: list[tuple[Signature, str, str]] = []
            if g.kind == "link":
                carry = _link(g, rules, audience, users, guests, skipped, note)
            elif g.kind == "user" and g.principal in users:
                carry = [(g.signature(users[g.principal]), g.display, "user")]
            elif g.kind == "group" and g.principal in groups:
                carry = [(g.signature(groups[g.principal]), g.display, "group")]
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
            if not carry:
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
            for sig, display, counted in carry:
                out.grants.setdefault(target.item, Counter())[sig] += 1
                out.names[sig] = display
                out.carried[counted] += 1
                if sig[1] == audience.principal and sig[0] == "group":
                    audience.needed = True
    return out


Note = Any  # the finding callback of expected(): note(kind, grant, message, handling)


def _link(
    g: Grant,
    rules: Any,
    audience: Audience,
    users: dict[str, str],
    guests: set[str],
    skipped: dict[str, str],
    note: Note,
) -> list[tuple[Signature, str, str]]:
    """What a sharing link becomes in the trust tenant: never a wider audience than it had."""
    roles = ",".join(sorted(g.roles))
    if expired(g.expires):
        note(
            "sharing-link-expired", g, f"{g.display} expired at {g.expires}", "not carried: it grants nothing"
        )
        return []
    if g.has_password:
        note(
            "sharing-link-password",
            g,
            f"{g.display} protected by a password",
            "not carried (stricter): Graph sets link passwords in OneDrive personal only, and a copy "
            "without the password would open to more people",
        )
        return []
    if g.prevents_download:
        note(
            "sharing-link-blocks-download",
            g,
            f"{g.display} that blocks download",
            "not carried (stricter): Graph v1.0 cannot create a link that blocks download, and a grant "
            "would let its people download",
        )
        return []
    if g.link_scope == "anonymous":
        if rules.anonymous_links != "allow":
            note(
                "sharing-anonymous-link",
                g,
                f"anyone with the link may {g.link_type} it",
                "not re-created: public links are forbidden (DfE baseline; "
                "phases.files.sharing.anonymous_links)",
            )
            return []
        return [(g.signature(), g.display, "link-anonymous")]
    if g.link_scope == "organization":
        if rules.organization_links == "forbid":
            note(
                "sharing-organization-link",
                g,
                f"everyone in the academy may {g.link_type} it",
                "not re-created: organisation links are forbidden for this academy "
                "(phases.files.sharing.organization_links)",
            )
            return []
        if rules.organization_links == "trust-wide":
            note(
                "sharing-trust-wide-link",
                g,
                f"everyone in the academy may {g.link_type} it",
                "re-created as a trust-wide link by decision (phases.files.sharing.organization_links: "
                "trust-wide): every academy's staff and pupils can open it",
            )
            return [(g.signature(), g.display, "link-organization (trust-wide)")]
        if g.expires:
            note(
                "sharing-link-expiry",
                g,
                f"{g.display} until {g.expires}",
                "not carried (stricter): SharePoint cannot make a grant to the academy's people expire",
            )
            return []
        return [(("group", audience.principal, roles), audience.display_name, "academy-group")]
    if g.link_scope == "users":
        if not g.people:
            note(
                "sharing-people-link",
                g,
                f"a link for specific people ({g.link_type}) that names nobody Graph lists",
                "not re-created: share with the people by name in the trust tenant",
            )
            return []
        if g.expires:
            note(
                "sharing-link-expiry",
                g,
                f"{g.display} until {g.expires}",
                "not carried (stricter): SharePoint cannot make a grant to a person expire",
            )
            return []
        out: list[tuple[Signature, str, str]] = []
        for pid, display in g.people:
            if pid in users:
                out.append((("user", users[pid], roles), display, "user (people link)"))
                continue
            why = (
                "a guest: invite guests in the trust tenant deliberately"
                if pid in guests
                else skipped.get(pid, "not in the mapping (account gone or never discovered)")
            )
            note(
                "sharing-people-link",
                Grant(f"{g.perm_id}|{pid}", "user", pid, display, g.roles),
                f"{display} may {'/'.join(g.roles)} by a link for specific people: {why}",
                "not carried: the person has no identity in the trust tenant",
            )
        return out
    note(
        "sharing-link-other",
        g,
        f"{g.display}",
        "not carried: a link of this scope gives nobody access they did not have",
    )
    return []


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


def _audience_steps(a: Audience) -> list[Step]:
    """The academy's people group, created once and kept equal to the academy's migrated members."""
    if not (a.needed or a.group_id):
        return []
    steps: list[Step] = []
    if a.group_id is None:
        steps.append(
            Step(
                AUDIENCE,
                "ensure-audience-group",
                {
                    "display_name": a.display_name,
                    "mail_nickname": a.mail_nickname,
                    "description": a.description,
                },
            )
        )
    wanted = set(a.members)
    if a.group_id is None or wanted != a.recorded:
        steps.append(
            Step(
                f"audience-members:{_digest(sorted(wanted))}",
                "sync-audience-members",
                {
                    "display_name": a.display_name,
                    "members": sorted(wanted),
                    "add": sorted(wanted - a.recorded),
                    "remove": sorted(a.recorded - wanted),
                },
                after=(AUDIENCE,) if a.group_id is None else (),
            )
        )
    return steps


def plan_permissions(store: StateStore, academy: Academy, trust: Trust) -> tuple[Plan, Expected]:
    code = academy.code
    exp = expected(store, academy, trust)
    mine = ours(store, code)
    have: dict[str, Counter[Signature]] = {}
    by_sig: dict[tuple[str, Signature], list[str]] = {}
    for pid, rec in sorted(mine.items()):
        have.setdefault(rec["target_item"], Counter())[rec["sig"]] += 1
        by_sig.setdefault((rec["target_item"], rec["sig"]), []).append(pid)
    assert exp.audience is not None
    steps: list[Step] = _audience_steps(exp.audience)
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
                    link_type, expires = split_kind(sig[1])
                    steps.append(
                        Step(
                            f"link:{t.drive_key}:{t.source_item}:{sig[1]}:{sig[2]}",
                            "share-link",
                            {**base, "type": link_type, "scope": sig[2], "expires": expires},
                        )
                    )
                else:
                    by_roles.setdefault(sig[2], []).append(
                        {"kind": sig[0], "id": sig[1], "display": exp.names.get(sig, sig[1])}
                    )
        for roles, recipients in sorted(by_roles.items()):
            # The people group keys its step the same before and after it exists: a step left in doubt by a
            # crash is then the resumed plan's own step, reconciled rather than granted twice.
            ids = [AUDIENCE if r["id"] == exp.audience.group_id else r["id"] for r in recipients]
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
    kinds = Counter(f.kind for f in exp.findings if f.kind not in CARRIED_FINDINGS)
    notes = [
        "carried: " + (", ".join(f"{n} {k}" for k, n in sorted(exp.carried.items())) or "nothing"),
        "not carried: " + (", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "nothing"),
    ]
    if exp.audience.needed:
        notes.append(
            f"academy-wide sharing goes to '{exp.audience.display_name}' "
            f"({len(exp.audience.members)} migrated member(s)), never trust-wide"
        )
    return Plan(code, PHASE, steps, notes, already), exp


def save_findings(store: StateStore, code: str, findings: list[Finding], steps: set[str]) -> None:
    """The plan's findings in place of the last plan's. A run's refusal for the unique-scope limit (kept by
    the step's outcome) stays while the new plan still has that step to do: it is not given yet."""
    with store.tx() as tx:
        still_to_do = [
            key
            for (key,) in tx.execute(
                "SELECT object_id FROM share_findings WHERE academy = ? AND kind = ?",
                (code, SCOPE_LIMIT_KIND),
            ).fetchall()
            if key in steps
        ]
        tx.execute(
            "DELETE FROM share_findings WHERE academy = ? AND NOT (kind = ? AND object_id IN "
            f"({', '.join('?' * len(still_to_do))}))",
            (code, SCOPE_LIMIT_KIND, *still_to_do),
        )
        tx.executemany(
            "INSERT INTO share_findings (academy, kind, object_id, display, message, handling) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (academy, kind, object_id) DO NOTHING",
            [(code, f.kind, f.object_id, f.display, f.message, f.handling) for f in findings],
        )

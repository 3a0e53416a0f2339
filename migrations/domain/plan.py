"""Plan the domain phase: preconditions, the references each academy domain has in the legacy tenant, the
renames trustfold makes itself, and the trust users' new sign-in names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from migrations.core.errors import PlanningError
from migrations.core.journal import Journal
from migrations.core.plan import Plan
from migrations.core.registry import IDENTITY_PHASES
from migrations.core.steps import Step
from migrations.core.store import StateStore
from migrations.domain import maildns
from migrations.domain.steps import safe
from migrations.graph.client import TenantConnection
from migrations.identity.plan import mappings
from trust import Academy, Trust

PHASE = "domain"


@dataclass
class DomainFacts:
    """What discovery of one academy domain found (kept with the plan for the report and --json)."""

    domain: str
    in_legacy: bool
    in_trust: bool
    verified_in_trust: bool
    users: int = 0
    groups: int = 0
    apps: int = 0
    exchange_owned: list[str] = field(default_factory=list)
    txt: str | None = None
    # The records mail needs in the trust tenant (maildns.MailRecord.as_dict), and what to do with them.
    mail: list[dict[str, Any]] = field(default_factory=list)
    mail_steps: list[str] = field(default_factory=list)

    def line(self) -> str:
        refs = self.users + self.groups + self.apps
        text = (
            f"{self.domain}: {refs} reference(s) in the legacy tenant ({self.users} users, {self.groups} "
            f"groups, {self.apps} apps); trustfold renames the {self.users} users itself, in $batch requests "
            "of 20 within the write budget (never forceDelete)"
        )
        if self.exchange_owned:
            text += (
                f"; {len(self.exchange_owned)} mail-enabled group(s) are owned by Exchange and must be "
                f"readdressed there first ({', '.join(self.exchange_owned[:3])}"
                + (" ..." if len(self.exchange_owned) > 3 else "")
                + ")"
            )
        if self.txt:
            text += f"; the trust publishes TXT {self.txt} at {self.domain}"
        else:
            text += "; the trust's TXT record is issued when the domain is added to the trust tenant"
        return text


def check_preconditions(store: StateStore, academy: Academy) -> None:
    """Identity phases done and verified, and no other run of this academy in progress."""
    code = academy.code
    statuses = {r["phase"]: r["status"] for r in store.phase_statuses(code)}
    missing = [
        f"{p} ({statuses.get(p, 'not-started')})" for p in IDENTITY_PHASES if statuses.get(p) != "done"
    ]
    if statuses.get("verify") != "done":
        missing.append(f"verify ({statuses.get('verify', 'not-started')})")
    if missing:
        raise PlanningError(
            f"the domain phase for {code} needs its identity phases done and verified first: "
            f"{', '.join(missing)}"
        )
    busy = store.rows(
        "SELECT phase, id FROM runs WHERE academy = ? AND status = 'running' AND phase != ?", (code, PHASE)
    )
    if busy:
        raise PlanningError(
            f"a {busy[0]['phase']} run is in progress for {code} ({busy[0]['id']}); wait for it to finish"
        )


def _initial(domains: list[dict[str, Any]]) -> str:
    for d in domains:
        if d.get("isInitial"):
            return str(d["id"]).lower()
    raise PlanningError("the legacy tenant reports no initial onmicrosoft.com domain")


def trust_users(store: StateStore, academy: Academy) -> list[tuple[str, str]]:
    """(trust user id, trust UPN) for every user trustfold created for this academy."""
    created = {k: h for k, h in Journal.state(store, academy.code, "users").items() if h["event"] == "done"}
    out = []
    for row in mappings(store, academy.code, "user").values():
        if row["action"] != "create":
            continue
        h = created.get(f"user:{row['source_id']}")
        if h and h["target_id"]:
            out.append((h["target_id"], row["target_key"]))
    return sorted(out, key=lambda x: x[1])


async def plan_domain(
    trust: Trust,
    academy: Academy,
    store: StateStore,
    legacy: TenantConnection,
    target: TenantConnection,
) -> tuple[Plan, list[DomainFacts]]:
    check_preconditions(store, academy)
    code = academy.code
    history = Journal.state(store, code, PHASE)
    legacy_domains = [d async for d in legacy.pages("/domains")]
    initial = _initial(legacy_domains)
    names = {str(d["id"]).lower(): d for d in legacy_domains}
    ours = [d.lower() for d in academy.legacy_tenant.domains]
    others = [n for n, d in names.items() if n not in ours and d.get("isVerified")]
    if any(n in names for n in ours) and not others:
        raise PlanningError(
            f"{', '.join(ours)} is the legacy tenant's only verified domain: its administrators would have "
            "no sign-in name left; verify another domain there first"
        )
    taken = {
        str(u.get("userPrincipalName", "")).lower()
        async for u in legacy.pages("/users", {"$select": "id,userPrincipalName", "$top": 999})
    }
    steps: list[Step] = []
    facts: list[DomainFacts] = []
    notes: list[str] = []
    default = next((n for n, d in names.items() if d.get("isDefault")), None)
    if default in ours:
        steps.append(Step("default:legacy", "set-default", {"domain": initial, "previous": default}))
    elif history.get("default:legacy", {}).get("event") in ("done", "intent"):
        # Applied earlier (or perhaps applied by a run killed before its outcome): kept, so resume settles
        # it and rollback restores it.
        args = history["default:legacy"]["data"].get("args") or {}
        steps.append(Step("default:legacy", "set-default", args or {"domain": initial, "previous": ours[0]}))
    previous_key = "default:legacy" if steps else None
    for name in ours:
        in_legacy = name in names
        trust_dom = await _get_domain(target, name)
        fact = DomainFacts(
            name, in_legacy, trust_dom is not None, bool(trust_dom and trust_dom.get("isVerified"))
        )
        renames: list[str] = []
        if in_legacy:
            refs = [r async for r in legacy.pages(f"/domains/{name}/domainNameReferences", {"$top": 999})]
            for r in refs:
                kind = str(r.get("@odata.type", "")).rsplit(".", 1)[-1]
                if kind == "user":
                    fact.users += 1
                    step = _rename_step(r, name, initial, taken)
                    steps.append(Step(step.key, step.op, step.args, (previous_key,) if previous_key else ()))
                    renames.append(step.key)
                elif kind == "group":
                    fact.groups += 1
                    fact.exchange_owned.append(safe(r.get("mail") or r.get("displayName") or r.get("id")))
                else:
                    fact.apps += 1
        # Renames journaled by earlier runs (done, or in doubt after a kill) stay in the plan: resume settles
        # the ones in doubt and rollback finds every one.
        for key, h in history.items():
            if h["op"] == "rename-user" and h["event"] in ("done", "intent") and key not in renames:
                args = h["data"].get("args")
                if args and args.get("domain") == name:
                    steps.append(Step(key, "rename-user", args, (previous_key,) if previous_key else ()))
                    renames.append(key)
        if trust_dom is not None:
            recs = await target.get(f"/domains/{name}/verificationDnsRecords")
            fact.txt = next(
                (
                    str(r.get("text"))
                    for r in recs.get("value", [])
                    if str(r.get("recordType")).lower() == "txt"
                ),
                None,
            )
        records, problems = await maildns.mail_records(target, name, fact.verified_in_trust)
        fact.mail = [r.as_dict() for r in records]
        fact.mail_steps = maildns.steps(code, name, records, fact.verified_in_trust)
        mail_notes = [f"mail record: {r.line()}" for r in records] + problems
        mail_notes += [f"mail step: {s}" for s in fact.mail_steps]
        remove = Step(
            f"remove:{name}",
            "remove-domain",
            {"domain": name, "tenant": "legacy"},
            tuple(renames) or ((previous_key,) if previous_key else ()),
        )
        add = Step(f"add:{name}", "add-domain", {"domain": name, "tenant": "trust"}, (remove.key,))
        verify = Step(f"verify:{name}", "verify-domain", {"domain": name, "tenant": "trust"}, (add.key,))
        steps += [remove, add, verify]
        if academy.domains.keep_academy_domain:
            for uid, upn in trust_users(store, academy):
                new = trust.names.academy_domain_upn(upn, name)
                if name != ours[0] or new.lower() == upn.lower():
                    continue  # trust users take the academy's primary domain only
                steps.append(
                    Step(
                        f"switch:{uid}",
                        "switch-upn",
                        {
                            "tenant": "trust",
                            "id": uid,
                            "domain": name,
                            "upn_from": upn,
                            "upn_to": new,
                            "mail_from": None,
                            "mail_to": None,
                        },
                        (verify.key,),
                    )
                )
        facts.append(fact)
        notes.append(fact.line())
        notes += mail_notes
    if academy.domains.keep_academy_domain:
        n = sum(1 for s in steps if s.op == "switch-upn")
        notes.append(f"{n} trust user(s) switch their sign-in name to @{ours[0]} (keep_academy_domain: true)")
    else:
        notes.append("trust users keep their trust sign-in names (domains.keep_academy_domain is false)")
    return Plan(code, PHASE, steps, notes), facts


def _rename_step(ref: dict[str, Any], domain: str, initial: str, taken: set[str]) -> Step:
    upn = str(ref.get("userPrincipalName", ""))
    mail = ref.get("mail")
    local, _, dom = upn.rpartition("@")
    new = upn
    if dom.lower() == domain:
        base, n = local, 1
        new = f"{base}@{initial}"
        while new.lower() in taken:
            n += 1
            new = f"{base}{n}@{initial}"
        taken.add(new.lower())
    args: dict[str, Any] = {
        "tenant": "legacy",
        "domain": domain,
        "id": ref["id"],
        "upn_from": upn,
        "upn_to": new,
        "mail_from": mail,
        "mail_to": None,
    }
    if isinstance(mail, str):
        mlocal, _, mdom = mail.rpartition("@")
        args["mail_to"] = f"{mlocal}@{initial}" if mdom.lower() == domain else mail
    return Step(f"rename:{ref['id']}", "rename-user", args)


async def _get_domain(conn: TenantConnection, name: str) -> dict[str, Any] | None:
    resp = await conn.request("GET", f"/domains/{name}")
    return dict(resp.body) if resp.ok else None

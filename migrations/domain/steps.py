"""The domain phase's operations. Each carries, side by side, its one-line description, the state check
that makes it idempotent, its forward action and its undo (with the undo's own description).

Steps are data (engine.Step); these operations act on them through a Tenants pair (legacy, trust).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from migrations.core.steps import History, Outcome, Step, UndoStep, register_operation
from migrations.graph.client import BatchItem, GraphResponse, TenantConnection
from migrations.safety.sanitise import terminal_text

TXT_RE = re.compile(r"^MS=ms[0-9]{8}$")


def safe(text: object, limit: int = 120) -> str:
    """A legacy-tenant value made fit for a terminal line or a report cell (the shared layer), shortened."""
    out = terminal_text(text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


class DomainError(Exception):
    """An operation failure with a one-line message (the CLI exits 1)."""


class RemovalPending(DomainError):
    """The legacy tenant accepted the domain's removal but has not finished it within this run's wait.

    Microsoft: removal "is an asynchronous background task ... It may take up to 24 hours to complete"
    (learn.microsoft.com/entra/identity/users/domains-manage, FAQ). Not a failure: the phase checkpoints
    (waiting-for-removal) and the next run looks again."""

    def __init__(self, name: str, waited: float):
        super().__init__(f"{name} is still being removed from the legacy tenant after {waited:.0f} s")
        self.name, self.waited = name, waited


@dataclass
class Tenants:
    legacy: TenantConnection
    trust: TenantConnection
    progress: Callable[[str], None] = lambda _msg: None

    def of(self, step: Step) -> TenantConnection:
        return self.trust if step.args.get("tenant") == "trust" else self.legacy


# ---- renames (legacy users onto the initial domain; trust users onto the academy domain) -----------------
def _rename_body(a: dict[str, Any], forward: bool) -> dict[str, Any]:
    upn, mail = ("upn_to", "mail_to") if forward else ("upn_from", "mail_from")
    body: dict[str, Any] = {"userPrincipalName": a[upn]}
    if a.get("mail_from") is not None:
        body["mail"] = a[mail]
    return body


async def _current_upn(conn: TenantConnection, uid: str) -> str | None:
    resp = await conn.request("GET", f"/users/{uid}", params={"$select": "id,userPrincipalName,mail"})
    if resp.status == 404:
        return None
    if not resp.ok:
        raise DomainError(f"reading user {uid}: {resp.status} {resp.error_code} {resp.error_message}")
    return str(resp.body.get("userPrincipalName", ""))


def undo_step(phase: str, key: str, h: History) -> UndoStep | None:
    """Every domain step whose outcome (or undo attempt) is journaled with its args is undone, in reverse
    order (DomainPhase.rollback); a step with only an intent changed nothing the check would not find."""
    args = h.data.get("args")
    if not args or h.latest in ("undone", "intent"):
        return None
    return UndoStep(phase, key, h.op, None, {}, args)


@dataclass(frozen=True)
class RenameUser:
    """rename-user (legacy) and switch-upn (trust): one PATCH of userPrincipalName (and mail)."""

    name: str
    batchable: bool = True

    def describe(self, step: Step) -> str:
        a = step.args
        where = "trust" if a.get("tenant") == "trust" else "legacy"
        return f"{where}: rename {a['upn_from']} -> {a['upn_to']}"

    reversible = True

    @property
    def undo_name(self) -> str:
        return self.name

    def undo_step(self, phase: str, key: str, h: History) -> UndoStep | None:
        return undo_step(phase, key, h)

    def describe_undo(self, step: UndoStep) -> str:
        a = step.args
        where = "trust" if a.get("tenant") == "trust" else "legacy"
        return f"{where}: rename {a['upn_to']} back to {a['upn_from']}"

    def request(self, step: Step, forward: bool = True) -> BatchItem:
        return BatchItem(
            "PATCH",
            f"/users/{step.args['id']}",
            _rename_body(step.args, forward),
            {"Content-Type": "application/json"},
        )

    async def check(self, step: Step, t: Tenants, forward: bool = True) -> str:
        """'done' when the user already carries the wanted UPN, 'todo' when it still carries the one we
        expect to change, 'changed' when someone renamed it since (never touched then)."""
        a = step.args
        want, have_before = (a["upn_to"], a["upn_from"]) if forward else (a["upn_from"], a["upn_to"])
        current = await _current_upn(t.of(step), a["id"])
        if current is None:
            return "changed"
        if current.lower() == want.lower():
            return "done"
        if current.lower() == have_before.lower():
            return "todo"
        return "changed"

    def outcome(self, step: Step, resp: GraphResponse) -> Outcome | None:
        if resp.ok:
            return Outcome("done", step.args["id"], {"upn": step.args["upn_to"]})
        if resp.status >= 500:
            return None
        return Outcome("failed", message=f"{resp.status} {resp.error_code}: {resp.error_message}")


RENAME_USER = RenameUser("rename-user")
register_operation(RENAME_USER)  # type: ignore[arg-type]  # its own executor runs it, not the Runner
SWITCH_UPN = register_operation(RenameUser("switch-upn"))  # type: ignore[arg-type]


# ---- single domain operations ------------------------------------------------------------------------------
async def _domain(conn: TenantConnection, name: str) -> dict[str, Any] | None:
    resp = await conn.request("GET", f"/domains/{name}")
    if resp.status == 404:
        return None
    if not resp.ok:
        raise DomainError(f"reading domain {name}: {resp.status} {resp.error_code} {resp.error_message}")
    return dict(resp.body)


async def _wait_gone(conn: TenantConnection, name: str, bound_s: float, t: Tenants, where: str) -> None:
    """Poll GET /domains/{name} until it answers 404, with backoff, within bound_s seconds."""
    started, delay = time.monotonic(), 0.25
    while True:
        if await _domain(conn, name) is None:
            return
        waited = time.monotonic() - started
        if waited >= bound_s and where == "legacy":
            raise RemovalPending(name, waited)
        if waited >= bound_s:
            raise DomainError(
                f"{name} is still in the {where} tenant {waited:.0f} s after its removal was accepted; "
                "run again later (the removal continues on Microsoft's side)"
            )
        t.progress(f"waiting for {name} to leave the {where} tenant ({waited:.0f}/{bound_s:.0f} s)")
        await asyncio.sleep(min(delay, max(0.05, bound_s - waited)))
        delay = min(delay * 2, 10.0)


async def _references(conn: TenantConnection, name: str) -> list[dict[str, Any]]:
    return [r async for r in conn.pages(f"/domains/{name}/domainNameReferences", {"$top": 999})]


def _ref_line(refs: list[dict[str, Any]]) -> str:
    shown = ", ".join(
        str(r.get("mail") or r.get("userPrincipalName") or r.get("displayName") or r.get("id"))
        for r in refs[:5]
    )
    return shown + (f" and {len(refs) - 5} more" if len(refs) > 5 else "")


async def _set_default(conn: TenantConnection, name: str) -> None:
    resp = await conn.request("PATCH", f"/domains/{name}", json={"isDefault": True})
    if not resp.ok:
        raise DomainError(f"making {name} the default domain: {resp.status} {resp.error_message}")


async def wait_removed(conn: TenantConnection, name: str, bound_s: float, t: Tenants) -> None:
    """Poll until the legacy tenant's removal of `name` has finished (404); RemovalPending after bound_s."""
    await _wait_gone(conn, name, bound_s, t, "legacy")


async def _delete(conn: TenantConnection, name: str, where: str) -> None:
    resp = await conn.request("DELETE", f"/domains/{name}")
    if resp.status in (204, 200, 404):
        return
    if resp.status == 400 and "in progress" in resp.error_message.lower():
        return  # an earlier DELETE (its answer lost to a crash) was accepted: the removal is under way
    refs = await _references(conn, name)
    if refs:
        groups = [r for r in refs if "group" in str(r.get("@odata.type", ""))]
        hint = (
            f"; {len(groups)} are mail-enabled groups Exchange owns: change their primary SMTP address "
            "in Exchange (Set-UnifiedGroup / Set-DistributionGroup -PrimarySmtpAddress), then run again"
            if groups
            else "; run again to rename them"
        )
        raise DomainError(
            f"{name} cannot leave the {where} tenant: {len(refs)} object(s) still use it ({_ref_line(refs)})"
            + hint
        )
    raise DomainError(f"removing {name} from the {where} tenant: {resp.status} {resp.error_message}")


async def _add(conn: TenantConnection, name: str, where: str) -> str:
    """POST /domains then read the TXT verification value; an existing unverified domain is reused."""
    existing = await _domain(conn, name)
    if existing is None:
        resp = await conn.request("POST", "/domains", json={"id": name}, idempotent=False)
        if not resp.ok and not (
            resp.status == 400 and resp.conflict and "another" not in resp.error_message.lower()
        ):
            if resp.status == 400 and "another" in resp.error_message.lower():
                raise DomainError(
                    f"{name} is verified in another tenant, so the {where} tenant cannot add it: "
                    "it must first be removed there"
                )
            raise DomainError(f"adding {name} to the {where} tenant: {resp.status} {resp.error_message}")
    body = await conn.get(f"/domains/{name}/verificationDnsRecords")
    for rec in body.get("value", []):
        if str(rec.get("recordType", "")).lower() == "txt":
            text = str(rec.get("text", ""))
            if not TXT_RE.match(text):
                raise DomainError(f"the {where} tenant gave an unexpected verification value for {name}")
            return text
    raise DomainError(f"the {where} tenant gave no TXT verification record for {name}")


async def verify_with_backoff(
    conn: TenantConnection, name: str, text: str, bound_s: float, t: Tenants
) -> None:
    """POST /domains/{name}/verify until it succeeds, backing off, within bound_s seconds."""
    started, delay = time.monotonic(), 0.5
    while True:
        dom = await _domain(conn, name)
        if dom is not None and dom.get("isVerified"):
            return
        resp = await conn.request("POST", f"/domains/{name}/verify", idempotent=True)
        if resp.ok:
            return
        msg = resp.error_message.lower()
        if "another" in msg:
            raise DomainError(f"{name} is verified in another tenant; it must be removed there first")
        waited = time.monotonic() - started
        if waited >= bound_s:
            raise DomainError(
                f"the TXT record {text} for {name} is not visible in DNS after {waited:.0f} s; publish it "
                "(see the DNS change file) and run again later"
            )
        t.progress(f"waiting for DNS: TXT {text} at {name} ({waited:.0f}/{bound_s:.0f} s)")
        await asyncio.sleep(min(delay, max(0.05, bound_s - waited)))
        delay = min(delay * 2, 15.0)


Action = Callable[[Step, Tenants, dict[str, Any]], Awaitable[Outcome]]


@dataclass(frozen=True)
class DomainOp:
    """A single (non-batched) step: description, state check, forward action and undo, side by side."""

    name: str
    text: Callable[[dict[str, Any]], str]
    undo_text: Callable[[dict[str, Any]], str]
    check: Callable[[Step, Tenants], Awaitable[str]]
    forward: Action
    backward: Action
    batchable: bool = False

    reversible = True

    @property
    def undo_name(self) -> str:
        return self.name

    def describe(self, step: Step) -> str:
        return self.text(step.args)

    def undo_step(self, phase: str, key: str, h: History) -> UndoStep | None:
        return undo_step(phase, key, h)

    def describe_undo(self, step: UndoStep) -> str:
        return self.undo_text(step.args)


# set-default: the legacy tenant's initial domain becomes its default (a default domain cannot be deleted)
async def _default_check(step: Step, t: Tenants) -> str:
    dom = await _domain(t.legacy, step.args["domain"])
    return "done" if dom and dom.get("isDefault") else "todo"


async def _default_fwd(step: Step, t: Tenants, opts: dict[str, Any]) -> Outcome:
    await _set_default(t.legacy, step.args["domain"])
    return Outcome("done", step.args["domain"])


async def _default_back(step: Step, t: Tenants, opts: dict[str, Any]) -> Outcome:
    dom = await _domain(t.legacy, step.args["previous"])
    if dom is None or not dom.get("isVerified"):
        return Outcome("failed", message=f"{step.args['previous']} is not verified in the legacy tenant yet")
    if not dom.get("isDefault"):
        await _set_default(t.legacy, step.args["previous"])
    return Outcome("done", step.args["previous"])


# remove-domain: DELETE in the legacy tenant (refused while referenced), then wait until it answers 404
async def _remove_check(step: Step, t: Tenants) -> str:
    return "done" if await _domain(t.legacy, step.args["domain"]) is None else "todo"


async def _remove_fwd(step: Step, t: Tenants, opts: dict[str, Any]) -> Outcome:
    """DELETE once (a removal already accepted in an earlier run is not asked for again), then wait within
    this run's bound; a removal still under way raises RemovalPending (the phase checkpoints). Legacy users
    were renamed onto the initial domain before: they sign in with it whatever the wait."""
    name = step.args["domain"]
    if name not in opts.get("removal_requested", {}):
        await _delete(t.legacy, name, "legacy")
    await wait_removed(t.legacy, name, float(opts.get("removal_wait", 60)), t)
    return Outcome("done", name)


async def _remove_back(step: Step, t: Tenants, opts: dict[str, Any]) -> Outcome:
    """Re-adding to the legacy tenant needs DNS again: add, then verify (the caller stops for DNS)."""
    name = step.args["domain"]
    text = await _add(t.legacy, name, "legacy")
    return Outcome("done", name, {"txt": text})


# add-domain: POST /domains in the trust tenant, read its TXT value
async def _add_check(step: Step, t: Tenants) -> str:
    return "done" if await _domain(t.trust, step.args["domain"]) is not None else "todo"


async def _add_fwd(step: Step, t: Tenants, opts: dict[str, Any]) -> Outcome:
    text = await _add(t.trust, step.args["domain"], "trust")
    return Outcome("done", step.args["domain"], {"txt": text})


async def _add_back(step: Step, t: Tenants, opts: dict[str, Any]) -> Outcome:
    name = step.args["domain"]
    await _delete(t.trust, name, "trust")
    await _wait_gone(t.trust, name, float(opts.get("removal_wait", 120)), t, "trust")
    return Outcome("done", name)


# verify-domain: POST verify in the trust tenant once the TXT record is published (polling, bounded)
async def _verify_check(step: Step, t: Tenants) -> str:
    dom = await _domain(t.trust, step.args["domain"])
    return "done" if dom and dom.get("isVerified") else "todo"


async def _verify_fwd(step: Step, t: Tenants, opts: dict[str, Any]) -> Outcome:
    name, text = step.args["domain"], opts["txt"][step.args["domain"]]
    await verify_with_backoff(t.trust, name, text, float(opts.get("dns_wait", 60)), t)
    return Outcome("done", name, {"txt": text})


async def _nothing(step: Step, t: Tenants, opts: dict[str, Any]) -> Outcome:
    return Outcome("done", step.args["domain"], {"note": "undone with the domain's removal"})


OPS: dict[str, DomainOp] = {}
for _op in (
    DomainOp(
        "set-default",
        lambda a: f"legacy: make {a['domain']} the default domain (instead of {a['previous']})",
        lambda a: f"legacy: make {a['previous']} the default domain again",
        _default_check,
        _default_fwd,
        _default_back,
    ),
    DomainOp(
        "remove-domain",
        lambda a: f"legacy: remove {a['domain']} and wait until it is gone",
        lambda a: f"legacy: add {a['domain']} again and verify it (DNS: publish the legacy TXT record)",
        _remove_check,
        _remove_fwd,
        _remove_back,
    ),
    DomainOp(
        "add-domain",
        lambda a: f"trust: add {a['domain']} and print its TXT record (stops: waiting-for-dns)",
        lambda a: f"trust: remove {a['domain']} (DNS: withdraw the trust TXT record)",
        _add_check,
        _add_fwd,
        _add_back,
    ),
    DomainOp(
        "verify-domain",
        lambda a: f"trust: verify {a['domain']} once its TXT record is visible (polling, bounded)",
        lambda a: f"trust: {a['domain']} loses verification with its removal",
        _verify_check,
        _verify_fwd,
        _nothing,
    ),
):
    register_operation(_op)  # type: ignore[arg-type]  # its own executor runs it, not the Runner
    OPS[_op.name] = _op

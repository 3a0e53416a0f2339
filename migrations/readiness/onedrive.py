"""OneDrive provisioning for migrated users: a licensed user has no OneDrive until SharePoint creates the
personal site (after a first sign-in, or when an administrator asks). We ask through SharePoint admin REST
`ProfileLoader.CreatePersonalSiteEnqueueBulk`, at most 200 users a call
(learn.microsoft.com/sharepoint/pre-provision-accounts), then wait, bounded, for the timer job.

Each accepted call is journaled (phase "onedrive", one row per user) in the same transaction, so a killed
wait resumes by waiting, never by asking twice.

Every drive read and the admin call spend the trust tenant's SharePoint resource units, so they go through
the client-side SharePoint budget (graph/sharepoint_window.py) and are saved with it: the files run that
follows starts from what provisioning spent rather than drawing 429s for it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from migrations.core.errors import OperationError
from migrations.core.journal import Journal
from migrations.core.store import dumps, now
from migrations.graph.client import MAX_BATCH, BatchItem, GraphError, GraphResponse, TenantConnection
from migrations.graph.sharepoint_admin import onedrive_not_yet, sharepoint_token
from migrations.graph.sharepoint_window import SharePointBudget, rest_ru

if TYPE_CHECKING:
    from migrations.core.store import StateStore
    from migrations.graph.client import Connections
    from trust import Academy, Trust

MAX_PER_CALL = 200
PHASE = "onedrive"
PROFILE_LOADER = "/_api/SP.UserProfiles.ProfileLoader.GetProfileLoader/CreatePersonalSiteEnqueueBulk"
DRIVE_READ_RU = 1  # reading an item (a drive) costs 1 resource unit


@dataclass
class DriveState:
    upn: str
    user_id: str | None = None
    licensed: bool = False
    provisioned: bool = False
    # SharePoint makes a OneDrive only for accounts allowed to sign in that hold a SharePoint plan
    # (learn.microsoft.com/sharepoint/pre-provision-accounts); others are never asked for nor waited on.
    sign_in_blocked: bool = False
    sharepoint_plan: bool = True

    @property
    def can_have(self) -> bool:
        return self.licensed and not self.sign_in_blocked and self.sharepoint_plan

    @property
    def exists(self) -> bool:
        return self.user_id is not None


@dataclass
class ProvisionResult:
    academy: str
    mapped: int = 0
    requested: int = 0  # asked for in this run
    calls: int = 0  # SharePoint admin calls made in this run
    ready: int = 0
    waiting: list[str] = field(default_factory=list)
    unlicensed: int = 0
    not_created: int = 0
    cannot_have: list[str] = field(default_factory=list)  # sign-in blocked or no SharePoint plan
    # licences.mode group: members whose group licence is in error or still being processed by Entra.
    licence_problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "academy": self.academy,
            "mapped": self.mapped,
            "requested": self.requested,
            "calls": self.calls,
            "ready": self.ready,
            "waiting": self.waiting,
            "unlicensed": self.unlicensed,
            "not_created": self.not_created,
            "cannot_have": self.cannot_have,
            "licence_problems": self.licence_problems,
        }


def mapped_upns(store: StateStore, academy: Academy) -> list[str]:
    """The academy's users that trustfold creates or matches (their OneDrives get files), each as the trust
    user's id where it is known (created, or matched) and its mapped UPN only before it exists: a domain
    cut-over changes the UPN the mapping recorded, never the id."""
    created = {
        k: str(h["target_id"])
        for k, h in Journal.state(store, academy.code, "users").items()
        if h["event"] == "done" and h["op"] == "create-user" and h["target_id"]
    }
    out = []
    for r in store.rows(
        "SELECT source_id, target_key, action, data FROM mappings WHERE academy = ? AND kind = 'user' "
        "AND action IN ('create', 'match') ORDER BY target_key",
        (academy.code,),
    ):
        data = json.loads(r["data"] or "{}")
        if r["action"] == "match":
            key = data.get("target_id") or r["target_key"]
        else:
            key = created.get(f"user:{r['source_id']}") or r["target_key"]
        if key:
            out.append(str(key))
    return out


async def _batch_get(
    conn: TenantConnection, paths: list[str], budget: SharePointBudget | None = None
) -> list[GraphResponse]:
    """GETs twenty to a $batch. With `budget` (SharePoint reads) each item's units are reserved before the
    batch is sent and a retried item's again, as the server counts each."""
    out: list[GraphResponse] = []
    for i in range(0, len(paths), MAX_BATCH):
        chunk = paths[i : i + MAX_BATCH]
        async with _spending(budget, conn, DRIVE_READ_RU * len(chunk)):
            answers = await conn.batch([BatchItem("GET", p) for p in chunk])
        for path, resp in zip(chunk, answers, strict=True):
            if not isinstance(resp, GraphResponse) or resp.status >= 500:
                async with _spending(budget, conn, DRIVE_READ_RU):
                    resp = await conn.request("GET", path, counts_as_write=False)
            out.append(resp)
    return out


@asynccontextmanager
async def _spending(budget: SharePointBudget | None, conn: TenantConnection, ru: int) -> AsyncIterator[None]:
    """`budget.spend` for the requests inside, or nothing for directory reads (no SharePoint units)."""
    if budget is None:
        yield
        return
    async with budget.spend(conn.tenant_id, ru):
        yield


async def drive_budget(conn: TenantConnection, window_dir: Path | None) -> SharePointBudget:
    """The trust tenant's SharePoint budget, from the window earlier commands saved in `window_dir`; the
    caller saves it when done (budget.save())."""
    budget = SharePointBudget(None, window_dir)
    await budget.prepare(conn)
    return budget


async def target_onedrives(
    conn: TenantConnection, store: StateStore, academy: Academy, budget: SharePointBudget
) -> list[DriveState]:
    """Each mapped user in the trust tenant: created yet, licensed, OneDrive provisioned (the drive reads
    spend `budget`)."""
    states = [DriveState(ref) for ref in mapped_upns(store, academy)]
    answers = await _batch_get(
        conn,
        [
            f"/users/{quote(s.upn, safe='@')}?$select=id,userPrincipalName,assignedLicenses,accountEnabled"
            for s in states
        ],
    )
    plans: dict[str, set[str]] | None = None
    for s, resp in zip(states, answers, strict=True):
        if resp.ok and isinstance(resp.body, dict):
            s.user_id = str(resp.body["id"])
            # SharePoint's provisioning call takes the user's current sign-in name.
            s.upn = str(resp.body.get("userPrincipalName") or s.upn)
            licences = resp.body.get("assignedLicenses") or []
            s.licensed = bool(licences)
            s.sign_in_blocked = resp.body.get("accountEnabled") is False
            if licences:
                plans = plans if plans is not None else await sharepoint_plans(conn)
                s.sharepoint_plan = has_sharepoint_plan(licences, plans)
        elif resp.status != 404:
            raise GraphError("GET", f"/users/{s.upn}", resp)
    await _refresh(conn, budget, [s for s in states if s.can_have])
    return states


async def sharepoint_plans(conn: TenantConnection) -> dict[str, set[str]]:
    """Each SKU's SharePoint service plan ids (subscribedSkus), to tell a licence that carries SharePoint."""
    body = await conn.get("/subscribedSkus?$select=skuId,servicePlans")
    return {
        str(sku.get("skuId")): {
            str(p.get("servicePlanId"))
            for p in sku.get("servicePlans") or []
            if "SHAREPOINT" in str(p.get("servicePlanName", "")).upper()
        }
        for sku in body.get("value", [])
    }


def has_sharepoint_plan(licences: list[dict[str, Any]], plans: dict[str, set[str]]) -> bool:
    """A licence whose SKU has a SharePoint plan not in its disabledPlans; a SKU we cannot see counts (the
    wait then says who is still missing rather than this guessing them out)."""
    for lic in licences:
        sku = str(lic.get("skuId"))
        if sku not in plans or plans[sku] - set(lic.get("disabledPlans") or ()):
            return True
    return False


async def _refresh(
    conn: TenantConnection,
    budget: SharePointBudget,
    states: list[DriveState],
    *,
    stop_early: bool = False,
) -> None:
    """Look up the drives not yet seen, a $batch at a time. With stop_early (while waiting), a batch in
    which nothing is ready yet ends the round: the timer job has not reached them, and every GET spends
    the tenant's SharePoint budget."""
    todo = [s for s in states if not s.provisioned and s.user_id]
    for i in range(0, len(todo), MAX_BATCH):
        chunk = todo[i : i + MAX_BATCH]
        answers = await _batch_get(conn, [f"/users/{s.user_id}/drive?$select=id" for s in chunk], budget)
        for s, resp in zip(chunk, answers, strict=True):
            if resp.ok:
                s.provisioned = True
            elif not onedrive_not_yet(resp):
                raise GraphError("GET", f"/users/{s.user_id}/drive", resp)
        if stop_early and not any(s.provisioned for s in chunk):
            return


async def _await_group_licences(
    trust: Trust,
    conn: TenantConnection,
    store: StateStore,
    academy: Academy,
    states: list[DriveState],
    timeout: float,
    budget: SharePointBudget,
) -> list[str]:
    """Mark users licensed once their group licence is Active; the UPNs whose licence is not (error, or
    still processing when the wait ends)."""
    from migrations.identity import licence_groups, licence_wait

    if not licence_groups.group_mode(trust):
        return []
    expected = licence_wait.expected_group_licences(store, academy.code)
    by_id = {s.user_id: s for s in states if s.exists and not s.licensed and s.user_id in expected}
    if not by_id:
        return []
    wait = min(timeout, licence_wait.DEFAULT_WAIT_S)
    check = await licence_wait.check_group_licences(conn, licence_wait.subset(expected, by_id), timeout=wait)
    for uid in check.active:
        by_id[uid].licensed = True
    await _refresh(conn, budget, [by_id[uid] for uid in check.active if by_id[uid].can_have])
    return sorted(by_id[uid].upn for uid in [*check.errors, *check.pending])


def requested_before(store: StateStore, academy: str) -> set[str]:
    return {
        r["step_key"].split(":", 1)[1]
        for r in store.rows(
            "SELECT step_key FROM journal WHERE academy = ? AND phase = ? AND event = 'requested'",
            (academy, PHASE),
        )
    }


def _journal_requested(store: StateStore, academy: str, run_id: str, upns: list[str]) -> None:
    at = now()
    with store.tx() as tx:
        tx.executemany(
            "INSERT INTO journal (run_id, academy, phase, plan_id, step_key, op, event, target_id, data, at) "
            "VALUES (?, ?, ?, NULL, ?, 'request-onedrive', 'requested', NULL, ?, ?)",
            [(run_id, academy, PHASE, f"onedrive:{u}", dumps({"upn": u}), at) for u in upns],
        )


async def _enqueue(
    http: httpx.AsyncClient, site: str, token: str, upns: list[str], budget: SharePointBudget, tenant_id: str
) -> None:
    """One CreatePersonalSiteEnqueueBulk call (REST: it spends the tenant's SharePoint units too, each
    attempt); throttled answers are retried after Retry-After."""
    for attempt in range(6):
        async with budget.spend(tenant_id, rest_ru("POST")):
            resp = await http.post(
                site + PROFILE_LOADER,
                json={"emailIDs": upns},
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json;odata=nometadata"},
            )
        if resp.status_code in (429, 503) and attempt < 5:
            try:
                delay = float(resp.headers.get("retry-after", "2"))
            except ValueError:
                delay = 2.0
            await asyncio.sleep(min(max(delay, 0.5), 120))
            continue
        if resp.status_code >= 400:
            try:
                message = resp.json()["error"]["message"]["value"]
            except (ValueError, KeyError, TypeError):
                message = resp.text[:200]
            raise ProvisioningError(
                f"SharePoint admin refused the OneDrive request ({resp.status_code}): {message}"
            )
        return
    raise ProvisioningError("SharePoint admin kept throttling the OneDrive request; try again later")


class ProvisioningError(OperationError):
    """The SharePoint admin call failed (credential, permission, throttling)."""


async def provision(
    trust: Trust,
    conns: Connections,
    store: StateStore,
    academy: Academy,
    *,
    timeout: float = 600.0,
    poll: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
) -> ProvisionResult:
    """Request OneDrives for mapped, licensed users who have none (≤200 a call, each call journaled), then
    wait up to `timeout` seconds for them; who still waits is reported, not raised."""
    conn = conns.target
    budget = await drive_budget(conn, conns.window_dir)
    try:
        return await _provision(trust, conns, store, academy, budget, timeout, poll, progress)
    finally:
        budget.save()  # what provisioning spent stays in the window the next command loads


async def _provision(
    trust: Trust,
    conns: Connections,
    store: StateStore,
    academy: Academy,
    budget: SharePointBudget,
    timeout: float,
    poll: float,
    progress: Callable[[int, int], None] | None,
) -> ProvisionResult:
    conn = conns.target
    result = ProvisionResult(academy.code)
    states = await target_onedrives(conn, store, academy, budget)
    result.mapped = len(states)
    result.not_created = sum(1 for s in states if not s.exists)
    # SharePoint makes OneDrives only for licensed users; with group-based licensing the licence comes when
    # Entra has processed the membership, so wait for that first (bounded) rather than skip the user.
    result.licence_problems = await _await_group_licences(
        trust, conn, store, academy, states, timeout, budget
    )
    result.unlicensed = sum(1 for s in states if s.exists and not s.licensed)
    result.cannot_have = sorted(s.upn for s in states if s.exists and s.licensed and not s.can_have)
    wanted = [s for s in states if s.can_have]
    asked = requested_before(store, academy.code)
    to_ask = [s.upn for s in wanted if not s.provisioned and s.upn not in asked]
    if to_ask:
        site, token = await sharepoint_token(trust, conns.graph_url, conn)
        run_id = f"onedrive-{uuid.uuid4().hex[:12]}"
        for i in range(0, len(to_ask), MAX_PER_CALL):
            chunk = to_ask[i : i + MAX_PER_CALL]
            await _enqueue(conns.raw_http, site, token, chunk, budget, conn.tenant_id)
            _journal_requested(store, academy.code, run_id, chunk)
            result.calls += 1
            result.requested += len(chunk)
    deadline = time.monotonic() + timeout
    pause = poll
    while True:
        done = sum(1 for s in wanted if s.provisioned)
        if progress is not None:
            progress(done, len(wanted))
        if done == len(wanted) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 1.5, 30.0)  # SharePoint takes minutes to hours: ask less often as time goes
        await _refresh(conn, budget, wanted, stop_early=True)
    result.ready = sum(1 for s in wanted if s.provisioned)
    result.waiting = sorted(s.upn for s in wanted if not s.provisioned)
    store.set_phase_status(academy.code, PHASE, "done" if not result.waiting else "running", result.as_dict())
    return result

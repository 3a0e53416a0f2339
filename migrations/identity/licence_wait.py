"""Waiting for Entra's group-based licensing (licences.mode: group).

Entra licenses the members of a licensed group in the background: "the changes could take time to process"
(learn.microsoft.com/entra/identity/users/licensing-group-advanced), and an assignment that fails (no seat
left: CountViolation) is recorded on the user, never returned to the caller
(learn.microsoft.com/entra/identity/users/licensing-groups-resolve-problems). So a member added a moment ago
has no `licenseAssignmentStates` entry for its group yet, and "no licence" proves nothing until Entra has
processed it. Everything that needs the licence (the users phase's outcome, verify, OneDrive provisioning)
reads the states with bounded retries, and a state other than Active
(learn.microsoft.com/graph/api/resources/licenseassignmentstate: Active, ActiveWithError, Disabled, Error)
is reported as a finding, never as success.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, retry_if_result, stop_after_delay, wait_exponential

from migrations.core.journal import Journal
from migrations.graph.client import MAX_BATCH, BatchItem, GraphResponse
from migrations.identity.licence_groups import PURPOSES, group_key

if TYPE_CHECKING:
    from migrations.core.store import StateStore
    from migrations.graph.client import TenantConnection

# Entra's own guidance: processing that takes more than a day for a group of up to 60k users is a support
# case; a run waits minutes, then reports who is still being processed (verify looks again later).
DEFAULT_WAIT_S = 300.0
POLL_S = 1.0
MAX_POLL_S = 15.0
SELECT = "id,userPrincipalName,licenseAssignmentStates"


@dataclass(frozen=True)
class Expected:
    """The licence a user should get from its academy's licence group."""

    purpose: str  # "staff" | "pupils"
    group_id: str
    sku_id: str
    sku: str  # part number, for messages


@dataclass
class LicenceCheck:
    """Per user id: its state for the expected group licence (None: not processed yet)."""

    states: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    upns: dict[str, str] = field(default_factory=dict)
    waited: float = 0.0
    # Per licence group id: its licenseProcessingState (QueuedForProcessing, ProcessingInProgress,
    # ProcessingComplete) when last read.
    groups: dict[str, str] = field(default_factory=dict)
    # Seconds until Entra had processed every expected member (None: some were still waiting at the end).
    processing_s: float | None = None

    @property
    def pending(self) -> list[str]:
        return sorted(uid for uid, s in self.states.items() if s is None)

    @property
    def errors(self) -> list[str]:
        return sorted(uid for uid, s in self.states.items() if s is not None and s.get("state") != "Active")

    @property
    def active(self) -> list[str]:
        return sorted(uid for uid, s in self.states.items() if s is not None and s.get("state") == "Active")


def expected_group_licences(store: StateStore, academy: str) -> dict[str, Expected]:
    """Target user id -> the group licence the users phase's journal says it should hold: members added to
    a licence group whose licence assignment is done."""
    done = Journal.state(store, academy, "users")
    out: dict[str, Expected] = {}
    for purpose in PURPOSES:
        group = done.get(group_key(purpose))
        licence = done.get(f"grouplicence:{purpose}")
        if not group or not licence or group["event"] != "done" or licence["event"] != "done":
            continue
        sku_id = licence["data"].get("sku_id")
        if not group["target_id"] or not sku_id:
            continue
        want = Expected(purpose, group["target_id"], str(sku_id), str(licence["data"].get("sku", sku_id)))
        for key, h in done.items():
            if key.startswith(f"licmembers:{purpose}:") and h["event"] == "done":
                for uid in h["data"].get("members", []):
                    out[str(uid)] = want
    return out


def state_for(user: dict[str, Any], want: Expected) -> dict[str, Any] | None:
    """The user's assignment state for the group licence, or None while Entra has not processed it."""
    for s in user.get("licenseAssignmentStates") or ():
        if s.get("skuId") == want.sku_id and s.get("assignedByGroup") == want.group_id:
            return dict(s)
    return None


def describe(want: Expected, state: dict[str, Any] | None, waited: float, group_state: str = "") -> str:
    """One line for a report: what is wrong with a member's group licence and what to do."""
    source = f"licence {want.sku} by the {want.purpose} licence group"
    if state is None:
        where = f" (the group is {group_state})" if group_state else ""
        return (
            f"{source} is still being processed by Entra after {waited:.0f} s of waiting{where}; run verify "
            "again later (Entra takes minutes, up to a day for large changes)"
        )
    error = state.get("error") or "None"
    if state.get("state") == "ActiveWithError":
        return (
            f"{source} is active with an error ({error}): the licence is held but Entra recorded a problem "
            "with it; see learn.microsoft.com/entra/identity/users/licensing-groups-resolve-problems, then "
            "reprocess the user (POST /users/{id}/reprocessLicenseAssignment)"
        )
    if error == "Other":
        return (
            f"{source} is in state {state.get('state')} (Other): when one of a group's products cannot be "
            "assigned Entra assigns none of them; look for the product in error (CountViolation, "
            "MutuallyExclusiveViolation) on this user and fix that"
        )
    if error == "MutuallyExclusiveViolation":
        return (
            f"{source} is in state Error (MutuallyExclusiveViolation): a service plan in it conflicts with "
            "one the user holds through another product; remove the other product or disable the "
            "conflicting plan, then reprocess the user"
        )
    fix = (
        "add or free seats of that SKU, then have Entra reprocess the user (Entra admin center: the group's "
        "Licenses > Reprocess, or POST /users/{id}/reprocessLicenseAssignment)"
        if error == "CountViolation"
        else "see learn.microsoft.com/entra/identity/users/licensing-groups-resolve-problems"
    )
    return f"{source} is in state {state.get('state')} ({error}): {fix}"


async def _read(conn: TenantConnection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The users that answer (a just-created one may still be 404: replication lag), by id."""
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), MAX_BATCH):
        chunk = ids[i : i + MAX_BATCH]
        answers = await conn.batch([BatchItem("GET", f"/users/{uid}?$select={SELECT}") for uid in chunk])
        for uid, resp in zip(chunk, answers, strict=True):
            if isinstance(resp, GraphResponse) and resp.ok and isinstance(resp.body, dict):
                out[uid] = resp.body
    return out


async def _group_states(conn: TenantConnection, ids: list[str]) -> dict[str, str]:
    """licenseProcessingState of each licence group (learn.microsoft.com/graph/api/resources/group)."""
    answers = await conn.batch(
        [BatchItem("GET", f"/groups/{gid}?$select=id,licenseProcessingState") for gid in ids]
    )
    out: dict[str, str] = {}
    for gid, resp in zip(ids, answers, strict=True):
        if isinstance(resp, GraphResponse) and resp.ok and isinstance(resp.body, dict):
            out[gid] = str((resp.body.get("licenseProcessingState") or {}).get("state") or "")
    return out


async def check_group_licences(
    conn: TenantConnection,
    expected: dict[str, Expected],
    *,
    timeout: float = DEFAULT_WAIT_S,
    poll: float = POLL_S,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> LicenceCheck:
    """Read each expected member's state, re-reading those not processed yet with growing pauses for at
    most `timeout` seconds (tenacity). Error states are final (Entra keeps them until the user is
    reprocessed): they are not waited on."""
    result = LicenceCheck({uid: None for uid in expected})
    loop = asyncio.get_running_loop()
    started = loop.time()

    group_ids = sorted({w.group_id for w in expected.values()})

    async def one_round() -> list[str]:
        todo = result.pending
        for uid, user in (await _read(conn, todo)).items():
            result.upns[uid] = str(user.get("userPrincipalName") or uid)
            result.states[uid] = state_for(user, expected[uid])
        result.waited = loop.time() - started
        if result.pending:
            # Say where Entra is (QueuedForProcessing, ProcessingInProgress): a reason, not a condition.
            result.groups.update(await _group_states(conn, group_ids))
        else:
            result.processing_s = result.waited
        return result.pending

    retrying = AsyncRetrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=poll, min=poll, max=MAX_POLL_S),
        retry=retry_if_result(bool),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        sleep=sleep,
    )
    if expected:
        await retrying(one_round)
    return result


def reasons(expected: dict[str, Expected], check: LicenceCheck) -> dict[str, int]:
    """How many members are without an active licence, per reason: where Entra's processing of the group is
    for those still waiting (QueuedForProcessing, ProcessingInProgress), else the member's state with its
    error ("Error: CountViolation", "ActiveWithError: ..."), for the run's counts and the report."""
    out: dict[str, int] = {}
    for uid in check.pending:
        key = check.groups.get(expected[uid].group_id) or "not processed yet"
        out[key] = out.get(key, 0) + 1
    for uid in check.errors:
        state = check.states[uid] or {}
        key = f"{state.get('state') or 'unknown'}: {state.get('error') or 'None'}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def findings(expected: dict[str, Expected], check: LicenceCheck) -> list[dict[str, str]]:
    """Failures for a phase result: every member whose group licence is not Active (in error, or still
    not processed when the wait ended)."""
    return [
        {
            "step": f"licence:{check.upns.get(uid, uid)}",
            "message": describe(
                expected[uid],
                check.states.get(uid),
                check.waited,
                check.groups.get(expected[uid].group_id, ""),
            ),
        }
        for uid in sorted({*check.errors, *check.pending})
    ]


def subset(expected: dict[str, Expected], ids: Iterable[str]) -> dict[str, Expected]:
    return {uid: expected[uid] for uid in ids if uid in expected}

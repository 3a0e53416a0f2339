"""Permission steps side by side: each operation's one-line description, its forward request and its undo
(the grants it added removed: `remove_grant`), carried out journaled (intent, request, outcome) and
reconciled when in doubt.

A step left in doubt by a crash (intent without outcome), or whose answer was lost, is reconciled by reading
the copy's permissions: a grant matching the step's signature that trustfold has not already recorded is the
step's own, so a resumed run never adds a grant twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from migrations.core import killpoints
from migrations.core.journal import Journal
from migrations.core.runs import Tally
from migrations.core.steps import History, Outcome, SideWrite, Step, UndoStep, register_operation
from migrations.graph.client import GraphError, GraphResponse, MaybeApplied, TenantConnection
from migrations.graph.sharepoint_window import SharePointBudget
from migrations.permissions.grants import Grant, link_kind, parse
from migrations.permissions.plan import AUDIENCE, FORWARD, SCOPE_LIMIT_KIND
from migrations.permissions.scan import PERMISSION_RU, read_with_parents

BIND_ROOT = "https://graph.microsoft.com/v1.0/directoryObjects/"


@dataclass
class SharingTally(Tally):
    """The run's tally, with the permission reads and writes the bench and the run's counts report."""

    reads: int = 0
    writes: int = 0


@dataclass
class GrantUndo:
    """What the undo of a grant works with."""

    target: TenantConnection
    budget: SharePointBudget


@dataclass(frozen=True)
class _Op:
    name: str
    text: Any
    undo_text: Any = None  # the undo of each grant the step added; None: not reversible (kept says why)
    kept: str = ""
    batchable: bool = False
    undo_name: str = "undo-share"  # one undo step per grant: key undo:<permission id>

    @property
    def reversible(self) -> bool:
        return self.undo_text is not None

    def describe(self, step: Step) -> str:
        return str(self.text(step.args))

    def undo_step(self, phase: str, key: str, h: History) -> UndoStep | None:
        return None  # a step adds several grants: PermissionsPhase.rollback_steps lists them, from ours()

    def describe_undo(self, step: UndoStep) -> str:
        return str(self.undo_text(step.args)) if self.undo_text else f"{step.args.get('path')}: {self.kept}"

    async def undo(self, step: UndoStep, ctx: GrantUndo, found: Callable[[str], None]) -> Outcome:
        if self.name == "ensure-audience-group":
            gid = step.target_id or ""
            resp = await ctx.target.request("DELETE", f"/groups/{gid}")
            if not resp.ok and resp.status != 404:
                raise GraphError("DELETE", f"/groups/{gid}", resp)
            return Outcome("undone", gid, {"undone": True})
        await remove_grant(ctx.target, ctx.budget, step.args)
        return Outcome("undone", step.args["perm_id"], {"undone": True})


def _who(a: dict[str, Any]) -> str:
    return ", ".join(f"{r['kind']} {r['display']}" for r in a["recipients"])


def _remove(a: dict[str, Any]) -> str:
    return f"remove grant to {a['display']} on '{a['path']}' (added by trustfold)"


for _op in (
    _Op(
        "share-invite",
        lambda a: f"grant {'/'.join(a['roles'])} on '{a['path']}' to {_who(a)} (no e-mail)",
        _remove,
    ),
    _Op(
        "share-link",
        lambda a: (
            f"create {a['scope']} {a['type']} link on '{a['path']}'"
            + (f" expiring {a['expires']}" if a.get("expires") else "")
        ),
        _remove,
    ),
    _Op(
        "ensure-audience-group",
        lambda a: (
            f"create security group '{a['display_name']}' ({a['mail_nickname']}): the academy's people, "
            "for its academy-wide sharing"
        ),
        lambda a: f"delete group '{a['display_name']}' (created by trustfold for academy-wide sharing)",
        undo_name="undo-audience-group",
    ),
    _Op(
        "sync-audience-members",
        lambda a: (
            f"make '{a['display_name']}' exactly the academy's {len(a['members'])} migrated member(s): "
            f"add {len(a['add'])}, remove {len(a['remove'])}"
        ),
        kept="undone with its group",
    ),
    _Op(
        "share-revoke",
        lambda a: f"remove grant to {a['display']} on '{a['path']}' (removed at source)",
        kept="removed because the source removed it: not given back",
    ),
):
    register_operation(_op)  # type: ignore[arg-type]


async def remove_grant(target: TenantConnection, budget: SharePointBudget, a: dict[str, Any]) -> None:
    """The undo of a grant (and the forward action of share-revoke): gone already counts as removed."""
    path = f"{_item_path(a)}/permissions/{a['perm_id']}"
    async with budget.spend_sharing(target.tenant_id, PERMISSION_RU):  # within 300 per 5 minutes too
        resp = await target.request("DELETE", path, counts_as_write=False)
    if not resp.ok and resp.status != 404:
        raise GraphError("DELETE", path, resp)


def _item_path(a: dict[str, Any]) -> str:
    return f"/drives/{a['target_drive']}/items/{a['target_item']}"


# SharePoint's refusal to give an item permissions of its own once its library holds its limit of items
# with unique permissions (50,000: sharepoint-online-limits, "Unique security scopes per list or library").
SCOPE_LIMIT_TEXT = "too many items with unique permissions"
# Such a refusal is kept among the permissions phase's findings (share_findings, kind SCOPE_LIMIT_KIND) so
# the report's sharing section lists it; its object is the step's key, so the step giving its grant clears it.
SCOPE_LIMIT_HANDLING = "not given; nothing wider was shared instead"


def scope_limit_finding(resp: GraphResponse, a: dict[str, Any], what: str) -> Outcome | None:
    """The step's finding when SharePoint refused for the library's unique-scope limit, else None. The
    grant is not given, and nothing wider (the folder above, the library) is given instead."""
    if resp.status != 400 or SCOPE_LIMIT_TEXT not in resp.error_message:
        return None
    return Outcome(
        "failed",
        None,
        {"refused": SCOPE_LIMIT_KIND},
        f"'{a['path']}': {what} not given: its library has reached SharePoint's limit of items with unique "
        "permissions (50,000 per library); nothing wider was shared instead. Reduce the library's unique "
        "permissions (or share a parent folder deliberately), then run again",
    )


def _record(g: Grant) -> dict[str, Any]:
    return {"perm_id": g.perm_id, "sig": list(g.signature()), "display": g.display}


class Applier:
    def __init__(
        self,
        target: TenantConnection,
        budget: SharePointBudget,
        journal: Journal,
        claimed: set[str],
        in_doubt: set[str],
        progress: Callable[[], None],
        audience: str | None = None,
        academy: str = "",
    ):
        self.target, self.budget, self.journal = target, budget, journal
        self.claimed = claimed  # permission ids already recorded as trustfold's
        self.in_doubt = in_doubt
        self.progress = progress
        self.tally = SharingTally()
        self.audience = audience  # the academy's people group, once it exists
        self.academy = academy  # whose share_findings a step's unique-scope refusal is kept in

    async def _send(self, method: str, path: str, body: Any = None) -> GraphResponse | None:
        self.tally.writes += 1
        # invite and createLink are "Specific Sharing APIs": reserved before sending, settled on the answer.
        try:
            async with self.budget.spend_sharing(self.target.tenant_id, PERMISSION_RU):
                resp = await self.target.request(
                    method, path, json=body, counts_as_write=False, idempotent=False
                )
        except MaybeApplied:
            return None
        killpoints.reached("permissions.sent")  # the write reached the tenant; its outcome is not journaled
        return resp

    # ---- the academy's people group ------------------------------------------------------------------------
    async def _find_group(self, a: dict[str, Any]) -> tuple[str | None, bool]:
        """(id, ours) of the group holding the audience's mailNickname: ours when its description is the one
        trustfold writes (Graph does not keep security groups' nicknames unique, so both are checked)."""
        body = await self.target.get(
            "/groups",
            {
                "$filter": f"mailNickname eq '{a['mail_nickname']}'",
                "$select": "id,description,securityEnabled",
            },
        )
        found = [g for g in body.get("value", []) if g.get("securityEnabled")]
        mine = next((g for g in found if g.get("description") == a["description"]), None)
        if mine is not None:
            return str(mine["id"]), True
        return (str(found[0]["id"]), False) if found else (None, False)

    async def _ensure_group(self, step: Step) -> Outcome:
        a = step.args
        gid, mine = await self._find_group(a)
        if gid and not mine:
            # Someone else's group: its members are not ours to vouch for, so no sharing is given to it.
            return Outcome(
                "failed",
                None,
                {},
                f"a group with mailNickname {a['mail_nickname']} exists that trustfold did not create for "
                "this academy's sharing: rename it, then run again",
            )
        if gid:
            self.tally.reconciled += step.key in self.in_doubt
            self.audience = gid
            return Outcome("done", gid, {"mail_nickname": a["mail_nickname"], "reconciled": True})
        body = {
            "displayName": a["display_name"],
            "mailNickname": a["mail_nickname"],
            "mailEnabled": False,
            "securityEnabled": True,
            "groupTypes": [],
            "description": a["description"],
        }
        try:
            resp = await self.target.request("POST", "/groups", json=body, idempotent=False)
        except MaybeApplied:
            gid, mine = await self._find_group(a)
            if not (gid and mine):
                return Outcome(
                    "failed", None, {}, "creating the group: answer lost and no group found; run again"
                )
            self.audience = gid
            return Outcome("done", gid, {"mail_nickname": a["mail_nickname"], "reconciled": True})
        if not resp.ok:
            raise GraphError("POST", "/groups", resp)
        self.audience = str(resp.body["id"])
        return Outcome("done", self.audience, {"mail_nickname": a["mail_nickname"]})

    async def _members(self, gid: str) -> set[str]:
        """The group's members; a group made moments ago may answer 404 for a few seconds."""
        path, params = f"/groups/{gid}/members", {"$select": "id", "$top": "999"}
        for wait in (0.5, 1.0, 2.0, 4.0, 0.0):
            resp = await self.target.request("GET", path, params=params)
            if resp.status != 404 or not wait:
                break
            await asyncio.sleep(wait)
        out: set[str] = set()
        while True:
            if not resp.ok:
                raise GraphError("GET", path, resp)
            out |= {str(m["id"]) for m in resp.body.get("value", [])}
            nxt = resp.body.get("@odata.nextLink")
            if not nxt:
                return out
            resp = await self.target.request("GET", self.target.relative(nxt))

    async def _sync_members(self, step: Step) -> Outcome:
        """Make the group hold exactly the academy's migrated members: add the missing in bindings of 20,
        remove anyone else (a member added by hand would widen every academy-wide share)."""
        a = step.args
        gid = self.audience
        if not gid:
            return Outcome("failed", None, {}, "the academy's people group was not created: run again")
        wanted = set(a["members"])
        live = await self._members(gid)
        add, remove = sorted(wanted - live), sorted(live - wanted)
        for i in range(0, len(add), 20):
            body = {"members@odata.bind": [BIND_ROOT + uid for uid in add[i : i + 20]]}
            resp = await self.target.request("PATCH", f"/groups/{gid}", json=body)
            if not resp.ok:
                raise GraphError("PATCH", f"/groups/{gid}", resp)
        for uid in remove:
            resp = await self.target.request("DELETE", f"/groups/{gid}/members/{uid}/$ref")
            if not resp.ok and resp.status != 404:
                raise GraphError("DELETE", f"/groups/{gid}/members/{uid}/$ref", resp)
        return Outcome("done", gid, {"members": sorted(wanted), "added": len(add), "removed": len(remove)})

    async def _direct(self, a: dict[str, Any]) -> list[Grant]:
        """The copy's own grants. SharePoint does not say which are inherited: its parent is read beside it,
        so reconciliation never adopts a grant that lives on the parent (its undo could not remove it)."""
        async with self.budget.spend(self.target.tenant_id, 1):
            resp = await self.target.request("GET", _item_path(a), params={"$select": "id,parentReference"})
        if not resp.ok:
            raise GraphError("GET", _item_path(a), resp)
        parent = (resp.body.get("parentReference") or {}).get("id")
        read, n = await read_with_parents(
            self.target, self.budget, {a["target_item"]: (a["target_drive"], parent)}
        )
        self.tally.reads += n
        perms = read[a["target_item"]] or []  # gone meanwhile: nothing to adopt, the write will say so
        return [g for g in map(parse, perms) if not g.inherited]

    def _adopt(self, live: list[Grant], sig: tuple[str, str, str]) -> Grant | None:
        for g in live:
            if g.perm_id not in self.claimed and g.signature() == sig:
                self.claimed.add(g.perm_id)
                return g
        return None

    async def run(self, steps: list[Step], concurrency: int) -> None:
        sem = asyncio.Semaphore(max(1, concurrency))

        async def one(step: Step) -> None:
            async with sem:
                await self.one(step)

        await asyncio.gather(*(one(s) for s in steps))

    async def one(self, step: Step) -> None:
        self.journal.intents([step])
        try:
            outcome = await self.apply(step)
        except GraphError as exc:
            outcome = Outcome("failed", None, {}, str(exc))
        self.journal.outcomes([(step, self._scope_finding(step, outcome))])
        self.tally.settle(step, outcome)
        self.progress()

    def _scope_finding(self, step: Step, outcome: Outcome) -> Outcome:
        """The outcome with its unique-scope finding kept (a refusal) or cleared (anything else: the grant
        was given, or failed for another reason the run's failures name), in the outcome's transaction."""
        if step.op not in FORWARD:
            return outcome
        writes = [
            SideWrite(
                "DELETE FROM share_findings WHERE academy = ? AND kind = ? AND object_id = ?",
                (self.academy, SCOPE_LIMIT_KIND, step.key),
            )
        ]
        if outcome.data.get("refused") == SCOPE_LIMIT_KIND:
            writes.append(
                SideWrite(
                    "INSERT INTO share_findings (academy, kind, object_id, display, message, handling) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        self.academy,
                        SCOPE_LIMIT_KIND,
                        step.key,
                        str(step.args.get("path", "")),
                        outcome.message,
                        SCOPE_LIMIT_HANDLING,
                    ),
                )
            )
        return replace(outcome, writes=[*outcome.writes, *writes])

    async def apply(self, step: Step) -> Outcome:
        a = step.args
        if step.op == "ensure-audience-group":
            return await self._ensure_group(step)
        if step.op == "sync-audience-members":
            return await self._sync_members(step)
        if step.op == "share-revoke":
            self.tally.writes += 1
            await remove_grant(self.target, self.budget, a)
            return Outcome("done", a["perm_id"], {"revoked": True})
        base = {k: a[k] for k in ("drive_key", "source_item", "target_drive", "target_item", "path")}
        if step.op == "share-link":
            sig = ("link", link_kind(a["type"], a.get("expires", "")), a["scope"])
            if step.key in self.in_doubt:
                found = self._adopt(await self._direct(a), sig)
                if found is not None:
                    self.tally.reconciled += 1
                    return Outcome("done", found.perm_id, {**base, "grants": [_record(found)]})
            body = {"type": a["type"], "scope": a["scope"]}
            if a.get("expires"):
                body["expirationDateTime"] = a["expires"]
            resp = await self._send("POST", f"{_item_path(a)}/createLink", body)
            if resp is None:
                found = self._adopt(await self._direct(a), sig)
                if found is None:
                    return Outcome("failed", None, {}, "createLink: answer lost and no link found; run again")
                return Outcome("done", found.perm_id, {**base, "grants": [_record(found)]})
            if not resp.ok:
                refused = scope_limit_finding(resp, a, f"{a['scope']} {a['type']} link")
                if refused is not None:
                    return refused
                raise GraphError("POST", f"{_item_path(a)}/createLink", resp)
            g = parse(resp.body)
            if g.signature() != sig:
                # createLink hands back the app's existing link of that type and scope whatever expiry was
                # asked: one that lives longer (or for ever) is more access than the source gave.
                return Outcome(
                    "failed",
                    None,
                    {},
                    f"createLink returned an existing {g.link_scope} {g.link_type} link "
                    f"{'expiring ' + g.expires if g.expires else 'that never expires'}, not the one asked "
                    f"for ({a.get('expires') or 'no expiry'}): remove it on '{a['path']}' and run again",
                )
            self.claimed.add(g.perm_id)
            return Outcome("done", g.perm_id, {**base, "grants": [_record(g)]})
        return await self._invite(step, base)

    async def _invite(self, step: Step, base: dict[str, Any]) -> Outcome:
        a = step.args
        roles = ",".join(sorted(a["roles"]))
        ids = [r["id"] for r in a["recipients"]]
        if AUDIENCE in ids:
            # The academy's people group did not exist when the plan was made: it does now, or the grant
            # waits (never given to anyone else instead).
            if not self.audience:
                return Outcome("failed", None, {}, "the academy's people group was not created: run again")
            ids = [self.audience if i == AUDIENCE else i for i in ids]
        kinds = {(self.audience if r["id"] == AUDIENCE else r["id"]): r["kind"] for r in a["recipients"]}
        wanted = {rid: (kinds[rid], rid, roles) for rid in ids}
        got: list[Grant] = []
        if step.key in self.in_doubt:
            live = await self._direct(a)
            for rid, sig in list(wanted.items()):
                found = self._adopt(live, sig)
                if found is not None:
                    got.append(found)
                    del wanted[rid]
            if got:
                self.tally.reconciled += 1
        if wanted:
            body = {
                "recipients": [{"objectId": rid} for rid in sorted(wanted)],
                "roles": sorted(a["roles"]),
                "requireSignIn": True,
                "sendInvitation": False,  # never e-mail anyone: access is granted quietly, as it was
            }
            resp = await self._send("POST", f"{_item_path(a)}/invite", body)
            if resp is None:
                live = await self._direct(a)
                for rid, sig in list(wanted.items()):
                    found = self._adopt(live, sig)
                    if found is not None:
                        got.append(found)
                        del wanted[rid]
                if wanted:
                    return Outcome(
                        "failed",
                        None,
                        {**base, "grants": [_record(g) for g in got]},
                        "invite: answer lost; run again to reconcile",
                    )
            elif not resp.ok:
                refused = scope_limit_finding(resp, a, f"{'/'.join(a['roles'])} access for {_who(a)}")
                if refused is not None:
                    return refused
                raise GraphError("POST", f"{_item_path(a)}/invite", resp)
            else:
                for p in resp.body.get("value", []):
                    g = parse(p)
                    self.claimed.add(g.perm_id)
                    got.append(g)
        first = got[0].perm_id if got else None
        return Outcome("done", first, {**base, "grants": [_record(g) for g in got]})

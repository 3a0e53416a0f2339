"""The teams phase's operations: each change to the trust tenant, its reconciliation and its undo, beside
each other.

Shapes (learn.microsoft.com/graph/api/...):
- create-team: team-put-teams, `PUT /groups/{id}/team` (201). A group made minutes ago may answer 404 for a
  while ("retry the call three times with a 10-second delay"): the runner sends a step answered 404 again,
  reconciling by `GET /groups/{id}/team` in between, at most MAX_SENDS times.
- create-class / add-class-person / create-class-team: educationclass-post (`POST /education/classes`, the
  class's own Microsoft 365 group with the class properties Teams needs), educationclass-post-teachers and
  -members (a teacher becomes an owner of the class's group), team-post with `template@odata.bind`
  teamsTemplates('educationClass') and `group@odata.bind` (202, provisioned asynchronously).
- create-channel: channel-post (`membershipType` standard / private / shared; a private or shared channel
  made with application permissions names its owner in `members`). General is the team's primaryChannel.
- start-migration / import-message / complete-migration: channel-startmigration (204), "Import third-party
  platform messages to Teams" (POST messages and replies with the original `createdDateTime` and `from`;
  409 when another message of the channel has the same createdDateTime to the millisecond),
  channel-completemigration (204).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from migrations.core.steps import History, Outcome, Step, UndoStep, register_operation
from migrations.graph.client import BatchItem, GraphError, GraphResponse
from migrations.safety.sanitise import terminal_text
from migrations.teams import archive
from migrations.teams.context import BIND_ROOT, TeamsContext, millis
from migrations.teams.hosted import read_images, without_missing

PHASE = "teams"


def _maybe(step: UndoStep) -> str:
    return " (if the interrupted run created it)" if step.in_doubt else ""


class _Op:
    name = ""
    batchable = False  # every Teams write waits for its own per-team / per-channel window
    reversible = True

    @property
    def undo_name(self) -> str:
        return self.name

    def undo_step(self, phase: str, key: str, h: History) -> UndoStep | None:
        done = h.done
        if done is not None:
            if done.data.get("status") == "already" or not done.target_id:
                return None
            return UndoStep(phase, key, h.op, done.target_id, done.data, h.args)
        if h.args and h.latest in ("intent", "undo-intent", "undo-failed", "undo-skipped"):
            return UndoStep(phase, key, h.op, h.resolved, {}, h.args, in_doubt=h.resolved is None)
        return None

    def describe_undo(self, step: UndoStep) -> str:
        return f"{step.op} {step.key}: nothing to undo"

    async def undo(self, step: UndoStep, ctx: Any, found: Callable[[str], None]) -> Outcome:
        return Outcome("undone", step.target_id, {}, "nothing to undo")


def _team_of(step: Step, ctx: TeamsContext) -> str | None:
    """A team's id is its group's id: the group the groups phase made, or the class this phase made."""
    return ctx.target_id(step.args["team_key"])


# The education templates a team can be made from besides a class's (team-post "Create a team from group"
# with `group@odata.bind`); a team of any other kind is put on its group as a standard team.
TEMPLATES = ("educationStaff", "educationProfessionalLearningCommunity")


class CreateTeam(_Op):
    """A team on the group the groups phase made: `PUT /groups/{id}/team`, or, for a staff or professional
    learning community team, `POST /teams` with its template and the group bound. Its undo leaves it: a
    team goes with its group (no Graph call takes a team off a group), which the groups phase's rollback
    deletes."""

    name = "create-team"
    reversible = False

    def describe(self, step: Step) -> str:
        template = step.args.get("template")
        how = f"from the {template} template" if template else "(PUT /groups/{id}/team)"
        return f"make '{terminal_text(step.args['display_name'])}' a team {how}"

    def request(self, step: Step, ctx: TeamsContext) -> BatchItem:
        gid = ctx.target_id(step.args["group_key"])
        settings = dict(step.args.get("settings") or {})
        template = step.args.get("template")
        if template:
            body = {
                "template@odata.bind": f"{BIND_ROOT}/teamsTemplates('{template}')",
                "group@odata.bind": f"{BIND_ROOT}/groups('{gid}')",
                **settings,
            }
            return BatchItem("POST", "/teams", body)
        return BatchItem("PUT", f"/groups/{gid}/team", settings)

    def outcome(self, step: Step, resp: GraphResponse, ctx: TeamsContext) -> Outcome | None:
        # 202: POST /teams provisions asynchronously; channel steps that meet the team not yet ready (404)
        # are sent again by the runner.
        if resp.status in (200, 201, 202):
            return Outcome("done", ctx.target_id(step.args["group_key"]), {})
        return None  # 409 (already a team: a lost answer) and the new-group 404: reconcile, then send again

    async def reconcile(self, step: Step, ctx: TeamsContext) -> Outcome | None:
        gid = ctx.target_id(step.args["group_key"])
        if not gid:
            return None
        resp = await ctx.target.request("GET", f"/groups/{gid}/team", params={"$select": "id"})
        return Outcome("done", gid, {"reconciled": True}) if resp.ok else None

    def describe_undo(self, step: UndoStep) -> str:
        return f"team '{step.args.get('display_name')}': goes with its group (groups phase rollback)"


class CreateClass(_Op):
    """An education class (its own Microsoft 365 group), found again by its externalId, the provenance
    marker; deleted by rollback (the class's team goes with it)."""

    name = "create-class"

    def describe(self, step: Step) -> str:
        return f"create class '{terminal_text(step.args['display_name'])}' ({step.args['mail_nickname']})"

    def request(self, step: Step, ctx: TeamsContext) -> BatchItem:
        a = step.args
        body = {
            "displayName": a["display_name"],
            "mailNickname": a["mail_nickname"],
            "description": a.get("description") or a["display_name"],
            "externalId": a["marker"],
            "externalName": a["display_name"],
        }
        return BatchItem("POST", "/education/classes", body)

    def outcome(self, step: Step, resp: GraphResponse, ctx: TeamsContext) -> Outcome | None:
        if resp.status == 201:
            return Outcome("done", str(resp.body["id"]), {})
        return None

    async def _find(self, marker: str, ctx: TeamsContext) -> str | None:
        body = await ctx.target.get(
            "/education/classes", {"$filter": f"externalId eq '{marker}'", "$select": "id,externalId"}
        )
        hits = [h for h in body.get("value", []) if h.get("externalId") == marker]
        return str(hits[0]["id"]) if hits else None

    async def reconcile(self, step: Step, ctx: TeamsContext) -> Outcome | None:
        found = await self._find(step.args["marker"], ctx)
        return Outcome("done", found, {"reconciled": True}) if found else None

    def describe_undo(self, step: UndoStep) -> str:
        where = step.target_id or "by its externalId"
        return f"delete class '{step.args.get('display_name')}' and its team ({where}){_maybe(step)}"

    async def undo(self, step: UndoStep, ctx: TeamsContext, found: Callable[[str], None]) -> Outcome:
        target = step.target_id
        if target is None:
            target = await self._find(str(step.args.get("marker")), ctx)
            if target is None:
                return Outcome("undone", None, {}, "the interrupted run had not created it")
            found(target)
        # A class is its Microsoft 365 group: deleting the group deletes the class and its team with it.
        resp = await ctx.target.request("DELETE", f"/groups/{target}")
        if not (resp.ok or resp.status == 404):
            return Outcome("failed", target, {}, f"{resp.status} {resp.error_message}")
        if ctx.purge:
            # Only once the purge is known to have worked is the step undone; else the next rollback retries.
            gone = await ctx.target.request("DELETE", f"/directory/deletedItems/{target}")
            if not (gone.ok or gone.status == 404):
                return Outcome("failed", target, {"deleted": True}, f"purge failed: {gone.status}")
        return Outcome("undone", target, {"purged": ctx.purge}, "already gone" if resp.status == 404 else "")


class AddClassPerson(_Op):
    """A teacher or pupil of a class (educationclass-post-teachers / -members: a teacher becomes an owner of
    the class's group). One person a request, so these go in `$batch`es of 20. Undo: nothing of its own; the
    class's delete takes its people with it."""

    name = "add-class-person"
    batchable = True
    reversible = False

    def describe(self, step: Step) -> str:
        a = step.args
        return f"add {a['role']} {a['user_id']} to class '{terminal_text(a['display_name'])}'"

    def _kind(self, step: Step) -> str:
        return "teachers" if step.args["role"] == "teacher" else "members"

    def request(self, step: Step, ctx: TeamsContext) -> BatchItem:
        cid = _team_of(step, ctx)
        ref = {"@odata.id": f"{BIND_ROOT}/education/users/{step.args['user_id']}"}
        return BatchItem("POST", f"/education/classes/{cid}/{self._kind(step)}/$ref", ref)

    def outcome(self, step: Step, resp: GraphResponse, ctx: TeamsContext) -> Outcome | None:
        return Outcome("done", _team_of(step, ctx), {}) if resp.ok else None  # "already exist": reconcile

    async def reconcile(self, step: Step, ctx: TeamsContext) -> Outcome | None:
        cid = _team_of(step, ctx)
        if not cid:
            return None
        people = {p["id"] async for p in ctx.target.pages(f"/education/classes/{cid}/{self._kind(step)}")}
        return Outcome("done", cid, {"reconciled": True}) if step.args["user_id"] in people else None


class CreateClassTeam(CreateTeam):
    """The class's team from the educationClass template (class notebook, assignments, hidden membership).
    Undo: goes with its class."""

    name = "create-class-team"

    def describe(self, step: Step) -> str:
        return (
            f"make class '{terminal_text(step.args['display_name'])}' a class team (educationClass template)"
        )

    def describe_undo(self, step: UndoStep) -> str:
        return f"class team '{step.args.get('display_name')}': goes with its class"


class CreateChannel(_Op):
    """A channel by name and kind. Found again by name (Teams keeps channel names unique in a team, and the
    team is trustfold's own). Undo deletes it (with its messages)."""

    name = "create-channel"

    def describe(self, step: Step) -> str:
        a = step.args
        return f"create {a['kind']} channel '{terminal_text(a['name'])}' in '{terminal_text(a['team_name'])}'"

    def request(self, step: Step, ctx: TeamsContext) -> BatchItem:
        a = step.args
        body: dict[str, Any] = {"displayName": a["name"], "membershipType": a["kind"]}
        if a.get("description"):
            body["description"] = a["description"]
        if a["kind"] in ("private", "shared") and a.get("owner_id"):
            body["members"] = [
                {
                    "@odata.type": "#microsoft.graph.aadUserConversationMember",
                    "user@odata.bind": f"{BIND_ROOT}/users('{a['owner_id']}')",
                    "roles": ["owner"],
                }
            ]
        return BatchItem("POST", f"/teams/{_team_of(step, ctx)}/channels", body)

    def outcome(self, step: Step, resp: GraphResponse, ctx: TeamsContext) -> Outcome | None:
        if resp.status == 201:
            return Outcome("done", str(resp.body["id"]), {"team_id": _team_of(step, ctx)})
        return None

    async def _find(self, team_id: str, name: str, ctx: TeamsContext) -> str | None:
        async for c in ctx.target.pages(f"/teams/{team_id}/channels", {"$select": "id,displayName"}):
            if str(c.get("displayName", "")).casefold() == name.casefold():
                return str(c["id"])
        return None

    async def reconcile(self, step: Step, ctx: TeamsContext) -> Outcome | None:
        tid = _team_of(step, ctx)
        if not tid:
            return None
        found = await self._find(tid, step.args["name"], ctx)
        return Outcome("done", found, {"team_id": tid, "reconciled": True}) if found else None

    def describe_undo(self, step: UndoStep) -> str:
        return f"delete channel '{step.args.get('name')}' of '{step.args.get('team_name')}'{_maybe(step)}"

    async def undo(self, step: UndoStep, ctx: TeamsContext, found: Callable[[str], None]) -> Outcome:
        tid = step.data.get("team_id") or ctx.target_id(step.args.get("team_key", ""))
        if not tid:
            return Outcome("undone", None, {}, "its team was never made")
        cid = step.target_id or await self._find(tid, str(step.args.get("name")), ctx)
        if cid is None:
            return Outcome("undone", None, {}, "the interrupted run had not created it")
        if step.target_id is None:
            found(cid)
        resp = await ctx.target.request("DELETE", f"/teams/{tid}/channels/{cid}")
        if resp.ok or resp.status == 404:
            return Outcome("undone", cid, {}, "already gone" if resp.status == 404 else "")
        return Outcome("failed", cid, {}, f"{resp.status} {resp.error_message}")


class GeneralChannel(_Op):
    """The team's General channel is made with the team: this step only learns its id (primaryChannel)."""

    name = "general-channel"
    reversible = False

    def describe(self, step: Step) -> str:
        return f"use the General channel of '{terminal_text(step.args['team_name'])}'"

    def request(self, step: Step, ctx: TeamsContext) -> BatchItem:
        return BatchItem("GET", f"/teams/{_team_of(step, ctx)}/primaryChannel?$select=id")

    def outcome(self, step: Step, resp: GraphResponse, ctx: TeamsContext) -> Outcome | None:
        if resp.ok:
            return Outcome("done", str(resp.body["id"]), {"team_id": _team_of(step, ctx)})
        return None

    async def reconcile(self, step: Step, ctx: TeamsContext) -> Outcome | None:
        tid = _team_of(step, ctx)
        if not tid:
            return None
        resp = await ctx.target.request("GET", f"/teams/{tid}/primaryChannel", params={"$select": "id"})
        return Outcome("done", str(resp.body["id"]), {"team_id": tid}) if resp.ok else None


async def _channel_in_mode(step: Step, ctx: TeamsContext, modes: tuple[str, ...]) -> Outcome | None:
    """Reconcile of a migration-mode change: done when the target channel already reads one of `modes`."""
    tid, cid = _channel(step, ctx)
    if not (tid and cid):
        return None
    resp = await ctx.target.request(
        "GET", f"/teams/{tid}/channels/{cid}", params={"$select": "id,migrationMode"}
    )
    mode = (resp.body or {}).get("migrationMode") if resp.ok else None
    return Outcome("done", cid, {"reconciled": True}) if mode in modes else None


def _channel(step: Step, ctx: TeamsContext) -> tuple[str | None, str | None]:
    return _team_of(step, ctx), ctx.target_id(step.args["channel_key"])


class StartMigration(_Op):
    """Migration mode on a channel, from the source channel's first moment (so every message's original time
    is after the channel's createdDateTime, as import requires). Left open across incremental passes; only
    complete-migration (at cut-over) closes it. Nothing to undo: the channel's own undo deletes it."""

    name = "start-migration"
    reversible = False

    def describe(self, step: Step) -> str:
        return (
            f"start migration mode on '{terminal_text(step.args['channel_name'])}' from {step.args['since']}"
        )

    def request(self, step: Step, ctx: TeamsContext) -> BatchItem:
        tid, cid = _channel(step, ctx)
        body = {"conversationCreationDateTime": step.args["since"]}
        return BatchItem("POST", f"/teams/{tid}/channels/{cid}/startMigration", body)

    def outcome(self, step: Step, resp: GraphResponse, ctx: TeamsContext) -> Outcome | None:
        return Outcome("done", _channel(step, ctx)[1], {}) if resp.status in (200, 204) else None

    async def reconcile(self, step: Step, ctx: TeamsContext) -> Outcome | None:
        return await _channel_in_mode(step, ctx, ("inProgress", "completed"))


class ImportMessage(_Op):
    """One message (or reply) with its original time and author. Found again by createdDateTime (to the ms)
    and author in the target channel, so a killed run never imports it twice. Nothing to undo on its own:
    imported messages go with their channel; in General they stay (named in the rollback)."""

    name = "import-message"
    reversible = False

    def describe(self, step: Step) -> str:
        a = step.args
        what = "reply" if a.get("parent_key") else "message"
        who, where = terminal_text(a["author_name"]), terminal_text(a["channel_name"])
        return f"import {what} of {a['created']} by {who} into '{where}'"

    def request(self, step: Step, ctx: TeamsContext) -> BatchItem:
        a = step.args
        tid, cid = _channel(step, ctx)
        path = f"/teams/{tid}/channels/{cid}/messages"
        if a.get("parent_key"):
            path += f"/{ctx.target_id(a['parent_key'])}/replies"
        body = {
            "createdDateTime": a["created"],
            "from": {
                "user": {"id": a["author_id"], "displayName": a["author_name"], "userIdentityType": "aadUser"}
            },
            "body": {"contentType": a["content_type"], "content": a["content"]},
        }
        if a.get("images"):
            read = ctx.images.get(step.key) or [None] * len(a["images"])
            body["hostedContents"] = [h for h in read if h is not None]
            missing = {i["temp"] for i, h in zip(a["images"], read, strict=True) if h is None}
            if missing:
                body["body"]["content"] = without_missing(a["content"], missing)
        return BatchItem("POST", path, body)

    async def prepare(self, step: Step, ctx: TeamsContext) -> None:
        """Reads the message's inline images from the legacy tenant just before it is sent (once per step:
        a resend reuses them); the plan holds only where they are."""
        images = step.args.get("images")
        if images and step.key not in ctx.images and ctx.source is not None:
            ctx.images[step.key] = await read_images(ctx.source, images)

    def outcome(self, step: Step, resp: GraphResponse, ctx: TeamsContext) -> Outcome | None:
        if resp.status in (200, 201):
            read = ctx.images.pop(step.key, [])
            carried = sum(1 for h in read if h is not None)
            return Outcome("done", str(resp.body["id"]), {"images": carried} if read else {})
        return None  # 409 (same millisecond: ours from a lost answer, or not) and lost answers: reconcile

    async def reconcile(self, step: Step, ctx: TeamsContext) -> Outcome | None:
        a = step.args
        tid, cid = _channel(step, ctx)
        parent = ctx.target_id(a["parent_key"]) if a.get("parent_key") else None
        if not (tid and cid) or (a.get("parent_key") and not parent):
            return None
        seen = await ctx.imported(tid, cid, parent)
        found = seen.get((millis(a["created"]), a["author_id"]))
        return Outcome("done", found, {"reconciled": True}) if found else None


WEB_TAB = "com.microsoft.teamspace.tab.web"  # teams-configuring-builtin-tabs: the Website tab
FILE_TAB_PREFIX = "com.microsoft.teamspace.tab.file."  # its Word, Excel, PowerPoint and PDF tabs


class CreateTab(_Op):
    """A website tab, or a file tab on the migrated copy of its file (channel-post-tabs,
    teams-configuring-builtin-tabs), found again by its name in the channel; undo deletes it."""

    name = "create-tab"

    def describe(self, step: Step) -> str:
        a = step.args
        return f"add tab '{terminal_text(a['name'])}' to '{terminal_text(a['channel_name'])}'"

    def request(self, step: Step, ctx: TeamsContext) -> BatchItem:
        a = step.args
        tid, cid = _channel(step, ctx)
        body = {
            "displayName": a["name"],
            "teamsApp@odata.bind": f"{BIND_ROOT}/appCatalogs/teamsApps/{a['app']}",
            "configuration": {"contentUrl": a["content_url"], "websiteUrl": a["website_url"]},
        }
        if a.get("file_url"):
            body["configuration"] = {
                "entityId": a["entity_id"],
                "contentUrl": a["content_url"],
                "removeUrl": None,
                "websiteUrl": None,
            }
        return BatchItem("POST", f"/teams/{tid}/channels/{cid}/tabs", body)

    def outcome(self, step: Step, resp: GraphResponse, ctx: TeamsContext) -> Outcome | None:
        tid, cid = _channel(step, ctx)
        if resp.status == 201:
            return Outcome("done", str(resp.body["id"]), {"team_id": tid, "channel_id": cid})
        return None

    async def reconcile(self, step: Step, ctx: TeamsContext) -> Outcome | None:
        tid, cid = _channel(step, ctx)
        if not (tid and cid):
            return None
        async for tab in ctx.target.pages(f"/teams/{tid}/channels/{cid}/tabs"):
            if tab.get("displayName") == step.args["name"]:
                return Outcome(
                    "done", str(tab["id"]), {"team_id": tid, "channel_id": cid, "reconciled": True}
                )
        return None

    def describe_undo(self, step: UndoStep) -> str:
        return f"remove tab '{step.args.get('name')}' from '{step.args.get('channel_name')}'{_maybe(step)}"

    async def undo(self, step: UndoStep, ctx: TeamsContext, found: Callable[[str], None]) -> Outcome:
        tid, cid = step.data.get("team_id"), step.data.get("channel_id")
        if not (tid and cid and step.target_id):
            return Outcome("undone", None, {}, "its channel goes with its own undo")
        resp = await ctx.target.request("DELETE", f"/teams/{tid}/channels/{cid}/tabs/{step.target_id}")
        if resp.ok or resp.status == 404:
            return Outcome("undone", step.target_id, {}, "already gone" if resp.status == 404 else "")
        return Outcome("failed", step.target_id, {}, f"{resp.status} {resp.error_message}")


class CompleteMigration(_Op):
    """Ends migration mode on a channel: planned only for the cut-over pass (`--complete`). Not undone."""

    name = "complete-migration"
    reversible = False

    def describe(self, step: Step) -> str:
        return (
            f"complete migration of '{terminal_text(step.args['channel_name'])}' (cut-over: no more imports)"
        )

    def request(self, step: Step, ctx: TeamsContext) -> BatchItem:
        tid, cid = _channel(step, ctx)
        return BatchItem("POST", f"/teams/{tid}/channels/{cid}/completeMigration")

    def outcome(self, step: Step, resp: GraphResponse, ctx: TeamsContext) -> Outcome | None:
        return Outcome("done", _channel(step, ctx)[1], {}) if resp.status in (200, 204) else None

    async def reconcile(self, step: Step, ctx: TeamsContext) -> Outcome | None:
        return await _channel_in_mode(step, ctx, ("completed",))


class ArchiveChannel(_Op):
    """A channel whose history could not be read: an HTML archive of what could be (migrations/teams/
    archive.py) uploaded into the channel's files folder in the trust (channel-get-filesfolder, then
    driveitem-put-content, which replaces a file of the same name: a resend never makes a second). Found
    again by its path; undo deletes it."""

    name = "archive-channel"

    def describe(self, step: Step) -> str:
        a = step.args
        return f"put the history archive of '{terminal_text(a['channel_name'])}' in its files"

    def request(self, step: Step, ctx: TeamsContext) -> BatchItem:
        tid, cid = _channel(step, ctx)
        return BatchItem("GET", f"/teams/{tid}/channels/{cid}/filesFolder")

    async def _folder(self, step: Step, ctx: TeamsContext) -> GraphResponse:
        tid, cid = _channel(step, ctx)
        return await ctx.target.request("GET", f"/teams/{tid}/channels/{cid}/filesFolder")

    @staticmethod
    def _path(folder: dict[str, Any], name: str) -> str:
        drive = folder["parentReference"]["driveId"]
        return f"/drives/{drive}/items/{folder['id']}:/{quote(name, safe='')}:"

    async def send(self, step: Step, ctx: TeamsContext) -> GraphResponse:
        """The page is bytes, not JSON: sent by the operation itself. A folder not there yet (a new team's
        site is provisioned after it) answers 404, which the runner waits out and sends again."""
        a = step.args
        folder = await self._folder(step, ctx)
        if not folder.ok:
            return folder
        page = archive.render(
            a["team_name"], a["name"], a["kind"], a.get("description"), a["refusal"], a.get("tabs") or ()
        )
        return await ctx.target.request(
            "PUT", f"{self._path(folder.body, a['file'])}/content", content=page, idempotent=True
        )

    def outcome(self, step: Step, resp: GraphResponse, ctx: TeamsContext) -> Outcome | None:
        if resp.status in (200, 201) and isinstance(resp.body, dict) and resp.body.get("id"):
            drive = (resp.body.get("parentReference") or {}).get("driveId")
            return Outcome("done", str(resp.body["id"]), {"drive_id": drive, "file": step.args["file"]})
        return None

    async def reconcile(self, step: Step, ctx: TeamsContext) -> Outcome | None:
        tid, cid = _channel(step, ctx)
        if not (tid and cid):
            return None
        folder = await self._folder(step, ctx)
        if not folder.ok:
            return None
        found = await ctx.target.request("GET", self._path(folder.body, step.args["file"]))
        if not found.ok:
            return None
        drive = folder.body["parentReference"]["driveId"]
        return Outcome("done", str(found.body["id"]), {"drive_id": drive, "file": step.args["file"]})

    def describe_undo(self, step: UndoStep) -> str:
        return f"delete the history archive of '{step.args.get('channel_name')}'{_maybe(step)}"

    async def undo(self, step: UndoStep, ctx: TeamsContext, found: Callable[[str], None]) -> Outcome:
        drive, item = step.data.get("drive_id"), step.target_id
        if not (drive and item):
            # In doubt (killed before its outcome): looked up by its path, if its channel is still there.
            try:
                out = await self.reconcile(Step(step.key, self.name, step.args), ctx)
            except GraphError as exc:
                if exc.response.status != 404:
                    raise
                out = None
            if out is None or not out.target_id:
                return Outcome("undone", None, {}, "the interrupted run had not uploaded it")
            drive, item = out.data["drive_id"], out.target_id
            found(item)
        resp = await ctx.target.request("DELETE", f"/drives/{drive}/items/{item}")
        if resp.ok or resp.status == 404:
            return Outcome("undone", item, {}, "already gone" if resp.status == 404 else "")
        return Outcome("failed", item, {}, f"{resp.status} {resp.error_message}")


for _op in (
    CreateTeam(),
    CreateClass(),
    AddClassPerson(),
    CreateClassTeam(),
    CreateChannel(),
    GeneralChannel(),
    StartMigration(),
    ImportMessage(),
    CompleteMigration(),
    CreateTab(),
    ArchiveChannel(),
):
    register_operation(_op)

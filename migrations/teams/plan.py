"""Planning the teams phase: a team per migrated group that had one at source, its channels by name and kind,
each channel's history in migration mode, and (only with `--complete`, the cut-over pass) the completion.

Class teams are made as class teams: the educationClass template needs a group made as an education class
(educationclass-post: "it will add special properties to the group, which will add features such as
assignments and special handling within Microsoft Teams when teams are created using the group"); a plain
Microsoft 365 group never becomes one. So discovery records which source groups are class teams, the groups
phase leaves those groups out, and this phase creates each as an education class with its teachers (owners)
and pupils (members) from the reviewed mapping, then its team from the educationClass template. Every other
team is put on the group the groups phase made (`PUT /groups/{id}/team`).

History: migration mode stays open across passes; each pass imports only messages not yet journaled done;
completion is planned only when the operator says this is the cut-over pass (`run --complete`): after it,
Teams refuses imports, so a message posted at source after completion is a finding, never a lost write.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from migrations.core.journal import Journal
from migrations.core.plan import Plan
from migrations.core.steps import Step
from migrations.core.store import StateStore, dumps, now
from migrations.teams.archive import file_name
from migrations.teams.context import millis
from migrations.teams.hosted import plan_images
from migrations.teams.source import SourceChannel, SourceTeam
from migrations.teams.steps import PHASE, TEMPLATES, WEB_TAB
from trust import Academy

# What a class team holds that Graph gives no way to carry, and what the teacher does about it.
CLASS_NOT_CARRIED = (
    (
        "assignments",
        "assignments and grades are not carried (Graph's education assignments cannot be created with their "
        "submissions and grades): the teacher exports grades from the legacy class before cut-over and sets "
        "current assignments again in the new class team",
    ),
    (
        "class-notebook",
        "class notebook content is not carried: the teacher copies the notebook's sections from the legacy "
        "team's OneNote into the new class notebook (or keeps the export) before the legacy tenant closes",
    ),
)
TEAM_NOT_CARRIED = (
    ("planner", "Planner plans of the team are not carried: recreate them in the trust team"),
    (
        "meeting-recordings",
        "meeting recordings kept outside the channel files (in organisers' OneDrives) are not carried "
        "with the team: they move with each organiser's OneDrive, or are lost with an account that is "
        "not migrated",
    ),
)


def group_key(sid: str) -> str:
    return f"group:{sid}"


def class_key(sid: str) -> str:
    return f"class:{sid}"


def team_step(sid: str) -> str:
    return f"team:{sid}"


def class_groups(store: StateStore, academy: str) -> set[str]:
    """Source groups discovery found to be class teams (the groups phase leaves them to this phase)."""
    out = set()
    for r in store.rows(
        "SELECT object_id, data FROM inventory WHERE academy = ? AND kind = 'team' AND removed = 0",
        (academy,),
    ):
        if json.loads(r["data"]).get("specialization") == "educationClass":
            out.add(r["object_id"])
    return out


def marker_value(academy: Academy, source_id: str) -> str:
    return f"{academy.code}|{academy.legacy_tenant.id}|{source_id}"


class People:
    """Source user id -> trust user id, through the reviewed mapping and what the users phase made."""

    def __init__(self, store: StateStore, academy: str):
        made = {
            k: h["target_id"]
            for k, h in Journal.state(store, academy, "users").items()
            if h["event"] == "done" and h["target_id"]
        }
        self.ids: dict[str, str] = {}
        for r in store.rows(
            "SELECT source_id, action, data FROM mappings WHERE academy = ? AND kind = 'user'", (academy,)
        ):
            data = json.loads(r["data"] or "{}")
            if r["action"] == "match" and data.get("target_id"):
                self.ids[r["source_id"]] = str(data["target_id"])
            elif r["action"] == "create" and f"user:{r['source_id']}" in made:
                self.ids[r["source_id"]] = made[f"user:{r['source_id']}"]

    def get(self, source_id: str | None) -> str | None:
        return self.ids.get(source_id) if source_id else None


def _unique_ms(stamp: str, taken: set[str]) -> str:
    """The stamp to the millisecond, moved on by a millisecond while another message of the channel has it:
    Teams refuses a second message at the same millisecond (409)."""
    value = millis(stamp)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    while value in taken:
        moment += timedelta(milliseconds=1)
        value = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    taken.add(value)
    return value


def _since(channel: SourceChannel) -> str:
    """Migration mode from the source channel's first moment (planned only for a channel with messages)."""
    stamps = [millis(m.created) for m in channel.messages]
    if channel.created:
        stamps.append(millis(channel.created))
    return min(stamps)


def save_findings(store: StateStore, academy: str, findings: list[tuple[str, str, str, str]]) -> None:
    """(kind, object, display, message) for what this phase does not carry; the report reads them."""
    with store.tx() as tx:
        tx.execute("DELETE FROM team_findings WHERE academy = ?", (academy,))
        tx.executemany(
            "INSERT OR REPLACE INTO team_findings (academy, kind, object_id, display, message) "
            "VALUES (?, ?, ?, ?, ?)",
            [(academy, *f) for f in findings],
        )


def plan_teams(
    academy: Academy,
    store: StateStore,
    teams: dict[str, SourceTeam],
    rosters: dict[str, tuple[list[str], list[str]]],
    *,
    complete: bool,
) -> tuple[Plan, list[tuple[str, str, str, str]]]:
    """The steps for `teams` (source group id -> its team read now); `rosters`: class source id -> (owner
    source ids, member source ids). Returns the plan and the findings."""
    code = academy.code
    done = Journal.state(store, code, PHASE)
    groups_done = {
        k: h["target_id"]
        for k, h in Journal.state(store, code, "groups").items()
        if h["event"] == "done" and h["target_id"]
    }
    names = {
        r["source_id"]: r
        for r in store.rows(
            "SELECT source_id, target_key, display_name, action, data FROM mappings "
            "WHERE academy = ? AND kind = 'group'",
            (code,),
        )
    }
    people = People(store, code)
    group_owners: dict[str, list[str]] = defaultdict(list)
    for r in store.rows(
        "SELECT data FROM inventory WHERE academy = ? AND kind = 'owner' AND removed = 0", (code,)
    ):
        o = json.loads(r["data"])
        group_owners[str(o["group_id"])].append(str(o["owner_id"]))
    steps: list[Step] = []
    notes: list[str] = []
    findings: list[tuple[str, str, str, str]] = []
    already = 0

    def add(step: Step) -> bool:
        nonlocal already
        if done.get(step.key, {}).get("event") == "done":
            already += 1
            return False
        steps.append(step)
        return True

    for sid in sorted(teams):
        team = teams[sid]
        row = names.get(sid)
        if row is None or row["action"] == "skip":
            continue
        shown = str(json.loads(row["data"] or "{}").get("target_display_name") or team.display_name)
        settings = dict(team.settings)
        if team.is_class and group_key(sid) in groups_done:
            # Made as a plain group before discovery knew it was a class (an older store): a team goes on it,
            # but not a class team; rolling back that group and running groups and teams again makes one.
            findings.append(
                (
                    "class-as-standard",
                    sid,
                    shown,
                    "the groups phase made this class as a plain group, which cannot take the educationClass "
                    "template: carried as a standard team (roll back its group to carry it as a class)",
                )
            )
        if team.is_class and group_key(sid) not in groups_done:
            owners_src, members_src = rosters.get(sid, ([], []))
            owners = sorted({i for i in (people.get(o) for o in owners_src) if i})
            members = sorted({i for i in (people.get(m) for m in members_src) if i} - set(owners))
            if not owners:
                notes.append(
                    f"class '{shown}': no teacher is in the trust yet (run users first); not planned"
                )
                continue
            tkey = class_key(sid)
            add(
                Step(
                    tkey,
                    "create-class",
                    {
                        "display_name": shown,
                        "mail_nickname": row["target_key"],
                        "description": team.description,
                        "marker": marker_value(academy, sid),
                    },
                )
            )
            teacher_keys = []
            for role, ids in (("teacher", owners), ("pupil", members)):
                for uid in ids:
                    key = f"{role}:{sid}:{uid}"
                    person = {"team_key": tkey, "display_name": shown, "role": role, "user_id": uid}
                    add(Step(key, "add-class-person", person, after=(tkey,)))
                    if role == "teacher":
                        teacher_keys.append(key)
            add(
                Step(
                    team_step(sid),
                    "create-class-team",
                    {
                        "group_key": tkey,
                        "team_key": tkey,
                        "display_name": shown,
                        "settings": settings,
                        "template": "educationClass",
                    },
                    after=(tkey, *teacher_keys),
                )
            )
            for kind, message in CLASS_NOT_CARRIED:
                findings.append((kind, sid, shown, message))
            owner_id = owners[0]
        else:
            gk = group_key(sid)
            if gk not in groups_done:
                notes.append(f"group '{shown}' not created yet (run the groups phase first); its team waits")
                continue
            tkey = gk
            add(
                Step(
                    team_step(sid),
                    "create-team",
                    {
                        "group_key": gk,
                        "team_key": gk,
                        "display_name": shown,
                        "settings": settings,
                        "template": team.specialization if team.specialization in TEMPLATES else None,
                    },
                )
            )
            owner_id = None
        for kind, message in TEAM_NOT_CARRIED:
            findings.append((kind, sid, shown, message))
        for app in team.apps:
            findings.append(
                ("app", f"{sid}:{app}", shown, f"app '{app}' is not installed in the trust: not carried")
            )
        for channel in team.channels:
            ckey = f"channel:{sid}:{channel.id}"
            args: dict[str, Any] = {
                "team_key": tkey,
                "team_name": shown,
                "name": channel.name,
                "kind": channel.kind,
            }
            if channel.general:
                add(Step(ckey, "general-channel", args, after=(team_step(sid),)))
            else:
                args["description"] = channel.description
                if channel.kind in ("private", "shared"):
                    args["owner_id"] = _channel_owner(channel, group_owners.get(sid, []), people) or owner_id
                add(Step(ckey, "create-channel", args, after=(team_step(sid),)))
            _plan_tabs(sid, tkey, shown, channel, add, findings)
            if not channel.readable:
                findings.append(
                    (
                        "history-not-readable",
                        f"{sid}:{channel.id}",
                        f"{shown} / {channel.name}",
                        "the legacy tenant refused to read this channel's messages (reading channel "
                        "messages with application permissions is a protected API Microsoft approves per "
                        f"app): {channel.refusal}; an archive saying so is in the channel's files",
                    )
                )
                add(
                    Step(
                        f"archive:{sid}:{channel.id}",
                        "archive-channel",
                        {
                            "team_key": tkey,
                            "channel_key": ckey,
                            "channel_name": f"{shown} / {channel.name}",
                            "team_name": shown,
                            "name": channel.name,
                            "kind": channel.kind,
                            "description": channel.description,
                            "refusal": channel.refusal,
                            "file": file_name(channel.name),
                            "tabs": [
                                {"name": t["name"], "config": {"websiteUrl": t["config"].get("websiteUrl")}}
                                for t in channel.tabs
                            ],
                        },
                        after=(ckey,),
                    )
                )
                continue
            _plan_history(code, sid, tkey, shown, channel, people, owner_id, done, add, findings, complete)
    return Plan(code, PHASE, steps, notes, already), findings


def _plan_tabs(
    sid: str,
    tkey: str,
    shown: str,
    channel: SourceChannel,
    add: Any,
    findings: list[tuple[str, str, str, str]],
) -> None:
    """Website tabs to the open web are carried as they are; a tab on a file, or on the legacy tenant's own
    SharePoint, would point back into the tenant being closed: a finding until channel files are carried."""
    ckey = f"channel:{sid}:{channel.id}"
    where = f"{shown} / {channel.name}"
    for tab in channel.tabs:
        urls = [str(tab["config"].get(k) or "") for k in ("contentUrl", "websiteUrl")]
        legacy = any(
            urlsplit(u).hostname and str(urlsplit(u).hostname).endswith(".sharepoint.com") for u in urls
        )
        if tab["app"] != WEB_TAB or legacy:
            findings.append(
                (
                    "tab",
                    f"{sid}:{channel.id}:{tab['id']}",
                    where,
                    f"tab '{tab['name']}' points at legacy content (a file or the legacy SharePoint): not "
                    "carried; add it again once its files are in the trust",
                )
            )
            continue
        args = {
            "team_key": tkey,
            "channel_key": ckey,
            "channel_name": where,
            "name": tab["name"],
            "app": tab["app"],
            "content_url": tab["config"].get("contentUrl"),
            "website_url": tab["config"].get("websiteUrl"),
        }
        add(Step(f"tab:{sid}:{channel.id}:{tab['id']}", "create-tab", args, after=(ckey,)))


def _channel_owner(channel: SourceChannel, team_owners: list[str], people: People) -> str | None:
    """The copy's owner: the first of the channel's own owners in the trust, else of the team's owners."""
    for source_id in [*channel.owners, *sorted(team_owners)]:
        mapped = people.get(source_id)
        if mapped:
            return mapped
    return None


def _plan_history(
    code: str,
    sid: str,
    tkey: str,
    shown: str,
    channel: SourceChannel,
    people: People,
    fallback: str | None,
    done: dict[str, dict[str, Any]],
    add: Any,
    findings: list[tuple[str, str, str, str]],
    complete: bool,
) -> None:
    ckey = f"channel:{sid}:{channel.id}"
    mkey = f"migrate:{sid}:{channel.id}"
    completed = done.get(f"complete:{sid}:{channel.id}", {}).get("event") == "done"
    where = f"{shown} / {channel.name}"
    if completed:
        new = [
            m
            for m in channel.messages
            if done.get(f"msg:{sid}:{channel.id}:{m.id}", {}).get("event") != "done"
        ]
        if new:
            findings.append(
                (
                    "after-cut-over",
                    f"{sid}:{channel.id}",
                    where,
                    f"{len(new)} message(s) posted at source after the channel's migration was completed: "
                    "Teams takes no more imports; not carried",
                )
            )
        return
    if not channel.messages:
        return  # nothing to import: the channel never enters migration mode, so there is nothing to complete
    add(
        Step(
            mkey,
            "start-migration",
            {"team_key": tkey, "channel_key": ckey, "channel_name": where, "since": _since(channel)},
            after=(ckey,),
        )
    )
    placeholder = fallback or next(
        (people.get(m.author_id) for m in channel.messages if people.get(m.author_id)), None
    )
    taken: set[str] = set()
    msg_keys: list[str] = []
    unmapped: dict[str, int] = defaultdict(int)
    for m in sorted(channel.messages, key=lambda m: (millis(m.created), m.id)):
        key = f"msg:{sid}:{channel.id}:{m.id}"
        author = people.get(m.author_id)
        content, name = m.content, m.author_name
        if author is None:
            unmapped[m.author_name] += 1
            author = placeholder
            name = f"{m.author_name} (former member)"
            # Who wrote it stays readable even though the post is attributed to a placeholder account.
            prefix = f"<p><em>Originally posted by {html.escape(m.author_name)}</em></p>"
            content = (
                prefix + content
                if m.content_type == "html"
                else f"Originally posted by {m.author_name}\n{content}"
            )
        if author is None:
            findings.append(
                (
                    "message-no-author",
                    f"{sid}:{channel.id}:{m.id}",
                    where,
                    "nobody of this channel is in the trust to carry the message; not carried",
                )
            )
            continue
        created = _unique_ms(m.created, taken)
        after = [mkey]
        parent = f"msg:{sid}:{channel.id}:{m.reply_to}" if m.reply_to else None
        if parent:
            after.append(parent)
        args: dict[str, Any] = {
            "team_key": tkey,
            "channel_key": ckey,
            "channel_name": where,
            "parent_key": parent,
            "created": created,
            "author_id": author,
            "author_name": name,
            "content_type": m.content_type,
            "content": content,
        }
        if m.images:
            # Inline images go with the message: the body refers to them by temporary id, the bytes are
            # read from the legacy tenant when the message is sent (migrations/teams/hosted.py).
            args["content"], args["images"] = plan_images(content, m.path, m.images)
        msg_keys.append(key)
        add(Step(key, "import-message", args, after=tuple(after)))
    for name, n in sorted(unmapped.items()):
        findings.append(
            (
                "unmapped-author",
                f"{sid}:{channel.id}:{name}",
                where,
                f"{n} message(s) by {name}, who is not in the trust, carried under a placeholder author",
            )
        )
    if complete:
        add(
            Step(
                f"complete:{sid}:{channel.id}",
                "complete-migration",
                {"team_key": tkey, "channel_key": ckey, "channel_name": where},
                after=(mkey, *msg_keys),
            )
        )


def record_teams(store: StateStore, academy: str, tenant: str, found: dict[str, dict[str, Any]]) -> None:
    """Discovery's record of which source groups have a team, and of what kind (inventory kind 'team')."""
    at = now()
    with store.tx() as tx:
        tx.execute("UPDATE inventory SET removed = 1 WHERE academy = ? AND kind = 'team'", (academy,))
        for gid, data in found.items():
            tx.execute(
                "INSERT INTO inventory (academy, tenant_id, kind, object_id, data, removed, updated_at) "
                "VALUES (?, ?, 'team', ?, ?, 0, ?) ON CONFLICT (academy, kind, object_id) DO UPDATE SET "
                "data = excluded.data, removed = 0, updated_at = excluded.updated_at",
                (academy, tenant, gid, dumps(data), at),
            )

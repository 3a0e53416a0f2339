"""An academy's Teams, built on the groups the directory generator made: each "{year} {subject}" class group
becomes an education class made into a class team (teacher owner, pupils members) with a second channel, a
file in its channel folder, a website tab and a term's messages (replies, one inline image per academy); the
Staff Room becomes a staff team with a private channel for senior leaders.

Small on purpose (the demo migrates it): a few messages a channel. Deterministic by the rng it is given.
"""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox import drives_content as content_mod
from sandbox import teams_messages as tm
from sandbox import teams_ops as ops
from sandbox.teams_state import drive_stamp, iso_ms
from sandbox.world import TenantState

TERM_START = datetime(2025, 9, 3, 8, 30, tzinfo=UTC)
CREATED = iso_ms(TERM_START - timedelta(days=7))
# A 1x1 PNG: the inline image of an academy's first class message.
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cf000000030101005c3d2e"
        "0b0000000049454e44ae426082"
    )
).decode()
SUBJECT_CHANNELS = {"maths": "Homework", "english": "Reading List"}
LINES = (
    "Welcome to the class team! Please check the Class Materials folder.",
    "Homework for this week is in the Files tab.",
    "Reminder: bring your exercise books tomorrow.",
    "Great work in today's lesson, everyone.",
    "The quiz on Friday covers chapters 3 and 4.",
)
REPLIES = ("Thank you, Miss!", "Will do.", "Can we hand it in on Monday?", "Got it, thanks.")


def seed_teams(t: TenantState, rng: random.Random) -> None:
    """Class teams, the staff team and their history for one academy tenant."""
    store = ops.store_of(t)
    picture_done = False
    for gid, group in sorted(t.groups.items(), key=lambda kv: str(kv[1].get("mailNickname"))):
        nick = str(group.get("mailNickname") or "")
        subject = nick.rsplit("-", 1)[-1]
        if "Unified" not in group.get("groupTypes", []) or subject not in SUBJECT_CHANNELS:
            continue
        owners = list(t.owners.get(gid, {}))
        if not owners:
            continue
        store.classes[gid] = {
            "id": gid,
            "classCode": nick.upper(),
            "externalId": nick,
            "externalName": group.get("displayName"),
            "externalSource": "manual",
            "externalSourceDetail": None,
            "grade": None,
            "term": {"displayName": "Autumn 2025", "startDate": "2025-09-03", "endDate": "2025-12-19"},
            "course": None,
            "createdBy": {"application": {"displayName": "School Data Sync"}},
        }
        store.teachers[gid] = dict.fromkeys(owners)
        team = ops.create_team_from_group(t, gid, {}, template="educationClass", created=CREATED)
        general = store.general(gid)
        other = ops.create_channel(
            t, team, {"displayName": SUBJECT_CHANNELS[subject]}, app_id="generator", roles=[], created=CREATED
        )
        folder = t.drives.items[ops.files_folder(t, other)["id"]]
        t.drives.create_item(
            folder,
            f"{SUBJECT_CHANNELS[subject]} week 1.docx",
            folder=False,
            content=content_mod.generated(f"teams:{gid}:{subject}", rng.randint(2_000, 9_000)),
            validate=False,
            created=drive_stamp(CREATED),
        )
        ops.create_tab(
            t,
            general,
            {
                "displayName": "BBC Bitesize",
                "teamsApp@odata.bind": "https://graph.microsoft.com/v1.0/appCatalogs/teamsApps/com.microsoft.teamspace.tab.web",
                "configuration": {
                    "contentUrl": "https://www.bbc.co.uk/bitesize",
                    "websiteUrl": "https://www.bbc.co.uk/bitesize",
                },
            },
        )
        people = [u for u in t.members.get(gid, {}) if u in t.users]
        _history(t, general, owners[0], people, rng, count=2, picture=not picture_done)
        _history(t, other, owners[0], people, rng, count=1, picture=False)
        picture_done = True
    staff = next((g for g in t.groups.values() if g.get("mailNickname") == "staffroom"), None)
    if staff is not None and t.owners.get(staff["id"]):
        team = ops.create_team_from_group(t, staff["id"], {}, template="educationStaff", created=CREATED)
        head = next(iter(t.owners[staff["id"]]))
        seniors = [u for u in t.members[staff["id"]] if u != head][:3]
        private = ops.create_channel(
            t,
            team,
            {
                "displayName": "Senior Leadership",
                "membershipType": "private",
                "members": [
                    _member(head, "owner"),
                    *(_member(u, "member") for u in seniors),
                ],
            },
            app_id="generator",
            roles=[],
            created=CREATED,
        )
        folder = t.drives.items[ops.files_folder(t, private)["id"]]
        t.drives.create_item(
            folder,
            "Budget 2025-26.xlsx",
            folder=False,
            content=content_mod.generated(f"teams:{staff['id']}:slt", 6_000),
            validate=False,
            created=drive_stamp(CREATED),
        )
        _history(
            t, store.general(staff["id"]), head, list(t.members[staff["id"]]), rng, count=2, picture=False
        )
        _history(t, private, head, seniors or [head], rng, count=1, picture=False)


def _member(uid: str, role: str) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.aadUserConversationMember",
        "user@odata.bind": f"https://graph.microsoft.com/v1.0/users('{uid}')",
        "roles": [role] if role == "owner" else [],
    }


def _history(
    t: TenantState,
    channel: dict[str, Any],
    teacher: str,
    people: list[str],
    rng: random.Random,
    *,
    count: int,
    picture: bool,
) -> None:
    store = ops.store_of(t)
    for i in range(count):
        when = TERM_START + timedelta(
            days=rng.randint(0, 70), minutes=rng.randint(0, 400), milliseconds=rng.randint(0, 999)
        )
        body: dict[str, Any] = {
            "from": teacher,
            "createdDateTime": iso_ms(when),
            "content": f"<p>{rng.choice(LINES)}</p>",
            "subject": None,
        }
        if picture and i == 0:
            body["content"] += '<p><img src="../hostedContents/1/$value" alt="board"></p>'
            body["hostedContents"] = [
                {"@microsoft.graph.temporaryId": "1", "contentBytes": PIXEL, "contentType": "image/png"}
            ]
        root = tm.admin_post(t, store, channel, body)
        if people and i == 0:
            tm.admin_post(
                t,
                store,
                channel,
                {
                    "from": rng.choice(people),
                    "createdDateTime": iso_ms(when + timedelta(minutes=rng.randint(5, 300))),
                    "content": rng.choice(REPLIES),
                    "contentType": "text",
                    "replyToId": root["id"],
                },
            )

"""Each academy's mailboxes: staff mail, recurring meetings with attendees, contacts, attachments, folders,
shared mailboxes (office, admissions), an in-place archive, and hostile items a real legacy tenant holds
(malformed headers, noncharacters, script in HTML bodies, very long subjects). Deterministic with the seed.

Scale follows the generator's size: up to the demo's 250 users per academy only a few staff mailboxes hold
tens of items (the whole demo stays fast); from 1,000 the first dozen staff have about `size` items each
(thousands at bench scale, capped at 3,000) and the others tens; from 2,000 one message carries an
attachment close to the 150 MB limit, made lazily from a seed (sandbox/mail_state.blob_chunks),
never held in memory.
"""

from __future__ import annotations

import base64
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from sandbox.directory import base_user
from sandbox.mail_state import MAX_MESSAGE_BYTES, MailStore, add_item, create_folder, folder
from sandbox.world import TenantState

EPOCH = datetime(2026, 9, 1, 8, 0, 0)
SMALL_SCALE = 250
DEMO_MAILBOXES = 3
DEMO_ITEMS = 18
BIG_SCALE = 1_000
BENCH_SCALE = 2_000
MAX_ITEMS_EACH = 3_000
HEAVY_MAILBOXES = 12
# Just under the limit: the stream adds its own head and hash line around the payload.
LARGE_ATTACHMENT = MAX_MESSAGE_BYTES - 64 * 1024

SUBJECTS = (
    "Year 9 options evening",
    "Re: Parents' evening slots",
    "Safeguarding update (please read)",
    "Fwd: Trip consent forms",
    "Cover for period 3",
    "Department meeting minutes",
    "INSET day agenda",
    "Re: Coursework deadline extension",
    "Reports due Friday",
    "Behaviour log for 8C",
)
MEETINGS = (
    "Department meeting",
    "SLT briefing",
    "Pastoral team",
    "Line management 1:1",
    "Governors committee",
)
USER_FOLDERS = (
    ("inbox", "Parents"),
    ("inbox", "SLT"),
    ("msgfolderroot", "Projects"),
    ("Projects", "Trips 2026"),
)


def _stamp(rng: random.Random, days: int = 700) -> str:
    when = EPOCH - timedelta(days=rng.randint(1, days), seconds=rng.randint(0, 86_399))
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _addr(name: str, address: str) -> dict[str, Any]:
    return {"emailAddress": {"name": name, "address": address}}


def _message(rng: random.Random, me: dict[str, Any], people: list[dict[str, Any]], n: int) -> dict[str, Any]:
    sender = rng.choice(people)
    received = _stamp(rng)
    html = rng.random() < 0.6
    text = f"Hello,\n\nPlease see below about item {n}.\n\nThanks,\n{sender['displayName']}"
    props: dict[str, Any] = {
        "class": "IPM.Note",
        "subject": f"{rng.choice(SUBJECTS)} #{n}",
        "from": _addr(sender["displayName"], sender["userPrincipalName"]),
        "toRecipients": [_addr(me["displayName"], me["userPrincipalName"])],
        "receivedDateTime": received,
        "sentDateTime": received,
        "body": {
            "contentType": "html" if html else "text",
            "content": f"<html><body><p>{text.replace(chr(10), '<br>')}</p></body></html>" if html else text,
        },
        "isRead": rng.random() < 0.8,
        "importance": rng.choice(("normal", "normal", "normal", "high", "low")),
        "internetMessageId": f"<{rng.getrandbits(64):016x}@sandbox.mail>",
        "categories": rng.sample(["Blue category", "Red category", "Parents"], k=rng.randint(0, 1)),
    }
    if rng.random() < 0.15:
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(200, 2_000)))
        props["attachments"] = [
            {
                "name": f"letter-{n}.pdf",
                "contentType": "application/pdf",
                "size": len(data),
                "contentBytes": base64.b64encode(data).decode(),
            }
        ]
    return props


def _meeting(rng: random.Random, me: dict[str, Any], people: list[dict[str, Any]]) -> dict[str, Any]:
    start = EPOCH + timedelta(days=rng.randint(-60, 60), hours=rng.randint(0, 8))
    recurring = rng.random() < 0.6
    props: dict[str, Any] = {
        "class": "IPM.Appointment",
        "subject": rng.choice(MEETINGS),
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "Europe/London"},
        "end": {
            "dateTime": (start + timedelta(minutes=rng.choice((30, 45, 60)))).strftime(
                "%Y-%m-%dT%H:%M:%S.0000000"
            ),
            "timeZone": "Europe/London",
        },
        "organizer": _addr(me["displayName"], me["userPrincipalName"]),
        "attendees": [
            {**_addr(p["displayName"], p["userPrincipalName"]), "type": "required"}
            for p in rng.sample(people, k=min(len(people), rng.randint(1, 4)))
        ],
        "location": {"displayName": rng.choice(("Staff room", "Room 12", "Library", "Teams"))},
        "body": {"contentType": "text", "content": "Agenda to follow."},
        "recurrence": None,
    }
    if recurring:
        props["recurrence"] = {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [start.strftime("%A").lower()]},
            "range": {
                "type": "endDate",
                "startDate": start.strftime("%Y-%m-%d"),
                "endDate": (start + timedelta(days=180)).strftime("%Y-%m-%d"),
            },
        }
    return props


def _contact(rng: random.Random, person: dict[str, Any]) -> dict[str, Any]:
    given, _, surname = person["displayName"].partition(" ")
    return {
        "class": "IPM.Contact",
        "displayName": person["displayName"],
        "givenName": given,
        "surname": surname,
        "emailAddresses": [{"name": person["displayName"], "address": person["userPrincipalName"]}],
        "businessPhones": [f"01632 {rng.randint(100000, 999999)}"],
        "companyName": "",
        "jobTitle": "",
    }


def hostile_items(me: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """What a legacy mailbox really holds: header injection in a subject, noncharacters, script in HTML,
    a 4,000-character subject, a sender with no address."""
    base = {
        "class": "IPM.Note",
        "toRecipients": [_addr(me["displayName"], me["userPrincipalName"])],
        "receivedDateTime": "2026-03-01T09:00:00Z",
        "sentDateTime": "2026-03-01T09:00:00Z",
        "isRead": False,
    }
    return [
        (
            "inbox",
            {
                **base,
                "subject": "Invoice\r\nBcc: everyone@example.com\r\nX-Injected: yes",
                "from": _addr("Accounts\r\nReply-To: x@evil.example", "accounts@evil.example"),
                "internetMessageHeaders": [{"name": "X-Broken Header", "value": "no colon\x00here"}],
                "body": {"contentType": "text", "content": "header injection"},
            },
        ),
        (
            "inbox",
            {
                **base,
                "subject": "Noncharacters \ufffe\uffff\ufdd0\U0010ffff and bidi \u202egnp.exe",
                "from": _addr("\u202eNoncharacter Sender", "odd@example.com"),
                "body": {"contentType": "text", "content": "\ufdd0\ufdef"},
            },
        ),
        (
            "inbox",
            {
                **base,
                "subject": "<script>alert(1)</script> newsletter",
                "from": _addr("Newsletter", "news@example.com"),
                "body": {
                    "contentType": "html",
                    "content": '<html><body><script>alert("x")</script><img src=x onerror=alert(2)>'
                    '<a href="javascript:alert(3)">click</a></body></html>',
                },
            },
        ),
        (
            "inbox",
            {
                **base,
                "subject": "Long " + "subject " * 500,
                "from": {"emailAddress": {"name": "", "address": ""}},
                "body": {"contentType": "text", "content": "very long subject"},
            },
        ),
    ]


def _fill(
    mbx: dict[str, Any], rng: random.Random, me: dict[str, Any], people: list[dict[str, Any]], count: int
) -> None:
    folders = {"msgfolderroot": mbx["rootId"]}
    for parent, name in USER_FOLDERS:
        pid = folders.get(parent) or folder(mbx, parent)["id"]
        folders[name] = create_folder(mbx, pid, {"displayName": name})["id"]
    mail_targets = ["inbox"] * 6 + ["sentitems", "archive", "Parents", "SLT", "Trips 2026"]
    for n in range(count):
        roll = rng.random()
        if roll < 0.7:
            target = rng.choice(mail_targets)
            add_item(
                mbx,
                folders.get(target) or folder(mbx, target)["id"],
                _message(rng, me, people, n),
                _stamp(rng),
            )
        elif roll < 0.88:
            add_item(mbx, folder(mbx, "calendar")["id"], _meeting(rng, me, people), _stamp(rng))
        else:
            add_item(mbx, folder(mbx, "contacts")["id"], _contact(rng, rng.choice(people)), _stamp(rng))
    # Generated content is the starting point, not a change (as for the directory): sequences stay, the first
    # delta round returns everything anyway.


def _shared_user(t: TenantState, rng: random.Random, local: str, name: str, domain: str) -> dict[str, Any]:
    uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return shared_mailbox_user(t, uid, _stamp(rng, 3000), name, f"{local}@{domain}")


def shared_mailbox_user(t: TenantState, uid: str, stamp: str, name: str, address: str) -> dict[str, Any]:
    """The user account a shared mailbox stands on, added to the tenant's directory."""
    u = base_user(uid, stamp)
    u.update(
        displayName=name,
        userPrincipalName=address,
        mail=address,
        mailNickname=address.split("@", 1)[0],
        proxyAddresses=[f"SMTP:{address}"],
        # Exchange makes a shared mailbox's user account disabled and unlicensed
        # (learn.microsoft.com/microsoft-365/admin/email/about-shared-mailboxes).
        accountEnabled=False,
        userType="Member",
    )
    t.users[u["id"]] = u
    t.index_user(u)
    t.touch(u["id"])
    return u


def seed_mail(
    t: TenantState, academy: Any, users: list[dict[str, Any]], rng: random.Random, size: int
) -> None:
    """Mailboxes for the academy's licensed staff and pupils, content for some, shared and archive ones."""
    store: MailStore = t.mail
    by_id = {u["id"]: u for u in users}
    staff = [t.users[u["id"]] for u in users if u["role"] == "staff"]
    for u in users:
        if u["role"] in ("staff", "pupil"):
            store.ensure_licensed(t, t.users[u["id"]])
    if not staff:
        return
    people = [dict(by_id[s["id"]]) for s in staff]
    full = size >= BIG_SCALE
    filled = staff if full else staff[:DEMO_MAILBOXES]
    each = min(MAX_ITEMS_EACH, size) if full else DEMO_ITEMS
    for n, person in enumerate(filled):
        mbx = store.mailboxes[store.by_user[person["id"]]["primary"]]
        me = by_id[person["id"]]
        # At scale, the first dozen staff are the heavy mailboxes; the rest hold a term's worth (memory: a
        # world of a thousand users per academy stays a few hundred MB).
        count = each if n < HEAVY_MAILBOXES else DEMO_ITEMS
        _fill(mbx, random.Random(f"{rng.random()}:{n}"), me, people, count)
        if n == 0:
            for target, props in hostile_items(me):
                add_item(mbx, folder(mbx, target)["id"], props, "2026-03-01T09:00:00Z")
            if size >= BENCH_SCALE:
                big = dict(_message(rng, me, people, 0), subject="Scanned governors' pack (large)")
                big["blob"] = {
                    "name": "governors-pack.pdf",
                    "contentType": "application/pdf",
                    "size": LARGE_ATTACHMENT,
                    "seed": f"{t.id}:big",
                }
                add_item(mbx, folder(mbx, "inbox")["id"], big, "2026-02-01T09:00:00Z")
    # An in-place archive for the first member of staff (the import and export APIs refuse it).
    head = staff[0]
    arch = store.create_mailbox(head["id"], "archive", head["displayName"], head["userPrincipalName"])
    for props in (_message(rng, by_id[head["id"]], people, k) for k in range(5)):
        add_item(arch, folder(arch, "inbox")["id"], props, _stamp(rng, 3000))
    domain = staff[0]["userPrincipalName"].split("@", 1)[1]
    for local, label in (("office", "Office"), ("admissions", "Admissions")):
        owner = _shared_user(t, rng, local, f"{academy.name} {label}", domain)
        mbx = store.create_mailbox(owner["id"], "shared", owner["displayName"], owner["userPrincipalName"])
        me = {"displayName": owner["displayName"], "userPrincipalName": owner["userPrincipalName"]}
        _fill(
            mbx, random.Random(f"{rng.random()}:{local}"), me, people, DEMO_ITEMS if not full else each // 2
        )

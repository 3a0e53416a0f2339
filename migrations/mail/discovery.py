"""Mail discovery: each mapped person's mailboxes (exchangeSettings), their folders with class and counts, and
what the APIs cannot carry (archive mailboxes, unmapped mailboxes), each a finding with its rule.

Mailboxes (learn.microsoft.com/graph/api/usersettings-list-exchange): `GET /users/{id}/settings/exchange`
names a user's primaryMailboxId and inPlaceArchiveMailboxId. Folders (mailbox-list-folders,
mailboxfolder-delta): `/admin/exchange/mailboxes/{id}/folders` with childFolders, type (the folder class),
totalItemCount and wellKnownName. The import/export APIs refuse archive mailboxes for now
(mailbox-import-export-api-overview): an archive is reported, never carried.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from migrations.core.journal import Journal
from migrations.core.store import StateStore
from migrations.graph.client import GraphError, TenantConnection
from migrations.graph.mailbox_window import MailboxWindows
from migrations.mail import shared
from migrations.mail.records import MAILBOX_ROOT, Folder, Mailbox

USERS_PHASE = "users"
DISCOVERY_FINDINGS = (
    "mail-archive",
    "mail-unmapped",
    "mail-target-missing",
    "mail-shared-refused",
    "mail-access-not-carried",
)
# Per mailbox kind: what Exchange keeps beside the items that neither exchangeSettings (primaryMailboxId,
# inPlaceArchiveMailboxId: api/resources/exchangesettings) nor the mailbox resource (id, deletedDateTime,
# folders; exportItems, createImportSession: api/resources/mailbox) nor mailboxFolder (childFolderCount,
# displayName, id, parentFolderId, parentMailboxUrl, totalItemCount, type: api/resources/mailboxfolder)
# exposes, so nothing can read or carry it. Never invented: a finding says to re-grant it.
ACCESS_NOT_CARRIED = {
    "primary": (
        "delegates (Send As, Send on Behalf, Full Access), folder and calendar permissions, and "
        "litigation or retention holds: Microsoft Graph's mailbox APIs and exchangeSettings do not expose "
        "them, so they are not carried; re-grant delegates and folder permissions in the trust (Exchange "
        "admin centre, or the person in Outlook) and put holds on again in Purview before the academy's "
        "tenant is retired"
    ),
    "shared": (
        "members (Full Access, Send As, Send on Behalf), folder permissions, and litigation or retention "
        "holds: Microsoft Graph's mailbox APIs and exchangeSettings do not expose them, so they are not "
        "carried; add each shared mailbox's members again in the trust (Microsoft 365 admin centre, Teams & "
        "groups > Shared mailboxes > members) and put holds on again in Purview"
    ),
}
CLASS_NAMES = {
    "IPF.Note": "mail",
    "IPF.Appointment": "calendar",
    "IPF.Contact": "contacts",
    "IPF.Task": "tasks",
}


@dataclass(frozen=True)
class Person:
    source_user: str
    source_key: str  # the source UPN
    target_user: str | None


@dataclass
class Discovered:
    mailboxes: list[tuple[Mailbox, list[Folder]]] = field(default_factory=list)
    findings: list[tuple[str, str, str, str, str]] = field(
        default_factory=list
    )  # kind, id, display, msg, how
    requests: int = 0


def people(store: StateStore, code: str) -> list[Person]:
    """Every source user the identity mapping carries, with the trust user's id once it exists (by id, never
    by UPN: a domain cut-over renames UPNs)."""
    created = {
        k: str(h["target_id"])
        for k, h in Journal.state(store, code, USERS_PHASE).items()
        if h["event"] == "done" and h["op"] == "create-user" and h["target_id"]
    }
    out: list[Person] = []
    for r in store.rows(
        "SELECT source_id, source_key, target_key, action, data FROM mappings "
        "WHERE academy = ? AND kind = 'user' AND action IN ('create', 'match') ORDER BY source_key",
        (code,),
    ):
        data = json.loads(r["data"] or "{}")
        target = data.get("target_id") if r["action"] == "match" else created.get(f"user:{r['source_id']}")
        out.append(Person(str(r["source_id"]), str(r["source_key"] or r["source_id"]), target))
    return out


def unmapped_users(store: StateStore, code: str) -> list[tuple[str, str]]:
    """Source users the mapping does not carry (skipped, shared mailbox accounts): (id, display)."""
    return [
        (str(r["source_id"]), str(r["source_key"] or r["display_name"] or r["source_id"]))
        for r in store.rows(
            "SELECT source_id, source_key, display_name FROM mappings WHERE academy = ? AND kind = 'user' "
            "AND action NOT IN ('create', 'match') ORDER BY source_key",
            (code,),
        )
    ]


async def exchange_settings(
    conn: TenantConnection, windows: MailboxWindows, user: str
) -> dict[str, Any] | None:
    """The user's mailbox ids; None when the user has no mailbox (no Exchange licence, not provisioned)."""
    # Exchange answers exchangeSettings (an Outlook path): the read takes one of the app's Outlook slots, and
    # a 429 slows it in its own window's retry layer (keyed by user: the mailbox is what it names), never
    # failing discovery nor pausing the tenant.
    resp = await windows.of(f"user:{user}").request(conn, "GET", f"/users/{user}/settings/exchange")
    if resp.status == 404:
        return None
    if not resp.ok:
        raise GraphError("GET", f"/users/{user}/settings/exchange", resp)
    body = resp.body or {}
    # A list answer (the page documents a collection) or a single object: read both.
    if isinstance(body.get("value"), list):
        return body["value"][0] if body["value"] else None
    return dict(body)


async def list_folders(conn: TenantConnection, windows: MailboxWindows, mailbox: str) -> list[dict[str, Any]]:
    """Every folder of the mailbox, hierarchy walked through childFolders (paged)."""
    out: list[dict[str, Any]] = []
    pending: list[tuple[str, str | None]] = [(f"{MAILBOX_ROOT}/{mailbox}/folders", None)]
    window = windows.of(mailbox)
    while pending:
        path, parent = pending.pop(0)
        url: str | None = path
        while url:
            # Inside the mailbox's windows and its app's gate; a 429 pauses this mailbox and is retried there.
            resp = await window.request(conn, "GET", url)
            if not resp.ok:
                raise GraphError("GET", url, resp)
            for f in resp.body.get("value", []):
                f = {**f, "_parent": parent}
                out.append(f)
                if int(f.get("childFolderCount") or 0) > 0:
                    pending.append((f"{MAILBOX_ROOT}/{mailbox}/folders/{f['id']}/childFolders", f["id"]))
            nxt = resp.body.get("@odata.nextLink")
            url = conn.relative(nxt) if nxt else None
    return out


def folder_rows(mailbox: str, raw: list[dict[str, Any]]) -> list[Folder]:
    by_id = {str(f["id"]): f for f in raw}

    def path(f: dict[str, Any]) -> str:
        parts: list[str] = []
        seen: set[str] = set()
        while f is not None and str(f["id"]) not in seen:
            seen.add(str(f["id"]))
            parts.append(str(f.get("displayName") or f["id"]).replace("/", "∕"))
            parent = f.get("_parent") or f.get("parentFolderId")
            f = by_id.get(str(parent)) if parent else None  # type: ignore[assignment]
        return "/".join(reversed(parts))

    return [
        Folder(
            mailbox,
            str(f["id"]),
            str(f["_parent"]) if f.get("_parent") else None,
            path(f),
            str(f.get("type") or "IPF.Note"),
            f.get("wellKnownName") or None,
            int(f.get("totalItemCount") or 0),
            None,
            False,
            None,
        )
        for f in raw
    ]


READ_AHEAD = 8  # people whose mailboxes are read at once (each mailbox within its own Outlook window)


async def _read_ahead(
    persons: list[Person],
    source: TenantConnection,
    target: TenantConnection,
    windows: MailboxWindows,
    known_targets: dict[str, dict[str, Any]] | None = None,
) -> dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None, list[dict[str, Any]]]]:
    """Per person (source user id): the source exchangeSettings, the trust user's, and the source mailbox's
    folders, read for several people at once: one person after another, discovery waited on ~250 round
    trips of three requests an academy. `known_targets`: trust users' exchangeSettings the mail run's
    mailbox wait read moments before (only mailboxes that exist; a user absent from it is asked now)."""
    gate = asyncio.Semaphore(READ_AHEAD)
    known = known_targets or {}

    async def trust_settings(user: str) -> dict[str, Any] | None:
        if user in known:
            return known[user]
        return await exchange_settings(target, windows, user)

    async def one(
        p: Person,
    ) -> tuple[str, tuple[dict[str, Any] | None, dict[str, Any] | None, list[dict[str, Any]]]]:
        async with gate:
            settings = await exchange_settings(source, windows, p.source_user)
            if not settings or not settings.get("primaryMailboxId"):
                return p.source_user, (settings, None, [])
            got = await trust_settings(p.target_user) if p.target_user else None
            raw = await list_folders(source, windows, str(settings["primaryMailboxId"]))
            return p.source_user, (settings, got, raw)

    # gather, not a TaskGroup: the first GraphError reaches the caller as itself.
    return dict(await asyncio.gather(*(one(p) for p in persons)))


async def discover_mail(
    store: StateStore,
    code: str,
    source: TenantConnection,
    target: TenantConnection,
    windows: MailboxWindows,
    academy: Any = None,
    known_targets: dict[str, dict[str, Any]] | None = None,
) -> Discovered:
    """Each mapped person's primary mailbox and each named shared mailbox with its folders, the trust mailbox
    it goes to, and the findings for what is not carried."""
    found = Discovered()
    named_accounts = await _discover_shared(store, code, source, target, windows, academy, found)
    ahead = await _read_ahead(people(store, code), source, target, windows, known_targets)
    for person in people(store, code):
        settings, got, raw = ahead[person.source_user]
        if not settings or not settings.get("primaryMailboxId"):
            continue
        mailbox = str(settings["primaryMailboxId"])
        archive = settings.get("inPlaceArchiveMailboxId")
        if archive:
            found.findings.append(
                (
                    "mail-archive",
                    str(archive),
                    person.source_key,
                    "an in-place archive mailbox: the mailbox import and export APIs do not serve archive "
                    "mailboxes yet (mailbox-import-export-api-overview), so it stays in the academy's tenant",
                    "not carried",
                )
            )
        target_mailbox: str | None = None
        if person.target_user:
            target_mailbox = str(got["primaryMailboxId"]) if got and got.get("primaryMailboxId") else None
        if target_mailbox is None:
            found.findings.append(
                (
                    "mail-target-missing",
                    mailbox,
                    person.source_key,
                    "the trust user has no mailbox yet (not created, no Exchange licence, or still being "
                    "provisioned): its mail waits for the next pass",
                    "waiting",
                )
            )
        rows = folder_rows(mailbox, raw)
        kind = "shared" if settings.get("_shared") else "primary"
        found.mailboxes.append(
            (
                Mailbox(
                    mailbox,
                    kind,
                    person.source_user,
                    person.source_key,
                    person.target_user,
                    target_mailbox,
                    sum(int(f.get("size") or 0) for f in raw),
                    sum(f.items for f in rows),
                ),
                rows,
            )
        )
    config = f"config/academies/{code}.yaml"
    for uid, display in unmapped_users(store, code):
        if uid in named_accounts:
            continue
        settings = await exchange_settings(source, windows, uid)
        if settings and settings.get("primaryMailboxId"):
            found.findings.append(
                (
                    "mail-unmapped",
                    str(settings["primaryMailboxId"]),
                    display,
                    f"a mailbox whose account the identity mapping does not carry. A shared mailbox "
                    f"(office@, admissions@: its account's sign-in blocked): {shared.ADD_SHARED}, then name "
                    f"it in {config} under phases.mail.shared_mailboxes as "
                    f"`- {{source: {display}, target: <the trust mailbox's address>}}` and run the mail "
                    "phase again. A person the mapping skips: map the person (trustfold mapping import) "
                    "instead",
                    "not carried",
                )
            )
    for kind in sorted({m.kind for m, _ in found.mailboxes}):
        found.findings.append(
            (
                "mail-access-not-carried",
                f"{code}:{kind}",
                f"{kind} mailboxes",
                ACCESS_NOT_CARRIED.get(kind, ACCESS_NOT_CARRIED["primary"]),
                "not carried",
            )
        )
    return found


async def _discover_shared(
    store: StateStore,
    code: str,
    source: TenantConnection,
    target: TenantConnection,
    windows: MailboxWindows,
    academy: Any,
    found: Discovered,
) -> set[str]:
    """Each shared mailbox the academy's config names, resolved in both tenants (by the ids an earlier pass
    stored, once the cut-over has moved the academy's addresses), carried like a person's mailbox or a
    finding saying what to do. Returns the source accounts named, so none is also reported unnamed."""
    if academy is None:
        return set()
    config = f"config/academies/{code}.yaml"
    before = shared.known(store, code)
    people_ids = shared.carried_people(store, code)
    taken = shared.people_targets(store)
    accounts: set[str] = set()

    def refuse(
        n: shared.Named, why: str, kind: str = "mail-shared-refused", how: str = "not carried"
    ) -> None:
        found.findings.append((kind, n.source, n.source, why, how))

    for n in shared.named(academy):
        ids = before.get(n.source)
        src = await shared.user_by_address(source, ids[0] if ids else n.source)
        if src is None:
            refuse(
                n,
                f"no account has this address in the academy's tenant: check phases.mail.shared_mailboxes "
                f"in {config}",
            )
            continue
        accounts.add(str(src["id"]))
        if str(src["id"]) in people_ids:
            refuse(
                n,
                "the identity mapping carries this account as a person (its mail goes to that person's "
                f"trust mailbox): take it out of phases.mail.shared_mailboxes in {config}, or skip it in the "
                "mapping",
            )
            continue
        settings = await exchange_settings(source, windows, str(src["id"]))
        if not settings or not settings.get("primaryMailboxId"):
            refuse(n, "this account has no mailbox in the academy's tenant: nothing to carry")
            continue
        mailbox = str(settings["primaryMailboxId"])
        tgt = await shared.user_by_address(target, str(ids[1]) if ids and ids[1] else n.target)
        target_mailbox: str | None = None
        if tgt is None:
            refuse(
                n,
                f"the trust has no mailbox {n.target} yet: {shared.ADD_SHARED} with that address; its mail "
                "waits for the next pass",
                "mail-target-missing",
                "waiting",
            )
        elif tgt.get("accountEnabled") is not False or str(tgt.get("userPrincipalName", "")).lower() in taken:
            # Never widen access: a mailbox someone signs in with is a person's, not a shared one.
            refuse(
                n,
                f"{n.target} is an account someone can sign in with (or a person the identity mapping "
                "carries); a shared mailbox's account has sign-in blocked (about-shared-mailboxes), and the "
                "office's mail would show to whoever signs in there: name the trust's shared mailbox, or "
                "block sign-in for that account if it is one",
            )
            continue
        else:
            got = await exchange_settings(target, windows, str(tgt["id"]))
            target_mailbox = str(got["primaryMailboxId"]) if got and got.get("primaryMailboxId") else None
            if target_mailbox is None:
                refuse(
                    n,
                    f"the trust's shared mailbox {n.target} is not ready yet (Exchange provisions it in the "
                    "background): its mail waits for the next pass",
                    "mail-target-missing",
                    "waiting",
                )
        raw = await list_folders(source, windows, mailbox)
        rows = folder_rows(mailbox, raw)
        found.mailboxes.append(
            (
                Mailbox(
                    mailbox,
                    "shared",
                    str(src["id"]),
                    n.source,
                    str(tgt["id"]) if tgt else None,
                    target_mailbox,
                    sum(int(f.get("size") or 0) for f in raw),
                    sum(f.items for f in rows),
                ),
                rows,
            )
        )
    return accounts


def class_counts(rows: list[Folder]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in rows:
        name = CLASS_NAMES.get(f.folder_class, "other")
        out[name] = out.get(name, 0) + f.items
    return out

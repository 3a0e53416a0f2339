"""Everything that can be known before the first write, checked before the first write, each failure with its
exact fix: credentials and tokens, granted application permissions (the token's `roles` claim), the
provenance extension property, licence seats, target sites and libraries, OneDrive provisioning, and the
certificate SharePoint admin calls need. Reads only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from migrations.core.registry import PHASES
from migrations.graph.client import GRAPH_SCOPE, Connections, GraphError, TenantConnection
from migrations.graph.roles import granted_roles
from migrations.graph.sharepoint_admin import initial_domain, sharepoint_admin_resource
from trust.errors import ConfigError

if TYPE_CHECKING:
    from migrations.core.store import StateStore
    from migrations.graph.sharepoint_window import SharePointBudget
    from trust import Academy, Trust

MARKER_NAME = "trustfoldSource"
SHAREPOINT_ROLE = "Sites.FullControl.All"
SHARING_SCAN_ROLE = "Sites.FullControl.All"  # Microsoft Graph's, in the legacy tenants (driveitem-delta)

# What each phase asks of each tenant: (what for, accepted application permissions, least privileged first).
# From the permissions table of each call's Microsoft Graph page (learn.microsoft.com/graph/api/...).
_READ_USERS = ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")
_READ_GROUPS = (
    "GroupMember.Read.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
)
_READ_FILES = (
    "Files.Read.All",
    "Files.ReadWrite.All",
    "Sites.Read.All",
    "Sites.ReadWrite.All",
    "Sites.FullControl.All",
)
# Sharing and domains: only the roles their pages list (driveitem-list-permissions, driveitem-invite,
# driveitem-createlink, permission-delete; domain-get, domain-post-domains, domain-verify, domain-delete,
# domain-list-domainnamereferences, which lists Domain.ReadWrite.All alone, even to read).
_READ_SHARING = ("Files.Read.All", "Files.ReadWrite.All", "Sites.Read.All", "Sites.ReadWrite.All")
_WRITE_SHARING = ("Files.ReadWrite.All", "Sites.ReadWrite.All")
_READ_DOMAINS = ("Domain.Read.All", "Domain.ReadWrite.All", "Directory.Read.All")
_WRITE_DOMAINS = ("Domain.ReadWrite.All",)
_WRITE_USERS = ("User.ReadWrite.All", "Directory.ReadWrite.All")
# The mapping guard reads which objects conditional access excludes (conditionalaccessroot-list-policies:
# Policy.Read.All is the only application permission): without it no match to a trust object can be checked.
_READ_CA = ("read conditional access policies (the mapping guard)", ("Policy.Read.All",))
# Mail verification reads a sample through the ordinary endpoints (message-get, event-get, contact-get).
_READ_MAIL_SAMPLE = (
    ("read messages (verify's sample)", ("Mail.Read", "Mail.ReadWrite")),
    ("read calendars (verify's sample)", ("Calendars.Read", "Calendars.ReadWrite")),
    ("read contacts (verify's sample)", ("Contacts.Read", "Contacts.ReadWrite")),
)
NEEDS: dict[str, dict[str, tuple[tuple[str, tuple[str, ...]], ...]]] = {
    "users": {
        "source": (("read users", _READ_USERS),),
        "target": (
            ("create users", ("User.ReadWrite.All", "Directory.ReadWrite.All")),
            (
                "assign licences",
                ("LicenseAssignment.ReadWrite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),
            ),
            (
                "read licence seats",
                (
                    "LicenseAssignment.Read.All",
                    "Organization.Read.All",
                    "Directory.Read.All",
                    "LicenseAssignment.ReadWrite.All",
                    "Directory.ReadWrite.All",
                ),
            ),
            (
                "read the app's extension properties",
                (
                    "Application.Read.All",
                    "Application.ReadWrite.OwnedBy",
                    "Application.ReadWrite.All",
                    "Directory.Read.All",
                ),
            ),
        ),
    },
    "groups": {
        "source": (("read groups", _READ_GROUPS),),
        "target": (
            ("create and delete groups", ("Group.ReadWrite.All", "Directory.ReadWrite.All")),
            _READ_CA,
        ),
    },
    "memberships": {
        "source": (("read group members", _READ_GROUPS),),
        "target": (
            (
                "add group members",
                ("GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
            ),
            _READ_CA,
        ),
    },
    "files": {
        "source": (("read OneDrives and libraries", _READ_FILES),),
        "target": (
            (
                "write OneDrives and libraries",
                ("Files.ReadWrite.All", "Sites.ReadWrite.All", "Sites.FullControl.All"),
            ),
            ("find mapped users", _READ_USERS),
        ),
    },
    "permissions": {
        "source": (
            ("read item sharing", _READ_SHARING),
            # driveitem-delta ("Scanning permissions hierarchies"): "In order to process permissions correctly
            # your application will need to request Sites.FullControl.All"; without it drive delta leaves
            # sharing changes out, silently. The scan refuses without it; preflight names it first.
            ("read sharing changes in drive delta", (SHARING_SCAN_ROLE,)),
        ),
        "target": (
            ("share items (invite, createLink) and remove grants", _WRITE_SHARING),
            ("read item sharing", _READ_SHARING),
            # The academy's people group, which academy-wide sharing is granted to (group-post-groups,
            # group-delete, group-post-members, group-list-members).
            (
                "create the academy's people group and keep its members",
                ("Group.ReadWrite.All", "Directory.ReadWrite.All"),
            ),
        ),
    },
    # Mail (issue 24): mailbox-exportitems lists MailboxItem.Export.All (ImportExport.All higher);
    # mailbox-createimportsession MailboxItem.ImportExport.All alone; usersettings-list-exchange
    # User.Read.All; mailbox-list-folders / mailboxfolder-delta MailboxFolder.Read.All; mailboxitem-delta
    # MailboxItem.Read.All;
    # mailbox-post-folders and mailbox-delete-folders MailboxFolder.ReadWrite.All; mailboxfolder-delete-items
    # MailboxItem.ReadWrite.All (rollback, --propagate-deletes).
    "mail": {
        "source": (
            ("find each person's mailboxes", _READ_USERS),
            ("read mailbox folders", ("MailboxFolder.Read.All", "MailboxFolder.ReadWrite.All")),
            ("read mailbox items and their changes", ("MailboxItem.Read.All",)),
            ("export mailbox items", ("MailboxItem.Export.All", "MailboxItem.ImportExport.All")),
            *_READ_MAIL_SAMPLE,
        ),
        "target": (
            ("find each trust user's mailbox", _READ_USERS),
            ("create and remove mailbox folders", ("MailboxFolder.ReadWrite.All",)),
            ("import mailbox items", ("MailboxItem.ImportExport.All",)),
            ("remove imported items (rollback)", ("MailboxItem.ReadWrite.All",)),
            *_READ_MAIL_SAMPLE,
        ),
    },
    # Teams (team-get, channel-list, channel-list-messages, team-put-teams, team-post, educationclass-post,
    # channel-post, channel-delete, channel-startmigration, "Import third-party platform messages to Teams").
    "teams": {
        "source": (
            (
                "read teams and their settings",
                (
                    "TeamSettings.Read.All",
                    "TeamSettings.ReadWrite.All",
                    "Group.Read.All",
                    "Directory.Read.All",
                ),
            ),
            ("read channels", ("Channel.ReadBasic.All", "ChannelSettings.Read.All", "Group.Read.All")),
            # A protected API besides: Microsoft approves the app before the read answers (preflight says).
            ("read channel messages", ("ChannelMessage.Read.All",)),
            # channel-get-filesfolder: Files.* (Group.* deprecated), no Sites.* role.
            ("read channel files", ("Files.Read.All", "Files.ReadWrite.All")),
        ),
        "target": (
            ("make teams from groups", ("Group.ReadWrite.All", "Directory.ReadWrite.All")),
            ("create class teams as education classes", ("EduRoster.ReadWrite.All",)),
            ("create and delete channels", ("Channel.Create", "Teamwork.Migrate.All", "Group.ReadWrite.All")),
            ("import channel history (migration mode)", ("Teamwork.Migrate.All",)),
            ("find the trust channels' files folders", ("Files.Read.All", "Files.ReadWrite.All")),
            (
                "copy channel files into the trust channels' folders",
                ("Files.ReadWrite.All", "Sites.ReadWrite.All", "Sites.FullControl.All"),
            ),
        ),
    },
    "domain": {
        "source": (
            ("read domains", _READ_DOMAINS),
            ("read the domain's references", _WRITE_DOMAINS),
            ("delete the domain", _WRITE_DOMAINS),
            ("rename users off the domain", _WRITE_USERS),
        ),
        "target": (
            ("read domains", _READ_DOMAINS),
            ("add and verify the domain", _WRITE_DOMAINS),
            ("move users onto the domain", _WRITE_USERS),
        ),
    },
}


@dataclass
class Check:
    check: str
    tenant: str  # "trust" or an academy code (its legacy tenant)
    ok: bool
    result: str
    fix: str = ""
    phases: tuple[str, ...] = PHASES  # the phases this check gates

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "phases": list(self.phases)}


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def blocking(self, phase: str | None = None) -> list[Check]:
        return [c for c in self.checks if not c.ok and (phase is None or phase in c.phases)]


def consent_url(tenant_id: str, client_id: str) -> str:
    """Microsoft Entra admin consent for every permission configured on the app registration
    (learn.microsoft.com/entra/identity-platform/v2-admin-consent)."""
    return f"https://login.microsoftonline.com/{tenant_id}/adminconsent?client_id={client_id}"


def marker_name(trust: Trust) -> str:
    client_id = trust.tenant.credential.client_id or ""
    return f"extension_{client_id.replace('-', '')}_{MARKER_NAME}"


async def _roles_of(ref: Any, tenant_id: str, graph_url: str | None, scope: str) -> list[str]:
    return await granted_roles(ref, tenant_id, graph_url, scope)


def required_permissions(role: str, phases: Iterable[str] = PHASES) -> list[str]:
    """The least-privileged application permission of every need of `role` ("target" or "source") for
    `phases`: what the app registration should request, and admin consent grant."""
    return sorted({accepted[0] for phase in phases for _, accepted in NEEDS.get(phase, {}).get(role, ())})


def _missing_roles(roles: Iterable[str], role: str, phases: Iterable[str]) -> list[tuple[str, str, str]]:
    """(permission to grant, what for, phase) for every need none of whose permissions is granted."""
    held = set(roles)
    out = []
    for phase in phases:
        for what, accepted in NEEDS.get(phase, {}).get(role, ()):
            if not held & set(accepted):
                out.append((accepted[0], what, phase))
    return out


async def _tenant_checks(
    report: Report,
    label: str,
    role: str,
    ref: Any,
    tenant_id: str,
    graph_url: str | None,
    phases: tuple[str, ...],
) -> bool:
    """Credential, token and granted roles for one tenant; False when no token could be had."""
    try:
        roles = await _roles_of(ref, tenant_id, graph_url, GRAPH_SCOPE)
    except ConfigError as exc:
        report.add(
            Check(
                "credential",
                label,
                False,
                str(exc).split(": ", 1)[-1],
                f"set the variable named in config ({_ref_field(ref)}) before running trustfold",
            )
        )
        return False
    except Exception as exc:
        report.add(
            Check(
                "credential",
                label,
                False,
                f"no token issued: {str(exc)[:200]}",
                f"check tenant id {tenant_id}, client id {ref.client_id} and the credential in config",
            )
        )
        return False
    report.add(Check("credential", label, True, f"token issued for {tenant_id} ({ref.kind.value})"))
    missing = _missing_roles(roles, role, phases)
    if missing:
        names = sorted({m[0] for m in missing})
        needed_by = sorted({m[2] for m in missing})
        report.add(
            Check(
                "permissions",
                label,
                False,
                "missing application permissions: "
                + "; ".join(f"{name} ({what}, {phase})" for name, what, phase in missing),
                f"in tenant {tenant_id}, add Microsoft Graph application permission(s) {', '.join(names)} "
                "to app "
                f"{ref.client_id} and grant admin consent: {consent_url(tenant_id, ref.client_id or '')} "
                "(`trustfold bootstrap` prints it)",
                tuple(needed_by),
            )
        )
    else:
        report.add(
            Check(
                "permissions", label, True, f"{len(roles)} application permissions cover {', '.join(phases)}"
            )
        )
    return True


def _ref_field(ref: Any) -> str:
    return str(ref.secret_env or ref.certificate_path_env or ref.kind.value)


async def extension_check(trust: Trust, conn: TenantConnection) -> Check:
    name = marker_name(trust)
    client_id = trust.tenant.credential.client_id
    try:
        body = await conn.get(f"/applications(appId='{client_id}')/extensionProperties")
    except GraphError as exc:
        return Check(
            "extension",
            "trust",
            False,
            f"cannot read the app's extension properties ({exc})",
            "grant Application.Read.All (or run `trustfold bootstrap` with Application.ReadWrite.OwnedBy)",
            ("users", "groups"),
        )
    names = {p.get("name") for p in body.get("value", [])}
    if name in names:
        return Check("extension", "trust", True, f"{name} registered", phases=("users", "groups"))
    return Check(
        "extension",
        "trust",
        False,
        f"{name} is not registered on app {client_id}",
        "run `trustfold bootstrap` (registers it once; needs Application.ReadWrite.OwnedBy)",
        ("users", "groups"),
    )


def licence_demand(trust: Trust, academies: Iterable[Academy], store: StateStore) -> Counter[str]:
    """SKU part number -> users the users phase will still license (mapped, created, licence not done)."""
    from migrations.core.journal import Journal
    from migrations.identity.plan import inventory, mappings

    demand: Counter[str] = Counter()
    for academy in academies:
        users = inventory(store, academy.code, "user")
        done = Journal.state(store, academy.code, "users")
        for sid, row in mappings(store, academy.code, "user").items():
            if row["action"] != "create" or sid not in users:
                continue
            if done.get(f"licence:{sid}", {}).get("event") == "done":
                continue
            pupil = users[sid].get("role") == "pupil"
            demand[trust.settings.licences.pupil if pupil else trust.settings.licences.staff] += 1
    return demand


async def licence_checks(trust: Trust, conn: TenantConnection, demand: Counter[str]) -> list[Check]:
    try:
        skus = {s.get("skuPartNumber"): s for s in (await conn.get("/subscribedSkus")).get("value", [])}
    except GraphError as exc:
        return [
            Check(
                "licences",
                "trust",
                False,
                f"cannot read subscribedSkus ({exc})",
                "grant LicenseAssignment.Read.All (application) to the trust's app",
                ("users",),
            )
        ]
    out = []
    for part in sorted({trust.settings.licences.staff, trust.settings.licences.pupil} | set(demand)):
        need = demand.get(part, 0)
        sku = skus.get(part)
        if sku is None:
            out.append(
                Check(
                    "licences",
                    "trust",
                    need == 0,
                    f"{part}: not subscribed; {need} users need it",
                    f"buy {part} for tenant {trust.tenant.id} or change licences in config/trust.yaml",
                    ("users",),
                )
            )
            continue
        free = int(sku.get("prepaidUnits", {}).get("enabled", 0)) - int(sku.get("consumedUnits", 0))
        ok = free >= need
        out.append(
            Check(
                "licences",
                "trust",
                ok,
                f"{part}: {free} free, {need} to assign",
                ""
                if ok
                else f"buy {need - free} more {part} seats (or free some) before "
                "`trustfold run ACADEMY --phase users`",
                ("users",),
            )
        )
    return out


async def site_checks(
    trust: Trust, conn: TenantConnection, academies: Iterable[Academy], budget: SharePointBudget
) -> list[Check]:
    """Each academy's target site and library exist. Site reads spend the trust tenant's SharePoint units
    (1 each), so they go through `budget` like the files run's own reads."""
    out = []
    for academy in academies:
        if not academy.files.enabled:
            continue
        for lib in academy.files.libraries:
            what = f"{academy.code}: {lib.target_site}/{lib.target_library}"
            try:
                async with budget.spend(conn.tenant_id, 1):
                    found = (await conn.get("/sites", params={"search": lib.target_site})).get("value", [])
                site = next((s for s in found if s.get("name") == lib.target_site), None)
                drives = []
                if site:
                    async with budget.spend(conn.tenant_id, 1):
                        drives = (await conn.get(f"/sites/{site['id']}/drives")).get("value", [])
            except GraphError as exc:
                out.append(
                    Check(
                        "sites",
                        "trust",
                        False,
                        f"{what}: cannot look up ({exc})",
                        "grant Sites.Read.All (application) to the trust's app",
                        ("files",),
                    )
                )
                continue
            if site is None:
                out.append(
                    Check(
                        "sites",
                        "trust",
                        False,
                        f"{what}: site not found",
                        f"create site '{lib.target_site}' in the trust tenant, or correct "
                        f"config/academies/{academy.code}.yaml",
                        ("files",),
                    )
                )
            elif not any(d.get("name") == lib.target_library for d in drives):
                out.append(
                    Check(
                        "sites",
                        "trust",
                        False,
                        f"{what}: library not found",
                        f"create library '{lib.target_library}' in site '{lib.target_site}', or correct "
                        f"config/academies/{academy.code}.yaml",
                        ("files",),
                    )
                )
            else:
                out.append(Check("sites", "trust", True, f"{what} exists", phases=("files",)))
    return out


async def onedrive_check(
    conn: TenantConnection, store: StateStore, academy: Academy, budget: SharePointBudget
) -> Check:
    from migrations.readiness.onedrive import target_onedrives

    states = await target_onedrives(conn, store, academy, budget)
    missing = [s for s in states if s.licensed and not s.provisioned]
    not_created = sum(1 for s in states if not s.exists)
    ready = sum(1 for s in states if s.provisioned)
    note = f"; {not_created} not yet created (users phase)" if not_created else ""
    if missing:
        return Check(
            "onedrive",
            academy.code,
            False,
            f"{len(missing)} of {len(states)} mapped users' OneDrives not provisioned{note}",
            f"run `trustfold provision-onedrive {academy.code}` (run --phase files does it too)",
            ("files",),
        )
    return Check(
        "onedrive",
        academy.code,
        True,
        f"{ready} of {len(states)} OneDrives provisioned{note}",
        phases=("files",),
    )


def sharepoint_needs(onedrive: bool, bulk: Iterable[str] = ()) -> str:
    """What asks for SharePoint REST app-only: OneDrive provisioning, and the Migration API for the academies
    whose files engine is migration-api or auto (the bulk engine's jobs are SharePoint REST calls)."""
    needs = ["SharePoint admin REST (OneDrive provisioning)"] if onedrive else []
    codes = sorted(bulk)
    if codes:
        needs.append(f"the SharePoint Migration API (files engine migration-api/auto: {', '.join(codes)})")
    return " and ".join(needs)


async def sharepoint_checks(
    trust: Trust,
    graph_url: str | None,
    conn: TenantConnection,
    *,
    onedrive: bool = True,
    bulk: Iterable[str] = (),
) -> list[Check]:
    """OneDrive provisioning and the Migration API are SharePoint REST calls: their own audience, and for
    app-only access a certificate credential
    (learn.microsoft.com/sharepoint/dev/solution-guidance/security-apponly-azuread)."""
    ref = trust.tenant.credential
    needs = sharepoint_needs(onedrive, bulk)
    if ref.kind.value == "client_secret":
        return [
            Check(
                "sharepoint-credential",
                "trust",
                False,
                f"the trust's credential is a client secret; {needs} accepts app-only tokens only from a "
                "certificate credential",
                f"upload a certificate to app {ref.client_id}, then in config/trust.yaml set "
                "tenant.credential kind: certificate with certificate_path_env",
                ("files",),
            )
        ]
    try:
        domain = await initial_domain(conn)
        resource = sharepoint_admin_resource(domain)
        roles = await _roles_of(ref, trust.tenant.id, graph_url, f"{resource}/.default")
    except Exception as exc:
        return [
            Check(
                "sharepoint-credential",
                "trust",
                False,
                f"no SharePoint admin token: {str(exc)[:200]}",
                "check the certificate named in config/trust.yaml",
                ("files",),
            )
        ]
    if SHAREPOINT_ROLE not in roles:
        return [
            Check(
                "sharepoint-credential",
                "trust",
                False,
                f"SharePoint application permission {SHAREPOINT_ROLE} not granted (needed by {needs})",
                f"in tenant {trust.tenant.id}, add Office 365 SharePoint Online application permission "
                f"{SHAREPOINT_ROLE} to app {ref.client_id} and grant admin consent: "
                f"{consent_url(trust.tenant.id, ref.client_id or '')}",
                ("files",),
            )
        ]
    return [
        Check(
            "sharepoint-credential",
            "trust",
            True,
            f"certificate token for {resource} with {SHAREPOINT_ROLE} ({needs})",
            phases=("files",),
        )
    ]


async def domain_check(trust: Trust, conn: TenantConnection) -> Check:
    """New UPNs need their domain verified in the trust tenant
    (learn.microsoft.com/graph/api/user-post-users)."""
    try:
        found = {str(d["id"]).lower(): d for d in (await conn.get("/domains")).get("value", [])}
    except GraphError as exc:
        return Check(
            "domains",
            "trust",
            False,
            f"cannot read domains ({exc})",
            "grant Domain.Read.All (application) to the trust's app",
            ("users",),
        )
    missing = [d for d in trust.tenant.domains if not found.get(str(d).lower(), {}).get("isVerified")]
    if missing:
        return Check(
            "domains",
            "trust",
            False,
            f"not verified in the trust tenant: {', '.join(map(str, missing))}",
            "add and verify them in the Microsoft 365 admin centre (Settings > Domains) of tenant "
            f"{trust.tenant.id}",
            ("users",),
        )
    return Check("domains", "trust", True, f"{len(trust.tenant.domains)} domains verified", phases=("users",))


async def _sharepoint_reads(
    report: Report,
    trust: Trust,
    graph_url: str | None,
    target: TenantConnection,
    store: StateStore,
    academies: tuple[Academy, ...],
    budget: SharePointBudget,
    onedrives: bool,
) -> None:
    """The files checks: target sites and libraries, the SharePoint credential, each academy's OneDrives."""
    for c in await site_checks(trust, target, academies, budget):
        report.add(c)
    onedrive = any(a.files.enabled and a.files.onedrive for a in academies)
    bulk = [a.code for a in academies if a.files.enabled and a.files.engine in ("migration-api", "auto")]
    if onedrive or bulk:
        for c in await sharepoint_checks(trust, graph_url, target, onedrive=onedrive, bulk=bulk):
            report.add(c)
    if onedrive and onedrives:
        for a in academies:
            if a.files.enabled and a.files.onedrive:
                report.add(await onedrive_check(target, store, a, budget))


async def run_preflight(
    trust: Trust,
    conns: Connections,
    store: StateStore,
    academies: tuple[Academy, ...],
    phases: tuple[str, ...] = PHASES,
    *,
    onedrives: bool = True,
) -> Report:
    """Every check for the trust tenant and the given academies' legacy tenants, for `phases`. Reads only."""
    report = Report()
    graph_url = conns.graph_url
    t = trust.tenant
    if await _tenant_checks(report, "trust", "target", t.credential, t.id, graph_url, phases):
        target = conns.target
        if {"users", "groups"} & set(phases):
            report.add(await extension_check(trust, target))
        if "users" in phases:
            report.add(await domain_check(trust, target))
            for c in await licence_checks(trust, target, licence_demand(trust, academies, store)):
                report.add(c)
        files = "files" in phases and any(a.files.enabled for a in academies)
        if files:
            from migrations.readiness.onedrive import drive_budget

            # Loaded from (and saved to) the windows the files run loads: what these reads spend counts there.
            budget = await drive_budget(target, conns.window_dir)
            try:
                await _sharepoint_reads(report, trust, graph_url, target, store, academies, budget, onedrives)
            finally:
                budget.save()
    for a in academies:
        lt = a.legacy_tenant
        ok = await _tenant_checks(report, a.code, "source", lt.credential, lt.id, graph_url, phases)
        if ok and "teams" in phases:
            report.add(await teams_history_check(conns.source(a.code), store, a))
    return report


async def teams_history_check(conn: TenantConnection, store: StateStore, academy: Academy) -> Check:
    """Reading channel messages with application permissions is a protected API (teams-protected-apis):
    until Microsoft approves the app, the read answers 403 and no history can be carried. Said here, before a
    run finds out channel by channel; it does not block the phase (teams, channels and files still carry)."""
    row = next(
        iter(
            store.rows(
                "SELECT object_id FROM inventory WHERE academy = ? AND kind = 'team' AND removed = 0 LIMIT 1",
                (academy.code,),
            )
        ),
        None,
    )
    if row is None:
        return Check("teams-history", academy.code, True, "no team discovered", phases=("teams",))
    team = row["object_id"]
    primary = await conn.request("GET", f"/teams/{team}/primaryChannel", params={"$select": "id"})
    if not primary.ok:
        return Check(
            "teams-history", academy.code, True, f"no channel to probe ({primary.status})", phases=("teams",)
        )
    resp = await conn.request(
        "GET", f"/teams/{team}/channels/{primary.body['id']}/messages", params={"$top": 1}
    )
    if resp.status == 403:
        return Check(
            "teams-history",
            academy.code,
            True,
            "channel messages are not readable: reading them with application permissions is a protected API "
            "and Microsoft has not approved this app; teams, channels and files carry, history does not "
            "(each channel is a finding)",
            "request access to Microsoft Teams protected APIs for the app "
            f"{academy.legacy_tenant.credential.client_id} (learn.microsoft.com/graph/teams-protected-apis)",
            phases=("teams",),
        )
    return Check("teams-history", academy.code, True, "channel messages readable", phases=("teams",))


def record(store: StateStore, trust: Trust, report: Report) -> None:
    """Keep the result in the local state store (journal, phase "preflight") for the report's readiness
    section; nothing is written to any tenant."""
    import uuid

    from migrations.core.store import dumps, now

    run_id, at = f"preflight-{uuid.uuid4().hex[:12]}", now()
    with store.tx() as tx:
        tx.executemany(
            "INSERT INTO journal (run_id, academy, phase, plan_id, step_key, op, event, target_id, data, at) "
            "VALUES (?, ?, 'preflight', NULL, ?, 'check', ?, NULL, ?, ?)",
            [
                (
                    run_id,
                    trust.code,
                    f"{c.check}:{c.tenant}",
                    "ok" if c.ok else "blocks",
                    dumps({"check": c.check, "tenant": c.tenant, "result": c.result, "fix": c.fix}),
                    at,
                )
                for c in report.checks
            ],
        )

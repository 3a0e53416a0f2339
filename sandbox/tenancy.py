"""What a tenant grants an app and what it has to be asked for: application roles (admin consent) checked
per route, application objects with their directory extension properties, and OneDrive provisioning
through the SharePoint admin REST call real tools use.

Every rule cites the Microsoft page it follows (also in docs/sandbox.md). Where the documentation is
ambiguous the stricter reading is taken.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.errors import graph_error
from sandbox.schema import EXTENSION_RE
from sandbox.teams_roles import TEAMS_RULES
from sandbox.world import TenantState, World

GRAPH_AUDIENCE = "https://graph.microsoft.com"
# Azure Storage's resource (user delegation keys for staging SAS); authorised by Azure RBAC, not token roles.
STORAGE_AUDIENCE = "https://storage.azure.com"
SHAREPOINT_PREFIX = "SharePoint:"  # granted roles of the SharePoint API are kept as "SharePoint:<role>"
SHAREPOINT_FULL_CONTROL = "Sites.FullControl.All"
DENIED = "Insufficient privileges to complete the operation."
MAX_PERSONAL_SITES = 200
_ADMIN_AUD_RE = re.compile(r"^https://([a-z0-9-]+)-admin\.sharepoint\.com/?$")

_READ_USERS = ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")
_WRITE_USERS = ("User.ReadWrite.All", "Directory.ReadWrite.All")
_READ_GROUPS = (
    "GroupMember.Read.All",
    "Group.Read.All",
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
)
_READ_FILES = (
    "Files.Read.All",
    "Files.ReadWrite.All",
    "Sites.Read.All",
    "Sites.ReadWrite.All",
    "Sites.Manage.All",
    "Sites.FullControl.All",
)
_WRITE_FILES = ("Files.ReadWrite.All", "Sites.ReadWrite.All", "Sites.Manage.All", "Sites.FullControl.All")
# Sharing (item permissions): the pages list only the Files and Sites read/write roles, without
# Sites.Manage.All or Sites.FullControl.All (driveitem-list-permissions, permission-get / driveitem-invite,
# driveitem-createlink, permission-update, permission-delete): the stricter reading accepts only those.
_READ_SHARING = ("Files.Read.All", "Files.ReadWrite.All", "Sites.Read.All", "Sites.ReadWrite.All")
_WRITE_SHARING = ("Files.ReadWrite.All", "Sites.ReadWrite.All")
# Domains: every write (create, update, delete, verify, forceDelete) lists Domain.ReadWrite.All alone
# ("Higher privileged: Not available"); the domainNameReferences read and verificationDnsRecords list the two
# Domain roles (domain-list-domainnamereferences: least privileged Domain.Read.All); get and list add
# Directory.Read.All.
_READ_DOMAINS = ("Domain.Read.All", "Domain.ReadWrite.All", "Directory.Read.All")
_WRITE_DOMAINS = ("Domain.ReadWrite.All",)
_ITEM_PERMS = r"(/items/[^/]+|/root)(:/[^:]*:)?/(permissions|invite|createLink)(/|$)"
_DRIVE_ROOTS = r"^/v1\.0/((users|groups)/[^/]+/drive|drives/[^/]+|sites/[^/]+/drive|sites/[^/]+/drives/[^/]+)"
_GRAPH = "https://learn.microsoft.com/graph/api/"


@dataclass(frozen=True)
class RouteRoles:
    """Requests matching `methods` and `path` need one of `roles` (application permissions)."""

    methods: frozenset[str]
    path: re.Pattern[str]
    roles: tuple[str, ...]
    page: str


def _rule(methods: str, path: str, roles: tuple[str, ...], page: str) -> RouteRoles:
    return RouteRoles(frozenset(methods.split()), re.compile(path), roles, _GRAPH + page)


_GET, _WRITE = "GET", "POST PATCH PUT DELETE"
# First match wins; the application row of each page's permissions table (least and higher privileged).
ROUTE_ROLES: tuple[RouteRoles, ...] = (
    *(_rule(*row) for row in TEAMS_RULES),  # Teams and education (sandbox/teams_roles.py)
    # Sharing routes sit under the drive routes: their rows come first.
    _rule(_GET, _DRIVE_ROOTS + _ITEM_PERMS, _READ_SHARING, "driveitem-list-permissions"),
    _rule(
        "POST", _DRIVE_ROOTS + r"(/items/[^/]+|/root)(:/[^:]*:)?/invite$", _WRITE_SHARING, "driveitem-invite"
    ),
    _rule(
        "POST",
        _DRIVE_ROOTS + r"(/items/[^/]+|/root)(:/[^:]*:)?/createLink$",
        _WRITE_SHARING,
        "driveitem-createlink",
    ),
    _rule("PATCH", _DRIVE_ROOTS + _ITEM_PERMS, _WRITE_SHARING, "permission-update"),
    _rule("DELETE", _DRIVE_ROOTS + _ITEM_PERMS, _WRITE_SHARING, "permission-delete"),
    # POST .../permissions (application permissions on an item) lists more roles.
    _rule("POST", _DRIVE_ROOTS + _ITEM_PERMS, _WRITE_FILES, "driveitem-post-permissions"),
    _rule(_GET, r"^/v1\.0/(users|groups)/[^/]+/drives?(/|$)", _READ_FILES, "drive-get"),
    _rule(_WRITE, r"^/v1\.0/(users|groups)/[^/]+/drives?(/|$)", _WRITE_FILES, "driveitem-put-content"),
    _rule(_GET, r"^/v1\.0/(drives|sites|shares)(/|$)", _READ_FILES, "driveitem-get"),
    _rule(_WRITE, r"^/v1\.0/(drives|sites|shares)(/|$)", _WRITE_FILES, "driveitem-put-content"),
    _rule(
        "POST",
        r"^/v1\.0/users/[^/]+/assignLicense$",
        ("LicenseAssignment.ReadWrite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),
        "user-assignlicense",
    ),
    _rule(_GET, r"^/v1\.0/users/[^/]+/memberOf", (*_READ_GROUPS, "User.Read.All"), "user-list-memberof"),
    _rule(_GET, r"^/v1\.0/users(/|$)", _READ_USERS, "user-list"),
    _rule(_WRITE, r"^/v1\.0/users(/|$)", _WRITE_USERS, "user-post-users"),
    _rule(_GET, r"^/v1\.0/groups(/|$)", _READ_GROUPS, "group-list"),
    _rule(
        "POST",
        r"^/v1\.0/groups$",
        ("Group.Create", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
        "group-post-groups",
    ),
    _rule(
        "POST DELETE",
        r"^/v1\.0/groups/[^/]+/(members|owners)(/|$)",
        ("GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
        "group-post-members",
    ),
    # PATCH with members@odata.bind is documented on "Add members" with GroupMember.ReadWrite.All.
    _rule(
        "PATCH",
        r"^/v1\.0/groups/[^/]+$",
        ("GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
        "group-post-members",
    ),
    # group-assignlicense: least privileged LicenseAssignment.ReadWrite.All (higher: Group.ReadWrite.All,
    # Directory.ReadWrite.All).
    _rule(
        "POST",
        r"^/v1\.0/groups/[^/]+/assignLicense$",
        ("LicenseAssignment.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
        "group-assignlicense",
    ),
    _rule(_WRITE, r"^/v1\.0/groups(/|$)", ("Group.ReadWrite.All", "Directory.ReadWrite.All"), "group-delete"),
    _rule(
        _GET,
        r"^/v1\.0/directory/deletedItems",
        (
            "User.Read.All",
            "Group.Read.All",
            "User.ReadWrite.All",
            "Group.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ),
        "directory-deleteditems-list",
    ),
    _rule(
        _WRITE,
        r"^/v1\.0/directory/deletedItems",
        ("User.DeleteRestore.All", "User.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"),
        "directory-deleteditems-restore",
    ),
    _rule(
        _GET,
        r"^/v1\.0/domains/[^/]+/domainNameReferences",
        ("Domain.Read.All", "Domain.ReadWrite.All"),
        "domain-list-domainnamereferences",
    ),
    _rule(
        _GET,
        r"^/v1\.0/domains/[^/]+/verificationDnsRecords",
        ("Domain.Read.All", "Domain.ReadWrite.All"),
        "domain-list-verificationdnsrecords",
    ),
    _rule(_GET, r"^/v1\.0/domains(/[^/]+)?/?$", _READ_DOMAINS, "domain-get"),
    _rule("POST", r"^/v1\.0/domains/[^/]+/verify$", _WRITE_DOMAINS, "domain-verify"),
    _rule("POST", r"^/v1\.0/domains/[^/]+/forceDelete$", _WRITE_DOMAINS, "domain-forcedelete"),
    _rule("POST", r"^/v1\.0/domains/?$", _WRITE_DOMAINS, "domain-post-domains"),
    _rule("PATCH", r"^/v1\.0/domains/[^/]+$", _WRITE_DOMAINS, "domain-update"),
    _rule("DELETE", r"^/v1\.0/domains/[^/]+$", _WRITE_DOMAINS, "domain-delete"),
    # Anything else under /domains: the strictest row.
    _rule(_GET + " " + _WRITE, r"^/v1\.0/domains(/|$)", _WRITE_DOMAINS, "domain-update"),
    _rule(
        _GET,
        r"^/v1\.0/subscribedSkus(/|$)",
        (
            "LicenseAssignment.Read.All",
            "LicenseAssignment.ReadWrite.All",
            "Organization.Read.All",
            "Organization.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ),
        "subscribedsku-list",
    ),
    _rule(
        _GET,
        r"^/v1\.0/organization(/|$)",
        (
            "Organization.Read.All",
            "Organization.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ),
        "organization-get",
    ),
    # Conditional access: the List policies page lists Policy.Read.All alone for applications.
    _rule(
        _GET,
        r"^/v1\.0/identity/conditionalAccess/policies",
        ("Policy.Read.All",),
        "conditionalaccessroot-list-policies",
    ),
    _rule(
        _GET,
        r"^/v1\.0/applications",
        (
            "Application.Read.All",
            "Application.ReadWrite.OwnedBy",
            "Application.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ),
        "application-list-extensionproperty",
    ),
    _rule(
        _WRITE,
        r"^/v1\.0/applications",
        ("Application.ReadWrite.OwnedBy", "Application.ReadWrite.All", "Directory.ReadWrite.All"),
        "application-post-extensionproperty",
    ),
)

ALL_ROLES: tuple[str, ...] = tuple(
    sorted({r for rule in ROUTE_ROLES for r in rule.roles} | {SHAREPOINT_PREFIX + SHAREPOINT_FULL_CONTROL})
)


def parse_roles(text: str) -> tuple[str, ...]:
    """'User.ReadWrite.All,SharePoint:Sites.FullControl.All' -> names; unknown names are refused."""
    names = tuple(n.strip() for n in str(text).split(",") if n.strip())
    for n in names:
        if n not in ALL_ROLES:
            raise ValueError(f"unknown application role {n!r} (known: {', '.join(ALL_ROLES)})")
    return names


def granted(tenant: TenantState) -> list[str]:
    return list(ALL_ROLES) if tenant.granted_roles is None else list(tenant.granted_roles)


def token_roles(tenant: TenantState, audience: str) -> list[str]:
    """The `roles` claim for a token of this audience: Graph roles, or the SharePoint API's own."""
    roles = granted(tenant)
    if audience == STORAGE_AUDIENCE:
        return []
    if audience == GRAPH_AUDIENCE:
        return sorted(r for r in roles if not r.startswith(SHAREPOINT_PREFIX))
    return sorted(r[len(SHAREPOINT_PREFIX) :] for r in roles if r.startswith(SHAREPOINT_PREFIX))


def audience_for(tenant: TenantState, scope: str) -> str | None:
    """The resource a client-credentials scope names, when this sandbox serves it (Graph, the tenant's
    SharePoint admin site, or its sites for SharePoint REST such as the Migration API), else None."""
    resource = scope.split()[0].removesuffix("/.default").rstrip("/")
    if resource in (GRAPH_AUDIENCE, STORAGE_AUDIENCE):
        return resource
    prefix = admin_audience(tenant).removeprefix("https://").split("-admin.")[0]
    if resource in (
        admin_audience(tenant),
        f"https://{prefix}.sharepoint.com",
        f"https://{prefix}-my.sharepoint.com",
    ):
        return resource
    return None


def admin_audience(tenant: TenantState) -> str:
    """https://{initial domain prefix}-admin.sharepoint.com, as SharePoint names a tenant's admin site."""
    initial = next((d["id"] for d in tenant.domains if d.get("isInitial")), tenant.default_domain)
    return f"https://{initial.split('.')[0].lower()}-admin.sharepoint.com"


def required_roles(method: str, path: str) -> RouteRoles | None:
    for rule in ROUTE_ROLES:
        if method in rule.methods and rule.path.match(path):
            return rule
    return None


def denied(method: str, path: str, roles: list[str]) -> bool:
    """True when the route documents roles and the token holds none of them."""
    rule = required_roles(method, path)
    return rule is not None and not set(rule.roles) & set(roles)


# ---- applications and directory extension properties -----------------------------------------------------
def ensure_application(tenant: TenantState, app_id: str) -> dict[str, Any]:
    """The application object of an app that holds a token in this tenant (its registration lives here)."""
    key = app_id.lower()
    app = tenant.applications.get(key)
    if app is None:
        app = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant.id}/applications/{key}")),
            "appId": key,
            "displayName": "trustfold",
            "extensionProperties": [],
        }
        tenant.applications[key] = app
    return app


def extension_registered(tenant: TenantState, name: str, target: str) -> bool:
    return any(
        p["name"] == name and target in p["targetObjects"]
        for app in tenant.applications.values()
        for p in app.get("extensionProperties", [])
    )


def registered_extensions(tenant: TenantState, target: str) -> re.Pattern[str]:
    """A pattern matching exactly the extension properties registered for `target` ("User"/"Group")."""
    names = sorted(
        p["name"]
        for app in tenant.applications.values()
        for p in app.get("extensionProperties", [])
        if target in p["targetObjects"]
    )
    return (
        re.compile("^(?:" + "|".join(re.escape(n) for n in names) + ")$") if names else re.compile(r"(?!x)x")
    )


def unregistered_extension(tenant: TenantState, body: Any, target: str) -> str | None:
    """The first extension property in a create/update body that no application registered for `target`."""
    if not isinstance(body, dict):
        return None
    for key in body:
        if EXTENSION_RE.match(key) and not extension_registered(tenant, key, target):
            return key
    return None


def extension_error(name: str) -> Response:
    """Graph's answer to an unknown property name in a body or filter (learn.microsoft.com/graph/
    extensibility-overview: directory extensions must be registered before use)."""
    return graph_error(
        400,
        "Request_BadRequest",
        f"Property '{name}' does not exist as a declared property or extension property.",
    )


_DATA_TYPES = {"Binary", "Boolean", "DateTime", "Integer", "LargeInteger", "String"}
_TARGETS = {"User", "Group", "AdministrativeUnit", "Application", "Device", "Organization"}
_APP_RE = re.compile(
    r"^/v1\.0/applications(?:\(appId='(?P<app_id>[^']+)'\)|/(?P<oid>[0-9a-fA-F-]{36}))"
    r"(?P<tail>/extensionProperties)?/?$"
)


def _find_app(tenant: TenantState, app_id: str | None, oid: str | None) -> dict[str, Any] | None:
    if app_id:
        return tenant.applications.get(app_id.lower())
    return next((a for a in tenant.applications.values() if a["id"] == (oid or "").lower()), None)


def _ext_out(app: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
    return {**prop, "appDisplayName": app["displayName"], "deletedDateTime": None}


async def applications(request: Request) -> Response:
    """GET /applications/{id} | (appId='..'); GET and POST .../extensionProperties
    (learn.microsoft.com/graph/api/application-post-extensionproperty)."""
    tenant: TenantState = request.state.tenant
    m = _APP_RE.match(request.url.path.replace("%27", "'"))
    if not m:
        return graph_error(400, "BadRequest", "Unsupported applications request.")
    app = _find_app(tenant, m["app_id"], m["oid"])
    if app is None:
        key = m["app_id"] or m["oid"]
        return graph_error(
            404,
            "Request_ResourceNotFound",
            f"Resource '{key}' does not exist or one of its queried reference-property objects are "
            "not present.",
        )
    if not m["tail"]:
        if request.method != "GET":
            return graph_error(405, "Request_BadRequest", "The HTTP method is not allowed for this resource.")
        return JSONResponse({k: v for k, v in app.items() if k != "extensionProperties"})
    if request.method == "GET":
        return JSONResponse({"value": [_ext_out(app, p) for p in app["extensionProperties"]]})
    if request.method != "POST":
        return graph_error(405, "Request_BadRequest", "The HTTP method is not allowed for this resource.")
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return graph_error(400, "Request_BadRequest", "Empty Payload. JSON content expected.")
    name, data_type, targets = body.get("name"), body.get("dataType"), body.get("targetObjects")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,100}", name):
        return graph_error(400, "Request_BadRequest", "Invalid value specified for property 'name'.")
    if data_type not in _DATA_TYPES:
        return graph_error(400, "Request_BadRequest", "Invalid value specified for property 'dataType'.")
    if not isinstance(targets, list) or not targets or not set(targets) <= _TARGETS:
        return graph_error(400, "Request_BadRequest", "Invalid value specified for property 'targetObjects'.")
    full = f"extension_{app['appId'].replace('-', '')}_{name}"
    if any(p["name"] == full for p in app["extensionProperties"]):
        return graph_error(
            400,
            "Request_BadRequest",
            f"An extension property exists with the name {full}.",
            [{"target": "name", "code": "ObjectConflict"}],
        )
    prop = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{app['id']}/{full}")),
        "name": full,
        "dataType": data_type,
        "isMultiValued": bool(body.get("isMultiValued", False)),
        "isSyncedFromOnPremises": False,
        "targetObjects": list(targets),
    }
    app["extensionProperties"].append(prop)
    request.state.world.dirty = True
    return JSONResponse(_ext_out(app, prop), status_code=201)


# ---- OneDrive provisioning (SharePoint admin REST) ------------------------------------------------------
PROFILE_LOADER = "/_api/SP.UserProfiles.ProfileLoader.GetProfileLoader/CreatePersonalSiteEnqueueBulk"


def _sp_error(status: int, code: str, message: str) -> JSONResponse:
    """SharePoint REST's OData error shape ({"error": {"code", "message": {"lang", "value"}}})."""
    return JSONResponse(
        {"error": {"code": code, "message": {"lang": "en-US", "value": message}}}, status_code=status
    )


def onedrive_ready(tenant: TenantState, user_id: str) -> bool:
    ready = tenant.onedrive_ready.get(user_id)
    return ready is not None and time.time() >= ready


def mark_existing_onedrives(tenant: TenantState) -> None:
    """Generated users who hold a licence have used their OneDrive for years: it exists."""
    for uid, user in tenant.users.items():
        if user.get("assignedLicenses"):
            tenant.onedrive_ready.setdefault(uid, 0.0)


async def create_personal_sites(request: Request) -> Response:
    """POST {admin site}/_api/SP.UserProfiles.ProfileLoader.GetProfileLoader/CreatePersonalSiteEnqueueBulk
    {"emailIDs": [...]} (learn.microsoft.com/powershell/module/sharepoint-online/request-spopersonalsite:
    at most 200 users a call; the sites are created later by a timer job). App-only access to SharePoint
    REST needs a certificate credential (learn.microsoft.com/sharepoint/dev/solution-guidance/
    security-apponly-azuread) and a token for the SharePoint resource, not Graph."""
    world: World = request.app.state.world
    auth = request.headers.get("authorization", "")
    scheme, _, raw = auth.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return _sp_error(401, "-2147024891, System.UnauthorizedAccessException", "Access denied.")
    try:
        claims = jwt.decode(raw.strip(), world.token_key, algorithms=["HS256"], options={"verify_aud": False})
    except jwt.InvalidTokenError:
        return _sp_error(401, "-2147024891, System.UnauthorizedAccessException", "Invalid token.")
    tenant = world.tenant(str(claims.get("tid", "")))
    if tenant is None or claims.get("aud") != admin_audience(tenant):
        return _sp_error(
            401,
            "-2147024891, System.UnauthorizedAccessException",
            "Invalid audience: the token must be issued for the tenant's SharePoint admin site.",
        )
    if claims.get("appidacr") != "2":
        return _sp_error(
            401, "-2147024891, System.UnauthorizedAccessException", "Unsupported app only token."
        )
    if SHAREPOINT_FULL_CONTROL not in (claims.get("roles") or []):
        return _sp_error(
            403,
            "-2147024891, System.UnauthorizedAccessException",
            "Access denied. You do not have permission to perform this action or access this resource.",
        )
    try:
        body = await request.json()
    except ValueError:
        body = None
    emails = body.get("emailIDs") if isinstance(body, dict) else None
    if (
        not isinstance(emails, list)
        or not emails
        or not all(isinstance(e, str) and e.strip() for e in emails)
    ):
        return _sp_error(
            400,
            "-2147024809, System.ArgumentException",
            "emailIDs must be a non-empty array of user e-mail addresses with no empty entries.",
        )
    if len(emails) > MAX_PERSONAL_SITES:
        return _sp_error(
            400,
            "-2147024809, System.ArgumentException",
            f"At most {MAX_PERSONAL_SITES} users can be enqueued in one call; got {len(emails)}.",
        )
    ready_at = time.time() + world.settings.onedrive_provision_delay_s
    for email in emails:
        user = tenant.user_by_key(email.strip())
        # Unknown or unlicensed users are skipped silently, as the timer job does.
        if user is not None and user.get("assignedLicenses") and user["id"] not in tenant.onedrive_ready:
            tenant.onedrive_ready[user["id"]] = ready_at
    tenant.personal_site_calls += 1
    world.stats.record(tenant.id, method="POST", write=True)
    world.dirty = True
    return JSONResponse({"odata.null": True})


# ---- admin API ------------------------------------------------------------------------------------------
async def admin_roles(request: Request) -> Response:
    """GET: the tenant app's granted roles. POST {"withhold": [...]} | {"grant": [...]} | {"reset": true}."""
    world: World = request.app.state.world
    tenant = world.tenant(request.path_params["tid"])
    if tenant is None:
        return JSONResponse(
            {"error": f"no tenant {request.path_params['tid']!r} in this sandbox"}, status_code=404
        )
    if request.method == "POST":
        try:
            body = await request.json()
            if not isinstance(body, dict) or not set(body) <= {"withhold", "grant", "reset"}:
                raise ValueError('body must be {"withhold": [...], "grant": [...], "reset": true}')
            roles = set(granted(tenant))
            if body.get("reset"):
                roles = set(ALL_ROLES)
            roles -= set(parse_roles(",".join(body.get("withhold") or [])))
            roles |= set(parse_roles(",".join(body.get("grant") or [])))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        tenant.granted_roles = None if roles == set(ALL_ROLES) else sorted(roles)
        world.dirty = True
    return JSONResponse({"tenant": tenant.id, "roles": granted(tenant)})


async def admin_onedrives(request: Request) -> Response:
    """GET: which users' OneDrives exist and which are still being provisioned."""
    world: World = request.app.state.world
    tenant = world.tenant(request.path_params["tid"])
    if tenant is None:
        return JSONResponse(
            {"error": f"no tenant {request.path_params['tid']!r} in this sandbox"}, status_code=404
        )
    now = time.time()
    return JSONResponse(
        {
            "ready": sorted(u for u, t in tenant.onedrive_ready.items() if t <= now),
            "pending": sorted(u for u, t in tenant.onedrive_ready.items() if t > now),
            "calls": tenant.personal_site_calls,
        }
    )


def tenancy_routes() -> list[Route]:
    return [
        Route("/v1.0/applications{rest:path}", applications, methods=["GET", "POST", "PATCH", "DELETE"]),
        Route(PROFILE_LOADER, create_personal_sites, methods=["POST"]),
        Route("/sandbox/tenants/{tid}/roles", admin_roles, methods=["GET", "POST"]),
        Route("/sandbox/tenants/{tid}/onedrives", admin_onedrives, methods=["GET"]),
    ]

"""The path every Graph request takes: auth -> tenant -> latency and faults -> throttle -> handler.

A pure ASGI middleware (no per-request buffering), so drive content streams through it untouched.
$batch items re-enter here in-process with scope["sandbox.batch_item"] set: they are authenticated and
throttled one by one, count as writes but not as requests, and get no injected faults.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
import uuid
from typing import Any

import jwt

from sandbox import licensing
from sandbox.errors import error_body
from sandbox.mail_limits import is_outlook_path
from sandbox.tenancy import DENIED, denied
from sandbox.throttle import Decision, rest_ru, retry_after_header, throttle_headers
from sandbox.world import TenantState, World

Scope = dict[str, Any]
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
AUDIENCE = "https://graph.microsoft.com"
_SHAREPOINT_RE = re.compile(
    r"^/v1\.0/(?:drives|sites|shares)(?:/|$)|^/v1\.0/(?:users|groups|me)/[^/]+/drives?(?:/|$)"
)
# GET base costs above 1 (learn.microsoft.com/graph/throttling-limits, identity and access cost table).
_IDENTITY_GET_COSTS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"^/v1\.0/groups/[^/]+/transitiveMembers(?:/|$)"), 5),
    (re.compile(r"^/v1\.0/domains/[^/]+/domainNameReferences(?:/|$)"), 4),
    (re.compile(r"^/v1\.0/groups/[^/]+/members(?:/|$)"), 3),
    (re.compile(r"^/v1\.0/subscribedSkus(?:/|$)"), 3),
    (re.compile(r"^/v1\.0/applications/?$"), 2),
    (re.compile(r"^/v1\.0/applications(?:\([^)]*\)|/[^/]+)/extensionProperties(?:/|$)"), 2),
)
_USERS_RE = re.compile(r"^/v1\.0/users(?:/|$)")
# SharePoint REST: a site's own /_api (Migration API) and the admin site's (personal-site provisioning).
_REST_RE = re.compile(r"^/(?:(?:sites|personal)/[^/]+/)?_api/")


class DroppedConnection(Exception):
    """Raised mid-response to make the server abort the connection (an injected 'drop' fault)."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


def is_batch_path(path: str) -> bool:
    return path == "/v1.0/$batch"


def collapse_slashes(path: str) -> str:
    """The SDK can build /v1.0//users; Graph tolerates it, so does the sandbox."""
    return re.sub(r"/{2,}", "/", path) if "//" in path else path


_SHARING_CALL_RE = re.compile(r"/items/[^/]+(:/[^:]*:)?/(invite|createLink|permissions(/[^/]+)?)$")


def is_sharing_call(method: str, path: str) -> bool:
    """A call that changes sharing (invite, createLink, adding, changing or removing a permission): counted
    against the "Specific Sharing APIs" limit. Reading permissions is not."""
    return method != "GET" and bool(_SHAREPOINT_RE.match(path)) and bool(_SHARING_CALL_RE.search(path))


# Paths Microsoft Teams serves (teams, channels, tabs, messages, chats, the app catalogue, templates): the
# "Microsoft Teams service limits" govern them (sandbox/teams_api.py), not the identity and access limits,
# whose page lists the directory's resources (users, groups, applications, domains, ...) and no Teams one.
_TEAMS_SERVICE_RE = re.compile(
    r"^/v1\.0/(?:teams|chats|appCatalogs|teamwork|teamsTemplates)(?:/|$|\(|\?)"
    r"|^/v1\.0/groups/[^/]+/team(?:/|$)"
    r"|^/v1\.0/users/[^/]+/(?:joinedTeams|chats|teamwork)(?:/|$)"
)


def is_teams_service_path(path: str) -> bool:
    return bool(_TEAMS_SERVICE_RE.match(path))


def classify(method: str, path: str, query: dict[str, str]) -> tuple[str, int]:
    """(throttle kind, resource units) per Microsoft's published cost tables."""
    if is_outlook_path(path):
        return "outlook", 0  # Outlook's own per-mailbox limits apply (sandbox/mail_limits.py)
    if _SHAREPOINT_RE.match(path):
        if "/permissions" in path or path.endswith(("/invite", "/createLink")):
            return "sharepoint", 5
        if method in WRITE_METHODS:
            return "sharepoint", 2
        if path.endswith("/children"):
            return "sharepoint", 2
        if path.endswith("/delta"):
            return "sharepoint", 1 if "token" in query else 2
        if path.endswith("/delta()") or "/delta(token=" in path:
            return "sharepoint", 2 if path.endswith("/delta()") else 1
        return "sharepoint", 1
    if method in WRITE_METHODS:
        return "identity", 1
    listed = next((cost for pattern, cost in _IDENTITY_GET_COSTS if pattern.match(path)), None)
    if listed is not None:
        ru = listed
    elif _USERS_RE.match(path):
        ru = 2
    else:
        ru = 1
    if "$select" in query:
        ru -= 1
    if "$expand" in query:
        ru += 1
    return "identity", max(ru, 1)


def issue_token(
    world: World,
    tenant_id: str,
    client_id: str,
    lifetime: int = 3599,
    *,
    audience: str = AUDIENCE,
    roles: list[str] | None = None,
    certificate: bool = False,
) -> str:
    """An app-only access token shaped like Entra's v1 tokens: `roles` holds the application permissions
    granted to the app for that audience, `appidacr` how the client authenticated ("1" secret, "2"
    certificate), as learn.microsoft.com/entra/identity-platform/access-token-claims-reference describes."""
    now = int(time.time())
    claims = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "tid": tenant_id,
        "appid": client_id,
        # The service principal's object id (Entra puts it in app-only tokens; Azure Storage keys user
        # delegation keys to it).
        "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"trustfold-sandbox:sp/{tenant_id}/{client_id}")),
        "appidacr": "2" if certificate else "1",
        "roles": list(roles) if roles is not None else [],
    }
    return jwt.encode(claims, world.token_key, algorithm="HS256")


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _content_length(headers: dict[str, str]) -> int:
    try:
        return max(0, int(headers.get("content-length", "0")))
    except ValueError:
        return 0


def _query(scope: Scope) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))


async def send_json(
    send: Any, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> int:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json")]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    raw.append((b"content-length", str(len(data)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})
    return len(data)


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = error_body(code, message)
    inner = body["error"]["innerError"]
    all_headers = {"request-id": inner["request-id"], "client-request-id": inner["client-request-id"]}
    all_headers.update(headers or {})
    return status, body, all_headers


class GraphPipeline:
    def __init__(self, app: Any, world: World, rng: random.Random | None = None) -> None:
        self.app = app
        self.world = world
        # Seeded from the world's seed: faults fall the same way on every run, so tests are reproducible.
        self.rng = rng or random.Random(world.settings.seed)
        self._roles: list[str] = []

    def authenticate(self, headers: dict[str, str]) -> tuple[TenantState | None, str, str]:
        """(tenant, app id, error message); tenant None means 401. The token's roles land in
        self-independent form on the request scope (see graph())."""
        auth = headers.get("authorization", "")
        if not auth:
            return None, "", "Access token is empty."
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, "", "Access token is empty."
        try:
            claims = jwt.decode(token.strip(), self.world.token_key, algorithms=["HS256"], audience=AUDIENCE)
        except jwt.ExpiredSignatureError:
            return None, "", "Lifetime validation failed, the token is expired."
        except jwt.InvalidTokenError:
            return None, "", "Access token validation failure. Invalid audience."
        tenant = self.world.tenant(str(claims.get("tid", "")))
        if tenant is None:
            return None, "", "Access token validation failure: the token's tenant does not exist."
        self._roles = [str(r) for r in claims.get("roles") or []]
        return tenant, str(claims.get("appid", "app")), ""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = collapse_slashes(scope["path"])
        if path != scope["path"]:
            scope = dict(scope, path=path, raw_path=path.encode())
        if _REST_RE.match(path):
            await self.rest(scope, receive, send)
            return
        if path.startswith(("/_upload/", "/_download/")):
            await self.transfer(scope, receive, send, path)
            return
        if not (path == "/v1.0" or path.startswith("/v1.0/")):
            await self.app(scope, receive, send)
            return
        await self.graph(scope, receive, send, path)

    async def graph(self, scope: Scope, receive: Any, send: Any, path: str) -> None:
        world = self.world
        settings = world.settings
        headers = _headers(scope)
        stats = world.stats
        item = bool(scope.get("sandbox.batch_item"))
        method = scope["method"].upper()
        tenant, app_id, problem = self.authenticate(headers)
        if tenant is None:
            status, body, hdrs = _error(401, "InvalidAuthenticationToken", problem)
            hdrs["WWW-Authenticate"] = (
                'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"'
            )
            await send_json(send, status, body, hdrs)
            return
        roles = self._roles
        if not is_batch_path(path) and denied(method, path, roles):
            # Admin consent is checked before anything else runs (learn.microsoft.com/graph/
            # resolve-auth-errors): 403 Authorization_RequestDenied.
            status, body, hdrs = _error(403, "Authorization_RequestDenied", DENIED)
            stats.record(
                tenant.id,
                method=method,
                request=not item,
                bytes_out=await send_json(send, status, body, hdrs),
            )
            return
        state = scope.setdefault("state", {})
        state["world"] = world
        state["tenant"] = tenant
        # Entra's background group-licence processing catches up before the tenant is read or written.
        if (tenant.licence_due or tenant.licence_groups_due) and licensing.settle(tenant):
            world.dirty = True
        state["app_id"] = app_id
        state["roles"] = list(roles)  # what the token was granted: drive delta scopes sharing changes by it
        tid = tenant.id
        is_batch = path == "/v1.0/$batch"
        write = method in WRITE_METHODS and not is_batch
        stats = world.stats

        if not item:
            if settings.latency_ms:
                await asyncio.sleep(settings.latency_ms / 1000)
            fault = self._fault()
            if fault == "slow":
                await asyncio.sleep(settings.slow_seconds)
            elif fault in ("429", "503"):
                retry = retry_after_header(self.rng.uniform(0.5, 3.0))
                if fault == "429":
                    status, body, hdrs = _error(
                        429,
                        "TooManyRequests",
                        "Too many requests.",
                        {
                            "Retry-After": retry,
                            "x-ms-throttle-scope": f"Tenant_Application/ReadWrite/{app_id}/{tid}",
                            "x-ms-throttle-information": "ResourceUnitLimitExceeded",
                        },
                    )
                else:
                    status, body, hdrs = _error(
                        503,
                        "serviceNotAvailable",
                        "Service unavailable. Try again later.",
                        {"Retry-After": retry},
                    )
                stats.record(
                    tid, method=method, throttled=True, bytes_out=await send_json(send, status, body, hdrs)
                )
                return
        else:
            fault = None

        decision = Decision(None)
        ru = 0
        kind = ""
        if not is_batch and not is_outlook_path(path) and not is_teams_service_path(path):
            kind, ru = classify(method, path, _query(scope))
            decision = Decision(None)
            if is_sharing_call(method, path):
                decision = world.throttle.decide_sharing(tid, app_id)
                if decision.retry_after is not None:
                    world.throttle.spend_refused(tid, ru, app_id)
            if decision.retry_after is None:
                decision = world.throttle.decide(
                    tid, kind, ru, write and kind == "identity", app_id, ingress=_content_length(headers)
                )
            if decision.retry_after is not None:
                status, body, hdrs = _error(
                    429, "TooManyRequests", "Too many requests.", throttle_headers(decision, ru)
                )
                stats.record(
                    tid,
                    method=method,
                    request=not item,
                    throttled=True,
                    bytes_out=await send_json(send, status, body, hdrs),
                )
                return
        extra = (
            [(k.lower().encode(), v.encode()) for k, v in throttle_headers(decision, ru).items()]
            if ru
            else []
        )
        counts = {"in": 0, "out": 0, "status": 0}
        bandwidth = settings.bandwidth_mbps

        async def counting_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                counts["in"] += len(message.get("body", b""))
            return message

        async def wrapped_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                counts["status"] = message["status"]
                message = dict(message, headers=[*message.get("headers", []), *extra])
                if fault in ("504", "drop"):
                    return  # the handler ran (a write is applied) but its answer is lost
            elif message["type"] == "http.response.body":
                if fault in ("504", "drop"):
                    return
                size = len(message.get("body", b""))
                counts["out"] += size
                if bandwidth and size:
                    await asyncio.sleep(size * 8 / (bandwidth * 1_000_000))
            await send(message)

        await self.app(scope, counting_receive, wrapped_send)
        if ru and kind == "sharepoint":
            world.throttle.record_transfer(tid, counts["in"], counts["out"])
        if write and counts["status"] < 400:
            world.dirty = True
        # A batch item's bytes travel inside the envelope, which is counted already.
        stats.record(
            tid,
            method=method,
            request=not item,
            write=write,
            bytes_in=0 if item else counts["in"],
            bytes_out=0 if item else counts["out"],
        )
        if fault == "504":
            status, body, hdrs = _error(
                504, "GatewayTimeout", "The gateway did not receive a timely response."
            )
            await send_json(send, status, body, hdrs)
        elif fault == "drop":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"value":', "more_body": True})
            raise DroppedConnection("injected fault: connection dropped")

    async def rest(self, scope: Scope, receive: Any, send: Any) -> None:
        """SharePoint REST spends the app's SharePoint resource units like Graph does ("Every request that an
        application makes across all API endpoints, including Microsoft Graph, CSOM, and REST, counts"), at
        the sandbox's REST cost (throttle.rest_ru). A request without a well-signed token goes on to its
        route, which refuses it; the route checks audience and roles."""
        world = self.world
        token = _headers(scope).get("authorization", "").partition(" ")[2].strip()
        try:
            claims = jwt.decode(token, world.token_key, algorithms=["HS256"], options={"verify_aud": False})
        except jwt.PyJWTError:
            await self.app(scope, receive, send)
            return
        tid, app_id = str(claims.get("tid", "")), str(claims.get("appid", "app"))
        if world.tenant(tid) is None:
            await self.app(scope, receive, send)
            return
        method = scope["method"].upper()
        ru = rest_ru(method)
        decision = world.throttle.decide(tid, "sharepoint", ru, False, app_id)
        headers = throttle_headers(decision, ru)
        if decision.retry_after is not None:
            body = {
                "odata.error": {
                    "code": "-2147024860, Microsoft.SharePoint.SPRequestThrottledException",
                    "message": {"lang": "en-US", "value": "The request has been throttled."},
                }
            }
            world.stats.record(
                tid,
                method=f"REST {method}",
                throttled=True,
                bytes_out=await send_json(send, 429, body, headers),
            )
            return
        extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), *extra])
            await send(message)

        await self.app(scope, receive, with_headers)

    async def transfer(self, scope: Scope, receive: Any, send: Any, path: str) -> None:
        """Pre-authenticated upload and download URLs: no resource units, but their bytes are SharePoint's
        ingress and egress, limited per hour (sandbox.throttle)."""
        world = self.world
        tid = path.split("/")[2] if path.count("/") >= 2 else ""
        decision = world.throttle.decide_transfer(tid, _content_length(_headers(scope)))
        if decision.retry_after is not None:
            status, body, hdrs = _error(
                429, "TooManyRequests", "Too many requests.", throttle_headers(decision, 0)
            )
            world.stats.record(
                tid,
                method=scope["method"].upper(),
                throttled=True,
                bytes_out=await send_json(send, status, body, hdrs),
            )
            return
        counts = {"in": 0, "out": 0}

        async def counting_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                counts["in"] += len(message.get("body", b""))
            return message

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.body":
                counts["out"] += len(message.get("body", b""))
            await send(message)

        await self.app(scope, counting_receive, counting_send)
        world.throttle.record_transfer(tid, counts["in"], counts["out"])

    def _fault(self) -> str | None:
        faults = self.world.settings.faults
        roll = self.rng.random()
        for kind, rate in (
            ("429", faults.r429),
            ("503", faults.r503),
            ("504", faults.r504),
            ("drop", faults.drop),
            ("slow", faults.slow),
        ):
            if roll < rate:
                return kind
            roll -= rate
        return None

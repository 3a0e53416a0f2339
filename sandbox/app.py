"""The sandbox as an ASGI app: Entra-shaped token endpoint, Graph v1.0 under /v1.0, admin API under
/sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.admin_api import admin_routes
from sandbox.batch import batch
from sandbox.conditional_access import conditional_access_routes
from sandbox.directory_api import directory_routes
from sandbox.domains_api import domain_routes
from sandbox.education_api import education_routes
from sandbox.errors import graph_error
from sandbox.local_only import LocalOnly
from sandbox.migration_api import migration_routes
from sandbox.permissions_api import permission_routes
from sandbox.pipeline import GraphPipeline, issue_token
from sandbox.settings import Settings
from sandbox.teams_api import teams_routes
from sandbox.tenancy import audience_for, ensure_application, tenancy_routes, token_roles
from sandbox.world import World, write_atomic

TOKEN_LIFETIME_S = 3599
SAVE_EVERY_S = 1.0


def entra_error(status: int, error: str, code: int, description: str) -> JSONResponse:
    """Entra ID's OAuth error body (learn.microsoft.com/entra/identity-platform/reference-error-codes)."""
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return JSONResponse(
        {
            "error": error,
            "error_description": (
                f"AADSTS{code}: {description} Trace ID: {trace} "
                f"Correlation ID: {correlation} Timestamp: {stamp}"
            ),
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
        status_code=status,
    )


async def token(request: Request) -> Response:
    """POST /{tenant}/oauth2/v2.0/token, client credentials grant
    (learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).
    Any id and secret pass."""
    world: World = request.app.state.world
    key = request.path_params["tenant"].lower()
    tenant = world.tenant(key) or next(
        (t for t in world.tenants.values() if any(d["id"].lower() == key for d in t.domains)), None
    )
    if tenant is None:
        return entra_error(
            400,
            "invalid_request",
            90002,
            f"Tenant '{key}' not found. Check to make sure you have the correct tenant ID and are "
            f"signing into the correct cloud.",
        )
    origin = request.headers.get("origin")
    if origin is not None:
        # A browser page's request (cross-origin: it carries Origin). Entra redeems those only for a
        # single-page application, never a confidential client's credentials
        # (learn.microsoft.com/entra/identity-platform/reference-error-codes, AADSTS9002326).
        return entra_error(
            400,
            "invalid_request",
            9002326,
            "Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type. "
            f"Request origin: '{origin[:200]}'.",
        )
    # The client credentials grant is a form post (learn.microsoft.com/entra/identity-platform/
    # v2-oauth2-client-creds-grant-flow), as azure-identity sends it; JSON or text/plain is refused.
    if (
        request.headers.get("content-type", "").split(";")[0].strip().lower()
        != "application/x-www-form-urlencoded"
    ):
        return entra_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        )
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    for field in ("grant_type", "client_id", "scope"):
        if not form.get(field):
            return entra_error(
                400,
                "invalid_request",
                900144,
                f"The request body must contain the following parameter: '{field}'.",
            )
    if form["grant_type"] != "client_credentials":
        return entra_error(
            400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
        )
    if not (form.get("client_secret") or form.get("client_assertion")):
        return entra_error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    if not all(s.endswith("/.default") for s in form["scope"].split()):
        return entra_error(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {form['scope']} is not valid. Client credential flows "
            "must have a scope value with /.default suffixed to the resource identifier "
            "(application ID URI).",
        )
    audience = audience_for(tenant, form["scope"])
    if audience is None:
        resource = form["scope"].split()[0].removesuffix("/.default")
        return entra_error(
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named {tenant.id}. "
            "This can happen if the application has not been installed by the administrator of the tenant.",
        )
    ensure_application(tenant, form["client_id"])
    access = issue_token(
        world,
        tenant.id,
        form["client_id"],
        TOKEN_LIFETIME_S,
        audience=audience,
        roles=token_roles(tenant, audience),
        certificate=bool(form.get("client_assertion")),
    )
    return JSONResponse(
        {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_S,
            "ext_expires_in": TOKEN_LIFETIME_S,
            "access_token": access,
        }
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    if request.url.path.startswith("/v1.0"):
        if status == 405:
            return graph_error(
                405,
                "Request_BadRequest",
                f"The HTTP method '{request.method}' is not allowed for this resource.",
            )
        segment = request.url.path.removeprefix("/v1.0/").split("/")[-1]
        return graph_error(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
    return JSONResponse({"error": getattr(exc, "detail", "not found")}, status_code=status)


def _drive_routes(world: World) -> list[Any]:
    try:
        from sandbox.drives_api import drive_routes
    except ImportError:
        return []
    return list(drive_routes(world))


def create_app(world: World, settings: Settings | None = None) -> Starlette:
    """The whole sandbox for one World; `settings`, when given, replaces the world's."""
    if settings is not None and settings is not world.settings:
        world.apply_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        saver = asyncio.create_task(_autosave(world)) if world.state_path else None
        try:
            yield
        finally:
            if saver:
                saver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await saver
            if world.state_path and world.dirty:
                world.save()

    routes = [
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
        Route("/v1.0/$batch", batch, methods=["POST"]),
        *permission_routes(),  # before the drive routes, whose catch-all path would take them
        *_drive_routes(world),
        *domain_routes(),  # before directory_routes: these answer /domains
        *teams_routes(),  # before directory_routes: /groups/{id}/team (sandbox/teams_api.py)
        *education_routes(),
        *directory_routes(),
        *conditional_access_routes(),
        *tenancy_routes(),
        *admin_routes(),
        *migration_routes(),  # SharePoint REST: Migration API (sandbox/migration_api.py)
    ]
    app = Starlette(
        routes=routes,
        # LocalOnly first: a request from a browser page (foreign Host, non-JSON admin call) reaches nothing.
        middleware=[Middleware(LocalOnly), Middleware(GraphPipeline, world=world)],
        exception_handlers={HTTPException: _not_found},
        lifespan=lifespan,
    )
    app.state.world = world
    return app


async def _autosave(world: World) -> None:
    """Persist at most once a second after changes: serialise on the loop (a consistent view), write the
    file in a thread."""
    pause = SAVE_EVERY_S
    while True:
        await asyncio.sleep(pause)
        if world.dirty and world.state_path:
            world.dirty = False
            started = time.perf_counter()
            text = json.dumps(world.to_state(), separators=(",", ":"))
            # Big worlds take a while to serialise on the loop: save less often so requests keep flowing.
            pause = max(SAVE_EVERY_S, 20 * (time.perf_counter() - started))
            await asyncio.to_thread(write_atomic, world.state_path, text)

"""SharePoint REST on the sandbox address for the Migration API: `/sites/{name}/_api/...` and
`/personal/{name}/_api/...` with a SharePoint-audience token (never Graph's): the web/list/folder/file reads a
client needs to address a package, ProvisionMigrationContainers, ProvisionMigrationQueue,
GetMigrationJobStatus and CreateMigrationJob(Encrypted); plus the admin route that gives the sandbox its
storage."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.drives_state import GraphError as DriveError
from sandbox.migration_jobs import create_job, job_progress
from sandbox.migration_package import PackageRefused
from sandbox.migration_service import NONE, configure, guid, item_guid, service
from sandbox.migration_storage import provision_containers, provision_queue
from sandbox.world import TenantState, World


@dataclass
class Site:
    tenant: TenantState
    drive: dict[str, Any]
    web_id: str
    web_url: str  # server-relative
    site_url: str  # absolute as SharePoint shows it
    list_url: str  # web-relative


def _site(world: World, tenant: TenantState, kind: str, name: str) -> Site:
    store = tenant.drives
    if kind == "sites":
        site = next((s for s in store.sites.values() if s["name"].lower() == name.lower()), None)
        if site is None or not site["_drives"]:
            raise _NotFound()
        drive = store.drives[site["_drives"][0]]
        web_id = site["id"].split(",")[2]
    else:
        drive = next(
            (d for d in store.drives.values() if f"/personal/{name.lower()}/" in d["webUrl"].lower()), None
        )
        if drive is None:
            raise _NotFound()
        web_id = guid("web", drive["id"])
    split = urlsplit(drive["webUrl"])
    web_url, _, list_part = split.path.rpartition("/")
    return Site(
        tenant, drive, web_id, web_url, f"{split.scheme}://{split.netloc}{web_url}", unquote(list_part)
    )


class _NotFound(Exception):
    pass


def _error(status: int, code: str, message: str) -> JSONResponse:
    """SharePoint REST's error body (JSON light)."""
    return JSONResponse(
        {"odata.error": {"code": code, "message": {"lang": "en-US", "value": message}}}, status
    )


def _auth(world: World, request: Request) -> tuple[TenantState | None, str]:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return None, "The request has no bearer token."
    try:
        claims = jwt.decode(
            header[7:].strip(), world.token_key, algorithms=["HS256"], options={"verify_aud": False}
        )
    except jwt.PyJWTError:
        return None, "Invalid token."
    tenant = world.tenant(str(claims.get("tid", "")))
    if tenant is None:
        return None, "Unknown tenant."
    prefix = tenant.drives.host.split(".")[0]
    allowed = {f"https://{prefix}.sharepoint.com", f"https://{prefix}-my.sharepoint.com"}
    if claims.get("aud") not in allowed:
        # A Graph token on SharePoint REST is refused, as SharePoint does (graph-facts.md).
        return (
            None,
            f"Invalid audience {claims.get('aud')!r}: SharePoint REST needs a token for {min(allowed)}.",
        )
    if claims.get("appidacr") != "2":
        # App-only SharePoint REST needs a certificate credential; a client-secret token is refused
        # (learn.microsoft.com/sharepoint/dev/solution-guidance/security-apponly-azuread).
        return None, "Unsupported app only token."
    if "Sites.FullControl.All" not in (claims.get("roles") or []) and "Sites.ReadWrite.All" not in (
        claims.get("roles") or []
    ):
        return None, "The token lacks a Sites permission."
    return tenant, ""


# ---- routes ----------------------------------------------------------------------------------------------
async def _api(request: Request) -> Response:
    world: World = request.app.state.world
    tenant, problem = _auth(world, request)
    if tenant is None:
        return _error(401, "-2147024891, System.UnauthorizedAccessException", problem)
    world.stats.record(tenant.id, method=f"REST {request.method}")  # SharePoint REST counts as requests too
    kind, name, rest = request.path_params["kind"], request.path_params["name"], request.path_params["rest"]
    if kind not in ("sites", "personal"):
        return _error(404, "-2147024894, System.IO.FileNotFoundException", "File Not Found.")
    try:
        site = _site(world, tenant, kind, name)
    except _NotFound:
        return _error(404, "-2147024894, System.IO.FileNotFoundException", "File Not Found.")
    op = rest.split("(")[0].rstrip("/")
    try:
        if request.method == "GET" and op == "web":
            return JSONResponse({"Id": site.web_id, "ServerRelativeUrl": site.web_url, "Url": site.site_url})
        if request.method == "GET" and op == "web/GetList":
            root = site.tenant.drives.items[site.drive["_root"]]
            return JSONResponse(
                {
                    "Id": guid("list", site.drive["id"]),
                    "Title": site.drive["name"],
                    "RootFolder": {
                        "UniqueId": item_guid(root),
                        "ServerRelativeUrl": f"{site.web_url}/{site.list_url}",
                    },
                }
            )
        if request.method == "GET" and op in (
            "web/GetFolderByServerRelativeUrl",
            "web/GetFileByServerRelativeUrl",
            "web/GetFolderByServerRelativePath",
            "web/GetFileByServerRelativePath",
        ):
            return _by_url(site, rest, "GetFolder" in op, decoded=op.endswith("Path"))
        if request.method == "GET" and op == "site/GetMigrationJobProgress":
            verbose = "odata=verbose" in request.headers.get("accept", "")
            return job_progress(service(world), rest, site.tenant.id, verbose)
        if request.method != "POST":
            return _error(
                405, "-1, Microsoft.SharePoint.Client.InvalidClientQueryException", "Method not allowed."
            )
        body = json.loads((await request.body()) or b"{}")
        svc = service(world)
        if op == "site/ProvisionMigrationContainers":
            return JSONResponse(await asyncio.to_thread(provision_containers, svc))
        if op == "site/ProvisionMigrationQueue":
            if not svc.queues:
                return _error(404, "-1, Microsoft.SharePoint.Client.InvalidClientQueryException",
                              "Method ProvisionMigrationQueue is not offered.")  # fmt: skip
            return JSONResponse(await asyncio.to_thread(provision_queue, svc))
        if op == "site/GetMigrationJobStatus":
            job = svc.jobs.get(str(body.get("id") or body.get("MigrationJobId") or "").lower())
            return JSONResponse({"value": job.state if job else NONE})
        if op in ("site/CreateMigrationJobEncrypted", "site/CreateMigrationJob"):
            return await create_job(world, svc, site, body, encrypted=op.endswith("Encrypted"))
    except PackageRefused as exc:
        return _error(400, "-2147024809, System.ArgumentException", str(exc))
    return _error(404, "-1, Microsoft.SharePoint.Client.InvalidClientQueryException", f"No such method: {op}")


def odata_string(text: str) -> str:
    """An OData string literal's value: quoted in single quotes, a quote inside doubled. A lone quote inside
    ends the literal early, which SharePoint refuses as a malformed expression (400)."""
    text = text.strip()
    if len(text) < 2 or text[0] != "'" or text[-1] != "'" or "'" in text[1:-1].replace("''", ""):
        raise _BadLiteral(text)
    return text[1:-1].replace("''", "'")


class _BadLiteral(Exception):
    pass


def _by_url(site: Site, rest: str, folder: bool, *, decoded: bool) -> Response:
    """GetFolder/GetFileByServerRelativeUrl and ...ByServerRelativePath (supporting-and-in-file-and-folder-
    with-the-resourcepath-api): `rest` is the path as the HTTP layer decoded it once. The ResourcePath form
    (`decodedUrl='...'`) takes the literal as the decoded path; the string form "assumes that % and #
    characters in a path imply that the URL has been encoded", so it decodes again and a `#` ends the path:
    a name holding `%` or `#` cannot be reached through it."""
    arg = rest.partition("(")[2].rpartition(")")[0]
    if decoded:
        name, eq, arg = arg.partition("=")
        if not eq or name.strip().lower() != "decodedurl":
            return _error(400, "-1, Microsoft.SharePoint.Client.InvalidClientQueryException",
                          "The expression is not valid: decodedUrl is required.")  # fmt: skip
    try:
        path = odata_string(arg)
    except _BadLiteral:
        return _error(400, "-1, Microsoft.SharePoint.Client.InvalidClientQueryException",
                      "The expression is not valid: a string literal is malformed.")  # fmt: skip
    if not decoded:
        path = unquote(path.split("#", 1)[0])
    base = f"{site.web_url}/{site.list_url}"
    if not (path == base or path.startswith(base + "/")):
        return _error(404, "-2147024894, System.IO.FileNotFoundException", "File Not Found.")
    store = site.tenant.drives
    try:
        item = store.by_path(store.items[site.drive["_root"]], path[len(base) :])
    except DriveError:
        return _error(404, "-2147024894, System.IO.FileNotFoundException", "File Not Found.")
    if bool(item.get("_folder")) != folder:
        return _error(404, "-2147024894, System.IO.FileNotFoundException", "File Not Found.")
    if not decoded and ("%" in path or "#" in path):
        # Whatever the encoding, the string APIs do not reach such names (the page: use ResourcePath).
        return _error(404, "-2147024894, System.IO.FileNotFoundException", "File Not Found.")
    return JSONResponse({"UniqueId": item_guid(item), "ServerRelativeUrl": path, "Name": item["name"]})


async def _configure(request: Request) -> Response:
    """Admin (not SharePoint): POST /sandbox/migration {blob_url, queue_url, account, key, rate?} gives the
    sandbox's SharePoint its storage (a rehearsal's Azurite)."""
    body = json.loads((await request.body()) or b"{}")
    try:
        configure(
            request.app.state.world,
            blob_url=str(body["blob_url"]),
            queue_url=str(body["queue_url"]),
            account=str(body["account"]),
            key=str(body["key"]),
            rate=float(body.get("rate") or 200.0),
            ca_file=str(body["ca_file"]) if body.get("ca_file") else None,
            queues=bool(body.get("queues", True)),
        )
    except (KeyError, ValueError) as exc:
        return JSONResponse({"error": f"bad migration storage settings: {exc}"}, 400)
    return JSONResponse({"configured": True})


def migration_routes() -> list[Route]:
    return [
        Route("/sandbox/migration", _configure, methods=["POST"]),
        Route("/{kind:str}/{name:str}/_api/{rest:path}", _api, methods=["GET", "POST"]),
    ]

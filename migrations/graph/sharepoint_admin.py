"""SharePoint's admin site and an app-only token for it: what the Migration API and OneDrive provisioning
call, and what preflight checks can be had."""

from __future__ import annotations

from migrations.graph.client import GraphError, GraphResponse, TenantConnection, _credential
from trust import Trust


def sharepoint_admin_resource(initial_domain: str) -> str:
    return f"https://{initial_domain.split('.')[0].lower()}-admin.sharepoint.com"


async def initial_domain(conn: TenantConnection) -> str:
    """The tenant's *.onmicrosoft.com domain: its prefix names the SharePoint admin site."""
    body = await conn.get("/domains")
    for d in body.get("value", []):
        if d.get("isInitial"):
            return str(d["id"])
    raise GraphError(
        "GET",
        "/domains",
        GraphResponse(404, {}, {"error": {"code": "notFound", "message": "no initial domain"}}),
    )


async def sharepoint_token(trust: Trust, graph_url: str | None, conn: TenantConnection) -> tuple[str, str]:
    """(admin site URL, access token for it) with the trust's own credential and the SharePoint audience."""
    domain = await initial_domain(conn)
    resource = sharepoint_admin_resource(domain)
    ref = trust.tenant.credential
    credential = _credential(ref, trust.tenant.id, graph_url)
    try:
        token = await credential.get_token(f"{resource}/.default")
    finally:
        close = getattr(credential, "close", None)
        if close is not None:
            await close()
    site = graph_url.rstrip("/") if graph_url else resource
    return site, token.token


MYSITE_NOT_READY = "Unable to retrieve user's mysite URL."


def onedrive_not_yet(resp: GraphResponse) -> bool:
    """A user's drive that does not exist (yet): 404, or Graph's other answer while SharePoint has not made
    the personal site, 400 "Unable to retrieve user's mysite URL." (microsoft-graph-docs#1354)."""
    if resp.status == 404:
        return True
    if resp.status != 400 or not isinstance(resp.body, dict):
        return False
    error = resp.body.get("error")
    return isinstance(error, dict) and str(error.get("message", "")).strip() == MYSITE_NOT_READY

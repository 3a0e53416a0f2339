"""Graph v1.0 domain endpoints and the admin DNS call (POST /sandbox/dns).

Each handler names the Microsoft documentation page it reproduces; the rules live in sandbox.domains_state.
Mounted before the directory routes, so these handlers answer /domains and /domains/{id}.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import domains_state as ds
from sandbox.directory import group_out, user_out
from sandbox.directory_api import CONTEXT, graph_route, json_response, paged, read_json
from sandbox.settings import MAX_DOMAIN_REMOVAL_S
from sandbox.world import TenantState, World


def _world(request: Request) -> World:
    return request.app.state.world


@graph_route
async def list_domains(request: Request, t: TenantState) -> Response:
    """GET /domains (learn.microsoft.com/graph/api/domain-list)."""
    ds.settle(_world(request))
    return json_response({"@odata.context": CONTEXT + "domains", "value": t.domains})


@graph_route
async def create_domain(request: Request, t: TenantState) -> Response:
    """POST /domains (learn.microsoft.com/graph/api/domain-post-domains): 201, unverified."""
    dom = ds.create(_world(request), t, await read_json(request))
    return json_response({"@odata.context": CONTEXT + "domains/$entity", **dom}, 201)


@graph_route
async def get_domain(request: Request, t: TenantState) -> Response:
    """GET /domains/{id} (learn.microsoft.com/graph/api/domain-get); 404 once a deletion completes."""
    dom = ds.get(_world(request), t, request.path_params["name"])
    return json_response({"@odata.context": CONTEXT + "domains/$entity", **dom})


@graph_route
async def update_domain(request: Request, t: TenantState) -> Response:
    """PATCH /domains/{id} (learn.microsoft.com/graph/api/domain-update): 204."""
    ds.update(_world(request), t, request.path_params["name"], await read_json(request))
    return Response(status_code=204)


@graph_route
async def delete_domain(request: Request, t: TenantState) -> Response:
    """DELETE /domains/{id} (learn.microsoft.com/graph/api/domain-delete): refused while referenced."""
    ds.delete(_world(request), t, request.path_params["name"])
    return Response(status_code=204)


@graph_route
async def force_delete(request: Request, t: TenantState) -> Response:
    """POST /domains/{id}/forceDelete (learn.microsoft.com/graph/api/domain-forcedelete): asynchronous."""
    raw = await request.body()
    body = json.loads(raw) if raw else None
    ds.force_delete(_world(request), t, request.path_params["name"], body)
    return Response(status_code=204)


@graph_route
async def verify_domain(request: Request, t: TenantState) -> Response:
    """POST /domains/{id}/verify (learn.microsoft.com/graph/api/domain-verify): 200 with the domain."""
    dom = ds.verify(_world(request), t, request.path_params["name"])
    return json_response({"@odata.context": CONTEXT + "domains/$entity", **dom})


@graph_route
async def verification_records(request: Request, t: TenantState) -> Response:
    """GET /domains/{id}/verificationDnsRecords
    (learn.microsoft.com/graph/api/domain-list-verificationdnsrecords)."""
    dom = ds.get(_world(request), t, request.path_params["name"])
    return json_response(
        {
            "@odata.context": CONTEXT + f"domains('{dom['id']}')/verificationDnsRecords",
            "value": ds.dns_records(t, dom),
        }
    )


@graph_route
async def service_records(request: Request, t: TenantState) -> Response:
    """GET /domains/{id}/serviceConfigurationRecords
    (learn.microsoft.com/graph/api/domain-list-serviceconfigurationrecords): domainDnsRecord subtypes."""
    dom = ds.get(_world(request), t, request.path_params["name"])
    return json_response(
        {
            "@odata.context": CONTEXT + f"domains('{dom['id']}')/serviceConfigurationRecords",
            "value": ds.service_records(t, dom),
        }
    )


@graph_route
async def name_references(request: Request, t: TenantState) -> Response:
    """GET /domains/{id}/domainNameReferences
    (learn.microsoft.com/graph/api/domain-list-domainnamereferences): directoryObjects, paged."""
    dom = ds.get(_world(request), t, request.path_params["name"])
    refs = [
        {
            "@odata.type": f"#microsoft.graph.{kind}",
            **(user_out(o, None) if kind == "user" else group_out(o, None)),
        }
        for kind, o in ds.references(t, dom["id"])
    ]
    return paged(request, refs, lambda o: o, f"domains('{dom['id']}')/domainNameReferences", False)


# ---- admin -------------------------------------------------------------------------------------------------
async def dns(request: Request) -> Response:
    """POST /sandbox/dns: {"action": "publish"|"withdraw", "name": fqdn, "text": "MS=ms...",
    "delay_seconds": propagation delay} or {"operation_seconds": n} (how long forceDelete/removal take);
    GET-like {"action": "show", "name": fqdn} lists records."""
    world = _world(request)
    try:
        body: Any = json.loads(await request.body() or b"{}")
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        st = ds.state_of(world)
        if "operation_seconds" in body:
            # The older spelling of the domain_removal_s setting (POST /sandbox/faults), kept for callers.
            seconds = body["operation_seconds"]
            if not isinstance(seconds, int | float) or not 0 <= seconds <= MAX_DOMAIN_REMOVAL_S:
                raise ValueError("operation_seconds must be a number of seconds between 0 and 86400")
            world.apply_settings(world.settings.replace(domain_removal_s=float(seconds)))
            if "action" not in body:
                return JSONResponse({"operation_seconds": world.settings.domain_removal_s})
        action, name = body.get("action"), body.get("name")
        if action not in ("publish", "withdraw", "show"):
            raise ValueError("action must be publish, withdraw or show")
        if not isinstance(name, str) or "." not in name:
            raise ValueError("name must be a domain name")
        text = body.get("text")
        if action == "publish":
            if not isinstance(text, str) or not text:
                raise ValueError("text must be the TXT value to publish")
            delay = body.get("delay_seconds", 0)
            if not isinstance(delay, int | float) or not 0 <= delay <= 86_400:
                raise ValueError("delay_seconds must be between 0 and 86400")
            st.publish(name, text, float(delay))
        elif action == "withdraw":
            st.withdraw(name, text if isinstance(text, str) else None)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"name": name.lower(), "records": st.records(name)})


async def exchange(request: Request) -> Response:
    """POST /sandbox/exchange: {"tenant": id, "domain": fqdn} does what an Exchange administrator does
    before a domain can leave a tenant (group addresses moved to the initial domain); with "restore":
    [group ids] it moves those back. Graph itself cannot change a group's mail."""
    world = _world(request)
    try:
        body: Any = json.loads(await request.body() or b"{}")
        t = world.tenant(str(body.get("tenant", "")))
        if t is None:
            raise ValueError("tenant must be a tenant id in this sandbox")
        fqdn = str(body.get("domain", "")).lower()
        if "restore" in body:
            n = ds.exchange_restore(t, fqdn, list(body["restore"]))
            world.dirty = True
            return JSONResponse({"restored": n})
        moved = ds.exchange_readdress(t, fqdn)
        world.dirty = True
        return JSONResponse({"readdressed": moved})
    except (ValueError, TypeError, StopIteration) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)


def domain_routes() -> list[Route]:
    v = "/v1.0/domains"
    return [
        Route(v, list_domains, methods=["GET"]),
        Route(v, create_domain, methods=["POST"]),
        Route(f"{v}/{{name}}", get_domain, methods=["GET"]),
        Route(f"{v}/{{name}}", update_domain, methods=["PATCH"]),
        Route(f"{v}/{{name}}", delete_domain, methods=["DELETE"]),
        Route(f"{v}/{{name}}/verify", verify_domain, methods=["POST"]),
        Route(f"{v}/{{name}}/forceDelete", force_delete, methods=["POST"]),
        Route(f"{v}/{{name}}/verificationDnsRecords", verification_records, methods=["GET"]),
        Route(f"{v}/{{name}}/domainNameReferences", name_references, methods=["GET"]),
        Route(f"{v}/{{name}}/serviceConfigurationRecords", service_records, methods=["GET"]),
        Route("/sandbox/dns", dns, methods=["POST"]),
        Route("/sandbox/exchange", exchange, methods=["POST"]),
    ]

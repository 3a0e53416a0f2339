"""The admin API under /sandbox (outside Graph's paths), for tests, benchmarks and the demo."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.bootstrap import reset_world
from sandbox.settings import (
    Faults,
    parse_bandwidth,
    parse_budget,
    parse_domain_removal,
    parse_faults,
    parse_latency,
    parse_size,
)
from sandbox.world import World


def _world(request: Request) -> World:
    return request.app.state.world


def _problem(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("body must be a JSON object")
    return value


async def tenants(request: Request) -> Response:
    return JSONResponse(_world(request).tenant_list())


async def stats(request: Request) -> Response:
    world = _world(request)
    return JSONResponse(world.stats.as_dict(list(world.tenants)))


async def settings(request: Request) -> Response:
    world = _world(request)
    out = world.settings.public()
    out["budgets"] = {t: world.throttle.budgets(t) for t in world.tenants}
    return JSONResponse(out)


async def throttle(request: Request) -> Response:
    """{"write_budget": "N/S", "identity_ru": "N/S"|null, "sharepoint_ru": "N/S"|null, "sharing_api": "N/S",
    "enabled": bool}."""
    world = _world(request)
    try:
        body = await _body(request)
        changes: dict[str, Any] = {}
        for key in body:
            if key not in ("write_budget", "identity_ru", "sharepoint_ru", "sharing_api", "enabled"):
                raise ValueError(f"unknown throttle setting {key!r}")
        if "write_budget" in body:
            changes["write_budget"] = parse_budget(body["write_budget"], "write budget")
        if "sharing_api" in body:
            changes["sharing_api"] = parse_budget(body["sharing_api"], "sharing API limit")
        for key in ("identity_ru", "sharepoint_ru"):
            if key in body:
                changes[key] = None if body[key] is None else parse_budget(body[key], key.replace("_", " "))
        if "enabled" in body:
            if not isinstance(body["enabled"], bool):
                raise ValueError("enabled must be true or false")
            changes["throttling"] = body["enabled"]
    except ValueError as exc:
        return _problem(str(exc))
    world.apply_settings(world.settings.replace(**changes))
    return await settings(request)


async def faults(request: Request) -> Response:
    """{"faults": "429=0.1,..."} or {"429": 0.1, ...}; plus latency_ms, bandwidth_mbps, slow_seconds,
    replication_lag_ms, group_licensing_delay_s, domain_removal_s, onedrive_provision_delay_s."""
    world = _world(request)
    try:
        body = await _body(request)
        changes: dict[str, Any] = {}
        knobs = (
            "faults",
            "latency_ms",
            "bandwidth_mbps",
            "slow_seconds",
            "replication_lag_ms",
            "group_licensing_delay_s",
            "domain_removal_s",
            "onedrive_provision_delay_s",
        )
        rates = {k: v for k, v in body.items() if k not in knobs}
        if "faults" in body:
            if rates:
                raise ValueError("give either 'faults' as a string or rates by kind, not both")
            changes["faults"] = parse_faults(str(body["faults"]))
        elif rates:
            changes["faults"] = Faults.from_dict(rates)
        if "latency_ms" in body:
            changes["latency_ms"] = parse_latency(float(body["latency_ms"]))
        if "bandwidth_mbps" in body:
            bw = body["bandwidth_mbps"]
            changes["bandwidth_mbps"] = parse_bandwidth(None if bw is None else float(bw))
        if "replication_lag_ms" in body:
            lag = float(body["replication_lag_ms"])
            if not 0 <= lag <= 600_000:
                raise ValueError("replication_lag_ms must be between 0 and 600000")
            changes["replication_lag_ms"] = lag
        if "group_licensing_delay_s" in body:
            delay = float(body["group_licensing_delay_s"])
            if not 0 <= delay <= 86_400:
                raise ValueError("group_licensing_delay_s must be between 0 and 86400")
            changes["group_licensing_delay_s"] = delay
        if "domain_removal_s" in body:
            changes["domain_removal_s"] = parse_domain_removal(float(body["domain_removal_s"]))
        if "onedrive_provision_delay_s" in body:
            # SharePoint's timer job: minutes to a day (pre-provision-accounts); at most a day here.
            delay = float(body["onedrive_provision_delay_s"])
            if not 0 <= delay <= 86_400:
                raise ValueError("onedrive_provision_delay_s must be between 0 and 86400")
            changes["onedrive_provision_delay_s"] = delay
        if "slow_seconds" in body:
            slow = float(body["slow_seconds"])
            if not 0 <= slow <= 600:
                raise ValueError("slow_seconds must be between 0 and 600")
            changes["slow_seconds"] = slow
    except (ValueError, TypeError) as exc:
        return _problem(str(exc))
    world.apply_settings(world.settings.replace(**changes))
    return await settings(request)


async def snapshot(request: Request) -> Response:
    tenant = _world(request).tenant(request.path_params["tid"])
    if tenant is None:
        return _problem(f"no tenant {request.path_params['tid']!r} in this sandbox", 404)
    from sandbox.licensing import settle

    settle(tenant)  # the snapshot shows what a Graph read would
    return Response(json.dumps(tenant.snapshot(), sort_keys=True, indent=1), media_type="application/json")


async def licensing(request: Request) -> Response:
    """GET: group-licence processing still queued. POST {"process": true}: finish it now, or {"process": N}:
    the next N queued users only (tests use this rather than waiting out the delay); {"exclusive":
    [[planId, planId], ...]}: mutually exclusive service plans; {"active_with_error": [userId, ...]}: users
    whose next group processing ends ActiveWithError (sandbox/licensing.py)."""
    from sandbox.licensing import set_rules, settle_now

    world = _world(request)
    tenant = world.tenant(request.path_params["tid"])
    if tenant is None:
        return _problem(f"no tenant {request.path_params['tid']!r} in this sandbox", 404)
    processed = 0
    if request.method == "POST":
        body = await _body(request)
        known = {"process", "exclusive", "active_with_error"}
        if not isinstance(body, dict) or not body or set(body) - known:
            return _problem(
                'body must be {"process": true | N}, {"exclusive": [[planId, planId], ...]} or '
                '{"active_with_error": [userId, ...]}'
            )
        try:
            set_rules(tenant, body)
        except ValueError as exc:
            return _problem(str(exc))
        if "process" in body:
            count = body["process"]
            processed = settle_now(tenant, None if count is True else int(count))
        world.dirty = True
    return JSONResponse(
        {
            "processed": processed,
            "queued_users": len(tenant.licence_due),
            "queued_groups": len(tenant.licence_groups_due),
        }
    )


async def reset(request: Request) -> Response:
    """Regenerate every tenant (optionally {"seed": n, "size": n}); stats and throttle windows start
    afresh."""
    world = _world(request)
    try:
        body = await _body(request)
        seed = body.get("seed")
        size = body.get("size")
        if seed is not None and not isinstance(seed, int):
            raise ValueError("seed must be an integer")
        if size is not None:
            if not isinstance(size, int):
                raise ValueError("size must be an integer")
            parse_size(size)
    except ValueError as exc:
        return _problem(str(exc))
    await asyncio.to_thread(lambda: None)  # let in-flight responses finish their sends first
    reset_world(world, seed, size)
    return JSONResponse(
        {
            "reset": True,
            "tenants": len(world.tenants),
            "seed": world.settings.seed,
            "size": world.settings.size,
        }
    )


async def expire_delta(request: Request) -> Response:
    """Make every delta token of a tenant stale: the next delta call answers 410 (full resync needed)."""
    tenant = _world(request).tenant(request.path_params["tid"])
    if tenant is None:
        return _problem(f"no tenant {request.path_params['tid']!r} in this sandbox", 404)
    tenant.delta_epoch += 1
    _world(request).dirty = True
    return JSONResponse({"tenant": tenant.id, "delta_epoch": tenant.delta_epoch})


async def seats(request: Request) -> Response:
    """{"<SKU part number or skuId>": units, ...}: the tenant's prepaid (enabled) seats; answers its SKUs."""
    world = _world(request)
    tenant = world.tenant(request.path_params["tid"])
    if tenant is None:
        return _problem(f"no tenant {request.path_params['tid']!r} in this sandbox", 404)
    try:
        body = await _body(request)
        if not body:
            raise ValueError('body must name at least one SKU, e.g. {"STANDARDWOFFPACK_STUDENT": 100}')
        from sandbox.licensing import set_seats

        set_seats(tenant, body)
    except ValueError as exc:
        return _problem(str(exc))
    world.refresh_budgets()
    world.dirty = True
    return JSONResponse(
        {
            s["skuPartNumber"]: {"enabled": s["prepaidUnits"]["enabled"], "consumed": s["consumedUnits"]}
            for s in tenant.skus
        }
    )


async def save(request: Request) -> Response:
    world = _world(request)
    if world.state_path is None:
        return _problem("this sandbox runs without --state", 409)
    world.save()
    return JSONResponse({"saved": str(world.state_path)})


def admin_routes() -> list[Route]:
    return [
        Route("/sandbox/tenants", tenants, methods=["GET"]),
        Route("/sandbox/stats", stats, methods=["GET"]),
        Route("/sandbox/settings", settings, methods=["GET"]),
        Route("/sandbox/throttle", throttle, methods=["POST"]),
        Route("/sandbox/faults", faults, methods=["POST"]),
        Route("/sandbox/tenants/{tid}/snapshot", snapshot, methods=["GET"]),
        Route("/sandbox/reset", reset, methods=["POST"]),
        Route("/sandbox/tenants/{tid}/expire-delta", expire_delta, methods=["POST"]),
        Route("/sandbox/save", save, methods=["POST"]),
        Route("/sandbox/tenants/{tid}/seats", seats, methods=["POST"]),
        Route("/sandbox/tenants/{tid}/licensing", licensing, methods=["GET", "POST"]),
    ]

"""The frame drive routes plug into: auth and tenant set for /v1.0 drive paths, SharePoint costs charged,
/_download and /_upload reachable without a token, $batch items reaching drive routes."""

from __future__ import annotations

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from sandbox import app as app_module
from sandbox.testing import running_sandbox, token


def _fake_routes(world):
    async def drive(request: Request) -> JSONResponse:
        t = request.state.tenant
        assert request.state.world is world
        return JSONResponse({"id": request.path_params["did"], "tenant": t.id})

    async def download(request: Request) -> PlainTextResponse:
        return PlainTextResponse("content")

    return [
        Route("/v1.0/drives/{did}", drive, methods=["GET"]),
        Route("/v1.0/drives/{did}/root/children", drive, methods=["GET"]),
        Route("/_download/{key}", download, methods=["GET"]),
    ]


def test_drive_routes_mounted_behind_pipeline(config_dir, monkeypatch):
    monkeypatch.setattr(app_module, "_drive_routes", _fake_routes)
    with running_sandbox(config_dir, size=30, throttling=True) as base:
        tid = base.world.tenant_list()[0]["id"]
        assert httpx.get(f"{base}/v1.0/drives/d1").status_code == 401
        h = {"Authorization": f"Bearer {token(base, tid)}"}
        r = httpx.get(f"{base}/v1.0/drives/d1", headers=h)
        assert r.json() == {"id": "d1", "tenant": tid} and r.headers["x-ms-resource-unit"] == "1"
        r = httpx.get(f"{base}/v1.0/drives/d1/root/children", headers=h)
        assert r.headers["x-ms-resource-unit"] == "2"
        assert httpx.get(f"{base}/_download/abc").text == "content"
        r = httpx.post(
            f"{base}/v1.0/$batch",
            headers=h,
            json={"requests": [{"id": "1", "method": "GET", "url": "/drives/d2"}]},
        )
        assert r.json()["responses"][0]["body"] == {"id": "d2", "tenant": tid}


def test_charge_sharepoint_budget(config_dir):
    with running_sandbox(config_dir, size=30, sharepoint_ru="3/60") as base:
        tid = base.world.tenant_list()[0]["id"]
        throttle = base.world.throttle
        assert [throttle.charge(tid, "sharepoint", 1, False) for _ in range(3)] == [None] * 3
        assert throttle.charge(tid, "sharepoint", 1, False) > 0

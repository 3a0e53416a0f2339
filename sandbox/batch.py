"""POST /$batch (learn.microsoft.com/graph/json-batching).

Items are dispatched through the same ASGI app in-process, so auth, throttling (per item, each with its own
Retry-After) and every route, drive routes included, behave exactly as for single requests.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.errors import error_body, graph_error

MAX_REQUESTS = 20
METHODS = {"GET", "POST", "PATCH", "PUT", "DELETE"}


def _bad(message: str) -> JSONResponse:
    return graph_error(400, "BadRequest", message)


def _item_error(rid: str, status: int, code: str, message: str) -> dict[str, Any]:
    return {
        "id": rid,
        "status": status,
        "headers": {"Content-Type": "application/json"},
        "body": error_body(code, message),
    }


async def batch(request: Request) -> Response:
    try:
        payload = json.loads(await request.body() or b"null")
    except ValueError:
        return _bad("Invalid batch payload format.")
    requests = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(requests, list) or not requests:
        return _bad("Invalid batch payload format.")
    if len(requests) > MAX_REQUESTS:
        return _bad(f"The number of requests in a batch exceeded the limit of {MAX_REQUESTS}.")
    ids: list[str] = []
    for item in requests:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            return _bad("Invalid batch payload format: every request needs a string 'id'.")
        if not isinstance(item.get("method"), str) or not isinstance(item.get("url"), str):
            return _bad(f"Invalid batch payload format: request {item['id']} needs 'method' and 'url'.")
        ids.append(item["id"])
    if len(set(ids)) != len(ids):
        return _bad("Batch request with duplicate id values found.")
    for item in requests:
        deps = item.get("dependsOn", [])
        if not isinstance(deps, list) or any(
            dep not in ids or ids.index(dep) >= ids.index(item["id"]) for dep in deps
        ):
            return _bad(f"Invalid dependsOn in request {item['id']}: it must name earlier request ids.")

    statuses: dict[str, int] = {}
    responses: list[dict[str, Any]] = []
    for item in requests:
        rid = item["id"]
        failed = [dep for dep in item.get("dependsOn", []) if statuses.get(dep, 500) >= 400]
        if failed:
            result = _item_error(rid, 424, "FailedDependency", f"Dependent request {failed[0]} failed.")
        else:
            result = await _dispatch(request, item)
        statuses[rid] = result["status"]
        responses.append(result)
    return JSONResponse({"responses": responses})


async def _dispatch(outer: Request, item: dict[str, Any]) -> dict[str, Any]:
    rid, method, url = item["id"], item["method"].upper(), item["url"]
    if method not in METHODS:
        return _item_error(rid, 400, "BadRequest", f"Invalid method '{item['method']}'.")
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return _item_error(rid, 400, "BadRequest", "Batch request URLs must be relative, e.g. /users/{id}.")
    raw_path = "/v1.0/" + parts.path.lstrip("/")
    # As for any request, the server routes on the percent-decoded path (a UPN's @ may come as %40).
    path = unquote(raw_path)
    if path.rstrip("/") == "/v1.0/$batch":
        return _item_error(rid, 400, "BadRequest", "Nested batch requests are not supported.")
    headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
    body = b""
    if "body" in item and item["body"] is not None:
        if "content-type" not in headers:
            return _item_error(
                rid,
                400,
                "BadRequest",
                f"Write request id : {rid} does not contain Content-Type header or body.",
            )
        raw = item["body"]
        body = raw.encode() if isinstance(raw, str) else json.dumps(raw).encode()
    elif method in ("POST", "PATCH", "PUT") and "content-type" in headers:
        return _item_error(
            rid, 400, "BadRequest", f"Write request id : {rid} does not contain Content-Type header or body."
        )
    raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    for key in ("authorization", "host"):
        if key in outer.headers:
            raw_headers.append((key.encode(), outer.headers[key].encode("latin-1")))
    scope = {
        "type": "http",
        "asgi": outer.scope.get("asgi", {"version": "3.0"}),
        "http_version": "1.1",
        "method": method,
        "scheme": outer.scope.get("scheme", "http"),
        "server": outer.scope.get("server"),
        "client": outer.scope.get("client"),
        "root_path": "",
        "path": path,
        "raw_path": raw_path.encode(),
        "query_string": parts.query.encode(),
        "headers": raw_headers,
        "sandbox.batch_item": True,
        "state": {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = 500
    out_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for k, v in message.get("headers", []):
                name = k.decode("latin-1")
                if name.lower() not in ("content-length", "request-id", "client-request-id"):
                    out_headers[_title(name)] = v.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await outer.app(scope, receive, send)
    result: dict[str, Any] = {"id": rid, "status": status, "headers": out_headers}
    data = b"".join(chunks)
    if data:
        if "json" in out_headers.get("Content-Type", ""):
            result["body"] = json.loads(data)
        else:
            result["body"] = data.decode("utf-8", "replace")
    return result


def _title(name: str) -> str:
    if name.lower() == "retry-after":
        return "Retry-After"
    if name.lower() == "content-type":
        return "Content-Type"
    if name.lower() == "location":
        return "Location"
    return name

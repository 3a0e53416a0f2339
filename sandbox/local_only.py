"""Only the operator's own processes reach a rehearsal, never a web page open in their browser.

The sandbox listens on loopback, but a browser on the same machine can still be steered at it: DNS rebinding
(a page whose name resolves to 127.0.0.1 sends its own Host header) and cross-site requests (a page POSTs to
http://127.0.0.1:PORT directly). So, for every request:

- the Host header must be a loopback name or address with the sandbox's own port (a rebound page's Host is
  its own domain), else 400;
- the admin API (/sandbox/...) changes nothing unless the request declares a JSON body: a page can send
  `application/json` cross-site only after a CORS preflight, which the sandbox never grants (no OPTIONS
  routes, no Access-Control headers), else 415. An empty POST needs the header as well: `fetch(url,
  {method: "POST"})` is a simple request that needs no preflight;
- the token endpoint (sandbox/app.py) takes only the form Entra takes and refuses a cross-origin request
  as Entra does for a confidential client.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
READING = {"GET", "HEAD"}


def _host_port(value: str) -> tuple[str, int | None] | None:
    """('127.0.0.1', 8765) from '127.0.0.1:8765', ('::1', 8765) from '[::1]:8765'; None if malformed."""
    text = value.strip().lower()
    if text.startswith("["):
        name, sep, rest = text[1:].partition("]")
        if not sep:
            return None
        port_text = rest.removeprefix(":") if rest.startswith(":") else None
        if rest and port_text is None:
            return None
    else:
        name, sep, port_text = text.partition(":")
        if not sep:
            port_text = None
    if port_text is None:
        return name, None
    if not port_text.isdigit():
        return None
    return name, int(port_text)


def host_problem(scope: Scope) -> str | None:
    """Why this request's Host header is not the sandbox's own (None when it is)."""
    headers = dict(scope.get("headers") or [])
    raw = headers.get(b"host")
    if raw is None:
        return "a Host header is required"
    value = raw.decode("latin-1")
    parsed = _host_port(value)
    server = scope.get("server")
    own_port = server[1] if server else None
    if parsed is None or parsed[0] not in LOOPBACK_NAMES:
        return (
            f"Host {value!r} is not a loopback name; the sandbox answers only 127.0.0.1, localhost or [::1]"
        )
    port = parsed[1] if parsed[1] is not None else (443 if scope.get("scheme") == "https" else 80)
    if own_port is not None and port != own_port:
        return f"Host {value!r} names port {port}, not the sandbox's port {own_port}"
    return None


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class LocalOnly:
    """ASGI middleware: the checks above, before anything else sees the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("sandbox.batch_item"):
            await self.app(scope, receive, send)
            return
        problem = host_problem(scope)
        if problem is not None:
            await _answer(send, 400, {"error": problem})
            return
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        changes_admin_state = path.startswith("/sandbox/") and scope["method"] not in READING
        if changes_admin_state and not _is_json(headers.get("content-type", "")):
            await _answer(
                send,
                415,
                {
                    "error": "admin calls that change the sandbox take a JSON body with Content-Type "
                    "application/json (send {} when there is nothing to say)"
                },
            )
            return
        await self.app(scope, receive, send)


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})

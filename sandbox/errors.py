"""Graph's JSON error shape (learn.microsoft.com/graph/errors), as msgraph-sdk's ODataError model reads it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse


class GraphError(Exception):
    """Raised by directory logic; the app turns it into graph_error()."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def now_iso() -> str:
    """Graph's timestamp format: UTC, seconds precision, trailing Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def error_body(
    code: str,
    message: str,
    details: list[dict[str, str]] | None = None,
    request_id: str | None = None,
    client_request_id: str | None = None,
) -> dict[str, Any]:
    rid = request_id or str(uuid.uuid4())
    err: dict[str, Any] = {"code": code, "message": message}
    if details:
        err["details"] = details
    err["innerError"] = {"date": now_iso(), "request-id": rid, "client-request-id": client_request_id or rid}
    return {"error": err}


def graph_error(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
    client_request_id: str | None = None,
) -> JSONResponse:
    """A Graph error response: {"error": {code, message, [details], innerError{date, request-id, ...}}}."""
    body = error_body(code, message, details, request_id, client_request_id)
    rid = body["error"]["innerError"]["request-id"]
    all_headers = {"request-id": rid, "client-request-id": body["error"]["innerError"]["client-request-id"]}
    all_headers.update(headers or {})
    return JSONResponse(body, status_code=status, headers=all_headers)


def from_exception(exc: GraphError) -> JSONResponse:
    return graph_error(exc.status, exc.code, exc.message, exc.details, exc.headers)


# Common errors, worded as Graph words them.
def not_found(what: str = "Resource") -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{what}' does not exist or one of its queried reference-property objects are not present.",
    )


def bad_request(message: str, details: list[dict[str, str]] | None = None) -> GraphError:
    return GraphError(400, "Request_BadRequest", message, details)


def invalid_body(message: str = "Invalid request body.") -> GraphError:
    return GraphError(400, "BadRequest", message)

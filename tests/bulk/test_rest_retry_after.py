"""Issue 23 finding 13: SharePoint REST (the Migration API's calls) honours Retry-After in both forms RFC 9110
allows, seconds and an HTTP-date, through the one parser Graph calls use; a date far ahead never stalls a run
(Graph documents the header on 429 and 503: learn.microsoft.com/sharepoint/dev/general-development/
how-to-avoid-getting-throttled-or-blocked-in-sharepoint-online)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from migrations.files.bulk import sharepoint_rest
from migrations.files.bulk.sharepoint_rest import SharePointRest


class _Credential:
    async def get_token(self, *scopes: str) -> Any:
        return SimpleNamespace(token="t")


def _rest(answers: list[httpx.Response]) -> tuple[SharePointRest, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return SharePointRest(_Credential(), None, http), seen


@pytest.mark.parametrize(
    "header, at_most",
    [
        (lambda: format_datetime(datetime.now(UTC) + timedelta(seconds=1), usegmt=True), 2.5),
        (lambda: format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True), 0.5),  # in the past
        (lambda: "1", 1.5),
        (lambda: "0.2", 0.7),
    ],
)
def test_retry_after_in_either_form_is_honoured(header: Any, at_most: float) -> None:
    rest, seen = _rest(
        [
            httpx.Response(429, headers={"Retry-After": header()}),
            httpx.Response(200, json={"Value": "ok"}),
        ]
    )
    started = time.monotonic()
    got = asyncio.run(
        rest.call("POST", "https://contoso.sharepoint.com/sites/x", "site/ProvisionMigrationQueue")
    )
    assert got == {"Value": "ok"} and len(seen) == 2
    assert time.monotonic() - started < at_most


def test_a_date_far_ahead_waits_a_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(sharepoint_rest.asyncio, "sleep", sleep)
    far = format_datetime(datetime.now(UTC) + timedelta(days=30), usegmt=True)
    rest, _ = _rest([httpx.Response(503, headers={"Retry-After": far}), httpx.Response(200, json={})])
    asyncio.run(rest.call("GET", "https://contoso.sharepoint.com/sites/x", "web"))
    assert waits and waits[0] <= 300

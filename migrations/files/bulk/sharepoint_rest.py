"""SharePoint REST for the Migration API: its own token audience (the SharePoint host, never Graph), the
decorated User-Agent Microsoft asks migration tools for, and Retry-After honoured on 429/503.

In a rehearsal (a sandbox Graph URL) the site's scheme and host are replaced by the sandbox's, which must be
loopback; nothing here reaches another address.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from migrations.graph.client import parse_retry_after
from migrations.graph.sharepoint_window import SharePointBudget, rest_ru

USER_AGENT = "NONISV|trustfold|trustfold/0.1"
ATTEMPTS = 8
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class MigrationApiError(Exception):
    """SharePoint refused a Migration API call; the message says which and why, `code` its internal error
    code when it gave one (GetMigrationJobProgress: -2147213145 job not found, -2147213146 expired)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class SharePointRest:
    def __init__(
        self,
        credential: Any,
        graph_url: str | None,
        http: httpx.AsyncClient,
        budget: SharePointBudget | None = None,
        tenant_id: str = "",
    ) -> None:
        if graph_url and urlsplit(graph_url).hostname not in LOOPBACK:
            raise ValueError("a rehearsal SharePoint must be on loopback")
        self.credential, self.graph_url, self.http = credential, graph_url, http
        # REST spends the app's SharePoint resource units as Graph does (the tenant's budget, when given).
        self.budget, self.tenant_id = budget, tenant_id
        self.requests = 0

    def base(self, site_url: str) -> str:
        if self.graph_url:
            return self.graph_url.rstrip("/") + urlsplit(site_url).path
        return site_url.rstrip("/")

    async def call(
        self,
        method: str,
        site_url: str,
        op: str,
        body: dict[str, Any] | None = None,
        *,
        verbose: bool = False,
    ) -> Any:
        """`verbose`: ask for odata=verbose JSON (GetMigrationJobProgress documents only that form)."""
        if self.budget is None:
            return await self._call(method, site_url, op, body, verbose)
        async with self.budget.spend(self.tenant_id, rest_ru(method)):
            return await self._call(method, site_url, op, body, verbose)

    async def _call(
        self, method: str, site_url: str, op: str, body: dict[str, Any] | None, verbose: bool
    ) -> Any:
        host = urlsplit(site_url).netloc
        url = f"{self.base(site_url)}/_api/{op}"
        for attempt in range(1, ATTEMPTS + 1):
            token = await self.credential.get_token(f"https://{host}/.default")
            headers = {
                "Authorization": f"Bearer {token.token}",
                "Accept": f"application/json;odata={'verbose' if verbose else 'nometadata'}",
                "User-Agent": USER_AGENT,
            }
            self.requests += 1
            resp = await self.http.request(method, url, json=body, headers=headers)
            if self.budget is not None and (resp.status_code == 429 or "ratelimit-limit" in resp.headers):
                self.budget.observe(self.tenant_id, resp.status_code, resp.headers)
            if resp.status_code in (429, 503) and attempt < ATTEMPTS:
                # Either form RFC 9110 allows (seconds or an HTTP-date), through the one parser Graph uses;
                # a date far ahead waits five minutes at most, then asks again (never a stalled run).
                wait = parse_retry_after(resp.headers.get("Retry-After"))
                await asyncio.sleep(2**attempt if wait is None else min(wait, 300.0))
                continue
            if resp.status_code >= 400:
                try:
                    got = resp.json()
                    detail = got.get("odata.error") or got.get("error") or {}  # light or verbose JSON
                except ValueError:
                    detail = {}
                err = (detail.get("message") or {}).get("value")
                code = str(detail.get("code") or "").split(",")[0].strip() or None
                raise MigrationApiError(
                    f"{op.split('(')[0]}: {resp.status_code} {err or resp.reason_phrase}", code
                )
            return resp.json() if resp.content else {}
        raise MigrationApiError(f"{op}: still throttled after {ATTEMPTS} attempts")


def url_arg(server_relative: str) -> str:
    """A decoded server-relative path as an OData string literal in a REST URL: single quotes doubled FIRST
    (OData's escape inside the literal), then the whole literal percent-encoded for the URL, `%`, `#` and `?`
    included, which SharePoint's HTTP layer decodes once. Use with the ResourcePath functions
    (`GetFolderByServerRelativePath(decodedUrl=...)`), which take the decoded path literally: the string
    ones (`...ByServerRelativeUrl`) guess that a `%` or `#` means an encoded URL and miss such names."""
    return quote("'" + server_relative.replace("'", "''") + "'", safe="/'")

"""Credentials for the local sandbox, shaped like azure-identity's so migration code is built exactly as in
production: `SandboxCredential` (sync `get_token`, azure-core TokenCredential) and `AsyncSandboxCredential`
(async `get_token`, azure-core AsyncTokenCredential, what kiota's AzureIdentityAuthenticationProvider awaits).

Both fetch client-credentials tokens from the sandbox's Entra-shaped endpoint
`POST {base_url}/{tenant_id}/oauth2/v2.0/token` and cache them until five minutes before expiry.
They never talk to Microsoft: the base URL must be loopback.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import ClientAuthenticationError

DEFAULT_CLIENT_ID = "5a4d0b0e-0000-4000-8000-000000000001"
REFRESH_MARGIN_S = 300
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def loopback_problem(base_url: str) -> str | None:
    """Why BASE_URL may not serve as a sandbox (rehearsals never leave this machine), or None."""
    try:
        host = urlsplit(base_url).hostname
    except ValueError as exc:
        return f"not a URL ({exc})"
    if host not in _LOOPBACK:
        return f"the sandbox must be on loopback (127.0.0.1, localhost or ::1), got host {host or '(none)'!r}"
    return None


def _check_base(base_url: str) -> str:
    if loopback_problem(base_url):
        raise ValueError(
            f"sandbox base URL must be on loopback (127.0.0.1, localhost or ::1), got {base_url!r}"
        )
    return base_url.rstrip("/")


def _form(client_id: str, scopes: tuple[str, ...], certificate: bool = False) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "scope": " ".join(scopes) or "https://graph.microsoft.com/.default",
    }
    if certificate:
        # Shaped like a certificate credential's signed assertion; the sandbox checks only that one is sent.
        form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        form["client_assertion"] = "sandbox.assertion.unsigned"
    else:
        # The sandbox accepts any secret; this is not a credential.
        form["client_secret"] = "sandbox"
    return form


def _parse(response: httpx.Response) -> AccessToken:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or "access_token" not in body:
        desc = str(body.get("error_description") or response.text).split(" Trace ID:")[0]
        raise ClientAuthenticationError(
            message=f"sandbox token request failed ({response.status_code}): {desc}"
        )
    return AccessToken(body["access_token"], int(time.time()) + int(body.get("expires_in", 3599)))


class _Cache:
    def __init__(self) -> None:
        self.tokens: dict[tuple[str, ...], AccessToken] = {}

    def get(self, scopes: tuple[str, ...]) -> AccessToken | None:
        tok = self.tokens.get(scopes)
        if tok and tok.expires_on - REFRESH_MARGIN_S > time.time():
            return tok
        return None


class SandboxCredential:
    """azure-core TokenCredential for one sandbox tenant (sync)."""

    def __init__(
        self, base_url: str, tenant_id: str, client_id: str = DEFAULT_CLIENT_ID, *, certificate: bool = False
    ) -> None:
        self._url = f"{_check_base(base_url)}/{tenant_id}/oauth2/v2.0/token"
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.certificate = certificate
        self._cache = _Cache()
        self._lock = threading.Lock()

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        key = tuple(scopes)
        with self._lock:
            cached = self._cache.get(key)
            if cached:
                return cached
            try:
                response = httpx.post(
                    self._url, data=_form(self.client_id, key, self.certificate), timeout=30
                )
            except httpx.HTTPError as exc:
                raise ClientAuthenticationError(message=f"sandbox token endpoint unreachable: {exc}") from exc
            token = _parse(response)
            self._cache.tokens[key] = token
            return token

    def get_token_info(self, *scopes: str, options: dict[str, Any] | None = None) -> AccessTokenInfo:
        tok = self.get_token(*scopes)
        return AccessTokenInfo(tok.token, tok.expires_on)

    def close(self) -> None:
        """Nothing to release; present for parity with azure-identity credentials."""

    def __enter__(self) -> SandboxCredential:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


class AsyncSandboxCredential:
    """azure-core AsyncTokenCredential for one sandbox tenant (what msgraph-sdk's auth provider awaits)."""

    def __init__(
        self, base_url: str, tenant_id: str, client_id: str = DEFAULT_CLIENT_ID, *, certificate: bool = False
    ) -> None:
        self._url = f"{_check_base(base_url)}/{tenant_id}/oauth2/v2.0/token"
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.certificate = certificate
        self._cache = _Cache()
        self._lock: asyncio.Lock | None = None
        self._client: httpx.AsyncClient | None = None

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        key = tuple(scopes)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            cached = self._cache.get(key)
            if cached:
                return cached
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=30)
            try:
                response = await self._client.post(
                    self._url, data=_form(self.client_id, key, self.certificate)
                )
            except httpx.HTTPError as exc:
                raise ClientAuthenticationError(message=f"sandbox token endpoint unreachable: {exc}") from exc
            token = _parse(response)
            self._cache.tokens[key] = token
            return token

    async def get_token_info(self, *scopes: str, options: dict[str, Any] | None = None) -> AccessTokenInfo:
        tok = await self.get_token(*scopes)
        return AccessTokenInfo(tok.token, tok.expires_on)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> AsyncSandboxCredential:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.close()

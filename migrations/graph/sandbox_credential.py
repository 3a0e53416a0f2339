"""Credentials for the local sandbox, shaped like azure-identity's so migration code is built exactly as in
production: `SandboxCredential` (sync `get_token`, azure-core TokenCredential) and `AsyncSandboxCredential`
(async `get_token`, azure-core AsyncTokenCredential, what kiota's AzureIdentityAuthenticationProvider awaits).

A certificate credential signs a client assertion the sandbox verifies (see `_Certificate`); a secret one
sends a placeholder secret. Both fetch client-credentials tokens from the sandbox's Entra-shaped endpoint
`POST {base_url}/{tenant_id}/oauth2/v2.0/token` and cache them until five minutes before expiry.
They never talk to Microsoft: the base URL must be loopback.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
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


class _Certificate:
    """A certificate credential for the sandbox: a private key and its certificate, held in memory only.

    With a PEM file (the config's certificate_path_env, as in production) that file's key and certificate;
    otherwise a throwaway RSA key made for this process. Either way the certificate (public part only) is
    registered on the app in the loopback sandbox, as an administrator uploads one in the portal, and every
    token request carries an assertion signed with the key, which the sandbox verifies
    (learn.microsoft.com/entra/identity-platform/certificate-credentials)."""

    def __init__(self, path: str | None) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        if path:
            data = Path(path).read_bytes()
            self.key: Any = serialization.load_pem_private_key(data, password=None)
            cert = x509.load_pem_x509_certificate(data)
        else:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trustfold rehearsal")])
            now = datetime.now(UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(self.key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5))
                .not_valid_after(now + timedelta(days=2))
                .sign(self.key, hashes.SHA256())
            )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        der = cert.public_bytes(serialization.Encoding.DER)
        self.x5t = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
        self.registered: set[str] = set()

    def assertion(self, client_id: str, audience: str) -> str:
        import jwt

        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": str(uuid.uuid4()),
            "nbf": now,
            "exp": now + 600,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"x5t": self.x5t})


_CERTS: dict[str | None, _Certificate] = {}
_CERTS_LOCK = threading.Lock()


def _certificate(path: str | None) -> _Certificate:
    """One certificate per file (or one throwaway) per process: credentials are built often."""
    with _CERTS_LOCK:
        if path not in _CERTS:
            _CERTS[path] = _Certificate(path)
        return _CERTS[path]


def _registration_url(token_url: str, client_id: str) -> str:
    base, _, rest = token_url.rpartition("/oauth2/v2.0/token")[0].rpartition("/")
    return f"{base}/sandbox/tenants/{rest}/applications/{client_id}/certificates"


def _form(
    client_id: str, scopes: tuple[str, ...], cert: _Certificate | None = None, token_url: str = ""
) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "scope": " ".join(scopes) or "https://graph.microsoft.com/.default",
    }
    if cert is not None:
        form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        form["client_assertion"] = cert.assertion(client_id, token_url)
    else:
        # The sandbox accepts any secret; this is not a credential.
        form["client_secret"] = "sandbox"
    return form


def _not_registered(response: httpx.Response) -> bool:
    """The sandbox does not know the certificate (it was reset or restarted since we registered it)."""
    return (
        response.status_code == 401 and "AADSTS700027" in response.text and "not registered" in response.text
    )


def _registration_failed(response: httpx.Response) -> ClientAuthenticationError:
    return ClientAuthenticationError(
        message=f"sandbox refused the rehearsal certificate ({response.status_code}): {response.text[:200]}"
    )


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
        self,
        base_url: str,
        tenant_id: str,
        client_id: str = DEFAULT_CLIENT_ID,
        *,
        certificate: bool = False,
        certificate_path: str | None = None,
    ) -> None:
        self._url = f"{_check_base(base_url)}/{tenant_id}/oauth2/v2.0/token"
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.certificate = certificate
        self._cert = _certificate(certificate_path) if certificate else None
        self._reg_key = f"{self._url}|{client_id}"
        self._cache = _Cache()
        self._lock = threading.Lock()

    def _register(self) -> None:
        if self._cert is None or self._reg_key in self._cert.registered:
            return
        r = httpx.post(
            _registration_url(self._url, self.client_id),
            json={"certificate": self._cert.cert_pem},
            timeout=30,
        )
        if r.status_code != 200:
            raise _registration_failed(r)
        self._cert.registered.add(self._reg_key)

    def _forgotten(self, response: httpx.Response) -> bool:
        if self._cert is None or not _not_registered(response):
            return False
        self._cert.registered.discard(self._reg_key)
        return True

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
                for _ in range(2):
                    self._register()
                    response = httpx.post(
                        self._url, data=_form(self.client_id, key, self._cert, self._url), timeout=30
                    )
                    if not self._forgotten(response):
                        break
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
        self,
        base_url: str,
        tenant_id: str,
        client_id: str = DEFAULT_CLIENT_ID,
        *,
        certificate: bool = False,
        certificate_path: str | None = None,
    ) -> None:
        self._url = f"{_check_base(base_url)}/{tenant_id}/oauth2/v2.0/token"
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.certificate = certificate
        self._cert = _certificate(certificate_path) if certificate else None
        self._reg_key = f"{self._url}|{client_id}"
        self._cache = _Cache()
        self._lock: asyncio.Lock | None = None
        self._client: httpx.AsyncClient | None = None

    async def _register(self, client: httpx.AsyncClient) -> None:
        if self._cert is None or self._reg_key in self._cert.registered:
            return
        r = await client.post(
            _registration_url(self._url, self.client_id), json={"certificate": self._cert.cert_pem}
        )
        if r.status_code != 200:
            raise _registration_failed(r)
        self._cert.registered.add(self._reg_key)

    def _forgotten(self, response: httpx.Response) -> bool:
        if self._cert is None or not _not_registered(response):
            return False
        self._cert.registered.discard(self._reg_key)
        return True

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
                for _ in range(2):
                    await self._register(self._client)
                    response = await self._client.post(
                        self._url, data=_form(self.client_id, key, self._cert, self._url)
                    )
                    if not self._forgotten(response):
                        break
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

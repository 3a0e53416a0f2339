"""Run a real sandbox server for tests: `with running_sandbox(Path("config")) as base: ...`.

The server is uvicorn on a free loopback port in a background thread; `base` is "http://127.0.0.1:PORT"
(Graph at base + "/v1.0", admin API at base + "/sandbox/..."). It is a str, with the in-process World as
`base.world` for tests that want to look behind the HTTP surface.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from sandbox.app import create_app
from sandbox.bootstrap import make_world
from sandbox.settings import DEFAULT_SIZE, Budget, Faults, Settings, parse_budget, parse_faults, parse_seats
from sandbox.world import World


class SandboxURL(str):
    """The base URL of a running sandbox, carrying its World."""

    world: World

    def __new__(cls, value: str, world: World) -> SandboxURL:
        obj = super().__new__(cls, value)
        obj.world = world
        return obj


def build_settings(**overrides: Any) -> Settings:
    """Settings from keyword arguments; budget and fault strings are parsed as the CLI parses them."""
    values = dict(overrides)
    for key in (
        "write_budget",
        "identity_ru",
        "sharepoint_ru",
        "tenant_write_budget",
        "sharing_api",
        "sharepoint_tenant_ru",
        "sharepoint_transfer",
        "outlook_requests",
        "outlook_upload",
        "teams_per_team",
        "teams_create",
        "teams_import",
    ):
        if isinstance(values.get(key), str):
            values[key] = parse_budget(values[key], key.replace("_", " "))
    if isinstance(values.get("seats"), str):
        values["seats"] = parse_seats(values["seats"])
    if isinstance(values.get("faults"), str):
        values["faults"] = parse_faults(values["faults"])
    elif isinstance(values.get("faults"), dict):
        values["faults"] = Faults.from_dict(values["faults"])
    for key in ("write_budget", "identity_ru", "sharepoint_ru"):
        if key in values and values[key] is not None and not isinstance(values[key], Budget):
            raise TypeError(f"{key} must be 'N/SECONDS' or a Budget")
    return Settings(**values)


def loopback_socket(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1 for the sandbox server: `port` when free, else any free port.

    The protocol is named (IPPROTO_TCP, not 0) because asyncio switches Nagle's algorithm off only on
    accepted sockets whose protocol says TCP: with 0, every answer written as headers then body waited out
    the client's delayed ACK, about 40 ms a request that Graph does not add."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def running_sandbox(
    config_dir: Path | str,
    *,
    size: int = 100,
    seed: int = 1,
    state_path: Path | None = None,
    port: int = 0,
    **settings: Any,
) -> Iterator[SandboxURL]:
    """Start a sandbox for `config_dir`'s tenants; stop it on exit. Settings: see sandbox.settings.Settings
    (latency_ms, bandwidth_mbps, faults "429=0.1,...", write_budget "N/S", identity_ru, sharepoint_ru,
    throttling False to switch budgets off). `port` is taken when free, else any free port."""
    world = make_world(Path(config_dir), build_settings(size=size, seed=seed, **settings), state_path)
    app = create_app(world)
    sock = loopback_socket(port)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the sandbox server did not start")
        time.sleep(0.01)
    try:
        yield SandboxURL(f"http://127.0.0.1:{port}", world)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


class NotASandbox(Exception):
    """A Graph URL given for a rehearsal did not answer as a trustfold sandbox."""


@contextlib.contextmanager
def rehearsal_graph(
    config_dir: Path, graph_url: str | None, *, keep: bool, size: int | None, state: Path
) -> Iterator[str]:
    """The Graph a rehearsal talks to: the sandbox at `graph_url` (reset unless `keep`), or one started here
    whose world persists in `state`. With `keep`, it restarts on the previous port, because the store's
    delta links are absolute URLs of that sandbox."""
    if graph_url:
        if not keep:
            try:
                reset(graph_url)
            except httpx.HTTPError as exc:
                raise NotASandbox(
                    f"could not reset the sandbox at {graph_url} ({exc}); is it a trustfold sandbox?"
                ) from None
        yield graph_url
        return
    # Every rehearsal meets Graph's eventual consistency: new objects stay out of reads for half a second.
    settings: dict[str, Any] = {"size": DEFAULT_SIZE if size is None else size, "replication_lag_ms": 500}
    port_file = state.with_suffix(".port")
    port = int(port_file.read_text()) if keep and port_file.exists() else 0
    with running_sandbox(config_dir, state_path=state, port=port, **settings) as url:
        port_file.write_text(url.rsplit(":", 1)[1])
        yield str(url)


def reset(base_url: str, **body: Any) -> dict[str, Any]:
    """POST /sandbox/reset: regenerate all tenants, clear stats and throttle windows (between tests)."""
    r = httpx.post(f"{base_url}/sandbox/reset", json=body, timeout=60)
    r.raise_for_status()
    return r.json()


def token(base_url: str, tenant_id: str, client_id: str = "00000000-0000-0000-0000-00000000c0de") -> str:
    """An access token for `tenant_id` from the sandbox's token endpoint."""
    r = httpx.post(
        f"{base_url}/{tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": "sandbox",
            "scope": "https://graph.microsoft.com/.default",
        },
        timeout=30,
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def graph_client(base_url: str, tenant_id: str, **kwargs: Any) -> httpx.Client:
    """An httpx client for Graph in `tenant_id`, with a bearer token and base URL set."""
    return httpx.Client(
        base_url=f"{base_url}/v1.0",
        headers={"Authorization": f"Bearer {token(base_url, tenant_id)}"},
        timeout=kwargs.pop("timeout", 30),
        **kwargs,
    )


def sharepoint_admin_token(
    base_url: str,
    tenant_id: str,
    client_id: str = "00000000-0000-0000-0000-00000000c0de",
    *,
    certificate: bool = True,
) -> str:
    """A token for the tenant's SharePoint admin site (certificate-style unless told otherwise)."""
    from sandbox.tenancy import admin_audience

    world = getattr(base_url, "world", None)
    tenant = world.tenant(tenant_id) if world is not None else None
    if tenant is None:
        raise ValueError("sharepoint_admin_token needs the SandboxURL of an in-process sandbox")
    return app_only_token(
        base_url, tenant_id, f"{admin_audience(tenant)}/.default", client_id, certificate=certificate
    )


def make_certificate(subject: str = "trustfold sandbox test") -> tuple[str, str]:
    """(private key PEM, self-signed certificate PEM), RSA 2048, valid for a day: a test's own certificate
    credential, never written to disk."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def register_certificate(base_url: str, tenant_id: str, client_id: str, cert_pem: str) -> httpx.Response:
    """Upload a certificate (public only) to the app's registration, as an administrator does."""
    return httpx.post(
        f"{base_url}/sandbox/tenants/{tenant_id}/applications/{client_id}/certificates",
        json={"certificate": cert_pem},
        timeout=30,
    )


def signed_assertion(
    key_pem: str,
    cert_pem: str,
    client_id: str,
    audience: str,
    *,
    nbf: int | None = None,
    exp: int | None = None,
) -> str:
    """A certificate credential's client assertion (learn.microsoft.com/entra/identity-platform/
    certificate-credentials): RS256, x5t the certificate's SHA-1 thumbprint."""
    import hashlib

    import jwt
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(serialization.Encoding.DER)
    x5t = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
    now = int(time.time())
    claims = {
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": str(uuid.uuid4()),
        "nbf": now if nbf is None else nbf,
        "exp": now + 600 if exp is None else exp,
    }
    return jwt.encode(claims, key_pem, algorithm="RS256", headers={"x5t": x5t})


_TEST_CERTS: dict[tuple[str, str, str], tuple[str, str]] = {}


def client_credentials_form(
    base_url: str, tenant_id: str, client_id: str, scope: str, *, certificate: bool = True
) -> dict[str, str]:
    """The client credentials grant's form, authenticated as a certificate credential does (an assertion
    signed with a test certificate registered on the app once per sandbox) or with a client secret."""
    form = {"grant_type": "client_credentials", "client_id": client_id, "scope": scope}
    if certificate:
        ref = (str(base_url), tenant_id, client_id)
        if ref not in _TEST_CERTS:
            key_pem, cert_pem = make_certificate()
            register_certificate(base_url, tenant_id, client_id, cert_pem).raise_for_status()
            _TEST_CERTS[ref] = (key_pem, cert_pem)
        key_pem, cert_pem = _TEST_CERTS[ref]
        endpoint = f"{base_url}/{tenant_id}/oauth2/v2.0/token"
        form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        form["client_assertion"] = signed_assertion(key_pem, cert_pem, client_id, endpoint)
    else:
        form["client_secret"] = "sandbox"
    return form


def app_only_token(
    base_url: str, tenant_id: str, scope: str, client_id: str = "x", *, certificate: bool = True
) -> str:
    """An app-only token for `scope` (e.g. a SharePoint host's /.default), certificate-style unless told."""
    form = client_credentials_form(base_url, tenant_id, client_id, scope, certificate=certificate)
    r = httpx.post(f"{base_url}/{tenant_id}/oauth2/v2.0/token", data=form, timeout=30)
    r.raise_for_status()
    return str(r.json()["access_token"])


def provision_onedrives(base_url: str, tenant_id: str, upns: list[str]) -> httpx.Response:
    """Ask the sandbox's SharePoint admin endpoint for these users' OneDrives (as an administrator would)."""
    from sandbox.tenancy import PROFILE_LOADER

    return httpx.post(
        f"{base_url}{PROFILE_LOADER}",
        json={"emailIDs": upns},
        headers={"Authorization": f"Bearer {sharepoint_admin_token(base_url, tenant_id)}"},
        timeout=30,
    )


def register_extension(
    base_url: str, tenant_id: str, client_id: str, name: str = "trustfoldSource"
) -> httpx.Response:
    """Register a directory extension property on `client_id`'s application, as `trustfold bootstrap`
    does once per trust tenant (POST /applications(appId='...')/extensionProperties)."""
    return httpx.post(
        f"{base_url}/v1.0/applications(appId='{client_id}')/extensionProperties",
        json={"name": name, "dataType": "String", "targetObjects": ["User", "Group"]},
        headers={"Authorization": f"Bearer {token(base_url, tenant_id, client_id)}"},
        timeout=30,
    )

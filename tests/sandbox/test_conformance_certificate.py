"""The token endpoint verifies a certificate credential's client assertion (issue 22: app-only SharePoint REST
needs a certificate, so the sandbox must not take any string as one).

learn.microsoft.com/entra/identity-platform/certificate-credentials: the assertion is a JWT signed (RS256 or
PS256) with the certificate's private key, `x5t` (or `x5t#S256`) naming the certificate, `aud` the token
endpoint, `iss` and `sub` the client id, `exp`/`nbf` bounding it; the certificate must be registered on the
application. Failures are Entra's AADSTS errors (reference-error-codes)."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt

from sandbox.testing import make_certificate, register_certificate, signed_assertion

CLIENT = "00000000-0000-0000-0000-0000000ce271"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _ask(sandbox_url, target_id: str, assertion: str) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_id": CLIENT,
        "scope": "https://graph.microsoft.com/.default",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    return httpx.post(f"{sandbox_url}/{target_id}/oauth2/v2.0/token", data=form)


def test_assertion_must_be_signed_by_a_registered_certificate(sandbox_url, target_id):
    endpoint = f"{sandbox_url}/{target_id}/oauth2/v2.0/token"
    key, cert = make_certificate()
    r = _ask(sandbox_url, target_id, "sandbox.assertion.unsigned")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client" and "AADSTS50027" in r.text
    # Signed, but the certificate is not on the application.
    r = _ask(sandbox_url, target_id, signed_assertion(key, cert, CLIENT, endpoint))
    assert r.status_code == 401 and "AADSTS700027" in r.text
    assert register_certificate(sandbox_url, target_id, CLIENT, cert).status_code == 200
    r = _ask(sandbox_url, target_id, signed_assertion(key, cert, CLIENT, endpoint))
    assert r.status_code == 200, r.text
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["appidacr"] == "2" and claims["appid"] == CLIENT
    # Another key naming the registered certificate's thumbprint: the signature does not verify.
    other, _ = make_certificate()
    r = _ask(sandbox_url, target_id, signed_assertion(other, cert, CLIENT, endpoint))
    assert r.status_code == 401 and "AADSTS700027" in r.text
    # Expired, for another audience, or naming another client.
    now = int(time.time())
    r = _ask(
        sandbox_url, target_id, signed_assertion(key, cert, CLIENT, endpoint, nbf=now - 900, exp=now - 300)
    )
    assert r.status_code == 401 and "AADSTS700024" in r.text
    r = _ask(sandbox_url, target_id, signed_assertion(key, cert, CLIENT, "https://example.invalid/token"))
    assert r.status_code == 401 and "AADSTS700027" in r.text and "audience" in r.text
    r = _ask(sandbox_url, target_id, signed_assertion(key, cert, str(uuid.uuid4()), endpoint))
    assert r.status_code == 401


def test_a_registered_certificate_is_public_only(sandbox_url, target_id):
    """Only the certificate (public key) is registered, as on the application's keyCredentials; a PEM holding
    a private key is refused so no key ever reaches the sandbox's state."""
    key, cert = make_certificate()
    r = register_certificate(sandbox_url, target_id, CLIENT, key + cert)
    assert r.status_code == 400 and "private key" in r.text

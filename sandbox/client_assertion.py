"""Certificate credentials at the sandbox's token endpoint: the certificates registered on an application
(its keyCredentials) and the verification of a client assertion against them, as Entra does
(learn.microsoft.com/entra/identity-platform/certificate-credentials; errors from reference-error-codes).

Only certificates (public keys) are registered here: a private key never reaches the sandbox or its state.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sandbox.world import TenantState

CLOCK_SKEW_S = 300  # Entra tolerates five minutes of clock skew on nbf/exp
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class Refused(Exception):
    code: int  # AADSTS number
    message: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def register(app: dict[str, Any], pem: str) -> dict[str, Any]:
    """Add a PEM certificate to the application's keyCredentials (once per thumbprint); a PEM that holds a
    private key is refused, the sandbox keeps public keys only."""
    if "PRIVATE KEY" in pem:
        raise ValueError("give the certificate only: a private key is never registered (nor sent anywhere)")
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise ValueError(f"not a PEM certificate: {exc}") from None
    der = cert.public_bytes(serialization.Encoding.DER)
    thumb = hashlib.sha1(der).hexdigest().upper()  # x5t is SHA-1 by definition
    keys = app.setdefault("keyCredentials", [])
    found = next((k for k in keys if k["customKeyIdentifier"] == thumb), None)
    if found is None:
        found = {
            "customKeyIdentifier": thumb,
            "keyId": str(uuid.uuid4()),
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
            "displayName": cert.subject.rfc4514_string()[:120],
            "key": base64.b64encode(der).decode(),
        }
        keys.append(found)
    return found


def _registered(app: dict[str, Any] | None, header: dict[str, Any]) -> x509.Certificate | None:
    for k in (app or {}).get("keyCredentials") or []:
        der = base64.b64decode(k["key"])
        ids = {
            _b64url(hashlib.sha1(der).digest()),
            _b64url(hashlib.sha256(der).digest()),
        }
        if header.get("x5t") in ids or header.get("x5t#S256") in ids:
            return x509.load_der_x509_certificate(der)
    return None


def verify(tenant: TenantState, client_id: str, assertion: str, audiences: set[str]) -> None:
    """Raise Refused unless `assertion` is a JWT signed by a certificate registered on `client_id`'s
    application, for one of `audiences` (the token endpoint), issued and subject `client_id`, in its time."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise Refused(50027, "JWT token is invalid or malformed.") from None
    if header.get("alg") not in ("RS256", "PS256"):
        raise Refused(
            5002738, f"Invalid JWT token. '{header.get('alg')}' is not a supported signature algorithm."
        )
    cert = _registered(tenant.applications.get(client_id.lower()), header)
    if cert is None:
        raise Refused(
            700027,
            f"The certificate with identifier used to sign the client assertion is not registered on "
            f"application. [Reason - The key was not found., Thumbprint of key used by client: "
            f"'{str(header.get('x5t') or header.get('x5t#S256') or '')[:64]}']",
        )
    try:
        claims = jwt.decode(
            assertion,
            cert.public_key(),  # type: ignore[arg-type]
            algorithms=[str(header["alg"])],
            options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.PyJWTError:
        raise Refused(700027, "Client assertion failed signature validation.") from None
    now = time.time()
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
        raise Refused(50027, "JWT token is invalid or malformed: exp and nbf must be numbers.")
    if exp + CLOCK_SKEW_S < now or nbf - CLOCK_SKEW_S > now:
        raise Refused(700024, "Client assertion is not within its valid time range.")
    if claims.get("aud") not in audiences:
        raise Refused(
            700027, f"Client assertion contains an invalid audience: {str(claims.get('aud'))[:200]!r}."
        )
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise Refused(700023, "Client assertion issuer and subject must be the client id.")

"""What admin consent granted an app in a tenant: the `roles` claim of an app-only access token, read (never
verified: we only look at what Entra granted us). Preflight names what is missing; a phase whose reads would
silently come back incomplete without a role (the sharing scan without Sites.FullControl.All) refuses."""

from __future__ import annotations

import base64
import json
from typing import Any

from migrations.graph.client import GRAPH_SCOPE, _credential


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT access token, unverified."""
    try:
        payload = token.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
    except (IndexError, ValueError):
        return {}


async def granted_roles(
    ref: Any, tenant_id: str, graph_url: str | None, scope: str = GRAPH_SCOPE
) -> list[str]:
    """The application permissions a fresh token for `scope` carries."""
    credential = _credential(ref, tenant_id, graph_url)
    try:
        token = await credential.get_token(scope)
    finally:
        close = getattr(credential, "close", None)
        if close is not None:
            await close()
    return [str(r) for r in token_claims(token.token).get("roles") or []]

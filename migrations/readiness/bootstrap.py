"""The one-off set-up of the trust tenant, idempotent and journaled: register the provenance extension
property on the trust's app (learn.microsoft.com/graph/api/application-post-extensionproperty) and say which
permissions still need admin consent, with the consent URL (consent cannot be granted by the app itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from migrations.core.store import dumps, now
from migrations.readiness.preflight import MARKER_NAME, consent_url, marker_name, required_permissions

if TYPE_CHECKING:
    from migrations.core.store import StateStore
    from migrations.graph.client import Connections
    from migrations.readiness.preflight import Report
    from trust import Trust

PHASE = "bootstrap"


@dataclass
class BootstrapResult:
    extension: str
    registered_now: bool = False
    already: bool = False
    consent: list[dict[str, str]] = field(default_factory=list)  # {"tenant", "missing", "url"}
    # The application permissions each app registration must request (least privileged, every phase).
    request: dict[str, list[str]] = field(default_factory=dict)  # "trust" / "academies" -> names

    @property
    def changed(self) -> bool:
        return self.registered_now

    def as_dict(self) -> dict[str, Any]:
        return {
            "extension": self.extension,
            "registered_now": self.registered_now,
            "already_registered": self.already,
            "consent": self.consent,
            "request": self.request,
        }


def _journal(
    store: StateStore, trust: Trust, key: str, event: str, target: str | None, data: dict[str, Any]
) -> None:
    with store.tx() as tx:
        tx.execute(
            "INSERT INTO journal (run_id, academy, phase, plan_id, step_key, op, event, target_id, data, at) "
            "VALUES (?, ?, ?, NULL, ?, 'register-extension', ?, ?, ?, ?)",
            ("bootstrap", trust.code, PHASE, key, event, target, dumps(data), now()),
        )


async def registered(conns: Connections, trust: Trust) -> dict[str, Any] | None:
    client_id = trust.tenant.credential.client_id
    body = await conns.target.get(f"/applications(appId='{client_id}')/extensionProperties")
    name = marker_name(trust)
    return next((p for p in body.get("value", []) if p.get("name") == name), None)


async def bootstrap(trust: Trust, conns: Connections, store: StateStore, report: Report) -> BootstrapResult:
    """Register the extension property unless it is (intent journaled before, outcome after); list the
    consent still needed from `report` (a preflight of every tenant)."""
    from migrations.graph.client import GraphError

    name = marker_name(trust)
    result = BootstrapResult(name)
    # Registering the extension property itself needs Application.ReadWrite.OwnedBy
    # (learn.microsoft.com/graph/api/application-post-extensionproperty).
    result.request = {
        "trust": sorted({*required_permissions("target"), "Application.ReadWrite.OwnedBy"}),
        "academies": required_permissions("source"),
    }
    found = await registered(conns, trust)
    if found is not None:
        result.already = True
    else:
        key = f"extension:{name}"
        _journal(store, trust, key, "intent", None, {"name": name})
        client_id = trust.tenant.credential.client_id
        resp = await conns.target.request(
            "POST",
            f"/applications(appId='{client_id}')/extensionProperties",
            json={"name": MARKER_NAME, "dataType": "String", "targetObjects": ["User", "Group"]},
            idempotent=True,  # a repeated create is refused as a conflict, never duplicated
        )
        if resp.status == 400 and resp.conflict:
            found = await registered(conns, trust)
        elif not resp.ok:
            _journal(
                store, trust, key, "failed", None, {"status": resp.status, "message": resp.error_message}
            )
            raise GraphError("POST", "extensionProperties", resp)
        else:
            found = resp.body
        _journal(store, trust, key, "done", (found or {}).get("id"), {"name": name})
        result.registered_now = True
    for check in report.checks:
        if check.check in ("permissions", "sharepoint-credential") and not check.ok:
            tenant_id, client_id = _tenant_of(trust, check.tenant)
            result.consent.append(
                {"tenant": check.tenant, "missing": check.result, "url": consent_url(tenant_id, client_id)}
            )
    return result


def _tenant_of(trust: Trust, label: str) -> tuple[str, str]:
    if label == "trust":
        return trust.tenant.id, trust.tenant.credential.client_id or ""
    lt = trust.academy(label).legacy_tenant
    return lt.id, lt.credential.client_id or ""

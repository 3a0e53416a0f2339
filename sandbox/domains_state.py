"""Domain ownership across the sandbox's tenants: custom domains, their DNS TXT records, and the
long-running operations (forceDelete, removal) that Microsoft documents as asynchronous.

Rules follow Microsoft Graph v1.0's domain pages (cited in docs/sandbox.md): a domain is verified in one
tenant at a time; verify succeeds only while the tenant's TXT value is published; DELETE is refused while
anything references the domain; forceDelete renames at most 1,000 objects, disables renamed users unless
told not to, and finishes later (the domain then answers 404).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import GraphError, bad_request, now_iso
from sandbox.world import TenantState, World

FORCE_DELETE_LIMIT = 1000
TXT_TTL = 3600


@dataclass
class Published:
    text: str
    visible_at: float  # monotonic time from which resolvers see it (propagation delay)


@dataclass
class Pending:
    """An asynchronous domain operation: removal (plain DELETE, replication) or forceDelete."""

    tenant_id: str
    kind: str  # "delete" | "forceDelete"
    done_at: float
    disable_users: bool = True


@dataclass
class DomainsState:
    # DNS as the world sees it: fqdn -> TXT records (the admin call publishes and withdraws them).
    txt: dict[str, list[Published]] = field(default_factory=dict)
    pending: dict[str, Pending] = field(default_factory=dict)  # lowercase fqdn -> operation

    # ---- DNS (admin) ------------------------------------------------------------------------------------
    def publish(self, fqdn: str, text: str, delay_s: float = 0.0) -> None:
        records = self.txt.setdefault(fqdn.lower(), [])
        if not any(r.text == text for r in records):
            records.append(Published(text, time.monotonic() + max(0.0, delay_s)))

    def withdraw(self, fqdn: str, text: str | None) -> int:
        records = self.txt.get(fqdn.lower(), [])
        keep = [r for r in records if text is not None and r.text != text]
        self.txt[fqdn.lower()] = keep
        return len(records) - len(keep)

    def resolves(self, fqdn: str, text: str) -> bool:
        now = time.monotonic()
        return any(r.text == text and r.visible_at <= now for r in self.txt.get(fqdn.lower(), []))

    def records(self, fqdn: str) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [{"text": r.text, "visible": r.visible_at <= now} for r in self.txt.get(fqdn.lower(), [])]


def state_of(world: World) -> DomainsState:
    """The world's domain state, created on first use (not saved with the state file: DNS is outside)."""
    st = getattr(world, "domains_state", None)
    if st is None:
        st = DomainsState()
        world.domains_state = st  # type: ignore[attr-defined]
    return st


def verification_text(tenant_id: str, fqdn: str) -> str:
    """Entra's verification value is MS=ms followed by 8 digits, fixed per tenant and domain."""
    digest = hashlib.sha256(f"{tenant_id.lower()}|{fqdn.lower()}".encode()).hexdigest()
    return f"MS=ms{int(digest[:12], 16) % 100_000_000:08d}"


def domain_not_found(name: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{name}' does not exist or one of its queried reference-property objects are not present.",
    )


def new_domain(fqdn: str) -> dict[str, Any]:
    return {
        "id": fqdn,
        "authenticationType": "Managed",
        "availabilityStatus": None,
        "isAdminManaged": True,
        "isDefault": False,
        "isInitial": False,
        "isRoot": True,
        "isVerified": False,
        "passwordNotificationWindowInDays": 14,
        "passwordValidityPeriodInDays": 2147483647,
        "supportedServices": [],
        "state": None,
    }


# ---- lifecycle --------------------------------------------------------------------------------------------
def settle(world: World) -> None:
    """Finish every asynchronous operation whose time has come (called before each domain request)."""
    st = state_of(world)
    now = time.monotonic()
    for fqdn, op in list(st.pending.items()):
        if op.done_at > now:
            continue
        del st.pending[fqdn]
        t = world.tenant(op.tenant_id)
        if t is None:
            continue
        if op.kind == "forceDelete":
            _rename_references(t, fqdn, op.disable_users)
        t.domains = [d for d in t.domains if d["id"].lower() != fqdn]
        world.dirty = True


def find(t: TenantState, name: str) -> dict[str, Any] | None:
    return next((d for d in t.domains if d["id"].lower() == name.lower()), None)


def get(world: World, t: TenantState, name: str) -> dict[str, Any]:
    settle(world)
    dom = find(t, name)
    if dom is None:
        raise domain_not_found(name)
    return dom


def verified_elsewhere(world: World, t: TenantState, fqdn: str) -> str | None:
    """The tenant (other than t) in which exactly fqdn is verified. A subdomain of a domain verified
    elsewhere may be verified here with its own TXT record (domains-manage, "Add subdomains of a custom
    domain": "you can also verify the subdomain europe.contoso.com in a different Microsoft Entra
    organization")."""
    for other in world.tenants.values():
        if other.id == t.id:
            continue
        for d in other.domains:
            if d["id"].lower() == fqdn.lower() and d.get("isVerified"):
                return other.id
    return None


def verified_parent(t: TenantState, fqdn: str) -> dict[str, Any] | None:
    """A domain above fqdn verified in t itself: the subdomain is then verified automatically."""
    labels = fqdn.lower().split(".")
    parents = {".".join(labels[i:]) for i in range(1, len(labels) - 1)}
    return next((d for d in t.domains if d["id"].lower() in parents and d.get("isVerified")), None)


def _elsewhere_error(fqdn: str) -> GraphError:
    return bad_request(
        f"Domain '{fqdn}' is already verified in another Microsoft Entra tenant. Remove it from that "
        "tenant before adding it here.",
        [{"target": "id", "code": "ObjectConflict"}],
    )


def create(world: World, t: TenantState, body: Any) -> dict[str, Any]:
    """POST /domains: only `id` may be given; the domain starts unverified."""
    settle(world)
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise bad_request("A value is required for property 'id' of resource 'Domain'.")
    extra = sorted(k for k in body if k != "id" and "@" not in k)
    if extra:
        raise bad_request(f"Property '{extra[0]}' cannot be set when creating a domain; only 'id' can.")
    fqdn = body["id"].strip().lower()
    labels = fqdn.split(".")
    if len(labels) < 2 or not all(lbl and lbl.replace("-", "").isalnum() for lbl in labels):
        raise bad_request(
            "Invalid value specified for property 'id' of resource 'Domain'.",
            [{"target": "id", "code": "InvalidValue"}],
        )
    if fqdn.endswith(".onmicrosoft.com"):
        raise bad_request("Domains under onmicrosoft.com cannot be added.")
    if find(t, fqdn) is not None:
        raise bad_request(
            "Another object with the same value for property id already exists.",
            [{"target": "id", "code": "ObjectConflict"}],
        )
    if verified_elsewhere(world, t, fqdn) or fqdn in state_of(world).pending:
        raise _elsewhere_error(fqdn)
    dom = new_domain(fqdn)
    if verified_parent(t, fqdn) is not None:
        # "Microsoft Entra ID automatically verifies the subdomain" (domains-manage); isRoot is false for a
        # subdomain (domain resource).
        dom.update(isVerified=True, isRoot=False, supportedServices=["Email", "OfficeCommunicationsOnline"])
    t.domains.append(dom)
    world.dirty = True
    return dom


def dns_records(t: TenantState, dom: dict[str, Any]) -> list[dict[str, Any]]:
    """GET /domains/{id}/verificationDnsRecords: a TXT record (and the MX alternative)."""
    fqdn = dom["id"]
    text = verification_text(t.id, fqdn)
    key = hashlib.sha256(f"{t.id}|{fqdn}".encode()).hexdigest()
    return [
        {
            "@odata.type": "#microsoft.graph.domainDnsTxtRecord",
            "id": f"aceff52c-06a5-447f-ac5f-{key[:12]}",
            "isOptional": False,
            "label": fqdn,
            "recordType": "Txt",
            "supportedService": "None",
            "ttl": TXT_TTL,
            "text": text,
        },
        {
            "@odata.type": "#microsoft.graph.domainDnsMxRecord",
            "id": f"5fbde38c-0865-497f-82b1-{key[12:24]}",
            "isOptional": False,
            "label": fqdn,
            "recordType": "Mx",
            "supportedService": "None",
            "ttl": TXT_TTL,
            "mailExchange": f"{text[3:]}.msv1.invalid",
            "preference": 32767,
        },
    ]


# The records each service needs (learn.microsoft.com/graph/api/domain-list-serviceconfigurationrecords; the
# example there and Get-AzureADDomainServiceConfigurationRecord's list the same labels). Hosts that are the
# same for every tenant are Microsoft's public service names; the MX host is derived from the domain.
SPF_TEXT = "v=spf1 include:spf.protection.outlook.com -all"
_LYNC = "OfficeCommunicationsOnline"


def _service_record(kind: str, key: str, label: str, supported: str, **extra: Any) -> dict[str, Any]:
    rtype = {"Mx": "Mx", "Txt": "Txt", "Cname": "CName", "Srv": "Srv"}[kind]
    return {
        "@odata.type": f"#microsoft.graph.domainDns{kind}Record",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{key}|{rtype}|{label}")),
        "isOptional": False,
        "label": label,
        "recordType": rtype,
        "supportedService": supported,
        "ttl": TXT_TTL,
        **extra,
    }


def _srv(key: str, fqdn: str, service: str, protocol: str, target: str, port: int) -> dict[str, Any]:
    return _service_record(
        "Srv",
        key,
        f"{service}.{protocol}.{fqdn}",
        _LYNC,
        nameTarget=target,
        port=port,
        priority=100,
        protocol=protocol,
        service=service,
        weight=1,
    )


def service_records(t: TenantState, dom: dict[str, Any]) -> list[dict[str, Any]]:
    """GET /domains/{id}/serviceConfigurationRecords: the records of the services in the domain's
    supportedServices (an unverified domain has none, so none: the stricter reading)."""
    fqdn = str(dom["id"]).lower()
    services = set(dom.get("supportedServices") or ()) if dom.get("isVerified") else set()
    key = f"{t.id}|{fqdn}"
    out: list[dict[str, Any]] = []
    if "Email" in services:
        out += [
            _service_record(
                "Mx",
                key,
                fqdn,
                "Email",
                mailExchange=fqdn.replace(".", "-") + ".mail.protection.outlook.com",
                preference=0,
            ),
            _service_record("Txt", key, fqdn, "Email", text=SPF_TEXT),
            _service_record(
                "Cname", key, f"autodiscover.{fqdn}", "Email", canonicalName="autodiscover.outlook.com"
            ),
        ]
    if _LYNC in services:
        out += [
            _srv(key, fqdn, "_sip", "_tls", "sipdir.online.lync.com", 443),
            _service_record("Cname", key, f"sip.{fqdn}", _LYNC, canonicalName="sipdir.online.lync.com"),
            _service_record(
                "Cname", key, f"lyncdiscover.{fqdn}", _LYNC, canonicalName="webdir.online.lync.com"
            ),
            _srv(key, fqdn, "_sipfederationtls", "_tcp", "sipfed.online.lync.com", 5061),
        ]
    if "Intune" in services:
        out += [
            _service_record(
                "Cname",
                key,
                f"enterpriseregistration.{fqdn}",
                "Intune",
                canonicalName="enterpriseregistration.windows.net",
            ),
            _service_record(
                "Cname",
                key,
                f"enterpriseenrollment.{fqdn}",
                "Intune",
                canonicalName="enterpriseenrollment.manage.microsoft.com",
            ),
        ]
    return out


def verify(world: World, t: TenantState, name: str) -> dict[str, Any]:
    """POST /domains/{id}/verify: only for an unverified domain, only while the TXT value resolves."""
    dom = get(world, t, name)
    if dom.get("isVerified"):
        raise bad_request(f"Domain '{dom['id']}' is already verified.")
    if verified_elsewhere(world, t, dom["id"]) or dom["id"].lower() in state_of(world).pending:
        raise _elsewhere_error(dom["id"])
    if not state_of(world).resolves(dom["id"], verification_text(t.id, dom["id"])):
        raise bad_request(
            f"Domain verification failed for '{dom['id']}': the DNS record with the verification value "
            "was not found. DNS changes can take up to 72 hours to propagate."
        )
    dom["isVerified"] = True
    dom["supportedServices"] = ["Email", "OfficeCommunicationsOnline"]
    world.dirty = True
    return dom


def update(world: World, t: TenantState, name: str, body: Any) -> dict[str, Any]:
    """PATCH /domains/{id}: isDefault (verified domains only) and supportedServices."""
    dom = get(world, t, name)
    if dom["id"].lower() in state_of(world).pending:
        raise _in_progress(dom["id"])
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    for key in body:
        if key not in (
            "isDefault",
            "supportedServices",
            "passwordValidityPeriodInDays",
            "passwordNotificationWindowInDays",
            "authenticationType",
        ):
            raise bad_request(
                f"Property '{key}' is read-only or does not exist on type 'microsoft.graph.domain'."
            )
    if body.get("isDefault") is True:
        if not dom.get("isVerified"):
            raise bad_request("An unverified domain cannot be the default domain.")
        for d in t.domains:
            d["isDefault"] = d is dom
    elif body.get("isDefault") is False and dom.get("isDefault"):
        raise bad_request("The default domain cannot be unset; make another domain the default instead.")
    for key in ("supportedServices", "passwordValidityPeriodInDays", "passwordNotificationWindowInDays"):
        if key in body:
            dom[key] = body[key]
    world.dirty = True
    return dom


def references(t: TenantState, fqdn: str) -> list[tuple[str, dict[str, Any]]]:
    """Users (UPN, mail, proxyAddresses) and groups (mail, proxyAddresses) that use fqdn."""
    suffix = "@" + fqdn.lower()

    def uses(obj: dict[str, Any], props: tuple[str, ...]) -> bool:
        for p in props:
            v = obj.get(p)
            if isinstance(v, str) and v.lower().endswith(suffix):
                return True
        return any(str(a).lower().endswith(suffix) for a in obj.get("proxyAddresses") or ())

    out: list[tuple[str, dict[str, Any]]] = [
        ("user", u) for u in t.users.values() if uses(u, ("userPrincipalName", "mail"))
    ]
    out += [("group", g) for g in t.groups.values() if uses(g, ("mail",))]
    return out


def exchange_owned(group: dict[str, Any]) -> bool:
    """Mail-enabled groups are provisioned by Exchange Online: Graph cannot change their addresses."""
    return bool(group.get("mailEnabled"))


def delete(world: World, t: TenantState, name: str) -> None:
    """DELETE /domains/{id}: refused for the default or initial domain and while references remain."""
    dom = get(world, t, name)
    fqdn = dom["id"].lower()
    if fqdn in state_of(world).pending:
        raise _in_progress(dom["id"])
    if dom.get("isInitial"):
        raise bad_request("The initial domain cannot be deleted.")
    if dom.get("isDefault"):
        raise bad_request("The default domain cannot be deleted; make another domain the default first.")
    refs = references(t, fqdn)
    if refs:
        raise bad_request(
            f"Domain '{dom['id']}' cannot be deleted: {len(refs)} object(s) still reference it. "
            "List them with domainNameReferences."
        )
    _schedule(world, t, fqdn, "delete", True)


def force_delete(world: World, t: TenantState, name: str, body: Any) -> None:
    """POST /domains/{id}/forceDelete: asynchronous; renames references to the initial domain."""
    dom = get(world, t, name)
    fqdn = dom["id"].lower()
    if body is not None and not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Invalid request body.")
    disable = (body or {}).get("disableUserAccounts", True)
    if not isinstance(disable, bool):
        raise bad_request("Invalid value specified for property 'disableUserAccounts'.")
    if fqdn in state_of(world).pending:
        raise _in_progress(dom["id"])
    if dom.get("isInitial") or dom.get("isDefault"):
        raise bad_request("The default or initial domain cannot be deleted.")
    refs = references(t, fqdn)
    if len(refs) > FORCE_DELETE_LIMIT:
        raise bad_request(
            f"Domain '{dom['id']}' has {len(refs)} objects to rename; forceDelete renames at most "
            f"{FORCE_DELETE_LIMIT}."
        )
    blocked = [g for kind, g in refs if kind == "group" and exchange_owned(g)]
    if blocked:
        raise bad_request(
            f"{len(blocked)} object(s) referencing '{dom['id']}' are provisioned by Exchange; update or "
            "remove those references before deleting the domain."
        )
    _schedule(world, t, fqdn, "forceDelete", disable)
    dom["state"] = {"status": "Scheduled", "operation": "ForceDelete", "lastActionDateTime": now_iso()}


def _in_progress(name: str) -> GraphError:
    return bad_request(f"An operation on domain '{name}' is already in progress; wait until it completes.")


def _schedule(world: World, t: TenantState, fqdn: str, kind: str, disable: bool) -> None:
    """The removal finishes `domain_removal_s` later (domains-manage FAQ: "may take up to 24 hours"); until
    then the domain still answers, verified, and cannot be changed, removed again or added elsewhere."""
    seconds = world.settings.domain_removal_s
    state_of(world).pending[fqdn] = Pending(t.id, kind, time.monotonic() + seconds, disable)
    if seconds <= 0:
        settle(world)


def _initial(t: TenantState) -> str:
    return next(d["id"] for d in t.domains if d.get("isInitial"))


def _rename_references(t: TenantState, fqdn: str, disable_users: bool) -> None:
    initial = _initial(t)
    suffix = "@" + fqdn

    def moved(addr: str) -> str:
        return addr[: -len(suffix)] + "@" + initial if addr.lower().endswith(suffix) else addr

    for kind, obj in references(t, fqdn):
        if kind == "user":
            old = obj["userPrincipalName"]
            new = moved(old)
            if new != old:
                local, _, dom = new.partition("@")
                n = 1
                while new.lower() in t.upn_index and t.upn_index[new.lower()] != obj["id"]:
                    n += 1
                    new = f"{local}{n}@{dom}"
                t.upn_index.pop(old.lower(), None)
                obj["userPrincipalName"] = new
                t.index_user(obj)
            if disable_users:
                obj["accountEnabled"] = False
        if isinstance(obj.get("mail"), str):
            obj["mail"] = moved(obj["mail"])
        if obj.get("proxyAddresses"):
            obj["proxyAddresses"] = [
                a.split(":", 1)[0] + ":" + moved(a.split(":", 1)[1]) if ":" in a else a
                for a in obj["proxyAddresses"]
            ]
        t.touch(obj["id"])


def exchange_readdress(t: TenantState, fqdn: str) -> list[str]:
    """What an Exchange administrator does (Set-UnifiedGroup / Set-DistributionGroup -PrimarySmtpAddress):
    move mail-enabled groups' addresses off fqdn to the initial domain. Admin call only."""
    initial = _initial(t)
    suffix = "@" + fqdn.lower()
    moved: list[str] = []
    for kind, g in references(t, fqdn):
        if kind != "group":
            continue
        if isinstance(g.get("mail"), str) and g["mail"].lower().endswith(suffix):
            g["mail"] = g["mail"][: -len(suffix)] + "@" + initial
        g["proxyAddresses"] = [
            a[: -len(suffix)] + "@" + initial if a.lower().endswith(suffix) else a
            for a in g.get("proxyAddresses") or ()
        ]
        t.touch(g["id"])
        moved.append(g["id"])
    return moved


def exchange_restore(t: TenantState, fqdn: str, group_ids: list[str]) -> int:
    """The reverse Exchange change for rollback rehearsals: the named groups' addresses go back to fqdn."""
    initial = "@" + _initial(t).lower()
    n = 0
    for gid in group_ids:
        g = t.groups.get(gid)
        if g is None:
            continue
        if isinstance(g.get("mail"), str) and g["mail"].lower().endswith(initial):
            g["mail"] = g["mail"][: -len(initial)] + "@" + fqdn
        g["proxyAddresses"] = [
            a[: -len(initial)] + "@" + fqdn if a.lower().endswith(initial) else a
            for a in g.get("proxyAddresses") or ()
        ]
        t.touch(gid)
        n += 1
    return n

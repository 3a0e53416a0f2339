"""Directory rules on one TenantState: create, update and delete users and groups, memberships, licences.

Every rule here follows a Microsoft Graph v1.0 documentation page (named on each function); errors carry the
codes and messages Graph uses so that trustfold's error handling meets them before production does.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sandbox import licensing
from sandbox.errors import GraphError, bad_request, now_iso
from sandbox.schema import (
    EXTENSION_RE,
    GROUP_COLLECTIONS,
    GROUP_REQUIRED,
    GROUP_WRITABLE,
    NICKNAME_FORBIDDEN,
    UPN_LOCAL_RE,
    USAGE_LOCATION_RE,
    USER_COLLECTIONS,
    USER_REQUIRED,
    USER_WRITABLE,
)
from sandbox.world import TenantState

MAX_BINDINGS = 20
USER_NICKNAME_FORBIDDEN = set(' @()\\[]";:<>,')
_BIND_RE = re.compile(r"/(?:directoryObjects|users|groups)/([0-9A-Za-z\-]+)/?$")


def new_id() -> str:
    return str(uuid.uuid4())


def conflict(prop: str) -> GraphError:
    """The documented ObjectConflict error (learn.microsoft.com/graph/api/user-post-users)."""
    return bad_request(
        f"Another object with the same value for property {prop} already exists.",
        [{"target": prop, "code": "ObjectConflict"}],
    )


def required(prop: str, resource: str) -> GraphError:
    return bad_request(f"A value is required for property '{prop}' of resource '{resource}'.")


def invalid(prop: str, resource: str) -> GraphError:
    return bad_request(
        f"Invalid value specified for property '{prop}' of resource '{resource}'.",
        [{"target": prop, "code": "InvalidValue"}],
    )


def not_found(oid: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{oid}' does not exist or one of its queried reference-property objects are not present.",
    )


def _check_body(
    body: Any, writable: frozenset[str], resource: str, extra: set[str] = frozenset()
) -> dict[str, Any]:  # type: ignore[assignment]
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    for key in body:
        if key in writable or key in extra or EXTENSION_RE.match(key) or "@" in key:
            # Unknown "x@y" keys are instance annotations to Graph: ignored, so a misspelt
            # "members@odata_bind" silently adds nobody (as graph-facts.md records).
            continue
        raise bad_request(
            f"Property '{key}' is read-only or does not exist on type 'microsoft.graph.{resource}'."
        )
    return body


def _check_extensions(t: TenantState, body: dict[str, Any], target: str) -> None:
    """Directory extension properties must be registered on an application first
    (learn.microsoft.com/graph/api/application-post-extensionproperty)."""
    from sandbox.tenancy import unregistered_extension

    name = unregistered_extension(t, body, target)
    if name is not None:
        raise GraphError(
            400,
            "Request_BadRequest",
            f"Property '{name}' does not exist as a declared property or extension property.",
        )


def _check_str(body: dict[str, Any], prop: str, resource: str, max_len: int = 256) -> None:
    if prop in body and body[prop] is not None:
        v = body[prop]
        if not isinstance(v, str) or len(v) > max_len:
            raise invalid(prop, resource)


# Users ---------------------------------------------------------------------------------------------------
def check_upn(t: TenantState, upn: Any) -> str:
    """UPN rules: local@verified-domain, allowed characters only
    (learn.microsoft.com/graph/api/user-post-users)."""
    if not isinstance(upn, str) or upn.count("@") != 1:
        raise invalid("userPrincipalName", "User")
    local, domain = upn.split("@")
    if not local or len(local) > 64 or len(upn) > 113 or not UPN_LOCAL_RE.match(local):
        raise invalid("userPrincipalName", "User")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise invalid("userPrincipalName", "User")
    if domain.lower() not in t.verified_domains:
        raise bad_request(
            "The domain portion of the userPrincipalName property is invalid. "
            "You must use one of the verified domain names in your organization.",
            [{"target": "userPrincipalName", "code": "InvalidValue"}],
        )
    return upn


def check_password(profile: Any) -> None:
    """Entra's default complexity: 8-256 characters, three of lower, upper, digit, symbol."""
    if not isinstance(profile, dict) or not isinstance(profile.get("password"), str):
        raise required("passwordProfile", "User")
    pw = profile["password"]
    classes = sum(
        (
            any(c.islower() for c in pw),
            any(c.isupper() for c in pw),
            any(c.isdigit() for c in pw),
            any(not c.isalnum() for c in pw),
        )
    )
    if not 8 <= len(pw) <= 256 or classes < 3:
        raise bad_request(
            "The specified password does not comply with password complexity requirements. "
            "Please provide a different password."
        )


def _check_nickname(value: Any, resource: str, forbidden: set[str]) -> None:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > 64
        or not value.isascii()
        or any(c in forbidden for c in value)
    ):
        raise invalid("mailNickname", resource)


def _check_user_values(t: TenantState, body: dict[str, Any]) -> None:
    for prop in (
        "displayName",
        "givenName",
        "surname",
        "jobTitle",
        "department",
        "companyName",
        "employeeType",
    ):
        _check_str(body, prop, "User", 256 if prop != "employeeId" else 16)
    if "displayName" in body and not body["displayName"]:
        raise invalid("displayName", "User")
    if "employeeId" in body and body["employeeId"] is not None:
        v = body["employeeId"]
        if not isinstance(v, str) or len(v) > 16:
            raise invalid("employeeId", "User")
    if "mailNickname" in body:
        _check_nickname(body["mailNickname"], "User", USER_NICKNAME_FORBIDDEN)
    if "accountEnabled" in body and not isinstance(body["accountEnabled"], bool):
        raise invalid("accountEnabled", "User")
    if body.get("usageLocation") is not None and not USAGE_LOCATION_RE.match(str(body["usageLocation"])):
        raise invalid("usageLocation", "User")
    if "userType" in body and body["userType"] not in ("Member", "Guest"):
        raise invalid("userType", "User")


def _upn_taken(t: TenantState, upn: str, except_id: str | None = None) -> bool:
    owner = t.upn_index.get(upn.lower())
    return owner is not None and owner != except_id


def create_user(t: TenantState, body: Any) -> dict[str, Any]:
    """POST /users (learn.microsoft.com/graph/api/user-post-users)."""
    body = _check_body(body, USER_WRITABLE, "user")
    _check_extensions(t, body, "User")
    for prop in USER_REQUIRED:
        if body.get(prop) is None:
            raise required(prop, "User")
    _check_user_values(t, body)
    upn = check_upn(t, body["userPrincipalName"])
    check_password(body["passwordProfile"])
    if _upn_taken(t, upn):
        raise conflict("userPrincipalName")
    mail = body.get("mail")
    if mail and _mail_taken(t, mail):
        raise conflict("proxyAddresses")
    user = base_user(new_id(), now_iso())
    for key, value in body.items():
        if key == "passwordProfile" or "@" in key:
            continue  # passwords are never stored or returned; annotations are not properties
        if value is not None:
            user[key] = value
    user["userType"] = body.get("userType") or "Member"
    if mail:
        user["proxyAddresses"] = [f"SMTP:{mail}"]
    t.users[user["id"]] = user
    t.index_user(user)
    t.touch(user["id"])
    t.created(user["id"])
    return user


def base_user(uid: str, created: str) -> dict[str, Any]:
    return {
        "id": uid,
        "createdDateTime": created,
        "businessPhones": [],
        "assignedLicenses": [],
        "assignedPlans": [],
        "licenseAssignmentStates": [],
        "proxyAddresses": [],
        "otherMails": [],
        "userType": "Member",
        "creationType": None,
    }


def update_user(t: TenantState, user: dict[str, Any], body: Any) -> None:
    """PATCH /users/{id} (learn.microsoft.com/graph/api/user-update)."""
    body = _check_body(body, USER_WRITABLE, "user")
    _check_extensions(t, body, "User")
    _check_user_values(t, body)
    if "userPrincipalName" in body:
        upn = check_upn(t, body["userPrincipalName"])
        if _upn_taken(t, upn, user["id"]):
            raise conflict("userPrincipalName")
    if "passwordProfile" in body:
        check_password(body["passwordProfile"])
    for prop in ("displayName", "mailNickname", "accountEnabled"):
        if prop in body and body[prop] is None:
            raise invalid(prop, "User")
    old_upn, old_mail = user["userPrincipalName"], user.get("mail")
    for key, value in body.items():
        if key == "passwordProfile" or "@" in key:
            continue
        if value is None:
            user.pop(key, None)
        else:
            user[key] = value
    if user["userPrincipalName"] != old_upn:
        t.upn_index.pop(old_upn.lower(), None)
        t.index_user(user)
    if old_mail and user.get("mail") != old_mail:
        # A user without an Exchange mailbox: Entra keeps the primary SMTP proxy address in step with mail.
        user["proxyAddresses"] = [
            f"SMTP:{user['mail']}" if p.lower() == f"smtp:{old_mail.lower()}" and user.get("mail") else p
            for p in user.get("proxyAddresses") or ()
            if user.get("mail") or p.lower() != f"smtp:{old_mail.lower()}"
        ]
    t.touch(user["id"])


def _mail_taken(t: TenantState, mail: str, except_id: str | None = None) -> bool:
    needle = f"smtp:{mail.lower()}"
    for pool in (t.users.values(), t.groups.values(), (d["object"] for d in t.deleted.values())):
        for obj in pool:
            if obj.get("id") == except_id:
                continue
            if any(p.lower() == needle for p in obj.get("proxyAddresses") or ()):
                return True
    return False


def _memberships_of(t: TenantState, oid: str) -> tuple[list[str], list[str]]:
    member_of = [g for g, m in t.members.items() if oid in m]
    owner_of = [g for g, m in t.owners.items() if oid in m]
    return member_of, owner_of


def _detach(t: TenantState, oid: str) -> tuple[list[str], list[str]]:
    member_of, owner_of = _memberships_of(t, oid)
    for g in member_of:
        del t.members[g][oid]
        t.member_changed(g, oid, False)
    for g in owner_of:
        del t.owners[g][oid]
        t.touch(g)
    return member_of, owner_of


def delete_user(t: TenantState, user: dict[str, Any]) -> None:
    """DELETE /users/{id}: soft delete for 30 days (learn.microsoft.com/graph/api/user-delete).

    The deleted user's UPN is prefixed with its object id (no hyphens), freeing the UPN for reuse.
    """
    uid = user["id"]
    del t.users[uid]
    t.upn_index.pop(user["userPrincipalName"].lower(), None)
    member_of, owner_of = _detach(t, uid)
    shown = dict(user)
    shown["userPrincipalName"] = uid.replace("-", "") + user["userPrincipalName"]
    shown["deletedDateTime"] = now_iso()
    t.deleted[uid] = {
        "kind": "user",
        "object": shown,
        "original": user["userPrincipalName"],
        "memberOf": member_of,
        "ownerOf": owner_of,
    }
    _release_licences(t, user)
    t.mark_removed(uid, "user", "changed")


def _release_licences(t: TenantState, user: dict[str, Any], sign: int = -1) -> None:
    for lic in user.get("assignedLicenses") or ():
        for sku in t.skus:
            if sku["skuId"] == lic["skuId"]:
                sku["consumedUnits"] = max(0, sku["consumedUnits"] + sign)


def restore(t: TenantState, oid: str) -> dict[str, Any]:
    """POST /directory/deletedItems/{id}/restore
    (learn.microsoft.com/graph/api/directory-deleteditems-restore)."""
    item = t.deleted.get(oid)
    if item is None:
        raise not_found(oid)
    obj = dict(item["object"])
    obj.pop("deletedDateTime", None)
    if item["kind"] == "user":
        obj["userPrincipalName"] = item["original"]
        if _upn_taken(t, obj["userPrincipalName"]):
            raise conflict("userPrincipalName")
        del t.deleted[oid]
        t.users[oid] = obj
        t.index_user(obj)
        _release_licences(t, obj, +1)
        t.touch(oid)
        for g in item.get("memberOf", []):
            if g in t.groups:
                t.members.setdefault(g, {})[oid] = None
                t.member_changed(g, oid, True)
        licensed = tuple(g for g in item.get("memberOf", []) if t.groups.get(g, {}).get("assignedLicenses"))
        licensing.reprocess(t, oid, licensed)
        for g in item.get("ownerOf", []):
            if g in t.groups:
                t.owners.setdefault(g, {})[oid] = None
                t.touch(g)
    else:
        del t.deleted[oid]
        t.groups[oid] = obj
        t.members[oid] = dict.fromkeys(m for m in item.get("members", []) if t.object_kind(m))
        t.owners[oid] = dict.fromkeys(m for m in item.get("owners", []) if t.object_kind(m))
        t.touch(oid)
        for m in t.members[oid]:
            t.member_changed(oid, m, True)
    return obj


def purge(t: TenantState, oid: str) -> None:
    """DELETE /directory/deletedItems/{id}: gone for ever
    (learn.microsoft.com/graph/api/directory-deleteditems-delete)."""
    item = t.deleted.pop(oid, None)
    if item is None:
        raise not_found(oid)
    t.mark_removed(oid, item["kind"], "deleted")


def assign_license(t: TenantState, user: dict[str, Any], body: Any) -> None:
    """POST /users/{id}/assignLicense (learn.microsoft.com/graph/api/user-assignlicense); seats and
    group-inherited licences are kept by sandbox.licensing."""
    if not isinstance(body, dict) or "addLicenses" not in body or "removeLicenses" not in body:
        raise bad_request("Both addLicenses and removeLicenses are required.")
    licensing.assign_direct(t, user, body["addLicenses"], body["removeLicenses"])


# Groups --------------------------------------------------------------------------------------------------
def _bind_ids(t: TenantState, urls: Any, prop: str) -> list[str]:
    if not isinstance(urls, list):
        raise bad_request(f"Invalid value for '{prop}': a collection of URLs is expected.")
    ids: list[str] = []
    for url in urls:
        m = _BIND_RE.search(url) if isinstance(url, str) else None
        if not m:
            raise bad_request(f"Invalid URL format specified in @odata.bind for {prop.split('@')[0]}")
        oid = m.group(1)
        if t.object_kind(oid) is None or t.is_fresh(oid):
            raise not_found(oid)
        ids.append(oid)
    return ids


def _check_group_values(t: TenantState, body: dict[str, Any]) -> None:
    _check_str(body, "displayName", "Group", 256)
    if "displayName" in body and not body["displayName"]:
        raise invalid("displayName", "Group")
    _check_str(body, "description", "Group", 1024)
    if "mailNickname" in body:
        _check_nickname(body["mailNickname"], "Group", NICKNAME_FORBIDDEN)
    for prop in ("mailEnabled", "securityEnabled"):
        if prop in body and not isinstance(body[prop], bool):
            raise invalid(prop, "Group")
    gt = body.get("groupTypes", [])
    if not isinstance(gt, list) or any(x not in ("Unified", "DynamicMembership") for x in gt):
        raise invalid("groupTypes", "Group")
    if "DynamicMembership" in gt and not body.get("membershipRule"):
        raise required("membershipRule", "Group")
    if body.get("visibility") not in (None, "Public", "Private", "HiddenMembership"):
        raise invalid("visibility", "Group")


def create_group(t: TenantState, body: Any) -> dict[str, Any]:
    """POST /groups (learn.microsoft.com/graph/api/group-post-groups)."""
    body = _check_body(body, GROUP_WRITABLE, "group", {"owners@odata.bind", "members@odata.bind"})
    _check_extensions(t, body, "Group")
    for prop in GROUP_REQUIRED:
        if body.get(prop) is None:
            raise required(prop, "Group")
    _check_group_values(t, body)
    unified = "Unified" in (body.get("groupTypes") or [])
    if body["mailEnabled"] and not unified:
        # Mail-enabled security groups and distribution lists belong to Exchange.
        raise bad_request(
            "The service does not currently support writes of mail-enabled groups. "
            "Please ensure that the mail-enablement property is unset or set to false."
        )
    if unified and not body["mailEnabled"]:
        raise invalid("mailEnabled", "Group")
    if not unified and not body["securityEnabled"]:
        raise invalid("securityEnabled", "Group")
    owners = _bind_ids(t, body.get("owners@odata.bind", []), "owners@odata.bind")
    members = _bind_ids(t, body.get("members@odata.bind", []), "members@odata.bind")
    if len(owners) + len(members) > MAX_BINDINGS:
        raise bad_request(
            f"A maximum of {MAX_BINDINGS} owners and members can be added in the create request; "
            "add the rest after the group is created."
        )
    for oid in owners:
        if t.object_kind(oid) != "user":
            raise bad_request("Only users and service principals can be owners of a group.")
    if unified:
        for oid in members:
            if t.object_kind(oid) != "user":
                raise bad_request("Groups cannot be added as members of Microsoft 365 groups.")
    gid = new_id()
    group = base_group(gid, now_iso())
    for key, value in body.items():
        if "@" in key or value is None:
            continue
        group[key] = value
    if unified:
        mail = f"{body['mailNickname']}@{t.default_domain}"
        if _mail_taken(t, mail):
            raise conflict("proxyAddresses")
        group["mail"] = mail
        group["proxyAddresses"] = [f"SMTP:{mail}"]
        group["visibility"] = group.get("visibility") or "Public"
        group["renewedDateTime"] = group["createdDateTime"]
    t.groups[gid] = group
    t.members[gid] = {}
    t.owners[gid] = dict.fromkeys(owners)
    t.touch(gid)
    t.created(gid)
    for oid in members:
        t.members[gid][oid] = None
        t.member_changed(gid, oid, True)
    return group


def base_group(gid: str, created: str) -> dict[str, Any]:
    return {
        "id": gid,
        "createdDateTime": created,
        "groupTypes": [],
        "proxyAddresses": [],
        "resourceBehaviorOptions": [],
        "resourceProvisioningOptions": [],
        "mail": None,
        "visibility": None,
    }


def update_group(t: TenantState, group: dict[str, Any], body: Any) -> None:
    """PATCH /groups/{id}, including members@odata.bind (learn.microsoft.com/graph/api/group-update)."""
    body = _check_body(body, GROUP_WRITABLE, "group", {"members@odata.bind", "owners@odata.bind"})
    _check_extensions(t, body, "Group")
    _check_group_values(t, body)
    for prop in ("groupTypes", "mailEnabled", "securityEnabled"):
        if prop in body and body[prop] != group.get(prop):
            raise bad_request(f"Property '{prop}' cannot be changed for an existing group.")
    bindings: list[tuple[str, list[str]]] = []
    for prop in ("members@odata.bind", "owners@odata.bind"):
        if prop in body:
            ids = _bind_ids(t, body[prop], prop)
            if len(ids) > MAX_BINDINGS:
                raise bad_request(f"A maximum of {MAX_BINDINGS} references can be added in a single request.")
            bindings.append((prop.split("@")[0], ids))
    # All or nothing: check every reference before adding any.
    for kind, ids in bindings:
        current = t.members[group["id"]] if kind == "members" else t.owners[group["id"]]
        if any(oid in current for oid in ids) or len(set(ids)) != len(ids):
            raise already_exist(kind)
        _check_member_kinds(t, group, kind, ids)
    for key, value in body.items():
        if "@" in key:
            continue
        if value is None:
            group.pop(key, None)
        else:
            group[key] = value
    t.touch(group["id"])
    for kind, ids in bindings:
        for oid in ids:
            _add(t, group["id"], kind, oid)


def already_exist(kind: str) -> GraphError:
    return bad_request(
        f"One or more added object references already exist for the following modified properties: '{kind}'."
    )


def _check_member_kinds(t: TenantState, group: dict[str, Any], kind: str, ids: list[str]) -> None:
    for oid in ids:
        if oid == group["id"]:
            raise bad_request("A group cannot be a member of itself.")
        if kind == "owners" and t.object_kind(oid) != "user":
            raise bad_request("Only users and service principals can be owners of a group.")
        if kind == "members" and "Unified" in group.get("groupTypes", []) and t.object_kind(oid) != "user":
            raise bad_request("Groups cannot be added as members of Microsoft 365 groups.")


def _add(t: TenantState, gid: str, kind: str, oid: str) -> None:
    if kind == "members":
        t.members[gid][oid] = None
        t.member_changed(gid, oid, True)
        licensing.member_changed(t, gid, oid)
    else:
        t.owners[gid][oid] = None
        t.touch(gid)


def add_ref(t: TenantState, group: dict[str, Any], kind: str, body: Any) -> None:
    """POST /groups/{id}/members/$ref or owners/$ref (learn.microsoft.com/graph/api/group-post-members)."""
    if not isinstance(body, dict) or "@odata.id" not in body:
        raise bad_request("Invalid request body: '@odata.id' is required.")
    (oid,) = _bind_ids(t, [body["@odata.id"]], "@odata.id")
    current = t.members[group["id"]] if kind == "members" else t.owners[group["id"]]
    if oid in current:
        raise already_exist(kind)
    _check_member_kinds(t, group, kind, [oid])
    _add(t, group["id"], kind, oid)


def remove_ref(t: TenantState, group: dict[str, Any], kind: str, oid: str) -> None:
    """DELETE /groups/{id}/members/{id}/$ref (learn.microsoft.com/graph/api/group-delete-members)."""
    current = t.members[group["id"]] if kind == "members" else t.owners[group["id"]]
    if oid not in current:
        raise not_found(oid)
    if kind == "owners" and "Unified" in group.get("groupTypes", []) and len(current) == 1:
        raise bad_request("The group must have at least one owner, hence this owner cannot be removed.")
    del current[oid]
    if kind == "members":
        t.member_changed(group["id"], oid, False)
        licensing.member_changed(t, group["id"], oid)
    else:
        t.touch(group["id"])


def delete_group(t: TenantState, group: dict[str, Any]) -> None:
    """DELETE /groups/{id}: Microsoft 365 groups soft-deleted, security groups at once (group-delete)."""
    licensing.check_group_deletable(group)
    gid = group["id"]
    unified = "Unified" in group.get("groupTypes", [])
    members = list(t.members.pop(gid, {}))
    owners = list(t.owners.pop(gid, {}))
    del t.groups[gid]
    t.member_changes.pop(gid, None)
    _detach(t, gid)
    if unified:
        shown = dict(group)
        shown["deletedDateTime"] = now_iso()
        t.deleted[gid] = {"kind": "group", "object": shown, "members": members, "owners": owners}
        t.mark_removed(gid, "group", "changed")
    else:
        t.mark_removed(gid, "group", "deleted")


# Output ---------------------------------------------------------------------------------------------------
def project(
    obj: dict[str, Any], select: list[str] | None, default: tuple[str, ...], collections: frozenset[str]
) -> dict[str, Any]:
    """The object as Graph returns it: selected (or default) properties, unset ones null or []."""
    out: dict[str, Any] = {}
    for prop in select or default:
        if prop == "passwordProfile":
            out[prop] = None
        elif prop in obj:
            out[prop] = obj[prop]
        else:
            out[prop] = [] if prop in collections else None
    return out


def user_out(user: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    from sandbox.schema import USER_DEFAULT

    return project(user, select, USER_DEFAULT, USER_COLLECTIONS)


def group_out(group: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    from sandbox.schema import GROUP_DEFAULT

    return project(group, select, GROUP_DEFAULT, GROUP_COLLECTIONS)

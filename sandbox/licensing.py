"""Licences on one TenantState: seats, direct assignment and group-based licensing as Entra computes them.

A user's licences are held as `licenseAssignmentStates` (learn.microsoft.com/graph/api/resources/
licenseassignmentstate): one state per SKU and source, `assignedByGroup` null for a direct assignment or the
group's id for an inherited one, `state` Active or Error with `error` CountViolation when no seat was free.
`assignedLicenses` is derived: the SKUs the user holds through at least one Active state. A SKU's
`consumedUnits` counts users holding it, however many sources give it to them (a user licensed directly and
by two groups takes one seat).

Group-based licensing (learn.microsoft.com/entra/identity/users/licensing-group-advanced and
licensing-groups-resolve-problems), with the stricter reading where the documentation leaves room:
- only direct user members of a licensed group inherit (nested groups are not supported);
- a group's products are assigned to a member all or none ("More than one product license assigned to a
  group": if one cannot be assigned, "it won't assign the other licenses in the group either"): every
  state of that group on the user is Error, the product at fault with its cause (CountViolation: no seat;
  MutuallyExclusiveViolation: one of its enabled service plans conflicts with a plan the user holds through
  another product), the others with Other, and no seat is taken;
- mutually exclusive service plans are a tenant setting (`licence_rules["exclusive"]`: the real pairs are
  Microsoft's); a direct assignLicense that would hold both is refused at once (the problem "is immediately
  reported back to you");
- ActiveWithError (a documented state with no documented trigger the sandbox models) is injected per user
  (`licence_rules["active_with_error"]`): the licence is held, seat and all, with error Other;
- only security-enabled groups can carry licences;
- an inherited assignment that finds no free seat is recorded on the user as Error / CountViolation (never
  an error to the caller) and is retried only when that user is processed again (membership or group
  licence change), as Entra keeps the intent in an error state until it is reprocessed;
- a group holding licences cannot be deleted: they must be removed first;
- users without usageLocation inherit the directory's country for group assignment;
- processing is in the background ("the changes could take time to process", licensing-group-advanced,
  "Find out when group changes started and finished processing"): a group licence change, a licensed
  group's membership change or a user's direct licence change queues the users concerned, and their
  `licenseAssignmentStates` change only `licensing_delay_s` later (`settle`, run before every request).
  Until then a joining member has no state for the group and a leaving one keeps its licence and seat; the
  group's `licenseProcessingState` is QueuedForProcessing (learn.microsoft.com/graph/api/resources/group).
  A group licence change spreads its members over the delay (Entra processes a large group member by
  member: minutes, "up to a day" for the largest), so the group is ProcessingInProgress once its first
  member is done and ProcessingComplete at the end. A delay of 0 processes at once.
"""

from __future__ import annotations

import time
from typing import Any

from sandbox.errors import GraphError, bad_request, now_iso
from sandbox.world import TenantState


def no_seats(sku_id: str) -> GraphError:
    """assignLicense when every prepaid unit is consumed (the message Graph returns, as reported on
    learn.microsoft.com/answers/questions/1028212)."""
    return bad_request(f"Subscription with SKU {sku_id} does not have any available licenses.")


def states(user: dict[str, Any]) -> list[dict[str, Any]]:
    """The user's assignment states; users saved before states were kept get direct Active ones."""
    current = user.get("licenseAssignmentStates")
    if current is None:
        current = [
            _state(lic["skuId"], None, list(lic.get("disabledPlans") or []), "Active")
            for lic in user.get("assignedLicenses") or ()
        ]
        user["licenseAssignmentStates"] = current
    return current


def _state(sku_id: str, group: str | None, disabled: list[str], state: str, error: str | None = None) -> dict:
    return {
        "assignedByGroup": group,
        "disabledPlans": disabled,
        "error": error or "None",
        "lastUpdatedDateTime": now_iso(),
        "skuId": sku_id,
        "state": state,
    }


# States in which the user holds the licence (and its seat): ActiveWithError is active, with an error.
HOLDING = ("Active", "ActiveWithError")
# States a group's hasMembersWithLicenseErrors counts (the stricter reading: an active licence with an
# error is still a licence error).
IN_ERROR = ("Error", "ActiveWithError")


def _held(sts: list[dict[str, Any]]) -> dict[str, list[str]]:
    held: dict[str, list[str]] = {}
    for s in sts:
        if s["state"] in HOLDING:
            held.setdefault(s["skuId"], s.get("disabledPlans") or [])
    return held


def _plans(t: TenantState, sku_id: str, disabled: list[str]) -> set[str]:
    """The service plans a licence of the SKU enables."""
    for sku in t.skus:
        if sku["skuId"] == sku_id:
            return {p["servicePlanId"] for p in sku["servicePlans"]} - set(disabled)
    return set()


def _conflict(t: TenantState, sku_id: str, disabled: list[str], held: dict[str, list[str]]) -> bool:
    """Would a licence of `sku_id` enable a plan mutually exclusive with one the user holds through another
    product?"""
    pairs = t.licence_rules.get("exclusive") or []
    if not pairs:
        return False
    mine = _plans(t, sku_id, disabled)
    theirs: set[str] = set()
    for other, off in held.items():
        if other != sku_id:
            theirs |= _plans(t, other, off)
    return any((a in mine and b in theirs) or (b in mine and a in theirs) for a, b in pairs)


def set_rules(t: TenantState, body: dict[str, Any]) -> None:
    """Admin: validate and store licensing rules (exclusive plan pairs, ActiveWithError users) and check a
    `process` count; ValueError names what is wrong."""
    if "process" in body:
        count = body["process"]
        if count is not True and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise ValueError("process must be true or a whole number of users of at least 1")
    if "exclusive" in body:
        pairs = body["exclusive"]
        known = {p["servicePlanId"] for sku in t.skus for p in sku["servicePlans"]}
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(x in known for x in p) for p in pairs
        ):
            raise ValueError(
                "exclusive must be a list of [servicePlanId, servicePlanId] pairs of this tenant"
            )
        t.licence_rules["exclusive"] = [list(p) for p in pairs]
    if "active_with_error" in body:
        ids = body["active_with_error"]
        if not isinstance(ids, list) or not all(isinstance(i, str) and i in t.users for i in ids):
            raise ValueError("active_with_error must be a list of user ids of this tenant")
        t.licence_rules["active_with_error"] = list(ids)


def _commit(t: TenantState, user: dict[str, Any], new_states: list[dict[str, Any]]) -> None:
    """Store states, derive assignedLicenses and move consumedUnits by what the user gained or lost."""
    before = set(_held(states(user)))
    held = _held(new_states)
    after = set(held)
    for sku in t.skus:
        if sku["skuId"] in after - before:
            sku["consumedUnits"] += 1
        elif sku["skuId"] in before - after:
            sku["consumedUnits"] = max(0, sku["consumedUnits"] - 1)
    user["licenseAssignmentStates"] = new_states
    user["assignedLicenses"] = [{"disabledPlans": list(d), "skuId": k} for k, d in held.items()]
    t.touch(user["id"])


def _free(t: TenantState, sku_id: str) -> int:
    for sku in t.skus:
        if sku["skuId"] == sku_id:
            return int(sku["prepaidUnits"]["enabled"]) - int(sku["consumedUnits"])
    return 0


def check_licences(t: TenantState, add: Any, remove: Any, present: set[str]) -> dict[str, dict[str, Any]]:
    """Validate an assignLicense body's parts (user-assignlicense, group-assignlicense); the SKUs by id."""
    if not isinstance(add, list) or not isinstance(remove, list):
        raise bad_request("addLicenses and removeLicenses must be collections.")
    skus = {s["skuId"]: s for s in t.skus}
    for lic in add:
        sku_id = lic.get("skuId") if isinstance(lic, dict) else None
        if sku_id not in skus:
            raise bad_request(f"License {sku_id} does not correspond to a valid company License.")
        plans = {p["servicePlanId"] for p in skus[sku_id]["servicePlans"]}
        for plan in lic.get("disabledPlans") or ():
            if plan not in plans:
                raise bad_request(f"Service plan {plan} is not part of the license {sku_id}.")
    for sku_id in remove:
        if sku_id not in present:
            raise bad_request(f"User does not have a corresponding license {sku_id}.")
    return skus


def assign_direct(t: TenantState, user: dict[str, Any], add: list[Any], remove: list[str]) -> None:
    """POST /users/{id}/assignLicense: direct assignments, refused when a new seat is needed and none is
    free (learn.microsoft.com/graph/api/user-assignlicense)."""
    sts = states(user)
    direct = {s["skuId"]: s for s in sts if s.get("assignedByGroup") is None}
    check_licences(t, add, remove, set(direct))
    if add and not user.get("usageLocation"):
        raise bad_request("License assignment cannot be done for user with invalid usage location.")
    held = _held(sts)
    for sku_id in {lic["skuId"] for lic in add} - set(held):
        if _free(t, sku_id) < 1:
            raise no_seats(sku_id)
    kept = {k: v for k, v in held.items() if k not in remove}
    for lic in add:
        if _conflict(t, lic["skuId"], list(lic.get("disabledPlans") or []), kept):
            raise bad_request(
                f"License {lic['skuId']} cannot be assigned: its service plans are mutually exclusive with "
                "service plans the user already has."
            )
    for lic in add:
        direct[lic["skuId"]] = _state(lic["skuId"], None, list(lic.get("disabledPlans") or []), "Active")
    for sku_id in remove:
        direct.pop(sku_id, None)
    inherited = [s for s in sts if s.get("assignedByGroup") is not None]
    _commit(t, user, [*direct.values(), *inherited])
    # A seat freed or a SKU now held directly may settle this user's inherited errors (when Entra gets to it).
    if inherited:
        reprocess(t, user["id"])


def _licensed_groups_of(t: TenantState, uid: str) -> list[dict[str, Any]]:
    return [
        g
        for gid, members in t.members.items()
        if uid in members and (g := t.groups.get(gid)) is not None and g.get("assignedLicenses")
    ]


def process_user(t: TenantState, user: dict[str, Any]) -> None:
    """Bring the user's inherited states in line with the licensed groups it is a direct member of, each
    group's products all or none."""
    sts = states(user)
    groups = {g["id"]: g for g in _licensed_groups_of(t, user["id"])}
    wanted = {
        (lic["skuId"], gid): list(lic.get("disabledPlans") or [])
        for gid, g in groups.items()
        for lic in g["assignedLicenses"]
    }
    kept = [
        s for s in sts if s.get("assignedByGroup") is None or (s["skuId"], s["assignedByGroup"]) in wanted
    ]
    by_key = {(s["skuId"], s.get("assignedByGroup")): s for s in kept}
    held = dict(_held(kept))
    gained: dict[str, int] = {}
    spoilt = t.licence_rules.get("active_with_error") or []
    result = [s for s in kept if s.get("assignedByGroup") is None]
    for gid in sorted(groups):
        lics = [(lic["skuId"], wanted[(lic["skuId"], gid)]) for lic in groups[gid]["assignedLicenses"]]
        old = [by_key.get((sku_id, gid)) for sku_id, _ in lics]
        if all(o is not None and o["state"] in HOLDING for o in old):
            result += [o for o in old if o is not None]
            continue
        cause: tuple[str, str] | None = None
        for sku_id, disabled in lics:
            if sku_id not in held and _free(t, sku_id) - gained.get(sku_id, 0) < 1:
                cause = (sku_id, "CountViolation")
            elif _conflict(t, sku_id, disabled, held):
                cause = (sku_id, "MutuallyExclusiveViolation")
            if cause:
                break
        if cause is not None:
            # All or none: the group's other products are not assigned either, and take no seat.
            for sku_id, disabled in lics:
                why = cause[1] if sku_id == cause[0] else "Other"
                result.append(_state(sku_id, gid, disabled, "Error", why))
            continue
        state, error = ("Active", "None")
        if user["id"] in spoilt:
            spoilt.remove(user["id"])  # spoils one group's processing, as a transient fault would
            state, error = ("ActiveWithError", "Other")
        for sku_id, disabled in lics:
            if sku_id not in held:
                gained[sku_id] = gained.get(sku_id, 0) + 1
                held[sku_id] = disabled
            result.append(_state(sku_id, gid, disabled, state, error))
    # Only groups where this user is or was in error can change their hasMembersWithLicenseErrors flag
    # (rescanning a 4,000-member group on every clean membership change would be quadratic).
    flagged = {
        s["assignedByGroup"] for s in [*sts, *result] if s.get("assignedByGroup") and s["state"] in IN_ERROR
    }
    _commit(t, user, result)
    for gid in flagged:
        refresh_error_flag(t, gid)


def refresh_error_flag(t: TenantState, gid: str) -> None:
    group = t.groups.get(gid)
    if group is None:
        return
    flag = any(
        s.get("assignedByGroup") == gid and s["state"] == "Error"
        for uid in t.members.get(gid, {})
        if (u := t.users.get(uid)) is not None
        for s in u.get("licenseAssignmentStates") or ()
    )
    group["hasMembersWithLicenseErrors"] = flag


def member_changed(t: TenantState, gid: str, oid: str) -> None:
    """A user joined or left a group: queue it for processing when the group carries licences."""
    group = t.groups.get(gid)
    user = t.users.get(oid)
    if user is not None and group is not None and group.get("assignedLicenses"):
        reprocess(t, user["id"], (gid,))


def reprocess(t: TenantState, uid: str, groups: tuple[str, ...] = (), due: float | None = None) -> None:
    """Queue the user for Entra's background processing (at once when the delay is 0), by `due` (default:
    the delay from now); `groups` are the licensed groups whose processing state waits for it."""
    if t.licensing_delay_s <= 0:
        user = t.users.get(uid)
        if user is not None:
            process_user(t, user)
        return
    due = time.time() + t.licensing_delay_s if due is None else due
    # A user already queued keeps its turn: its processing reads the memberships of that moment.
    t.licence_due.setdefault(uid, due)
    for gid in groups:
        _queue_group(t, gid, max(t.licence_due[uid], due))


def _queue_group(t: TenantState, gid: str, due: float) -> None:
    group = t.groups.get(gid)
    if group is None:
        return
    # Re-inserted at the tail with its latest due time, so the queue stays in due order.
    t.licence_groups_due[gid] = max(due, t.licence_groups_due.pop(gid, 0.0))
    group["licenseProcessingState"] = {"state": "QueuedForProcessing"}
    t.touch(gid)


def settle(t: TenantState, now: float | None = None, limit: int | None = None) -> bool:
    """Process every queued user whose time has come (at most `limit`), in due order, then mark their groups
    in progress or complete. True when anything changed (the caller marks the world for saving)."""
    if not t.licence_due and not t.licence_groups_due:
        return False
    now = time.time() if now is None else now
    # A queue, first in first out (as the dicts keep insertion order): every request looks only at its head.
    ready = _due(t.licence_due, now)[:limit]
    for uid in ready:
        del t.licence_due[uid]
        user = t.users.get(uid)
        if user is not None:  # deleted meanwhile: its seats went with it
            process_user(t, user)
        for gid in t.licence_groups_due:
            group = t.groups.get(gid)
            if group is not None and uid in t.members.get(gid, {}):
                group["licenseProcessingState"] = {"state": "ProcessingInProgress"}
    # A group is complete once its time has come and none of its members still waits (one queued later by
    # another change keeps it in progress); only groups whose time has come are scanned.
    done = [
        gid
        for gid in _due(t.licence_groups_due, now)
        if not any(u in t.licence_due for u in t.members.get(gid, {}))
    ]
    for gid in done:
        del t.licence_groups_due[gid]
        group = t.groups.get(gid)
        if group is not None:
            group["licenseProcessingState"] = {"state": "ProcessingComplete"}
            refresh_error_flag(t, gid)
            t.touch(gid)
    return bool(ready or done)


def _due(queue: dict[str, float], now: float) -> list[str]:
    out = []
    for key, due in queue.items():
        if due > now:
            break
        out.append(key)
    return out


def settle_now(t: TenantState, limit: int | None = None) -> int:
    """Admin: finish queued processing now (what waiting out the delay would do), or only the next `limit`
    users; how many users were processed."""
    count = len(t.licence_due) if limit is None else min(limit, len(t.licence_due))
    settle(t, float("inf"), limit)
    return count


def assign_group(t: TenantState, group: dict[str, Any], body: Any) -> None:
    """POST /groups/{id}/assignLicense (learn.microsoft.com/graph/api/group-assignlicense): the group's
    licences change and every direct user member is processed; seat shortages land on the users."""
    if not isinstance(body, dict) or "addLicenses" not in body or "removeLicenses" not in body:
        raise bad_request("Both addLicenses and removeLicenses are required.")
    if not group.get("securityEnabled"):
        raise bad_request(
            "License assignment to a group is supported only for security groups and Microsoft 365 "
            "groups with securityEnabled set to true."
        )
    current = {lic["skuId"]: lic for lic in group.get("assignedLicenses") or ()}
    add, remove = body["addLicenses"], body["removeLicenses"]
    check_licences(t, add, remove, set(current))
    for lic in add:
        current[lic["skuId"]] = {"disabledPlans": list(lic.get("disabledPlans") or []), "skuId": lic["skuId"]}
    for sku_id in remove:
        current.pop(sku_id, None)
    group["assignedLicenses"] = list(current.values())
    t.touch(group["id"])
    if t.licensing_delay_s <= 0:
        group["licenseProcessingState"] = {"state": "ProcessingComplete"}
        for uid in list(t.members.get(group["id"], {})):
            user = t.users.get(uid)
            if user is not None:
                process_user(t, user)
        refresh_error_flag(t, group["id"])
        return
    start = time.time()
    _queue_group(t, group["id"], start + t.licensing_delay_s)
    members = [uid for uid in t.members.get(group["id"], {}) if uid in t.users]
    # Member by member: the k-th of n is done k/n of the way through the delay.
    for k, uid in enumerate(members, 1):
        reprocess(t, uid, (group["id"],), start + t.licensing_delay_s * k / len(members))


def check_group_deletable(group: dict[str, Any]) -> None:
    """Entra refuses to delete a group that still holds licences (licensing-groups-resolve-problems, "When
    a licensed group is deleted": remove all licences first)."""
    if group.get("assignedLicenses"):
        raise bad_request(
            "The group has licenses assigned. Remove all licenses assigned to the group before deleting it."
        )


def set_seats(t: TenantState, seats: dict[str, int]) -> None:
    """Prepaid (enabled) units per SKU, by part number or skuId; consumption is left as it is (a reduced
    subscription can be over-consumed; new assignments then fail)."""
    by_key = {s["skuPartNumber"]: s for s in t.skus} | {s["skuId"]: s for s in t.skus}
    for key, units in seats.items():
        sku = by_key.get(key)
        if sku is None:
            raise ValueError(f"tenant {t.id} has no SKU {key!r} (known: {', '.join(sorted(by_key))})")
        if not isinstance(units, int) or isinstance(units, bool) or not 0 <= units <= 10_000_000:
            raise ValueError(f"seats for {key} must be a whole number between 0 and 10000000, got {units!r}")
        sku["prepaidUnits"]["enabled"] = units

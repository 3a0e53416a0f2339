"""Deterministic synthetic academies: staff, pupils, guests, groups, domains, SKUs for every tenant in config.

Same seed and size, same world. Roles are real Graph properties: employeeType "Staff" or "Pupil" (what the
trust's default role rule reads), with jobTitle and department as a school would fill them.
"""

from __future__ import annotations

import math
import random
import unicodedata
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox import generator_names as names
from sandbox.directory import base_group, base_user
from sandbox.settings import DEFAULT_SIZE
from sandbox.world import TenantState

# Office 365 A1 for faculty and students: Microsoft's published SKU ids for these part numbers.
KNOWN_SKUS = {
    "STANDARDWOFFPACK_FACULTY": "94763226-9b3c-4e75-a931-5c89701abe66",
    "STANDARDWOFFPACK_STUDENT": "314c4481-f395-4525-be8b-2ec4bb1e9d91",
}
SERVICE_PLANS = ("EXCHANGE_S_STANDARD", "SHAREPOINTSTANDARD_EDU", "TEAMS1", "OFFICE_FORMS_PLAN_2", "SWAY")
YEARS_BY_KIND = {
    "primary": ["Reception", *(f"Year {n}" for n in range(1, 7))],
    "secondary": [f"Year {n}" for n in range(7, 14)],
    "all-through": ["Reception", *(f"Year {n}" for n in range(1, 14))],
    "special": [f"Year {n}" for n in range(1, 12)],
    "alternative-provision": [f"Year {n}" for n in range(9, 12)],
}
FORM_SIZE = 28
EPOCH = datetime(2026, 9, 1, tzinfo=UTC)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "trustfold-sandbox:" + ":".join(parts)))


def _ascii(text: str) -> str:
    """Transliterate for UPNs the way older school MIS exports did: strip accents, keep allowed characters."""
    folded = unicodedata.normalize("NFKD", text.replace("Ł", "L").replace("ł", "l"))
    out = "".join(c for c in folded if c.isascii() and (c.isalnum() or c in "'-"))
    return out.lower()


def _past(rng: random.Random, max_days: int = 2000) -> str:
    return (EPOCH - timedelta(days=rng.randint(30, max_days), seconds=rng.randint(0, 86_399))).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def _person(rng: random.Random) -> tuple[str, str]:
    roll = rng.random()
    given = rng.choice(names.GIVEN_NAMES)
    surname = rng.choice(names.SURNAMES)
    if roll < 0.04:
        given = rng.choice(names.ACCENTED_GIVEN)
    elif roll < 0.06:
        given = rng.choice(names.HYPHENATED_GIVEN)
    elif roll < 0.065:
        given = rng.choice(names.LONG_GIVEN)
    roll = rng.random()
    if roll < 0.04:
        surname = rng.choice(names.APOSTROPHE_SURNAMES)
    elif roll < 0.07:
        surname = rng.choice(names.HYPHENATED_SURNAMES)
    elif roll < 0.09:
        surname = rng.choice(names.ACCENTED_SURNAMES)
    elif roll < 0.095:
        surname = rng.choice(names.LONG_SURNAMES)
    return given, surname


class _Upns:
    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.taken: set[str] = set()

    def make(self, local: str) -> str:
        local = local.strip(".-'")[:60] or "user"
        candidate, n = local, 1
        while candidate.lower() in self.taken:
            n += 1
            candidate = f"{local}{n}"
        self.taken.add(candidate.lower())
        return f"{candidate}@{self.domain}"


def _domains(custom: tuple[str, ...], initial: str, primary: str | None = None) -> list[dict[str, Any]]:
    primary = primary or custom[0]
    rows = []
    for name in (*custom, initial):
        rows.append(
            {
                "id": name,
                "authenticationType": "Managed",
                "availabilityStatus": None,
                "isAdminManaged": True,
                "isDefault": name == primary,
                "isInitial": name == initial,
                "isRoot": True,
                "isVerified": True,
                "passwordNotificationWindowInDays": 14,
                "passwordValidityPeriodInDays": 2147483647,
                "supportedServices": ["Email", "OfficeCommunicationsOnline"],
                "state": None,
            }
        )
    return rows


def _organization(
    tenant_id: str, display: str, domains: list[dict[str, Any]], created: str
) -> dict[str, Any]:
    return {
        "id": tenant_id,
        "displayName": display,
        "businessPhones": [],
        "city": None,
        "country": None,
        "countryLetterCode": "GB",
        "createdDateTime": created,
        "defaultUsageLocation": "GB",
        "marketingNotificationEmails": [],
        "onPremisesLastSyncDateTime": None,
        "onPremisesSyncEnabled": None,
        "postalCode": None,
        "preferredLanguage": "en",
        "securityComplianceNotificationMails": [],
        "securityComplianceNotificationPhones": [],
        "state": None,
        "street": None,
        "technicalNotificationMails": [],
        "tenantType": "AAD",
        "assignedPlans": [],
        "provisionedPlans": [],
        "verifiedDomains": [
            {
                "capabilities": "Email, OfficeCommunicationsOnline",
                "isDefault": d["isDefault"],
                "isInitial": d["isInitial"],
                "name": d["id"],
                "type": "Managed",
            }
            for d in domains
        ],
    }


def _sku(tenant_id: str, part: str, units: int) -> dict[str, Any]:
    sku_id = KNOWN_SKUS.get(part) or _stable_uuid("sku", part)
    return {
        "accountId": tenant_id,
        "accountName": "sandbox",
        "appliesTo": "User",
        "capabilityStatus": "Enabled",
        "consumedUnits": 0,
        "id": f"{tenant_id}_{sku_id}",
        "prepaidUnits": {"enabled": units, "lockedOut": 0, "suspended": 0, "warning": 0},
        "servicePlans": [
            {
                "appliesTo": "User",
                "provisioningStatus": "Success",
                "servicePlanId": _stable_uuid("plan", part, plan),
                "servicePlanName": plan,
            }
            for plan in SERVICE_PLANS
        ],
        "skuId": sku_id,
        "skuPartNumber": part,
        "subscriptionIds": [_stable_uuid("subscription", tenant_id, part)],
    }


def _licence(t: TenantState, user: dict[str, Any], part: str) -> None:
    for sku in t.skus:
        if sku["skuPartNumber"] == part:
            user["assignedLicenses"] = [{"disabledPlans": [], "skuId": sku["skuId"]}]
            user["licenseAssignmentStates"] = [
                {
                    "assignedByGroup": None,
                    "disabledPlans": [],
                    "error": "None",
                    "lastUpdatedDateTime": user.get("createdDateTime"),
                    "skuId": sku["skuId"],
                    "state": "Active",
                }
            ]
            sku["consumedUnits"] += 1


def _add_user(t: TenantState, user: dict[str, Any]) -> None:
    t.users[user["id"]] = user
    t.index_user(user)
    t.touch(user["id"])


def _add_group(
    t: TenantState,
    rng: random.Random,
    display: str,
    nickname: str,
    *,
    unified: bool = False,
    mail_enabled_security: bool = False,
    distribution: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    g = base_group(_uuid(rng), _past(rng))
    g.update(
        displayName=display,
        description=description,
        mailNickname=nickname,
        mailEnabled=unified or mail_enabled_security or distribution,
        securityEnabled=not unified and not distribution,
    )
    if unified:
        g["groupTypes"] = ["Unified"]
        g["visibility"] = "Private"
        g["renewedDateTime"] = g["createdDateTime"]
    if g["mailEnabled"]:
        mail = f"{nickname}@{t.default_domain}"
        g["mail"] = mail
        g["proxyAddresses"] = [f"SMTP:{mail}"]
    t.groups[g["id"]] = g
    t.members[g["id"]] = {}
    t.owners[g["id"]] = {}
    t.touch(g["id"])
    return g


def _members(
    t: TenantState, group: dict[str, Any], ids: Iterator[str] | list[str], owners: list[str] = ()
) -> None:  # type: ignore[assignment]
    for oid in ids:
        t.members[group["id"]][oid] = None
    for oid in owners:
        t.owners[group["id"]][oid] = None


def generate_academy(
    tenant_id: str,
    academy: Any,
    size: int = DEFAULT_SIZE,
    seed: int = 1,
    staff_sku: str = "",
    pupil_sku: str = "",
) -> tuple[TenantState, list[dict[str, Any]]]:
    """One legacy tenant; returns the state and the users as {id, userPrincipalName, displayName, role}."""
    rng = random.Random(f"{seed}:{academy.code}")
    custom = tuple(academy.legacy_tenant.domains)
    initial = f"{academy.code}academy.onmicrosoft.com"
    t = TenantState(id=tenant_id, role="source", academy=academy.code)
    t.domains = _domains(custom, initial)
    t.organization = _organization(tenant_id, academy.name, t.domains, _past(rng, 4000))
    domain = custom[0]
    upns = _Upns(domain)
    n_staff = max(5, round(size * 0.12))
    n_guests = max(1, size // 200)
    n_pupils = max(10, size - n_staff - n_guests)
    t.skus = [
        _sku(tenant_id, staff_sku or "STANDARDWOFFPACK_FACULTY", math.ceil(n_staff * 1.2) + 10),
        _sku(tenant_id, pupil_sku or "STANDARDWOFFPACK_STUDENT", math.ceil(n_pupils * 1.2) + 10),
    ]
    years = YEARS_BY_KIND.get(str(getattr(academy.kind, "value", academy.kind)), YEARS_BY_KIND["secondary"])
    summary: list[dict[str, Any]] = []

    def person(i: int) -> tuple[str, str]:
        if i < len(names.SHARED_NAMES):
            return names.SHARED_NAMES[i]
        return _person(rng)

    staff: list[dict[str, Any]] = []
    by_department: dict[str, list[str]] = {d: [] for d in names.DEPARTMENTS}
    for i in range(n_staff):
        given, surname = person(i)
        if i < len(names.LEADERSHIP):
            title, dept = names.LEADERSHIP[i]
        elif rng.random() < 0.7:
            dept = rng.choice(names.DEPARTMENTS)
            title = f"Teacher of {dept}" if dept not in ("SEND", "Pastoral") else f"{dept} Lead"
        else:
            title, dept = rng.choice(names.SUPPORT_ROLES)
        first = _ascii(given.split()[0])
        upn = upns.make(f"{first[:1]}.{_ascii(surname)}")
        u = base_user(_uuid(rng), _past(rng))
        u.update(
            displayName=f"{given} {surname}",
            givenName=given,
            surname=surname,
            userPrincipalName=upn,
            mail=upn,
            mailNickname=upn.split("@")[0],
            proxyAddresses=[f"SMTP:{upn}"],
            jobTitle=title,
            department=dept,
            employeeType="Staff",
            employeeId=f"S{i + 1:05d}",
            companyName=academy.name,
            accountEnabled=rng.random() > 0.03,
            usageLocation="GB",
            preferredLanguage="en-GB",
            officeLocation=academy.name,
        )
        _licence(t, u, staff_sku or "STANDARDWOFFPACK_FACULTY")
        _add_user(t, u)
        staff.append(u)
        if dept in by_department:
            by_department[dept].append(u["id"])
        summary.append(
            {"id": u["id"], "userPrincipalName": upn, "displayName": u["displayName"], "role": "staff"}
        )

    pupils_by_year: dict[str, list[dict[str, Any]]] = {y: [] for y in years}
    for i in range(n_pupils):
        given, surname = person(i) if i < 2 else _person(rng)
        year = years[i % len(years)]
        intake = 26 - (years.index(year))
        upn = upns.make(f"{intake:02d}{_ascii(surname).replace(' ', '')}{_ascii(given)[:1]}")
        u = base_user(_uuid(rng), _past(rng, 2500))
        u.update(
            displayName=f"{given} {surname}",
            givenName=given,
            surname=surname,
            userPrincipalName=upn,
            mail=upn,
            mailNickname=upn.split("@")[0],
            proxyAddresses=[f"SMTP:{upn}"],
            department=year,
            employeeType="Pupil",
            employeeId=f"P{rng.randint(10**8, 10**9 - 1)}",
            companyName=academy.name,
            accountEnabled=rng.random() > 0.02,
            usageLocation="GB" if rng.random() > 0.01 else None,
            preferredLanguage="en-GB",
        )
        if u["usageLocation"] is None:
            del u["usageLocation"]
        else:
            _licence(t, u, pupil_sku or "STANDARDWOFFPACK_STUDENT")
        _add_user(t, u)
        pupils_by_year[year].append(u)
        summary.append(
            {"id": u["id"], "userPrincipalName": upn, "displayName": u["displayName"], "role": "pupil"}
        )

    for _ in range(n_guests):
        given, surname = _person(rng)
        external = (
            f"{_ascii(given)}.{_ascii(surname)}_{rng.choice(['gmail.com', 'outlook.com', 'lea.gov.uk'])}"
        )
        upn = f"{external}#EXT#@{initial}"
        u = base_user(_uuid(rng), _past(rng))
        u.update(
            displayName=f"{given} {surname} (Guest)",
            givenName=given,
            surname=surname,
            userPrincipalName=upn,
            mail=external.replace("_", "@", 1) if "_" in external else None,
            mailNickname=external.replace("@", "_")[:64],
            userType="Guest",
            creationType="Invitation",
            externalUserState="Accepted",
            accountEnabled=True,
        )
        _add_user(t, u)
        summary.append(
            {"id": u["id"], "userPrincipalName": upn, "displayName": u["displayName"], "role": "guest"}
        )

    _academy_groups(t, rng, academy, staff, by_department, pupils_by_year)
    # Generated state is the starting point, not a change: the first delta round returns it all anyway.
    return t, summary


def _nick(text: str) -> str:
    return "".join(c for c in _ascii(text) if c.isalnum() or c == "-")[:60]


def _academy_groups(
    t: TenantState,
    rng: random.Random,
    academy: Any,
    staff: list[dict[str, Any]],
    by_department: dict[str, list[str]],
    pupils_by_year: dict[str, list[dict[str, Any]]],
) -> None:
    teachers = [u["id"] for u in staff if str(u.get("jobTitle", "")).startswith("Teacher")] or [
        staff[0]["id"]
    ]
    head = staff[0]["id"]
    all_staff = _add_group(
        t, rng, "All Staff", "allstaff", description=f"Everyone employed at {academy.name}"
    )
    teaching = _add_group(t, rng, "Teaching Staff", "teachingstaff")
    _members(t, all_staff, (u["id"] for u in staff))
    for dept, ids in by_department.items():
        if not ids:
            continue
        g = _add_group(t, rng, f"{dept} Department", f"dept-{_nick(dept)}")
        _members(t, g, ids, owners=ids[:1])
        t.members[teaching["id"]][g["id"]] = None  # nested: departments inside teaching staff
    all_pupils = _add_group(t, rng, "All Pupils", "allpupils")
    for year, pupils in pupils_by_year.items():
        yg = _add_group(t, rng, year, _nick(year), description=f"{year} pupils")
        _members(t, yg, (p["id"] for p in pupils))
        t.members[all_pupils["id"]][yg["id"]] = None  # nested: year groups inside all pupils
        label = year.replace("Year ", "") if year.startswith("Year") else "R"
        forms = max(1, math.ceil(len(pupils) / FORM_SIZE))
        for f in range(forms):
            letter = "ABCDEFGHJKLMNPQRSTUVWXYZ"[f % 24] + ("" if f < 24 else str(f // 24))
            tutor = rng.choice(teachers)
            form = _add_group(t, rng, f"{label}{letter} Tutor Group", f"form-{label}{letter}".lower())
            _members(t, form, (p["id"] for p in pupils[f::forms]), owners=[tutor])
        # Class teams are Microsoft 365 groups with a teacher as owner.
        for subject in ("Maths", "English"):
            team = _add_group(t, rng, f"{year} {subject}", f"{_nick(year)}-{subject.lower()}", unified=True)
            _members(
                t,
                team,
                [*(p["id"] for p in pupils[:FORM_SIZE]), rng.choice(teachers)],
                owners=[rng.choice(teachers)],
            )
    staffroom = _add_group(t, rng, "Staff Room", "staffroom", unified=True, description="Staff news and chat")
    _members(t, staffroom, (u["id"] for u in staff), owners=[head])
    # Exchange-owned groups Graph cannot create: they exist in source tenants as facts to report.
    safeguarding = _add_group(t, rng, "Safeguarding Alerts", "safeguarding", mail_enabled_security=True)
    _members(t, safeguarding, staff_ids := [u["id"] for u in staff[: max(2, len(staff) // 10)]])
    parents = _add_group(t, rng, "Parents Evening Bookings", "parentsevening", distribution=True)
    _members(t, parents, staff_ids[:3])
    # An ownerless, empty leftover group, as real tenants have.
    _add_group(t, rng, "Old Projects 2019", "oldprojects2019")


def generate_trust(trust: Any, size: int, seed: int) -> TenantState:
    """The trust tenant: a central team and a few groups, some colliding with academy names on purpose."""
    rng = random.Random(f"{seed}:trust:{trust.code}")
    tenant = trust.tenant
    initial = f"{trust.code}trust.onmicrosoft.com"
    t = TenantState(id=tenant.id, role="target", academy=None)
    t.domains = _domains(tuple(tenant.domains), initial, tenant.primary_domain)
    t.organization = _organization(tenant.id, trust.name, t.domains, _past(rng, 3000))
    capacity = size * max(1, len(trust.academies))
    t.skus = [
        _sku(tenant.id, trust.licences.staff, math.ceil(capacity * 0.12 * 1.3) + 50),
        _sku(tenant.id, trust.licences.pupil, math.ceil(capacity * 0.9 * 1.3) + 50),
    ]
    domain = tenant.primary_domain
    central = [
        ("Priya", "Shah", "Chief Executive Officer", "Central Team"),
        ("Gareth", "Lloyd-Jones", "Chief Financial Officer", "Central Team"),
        ("Aoife", "O'Connor", "Trust IT Manager", "Central IT"),
        ("Ben", "Okafor", "Network Engineer", "Central IT"),
        # The same person's name as in every academy: a target UPN the migration must not take over.
        (*names.SHARED_NAMES[0], "Trust Data Officer", "Central Team"),
    ]
    users = []
    for given, surname, title, dept in central:
        upn = f"{_ascii(given)}.{_ascii(surname)}@{domain}"
        u = base_user(_uuid(rng), _past(rng))
        u.update(
            displayName=f"{given} {surname}",
            givenName=given,
            surname=surname,
            userPrincipalName=upn,
            mail=upn,
            mailNickname=upn.split("@")[0],
            proxyAddresses=[f"SMTP:{upn}"],
            jobTitle=title,
            department=dept,
            employeeType="Staff",
            companyName=trust.name,
            accountEnabled=True,
            usageLocation="GB",
        )
        _licence(t, u, trust.licences.staff)
        _add_user(t, u)
        users.append(u["id"])
    # Names the trust's naming rule may produce for academy objects, already taken in the target.
    for academy in trust.academies[:2]:
        try:
            upn = trust.names.user_upn(academy, names.SHARED_NAMES[1][0], names.SHARED_NAMES[1][1], "ojones")
            display = trust.names.group_display_name(academy, "All Staff")
            nickname = trust.names.group_mail_nickname(academy, "allstaff")
        except Exception:  # naming rules are the lead's; the collision seeds are a bonus, not a must
            continue
        if upn.split("@")[-1].lower() in t.verified_domains and upn.lower() not in t.upn_index:
            u = base_user(_uuid(rng), _past(rng))
            given, surname = names.SHARED_NAMES[1]
            u.update(
                displayName=f"{given} {surname}",
                givenName=given,
                surname=surname,
                userPrincipalName=upn,
                mail=upn,
                mailNickname=upn.split("@")[0],
                proxyAddresses=[f"SMTP:{upn}"],
                jobTitle="Trust Safeguarding Lead",
                department="Central Team",
                employeeType="Staff",
                accountEnabled=True,
                usageLocation="GB",
            )
            _add_user(t, u)
            users.append(u["id"])
        g = _add_group(t, rng, display, nickname[:60], description="Created by the trust before migration")
        _members(t, g, users[:2], owners=users[:1])
    leadership = _add_group(t, rng, "Trust Leadership", "trustleadership", unified=True)
    _members(t, leadership, users[:3], owners=users[:1])
    it = _add_group(t, rng, "Central IT", "centralit")
    _members(t, it, users[2:4], owners=users[2:3])
    breakglass = getattr(getattr(trust, "entra", None), "break_glass_group", "Trust break-glass accounts")
    glass = _add_group(t, rng, breakglass, "breakglass")
    # The conditional access baseline (infra/entra.py) excludes the break-glass group from every policy.
    from sandbox.conditional_access import seed_baseline

    seed_baseline(t, random.Random(f"{seed}:ca"), glass["id"])
    return t


def generate_world_tenants(trust: Any, size: int = DEFAULT_SIZE, seed: int = 1) -> dict[str, TenantState]:
    """Every tenant of the trust: the target, then each academy's source tenant, with files if available."""
    try:
        from sandbox import generator_files
    except ImportError:  # the drives engineer's module; directory-only until it exists
        generator_files = None  # type: ignore[assignment]
    tenants: dict[str, TenantState] = {}
    target = generate_trust(trust, size, seed)
    tenants[target.id] = target
    for academy in trust.academies:
        state, users = generate_academy(
            academy.legacy_tenant.id,
            academy,
            size,
            seed,
            staff_sku=trust.licences.staff,
            pupil_sku=trust.licences.pupil,
        )
        if generator_files is not None and hasattr(generator_files, "seed_files"):
            generator_files.seed_files(
                state, academy, users, random.Random(f"{seed}:{academy.code}:files"), size
            )
        # Class and staff teams on the groups above (sandbox/generator_teams.py), after the files.
        from sandbox.generator_teams import seed_teams

        seed_teams(state, random.Random(f"{seed}:{academy.code}:teams"))
        tenants[state.id] = state
    if generator_files is not None and hasattr(generator_files, "seed_target_files"):
        generator_files.seed_target_files(target, trust, random.Random(f"{seed}:trust:files"))
    return tenants

"""Sandbox knobs: throttling budgets, latency, bandwidth, fault rates, generator size and seed.

Defaults follow Microsoft's published service limits (learn.microsoft.com/graph/throttling-limits and
learn.microsoft.com/sharepoint/dev/general-development/how-to-avoid-getting-throttled-or-blocked-in-sharepoint-online).
Parsers turn CLI/admin strings into values and raise ValueError with a one-line message on bad input.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

# Identity and access: resource units per 10 s per app + tenant, by tenant size (users).
IDENTITY_RU_WINDOW_S = 10.0
IDENTITY_RU_BY_SIZE: tuple[tuple[int, int], ...] = ((50, 3_500), (501, 5_000))
IDENTITY_RU_LARGE = 8_000
# Identity writes: 3,000 per 150 s per app + tenant; 18,000 per 5 min per tenant across all apps.
WRITES_PER_APP = (3_000, 150.0)
WRITES_PER_TENANT = (18_000, 300.0)
# SharePoint / OneDrive budgets, all from learn.microsoft.com/sharepoint/dev/general-development/
# how-to-avoid-getting-throttled-or-blocked-in-sharepoint-online (tenant and application throttling tables).
# Licence bands are inclusive at the top ("0 - 1,000", "1,001 - 5,000", ...): (most licences, limit).
# Resource units per minute per app + tenant.
SHAREPOINT_RU_BY_LICENCES: tuple[tuple[int, int], ...] = (
    (1_000, 1_250),
    (5_000, 2_500),
    (15_000, 3_750),
    (50_000, 5_000),
)
SHAREPOINT_RU_LARGE = 6_250
SHAREPOINT_WINDOW_S = 60.0
# Resource units per 24 hours per app + tenant: a table of its own (not a multiple of the minute figure).
SHAREPOINT_DAILY_BY_LICENCES: tuple[tuple[int, int], ...] = (
    (1_000, 1_200_000),
    (5_000, 2_400_000),
    (15_000, 3_600_000),
    (50_000, 4_800_000),
)
SHAREPOINT_DAILY_LARGE = 6_000_000
# With the minute budget set by hand (tests, benches), the day allows 1,000 of those minutes.
SHAREPOINT_DAILY_FACTOR = 1_000
# Resource units per 5 minutes per tenant, all apps together.
SHAREPOINT_TENANT_BY_LICENCES: tuple[tuple[int, int], ...] = (
    (1_000, 18_750),
    (5_000, 37_500),
    (15_000, 56_250),
    (50_000, 75_000),
)
SHAREPOINT_TENANT_LARGE = 93_750
SHAREPOINT_TENANT_WINDOW_S = 300.0
# With the minute budget set by hand, the tenant's 5 minutes hold 15 of those minutes (Microsoft's ratio:
# 18,750 per 5 minutes beside 1,250 a minute), so one app alone never meets the tenant limit first.
SHAREPOINT_TENANT_FACTOR = 15
# Ingress and egress: 400 GB an hour each per app + tenant, bytes (decimal gigabytes: the smaller reading).
SHAREPOINT_TRANSFER_PER_APP = (400 * 10**9, 3_600.0)
# SharePoint REST (and CSOM) calls have no published cost, only that they "usually consume more resource
# units than Microsoft Graph APIs to achieve the same functionality": the sandbox charges twice Graph's
# figure for the like operation (a read 2, any write 4), so a client that counts REST as Graph is caught.
SHAREPOINT_REST_RU_READ = 2
SHAREPOINT_REST_RU_WRITE = 4
# "Specific Sharing APIs": 300 requests per 5 minutes per app per tenant (how-to-avoid-getting-throttled-or-
# blocked-in-sharepoint-online, application limits). Counted here: every call that changes sharing.
SHARING_API_PER_APP = (300, 300.0)

FAULT_KINDS = ("429", "503", "504", "drop", "slow")
DEFAULT_SIZE = 250
DEFAULT_ONEDRIVE_DELAY_S = 3.0
# Group-based licensing runs in the background in Entra ("the changes could take time to process",
# learn.microsoft.com/entra/identity/users/licensing-group-advanced): members get their licence this long
# after the change; non-zero by default so every rehearsal meets it.
DEFAULT_GROUP_LICENSING_DELAY_S = 2.0
# Removing a custom domain is "an asynchronous background task ... It may take up to 24 hours to complete"
# (learn.microsoft.com/entra/identity/users/domains-manage, FAQ): a few seconds by default, so every
# rehearsal waits for it, settable up to Microsoft's 24 hours.
DEFAULT_DOMAIN_REMOVAL_S = 5.0
MAX_DOMAIN_REMOVAL_S = 86_400.0
# Exchange creates a licensed user's mailbox in the background (learn.microsoft.com/exchange/recipients-in-
# exchange-online/create-user-mailboxes): a few seconds by default so every rehearsal waits for it.
DEFAULT_MAIL_PROVISION_DELAY_S = 2.0
# How long an import session's URL lives; the pages give no figure (mailbox-createimportsession shows only
# expirationDateTime), so a short one makes every long run renew it.
DEFAULT_MAIL_IMPORT_SESSION_S = 900.0
# Teams (learn.microsoft.com/graph/throttling-limits, "Microsoft Teams service limits"): requests per app per
# team or channel, team creations per app per tenant, message imports per app per channel. A new group answers
# 404 to team creation for a while (team-put-teams: up to 15 minutes); POST /teams finishes asynchronously.
TEAMS_PER_TEAM = (4, 1.0)
TEAMS_CREATE = (10, 1.0)
TEAMS_IMPORT = (5, 1.0)
DEFAULT_TEAMS_GROUP_DELAY_S = 2.0
DEFAULT_TEAMS_OPERATION_S = 1.0
DEFAULT_TEAMS_SITE_DELAY_S = 1.0
MIN_SIZE = 20
MAX_SIZE = 50_000


def identity_ru_for_users(user_count: int) -> int:
    """RU per 10 s for a tenant of this many users (< 50, 50-500, > 500)."""
    for below, ru in IDENTITY_RU_BY_SIZE:
        if user_count < below:
            return ru
    return IDENTITY_RU_LARGE


def _by_licences(table: tuple[tuple[int, int], ...], large: int, licences: int) -> int:
    for most, limit in table:
        if licences <= most:
            return limit
    return large


def sharepoint_ru_for_licences(licences: int) -> int:
    """SharePoint RU per minute per app for a tenant holding this many licences."""
    return _by_licences(SHAREPOINT_RU_BY_LICENCES, SHAREPOINT_RU_LARGE, licences)


def sharepoint_daily_for_licences(licences: int) -> int:
    """SharePoint RU per 24 hours per app for a tenant holding this many licences."""
    return _by_licences(SHAREPOINT_DAILY_BY_LICENCES, SHAREPOINT_DAILY_LARGE, licences)


def sharepoint_tenant_for_licences(licences: int) -> int:
    """SharePoint RU per 5 minutes for the whole tenant (every app) holding this many licences."""
    return _by_licences(SHAREPOINT_TENANT_BY_LICENCES, SHAREPOINT_TENANT_LARGE, licences)


@dataclass(frozen=True)
class Budget:
    """At most `limit` units in any sliding window of `seconds`."""

    limit: int
    seconds: float

    def __str__(self) -> str:
        secs = int(self.seconds) if self.seconds == int(self.seconds) else self.seconds
        return f"{self.limit}/{secs}"


@dataclass(frozen=True)
class Faults:
    """Probability (0..1) of each injected fault per Graph request."""

    r429: float = 0.0
    r503: float = 0.0
    r504: float = 0.0
    drop: float = 0.0
    slow: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"429": self.r429, "503": self.r503, "504": self.r504, "drop": self.drop, "slow": self.slow}

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> Faults:
        unknown = set(values) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(
                f"unknown fault kind {sorted(unknown)[0]!r} (expected one of {', '.join(FAULT_KINDS)})"
            )
        rates: dict[str, float] = {}
        for kind, rate in values.items():
            try:
                value = float(rate)
            except (TypeError, ValueError):
                raise ValueError(
                    f"fault rate for {kind} must be a number between 0 and 1, got {rate!r}"
                ) from None
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault rate for {kind} must be between 0 and 1, got {rate}")
            rates[kind] = value
        total = sum(rates.values())
        if total > 1.0:
            raise ValueError(f"fault rates add up to {total:g}; at most 1 in total")
        return cls(
            r429=rates.get("429", 0.0),
            r503=rates.get("503", 0.0),
            r504=rates.get("504", 0.0),
            drop=rates.get("drop", 0.0),
            slow=rates.get("slow", 0.0),
        )


@dataclass(frozen=True)
class Settings:
    """Everything `trustfold sandbox serve` can be told; None budgets mean Microsoft's defaults."""

    latency_ms: float = 0.0
    bandwidth_mbps: float | None = None
    faults: Faults = field(default_factory=Faults)
    write_budget: Budget = Budget(*WRITES_PER_APP)
    tenant_write_budget: Budget = Budget(*WRITES_PER_TENANT)
    # None: derived per tenant from its size (identity) or licence count (SharePoint).
    identity_ru: Budget | None = None
    sharepoint_ru: Budget | None = None
    # None: by licence count, or SHAREPOINT_TENANT_FACTOR minutes of a hand-set sharepoint_ru.
    sharepoint_tenant_ru: Budget | None = None
    # Bytes each way (ingress, egress) per app + tenant; settable so a test can meet it.
    sharepoint_transfer: Budget = Budget(*SHAREPOINT_TRANSFER_PER_APP)
    sharing_api: Budget = Budget(*SHARING_API_PER_APP)
    throttling: bool = True
    slow_seconds: float = 2.0
    # Eventual consistency: for this long after a create, addressing the new object by id answers 404.
    replication_lag_ms: float = 0.0
    # OneDrive: seconds between an accepted provisioning request and the site existing (SharePoint's timer
    # job takes minutes to hours; a few seconds keeps rehearsals honest without making them slow).
    onedrive_provision_delay_s: float = DEFAULT_ONEDRIVE_DELAY_S
    # Seconds between a group licence or licensed-group membership change and Entra processing the members.
    group_licensing_delay_s: float = DEFAULT_GROUP_LICENSING_DELAY_S
    # Seconds between an accepted DELETE (or forceDelete) of a domain and the domain being gone.
    domain_removal_s: float = DEFAULT_DOMAIN_REMOVAL_S
    # Outlook service limits (sandbox/mail_limits.py, throttling-limits "Outlook service limits"): requests
    # and bytes uploaded per app and mailbox, concurrent requests per app across its mailboxes.
    outlook_requests: Budget = Budget(10_000, 600.0)
    outlook_concurrency: int = 4
    outlook_upload: Budget = Budget(150 * 1024 * 1024, 300.0)
    # Milliseconds Exchange spends on each mailbox request (a concurrency slot is held meanwhile).
    mail_service_ms: float = 0.0
    mail_provision_delay_s: float = DEFAULT_MAIL_PROVISION_DELAY_S
    mail_import_session_s: float = DEFAULT_MAIL_IMPORT_SESSION_S
    # Application roles taken away from every tenant's app at start (admin consent not given for them).
    withhold_roles: tuple[str, ...] = ()
    seed: int = 1
    size: int = DEFAULT_SIZE
    # Licence seats (prepaidUnits.enabled) set over the generated ones: (tenant id or "*", SKU, units).
    seats: tuple[tuple[str, str, int], ...] = ()
    # Teams (sandbox/teams_api.py): limits, the new-group delay, POST /teams' async time, and whether every
    # app counts as approved for protected Teams APIs (Microsoft approves apps one by one: default no).
    teams_per_team: Budget = Budget(*TEAMS_PER_TEAM)
    teams_create: Budget = Budget(*TEAMS_CREATE)
    teams_import: Budget = Budget(*TEAMS_IMPORT)
    teams_group_delay_s: float = DEFAULT_TEAMS_GROUP_DELAY_S
    teams_operation_s: float = DEFAULT_TEAMS_OPERATION_S
    teams_site_delay_s: float = DEFAULT_TEAMS_SITE_DELAY_S
    teams_protected_api_approved: bool = False

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def public(self) -> dict[str, object]:
        """The settings as JSON for the admin API."""
        return {
            "latency_ms": self.latency_ms,
            "bandwidth_mbps": self.bandwidth_mbps,
            "faults": self.faults.as_dict(),
            "write_budget": str(self.write_budget),
            "identity_ru": str(self.identity_ru) if self.identity_ru else None,
            "sharepoint_ru": str(self.sharepoint_ru) if self.sharepoint_ru else None,
            "sharepoint_tenant_ru": str(self.sharepoint_tenant_ru) if self.sharepoint_tenant_ru else None,
            "sharepoint_transfer": str(self.sharepoint_transfer),
            "sharing_api": str(self.sharing_api),
            "throttling": self.throttling,
            "replication_lag_ms": self.replication_lag_ms,
            "onedrive_provision_delay_s": self.onedrive_provision_delay_s,
            "group_licensing_delay_s": self.group_licensing_delay_s,
            "domain_removal_s": self.domain_removal_s,
            "outlook_requests": str(self.outlook_requests),
            "outlook_concurrency": self.outlook_concurrency,
            "outlook_upload": str(self.outlook_upload),
            "mail_service_ms": self.mail_service_ms,
            "mail_provision_delay_s": self.mail_provision_delay_s,
            "mail_import_session_s": self.mail_import_session_s,
            "withhold_roles": list(self.withhold_roles),
            "seed": self.seed,
            "size": self.size,
            "seats": [f"{t}:{sku}={n}" for t, sku, n in self.seats],
            "teams_per_team": str(self.teams_per_team),
            "teams_create": str(self.teams_create),
            "teams_import": str(self.teams_import),
            "teams_group_delay_s": self.teams_group_delay_s,
            "teams_operation_s": self.teams_operation_s,
            "teams_site_delay_s": self.teams_site_delay_s,
            "teams_protected_api_approved": self.teams_protected_api_approved,
        }


_BUDGET_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*$")


def parse_budget(text: str, what: str = "budget") -> Budget:
    """'3000/150' -> Budget(3000, 150.0)."""
    m = _BUDGET_RE.match(str(text))
    if not m:
        raise ValueError(f"{what} must look like N/SECONDS (e.g. 3000/150), got {text!r}")
    limit, seconds = int(m.group(1)), float(m.group(2))
    if limit < 1:
        raise ValueError(f"{what} must allow at least 1 unit, got {text!r}")
    if not 0 < seconds <= 86_400:
        raise ValueError(f"{what} window must be between 0 and 86400 seconds, got {text!r}")
    return Budget(limit, seconds)


def parse_faults(text: str) -> Faults:
    """'429=0.10,503=0.02,drop=0.01' -> Faults. An empty string clears all faults."""
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        kind, sep, rate = part.partition("=")
        if not sep:
            raise ValueError(f"fault {part!r} must look like KIND=RATE (e.g. 429=0.10)")
        kind = kind.strip()
        if kind in values:
            raise ValueError(f"fault kind {kind!r} given twice")
        try:
            values[kind] = float(rate)
        except ValueError:
            raise ValueError(
                f"fault rate for {kind} must be a number between 0 and 1, got {rate.strip()!r}"
            ) from None
    return Faults.from_dict(values)


_SEAT_RE = re.compile(r"^(?:(?P<tenant>[0-9A-Fa-f-]{36}|\*):)?(?P<sku>[A-Za-z0-9_-]{3,64})=(?P<n>\d{1,8})$")


def parse_seats(text: str) -> tuple[tuple[str, str, int], ...]:
    """'STANDARDWOFFPACK_STUDENT=100,<tenant id>:STANDARDWOFFPACK_FACULTY=5' -> seats per tenant and SKU
    (no tenant: every tenant holding that SKU). An empty string sets none."""
    out: list[tuple[str, str, int]] = []
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        m = _SEAT_RE.match(part)
        if not m:
            raise ValueError(
                f"seats {part!r} must look like [TENANT-ID:]SKU=N (e.g. STANDARDWOFFPACK_STUDENT=100)"
            )
        out.append(((m.group("tenant") or "*").lower(), m.group("sku"), int(m.group("n"))))
    return tuple(out)


def parse_latency(value: float) -> float:
    if value < 0 or value > 60_000:
        raise ValueError(f"latency must be between 0 and 60000 ms, got {value:g}")
    return float(value)


def parse_bandwidth(value: float | None) -> float | None:
    if value is None:
        return None
    if value <= 0:
        raise ValueError(f"bandwidth must be a positive number of megabits per second, got {value:g}")
    return float(value)


def parse_size(value: int) -> int:
    if not MIN_SIZE <= value <= MAX_SIZE:
        raise ValueError(f"size must be between {MIN_SIZE} and {MAX_SIZE} users per academy, got {value}")
    return value


def parse_domain_removal(value: float) -> float:
    if not 0 <= value <= MAX_DOMAIN_REMOVAL_S:
        raise ValueError(f"domain removal must take between 0 and 86400 seconds (24 hours), got {value:g}")
    return float(value)

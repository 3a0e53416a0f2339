"""The trust as declared in config/: typed, immutable, validated field by field.

Cross-file rules (overlaps, duplicates, derived names) live in trust.load; these models check one file.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Literal, NamedTuple

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DOMAIN_RE = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
SLUG_RE = re.compile(r"^[a-z][a-z0-9]{1,9}$")
ENV_VAR_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
SKU_RE = re.compile(r"^[A-Z0-9_]{3,64}$")


def _guid(value: str) -> str:
    v = value.strip().lower()
    if not GUID_RE.match(v):
        raise ValueError(
            f"'{value}' is not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hex digits)"
        )
    return v


def _domain(value: str) -> str:
    v = value.strip().lower()
    if not DOMAIN_RE.match(v):
        raise ValueError(f"'{value}' is not a valid DNS domain name (e.g. hillside.sch.uk)")
    return v


def _slug(value: str) -> str:
    if not SLUG_RE.match(value):
        raise ValueError(
            f"'{value}' is not a safe code: 2-10 characters, lowercase letters and digits, "
            "starting with a letter"
        )
    return value


def _env_var(value: str) -> str:
    if not ENV_VAR_RE.match(value):
        raise ValueError(
            f"'{value}' is not an environment variable name (A-Z, 0-9, _; not starting with a digit)"
        )
    return value


def _private_cidr(value: object) -> ipaddress.IPv4Network:
    if isinstance(value, ipaddress.IPv4Network):
        return value
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        raise ValueError(f"'{value}' is not a valid CIDR ({exc})") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise ValueError(f"'{value}' must be an IPv4 CIDR")
    if not net.is_private or net.is_loopback or net.is_link_local:
        raise ValueError(
            f"'{value}' is not a private range (use 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)"
        )
    if net.prefixlen > 26 or net.prefixlen < 8:
        raise ValueError(f"'{value}' must be between /8 and /26 to hold the landing zone's subnets")
    return net


Guid = Annotated[str, AfterValidator(_guid)]
Domain = Annotated[str, AfterValidator(_domain)]
Slug = Annotated[str, AfterValidator(_slug)]
EnvVar = Annotated[str, AfterValidator(_env_var)]
PrivateCidr = Annotated[ipaddress.IPv4Network, BeforeValidator(_private_cidr)]
Sku = Annotated[str, Field(pattern=SKU_RE.pattern)]
Name = Annotated[str, Field(min_length=1, max_length=120)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class CredentialKind(StrEnum):
    client_secret = "client_secret"
    certificate = "certificate"
    managed_identity = "managed_identity"
    azure_cli = "azure_cli"


class CredentialRef(Strict):
    """How to authenticate to a tenant; references only, never values."""

    kind: CredentialKind
    client_id: Guid | None = None
    secret_env: EnvVar | None = Field(None, description="environment variable holding the client secret")
    certificate_path_env: EnvVar | None = Field(None, description="environment variable holding a PEM path")

    @model_validator(mode="after")
    def _complete(self) -> CredentialRef:
        if self.kind is CredentialKind.client_secret and not (self.client_id and self.secret_env):
            raise ValueError("kind client_secret needs client_id and secret_env (the variable's name)")
        if self.kind is CredentialKind.certificate and not (self.client_id and self.certificate_path_env):
            raise ValueError("kind certificate needs client_id and certificate_path_env")
        return self


class Contact(Strict):
    name: Name
    email: Annotated[
        str, Field(pattern=r"^[A-Za-z0-9._%+'\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$", max_length=254)
    ]
    phone: Annotated[str, Field(pattern=r"^\+?[0-9 ]{6,20}$")] | None = None


class TargetTenant(Strict):
    id: Guid
    domains: tuple[Domain, ...] = Field(min_length=1)
    primary_domain: Domain
    credential: CredentialRef

    @model_validator(mode="after")
    def _primary_declared(self) -> TargetTenant:
        if self.primary_domain not in self.domains:
            raise ValueError(
                f"primary_domain '{self.primary_domain}' must be one of domains {list(self.domains)}"
            )
        if len(set(self.domains)) != len(self.domains):
            raise ValueError("domains lists a domain twice")
        return self


class AzureSettings(Strict):
    location: Literal["uksouth", "ukwest"] = "uksouth"
    subscription_id: Guid
    environment: Annotated[str, Field(pattern=r"^[a-z]{2,5}$")] = "prod"
    hub_cidr: PrivateCidr


class Naming(Strict):
    """Templates; fields are listed in trust.naming. Azure resource names follow fixed Azure-safe rules."""

    user_upn: Annotated[str, Field(min_length=3, max_length=200)] = "{given}.{surname}@{domain}"
    group_display_name: Annotated[str, Field(min_length=3, max_length=200)] = "{academy_name} {name}"
    group_mail_nickname: Annotated[str, Field(min_length=3, max_length=100)] = "{academy}-{nickname}"


class Licences(Strict):
    staff: Sku
    pupil: Sku
    # direct: each user gets its SKU by assignLicense; group: the users phase licenses a staff and a pupils
    # group per academy (trust.names.entra_group) and users get the SKU by membership (Entra group-based
    # licensing), one write fewer per user.
    mode: Literal["direct", "group"] = "direct"


class Logging(Strict):
    retention_days: Annotated[int, Field(ge=30, le=730)] = 365


class TrustBudget(Strict):
    monthly_gbp: Annotated[int, Field(gt=0, le=10_000_000)]


class StateSettings(Strict):
    path: Annotated[str, Field(min_length=1, max_length=400)] = ".trustfold/state.db"


class EntraSettings(Strict):
    break_glass_group: Annotated[str, Field(min_length=3, max_length=120)] = "Trust break-glass accounts"
    # Trust groups no mapping may ever `match` (display names or object ids), beside the ones trustfold finds
    # itself: the break-glass group, role-assignable groups, conditional access exclusions.
    protected_groups: tuple[Annotated[str, Field(min_length=3, max_length=256)], ...] = ()


class TrustFile(Strict):
    name: Name
    code: Slug
    tenant: TargetTenant
    azure: AzureSettings
    naming: Naming = Naming()
    licences: Licences
    usage_location: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "GB"
    logging: Logging = Logging()
    security_contact: Contact
    budget: TrustBudget
    state: StateSettings = StateSettings()
    entra: EntraSettings = EntraSettings()


class AcademyKind(StrEnum):
    primary = "primary"
    secondary = "secondary"
    all_through = "all-through"
    special = "special"
    alternative_provision = "alternative-provision"


class LegacyTenant(Strict):
    id: Guid
    domains: tuple[Domain, ...] = Field(min_length=1)
    credential: CredentialRef

    @property
    def primary_domain(self) -> str:
        return self.domains[0]


class Network(Strict):
    cidr: PrivateCidr


class AcademyBudget(Strict):
    monthly_gbp: Annotated[int, Field(gt=0, le=1_000_000)]
    cost_centre: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9\-_/]{1,31}$")]


class RoleRule(Strict):
    """Which source users are pupils; everyone else enabled is staff. A real Graph user property."""

    property: Literal["employeeType", "jobTitle", "department", "companyName"] = "employeeType"
    pupil_values: tuple[Annotated[str, Field(min_length=1)], ...] = ("Pupil", "Student")


class UsersPhase(Strict):
    enabled: bool = True
    include_disabled: bool = False
    # A disabled account is carried disabled and without a licence unless this says otherwise.
    license_disabled: bool = False
    include_guests: bool = False
    roles: RoleRule = RoleRule()


class GroupsPhase(Strict):
    enabled: bool = True


class LibraryRef(Strict):
    site: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9\-]{0,49}$")]
    library: Annotated[str, Field(min_length=1, max_length=120)]


class LibraryMapping(Strict):
    source: LibraryRef
    target: LibraryRef


class LibraryMap(NamedTuple):
    source_site: str
    source_library: str
    target_site: str
    target_library: str


class SharingRules(Strict):
    """Which sharing the permissions phase may re-create in the trust tenant. Anonymous ("Anyone") links are
    forbidden by default: the DfE baseline allows no public data. Direct grants always travel (mapped).

    An academy's "people in your organization" link meant that one school. `organization_links: allow` (the
    default, and what older configs say) carries it at that width: a grant to the academy's people group,
    never a trust-wide link. `trust-wide` (explicit, reported as a finding) re-creates it as an organisation
    link of the trust tenant, which every academy's staff and pupils can open; `forbid` carries nothing."""

    anonymous_links: Literal["forbid", "allow"] = "forbid"
    organization_links: Literal["allow", "trust-wide", "forbid"] = "allow"


class AutoEngine(Strict):
    """`engine: auto` moves a drive's copies through the Migration API from either threshold up."""

    min_items: Annotated[int, Field(ge=1)] = 5_000
    min_gb: Annotated[float, Field(gt=0)] = 50.0


class Staging(Strict):
    """Where Migration API packages are staged: the academy's own staging storage (user-delegation SAS) or
    SharePoint-provided containers; `cleanup` deletes a package's containers once its import is verified."""

    containers: Literal["own", "provided"] = "own"
    cleanup: Literal["after-verify", "keep"] = "after-verify"
    # The landing zone's lifecycle rule deletes staged blobs this many days after they were written.
    delete_after_days: Annotated[int, Field(ge=1, le=30)] = 7


class FilesPhase(Strict):
    enabled: bool = True
    onedrive: bool = True
    libraries: tuple[LibraryMapping, ...] = ()
    max_file_size_gb: Annotated[int, Field(ge=1, le=250)] = 250
    sharing: SharingRules = SharingRules()
    # Which engine moves the bytes (issue 16): Graph uploads, or SharePoint's Migration API.
    engine: Literal["graph", "migration-api", "auto"] = "graph"
    auto: AutoEngine = AutoEngine()
    staging: Staging = Staging()

    @property
    def library_maps(self) -> tuple[LibraryMap, ...]:
        return tuple(
            LibraryMap(m.source.site, m.source.library, m.target.site, m.target.library)
            for m in self.libraries
        )


ADDRESS_RE = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(.+)$")


def _address(value: str) -> str:
    v = value.strip().lower()
    m = ADDRESS_RE.match(v)
    if not m or len(v) > 254 or not DOMAIN_RE.match(m.group(2)):
        raise ValueError(f"'{value}' is not an email address (local@domain, e.g. office@hillside.sch.uk)")
    return v


Address = Annotated[str, AfterValidator(_address)]


class SharedMailboxMap(Strict):
    """A shared mailbox of the academy's tenant (`source`, its address there) and the trust's shared mailbox
    its mail goes into (`target`). Microsoft Graph cannot create a shared mailbox, so the trust's is made
    first in the Microsoft 365 admin centre (Teams & groups > Shared mailboxes) and named here."""

    source: Address
    target: Address


class MailPhase(Strict):
    shared_mailboxes: tuple[SharedMailboxMap, ...] = ()


class Phases(Strict):
    users: UsersPhase = UsersPhase()
    groups: GroupsPhase = GroupsPhase()
    files: FilesPhase = FilesPhase()
    mail: MailPhase = MailPhase()


class DnsZone(Strict):
    """An Azure DNS zone the trust hosts for one academy domain: infra declares the verification TXT."""

    zone: Domain
    resource_group: Annotated[str, Field(pattern=r"^[A-Za-z0-9._\-()]{1,90}$")]
    verification_txt: Annotated[str, Field(pattern=r"^MS=ms[0-9]{8}$")] | None = Field(
        None, description="the value `trustfold run --phase domain` prints; infra publishes it when set"
    )
    keep_txt: tuple[Annotated[str, Field(min_length=1, max_length=255)], ...] = Field(
        (), description="TXT values already at the zone apex (SPF, ...): the record set declares them too"
    )


class DomainSettings(Strict):
    keep_academy_domain: bool = False
    dns_zone: DnsZone | None = None


class AcademyFile(Strict):
    code: Slug
    name: Name
    kind: AcademyKind
    urn: Annotated[int, Field(ge=100000, le=999999, description="DfE unique reference number, six digits")]
    wave: Annotated[int, Field(ge=1, le=99)]
    legacy_tenant: LegacyTenant
    network: Network
    budget: AcademyBudget
    it_contact: Contact
    phases: Phases = Phases()
    domains: DomainSettings = DomainSettings()

    @property
    def files(self) -> FilesView:
        f = self.phases.files
        return FilesView(
            enabled=f.enabled,
            onedrive=f.onedrive,
            libraries=f.library_maps,
            max_file_size_gb=f.max_file_size_gb,
            engine=f.engine,
            auto_min_items=f.auto.min_items,
            auto_min_bytes=int(f.auto.min_gb * 1024**3),
            staging_containers=f.staging.containers,
            staging_cleanup=f.staging.cleanup,
        )


class FilesView(NamedTuple):
    enabled: bool
    onedrive: bool
    libraries: tuple[LibraryMap, ...]
    max_file_size_gb: int
    engine: str = "graph"
    auto_min_items: int = 5_000
    auto_min_bytes: int = 50 * 1024**3
    staging_containers: str = "own"
    staging_cleanup: str = "after-verify"

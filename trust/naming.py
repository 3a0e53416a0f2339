"""Every name trustfold forms, in the trust tenant and in Azure. Nothing outside trust/ invents a name."""

from __future__ import annotations

import hashlib
import re
import string
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trust.model import AcademyFile, TrustFile

UPN_FIELDS = frozenset({"given", "surname", "initial", "nickname", "academy", "trust", "domain"})
GROUP_NAME_FIELDS = frozenset({"academy", "academy_upper", "academy_name", "name"})
MAIL_NICKNAME_FIELDS = frozenset({"academy", "trust", "nickname"})

# Letters NFKD cannot decompose to ASCII, spelt as UK schools' MIS exports usually spell them.
_TRANSLIT = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "þ": "th",
        "Þ": "Th",
        "œ": "oe",
        "Œ": "OE",
        "ı": "i",
    }
)
_UPN_DROP = re.compile(r"[^a-z0-9.\-_]")
_NICK_DROP = re.compile(r"[^a-z0-9\-_]")


def template_fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}


def ascii_fold(text: str) -> str:
    """'Zoë O'Connor-Brontë' -> 'Zoe O'Connor-Bronte': accents removed, letters kept."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_TRANSLIT))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).encode("ascii", "ignore").decode()


def upn_part(text: str) -> str:
    """A name fragment safe in a UPN local part. Apostrophes and spaces go (o'brien -> obrien): house rule."""
    folded = ascii_fold(text).lower().replace(" ", "")
    return _UPN_DROP.sub("", folded)


def _tidy_local(local: str) -> str:
    local = re.sub(r"\.{2,}", ".", local).strip(".-_")
    return local[:64].rstrip(".-_")


def short_hash(*parts: str, length: int = 6) -> str:
    """Deterministic suffix that makes globally unique Azure names stable across runs and machines."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class Names:
    trust: TrustFile

    # ---- identities in the trust tenant -------------------------------------------------------------
    def user_upn(
        self,
        academy: AcademyFile,
        given_name: str | None,
        surname: str | None,
        mail_nickname: str | None,
        *,
        suffix: int = 0,
        source_id: str | None = None,
    ) -> str:
        """The target UPN by the trust's template; `suffix` > 0 disambiguates a collision (jo.bloggs2).

        A local part is never empty nor punctuation only: when the names and nickname leave nothing (a
        nickname of '.', names in a script with no ASCII letters), it falls back to `user-<hash of the source
        id>`, the same on every run and machine.
        """
        given, sur = _tidy_local(upn_part(given_name or "")), _tidy_local(upn_part(surname or ""))
        nick = _tidy_local(upn_part(mail_nickname or ""))
        if not given or not sur:
            given, sur = nick, nick
        values = {
            "given": given,
            "surname": sur,
            "initial": given[:1],
            "nickname": nick,
            "academy": academy.code,
            "trust": self.trust.code,
            "domain": self.trust.tenant.primary_domain,
        }
        rendered = self.trust.naming.user_upn.format(**values)
        local, _, domain = rendered.rpartition("@")
        local = _tidy_local(_UPN_DROP.sub("", local.lower())) or nick or self._fallback_local(source_id)
        if suffix:
            local = f"{local[: 64 - len(str(suffix + 1))]}{suffix + 1}"
        return f"{local}@{domain.lower()}"

    def academy_domain_upn(self, trust_upn: str, domain: str, *, suffix: int = 0) -> str:
        """A trust user's UPN once the academy's own domain has moved into the trust tenant: the local
        part the naming template gave it, on the academy domain (`suffix` > 0 disambiguates: jo.bloggs2)."""
        local = trust_upn.rpartition("@")[0].lower()
        if suffix:
            local = f"{local[: 64 - len(str(suffix + 1))]}{suffix + 1}"
        return f"{local}@{domain.lower()}"

    @staticmethod
    def _fallback_local(source_id: str | None) -> str:
        # A hash, not the id itself: source ids are hostile input and may hold characters a UPN refuses.
        return f"user-{short_hash(source_id, length=8)}" if source_id else "user"

    def upn_domain(self, academy: AcademyFile) -> str:
        probe = self.trust.naming.user_upn.format(
            given="a",
            surname="b",
            initial="a",
            nickname="a",
            academy=academy.code,
            trust=self.trust.code,
            domain=self.trust.tenant.primary_domain,
        )
        return probe.rpartition("@")[2].lower()

    def group_display_name(self, academy: AcademyFile, source_display_name: str) -> str:
        name = self.trust.naming.group_display_name.format(
            academy=academy.code,
            academy_upper=academy.code.upper(),
            academy_name=academy.name,
            name=source_display_name.strip(),
        )
        return " ".join(name.split())[:256]

    def group_mail_nickname(self, academy: AcademyFile, source_mail_nickname: str) -> str:
        nick = _NICK_DROP.sub("", ascii_fold(source_mail_nickname).lower().replace(" ", "-")) or "group"
        rendered = self.trust.naming.group_mail_nickname.format(
            academy=academy.code, trust=self.trust.code, nickname=nick
        )
        return _NICK_DROP.sub("", rendered.lower())[:64].strip("-") or f"{academy.code}-group"

    # ---- Entra structure (infra) --------------------------------------------------------------------
    def administrative_unit(self, academy: AcademyFile) -> str:
        return f"{academy.name} ({academy.code.upper()})"

    def entra_group(self, academy: AcademyFile, purpose: str) -> tuple[str, str]:
        """(display name, mailNickname) of the academy's staff / pupils / it-admins group, or its `everyone`
        group: the academy's migrated people, which academy-wide sharing is granted to (permissions phase)."""
        labels = {"staff": "Staff", "pupils": "Pupils", "it-admins": "IT Admins", "everyone": "Everyone"}
        return f"{academy.name} {labels[purpose]}", f"{self.trust.code}-{academy.code}-{purpose}"

    def conditional_access_policy(self, purpose: str) -> str:
        return f"{self.trust.code.upper()} - {purpose}"

    # ---- Azure: trust platform ----------------------------------------------------------------------
    @property
    def _env(self) -> str:
        return self.trust.azure.environment

    def _unique(self, *parts: str, length: int = 6) -> str:
        return short_hash(self.trust.azure.subscription_id, self.trust.code, self._env, *parts, length=length)

    def platform_resource_group(self) -> str:
        return f"rg-{self.trust.code}-platform-{self._env}"

    def log_analytics_workspace(self) -> str:
        return f"log-{self.trust.code}-{self._env}-{self._unique('log', length=4)}"

    def platform_key_vault(self) -> str:
        return f"kv-{self.trust.code}-plat-{self._unique('kv', length=5)}"[:24]

    def hub_network(self) -> str:
        return f"vnet-{self.trust.code}-hub-{self._env}"

    def action_group(self) -> tuple[str, str]:
        return f"ag-{self.trust.code}-security-{self._env}", f"{self.trust.code}sec"[:12]

    def trust_budget(self) -> str:
        return f"budget-{self.trust.code}-{self._env}"

    # ---- Azure: academy landing zone ----------------------------------------------------------------
    def resource_group(self, academy: AcademyFile) -> str:
        return f"rg-{self.trust.code}-{academy.code}-{self._env}"

    def spoke_network(self, academy: AcademyFile) -> str:
        return f"vnet-{self.trust.code}-{academy.code}-{self._env}"

    def subnet(self, purpose: str) -> str:
        return f"snet-{purpose}"

    def network_security_group(self, academy: AcademyFile | None, purpose: str) -> str:
        scope = academy.code if academy else "hub"
        return f"nsg-{self.trust.code}-{scope}-{purpose}"

    def peering(self, from_name: str, to_name: str) -> str:
        return f"peer-{from_name}-to-{to_name}"[:80].rstrip("-.")

    def storage_account(self, academy: AcademyFile) -> str:
        prefix = f"st{self.trust.code}{academy.code}"[:18]
        return prefix + self._unique("st", academy.code)

    def staging_storage_account(self, academy: AcademyFile) -> str:
        """The academy's Migration API staging account (bulk file engine): transient package copies only."""
        prefix = f"mig{self.trust.code}{academy.code}"[:18]
        return prefix + self._unique("mig", academy.code)

    def key_vault(self, academy: AcademyFile) -> str:
        return f"kv-{(self.trust.code + academy.code)[:13]}-{self._unique('kv', academy.code, length=6)}"

    def academy_budget(self, academy: AcademyFile) -> str:
        return f"budget-{self.trust.code}-{academy.code}"

    def storage_container(self, purpose: str) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", ascii_fold(purpose).lower()).strip("-")
        return re.sub(r"-{2,}", "-", slug)[:63].strip("-").rjust(3, "x")

    def tags(self, academy: AcademyFile) -> dict[str, str]:
        return {
            "academy": academy.code,
            "dfe-urn": str(academy.urn),
            "cost-centre": academy.budget.cost_centre,
            "owner": academy.it_contact.email,
            "wave": str(academy.wave),
            "managed-by": "trustfold",
        }

    def platform_tags(self) -> dict[str, str]:
        return {
            "academy": "platform",
            "dfe-urn": "n/a",
            "cost-centre": f"{self.trust.code.upper()}-PLATFORM",
            "owner": self.trust.security_contact.email,
            "wave": "0",
            "managed-by": "trustfold",
        }

    def academy_azure_names(self, academy: AcademyFile) -> dict[str, tuple[str, str]]:
        """Every Azure name of the landing zone: field -> (rule kind, name). Checked at load time."""
        return {
            "resource_group": ("resource_group", self.resource_group(academy)),
            "spoke_network": ("virtual_network", self.spoke_network(academy)),
            "storage_account": ("storage_account", self.storage_account(academy)),
            "key_vault": ("key_vault", self.key_vault(academy)),
            "budget": ("budget", self.academy_budget(academy)),
            "nsg": ("network_security_group", self.network_security_group(academy, "workloads")),
            "peering": ("peering", self.peering(self.spoke_network(academy), self.hub_network())),
        }

    def platform_azure_names(self) -> dict[str, tuple[str, str]]:
        ag, ag_short = self.action_group()
        return {
            "resource_group": ("resource_group", self.platform_resource_group()),
            "log_analytics_workspace": ("log_analytics_workspace", self.log_analytics_workspace()),
            "key_vault": ("key_vault", self.platform_key_vault()),
            "hub_network": ("virtual_network", self.hub_network()),
            "action_group": ("action_group", ag),
            "action_group_short": ("action_group_short", ag_short),
            "budget": ("budget", self.trust_budget()),
        }

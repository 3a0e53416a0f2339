"""load_trust(config_dir): read config/ into one validated, immutable Trust, or raise one ConfigError."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ValidationError

from trust import azure_rules
from trust.errors import ConfigError
from trust.model import AcademyFile, TrustFile
from trust.naming import GROUP_NAME_FIELDS, MAIL_NICKNAME_FIELDS, UPN_FIELDS, Names, template_fields
from trust.secrets_scan import refuse_secrets
from trust.yaml_source import YamlDocument, read_yaml

MAX_ACADEMIES = 500


class TenantRef(NamedTuple):
    id: str
    role: Literal["target", "source"]
    academy: str | None
    domains: tuple[str, ...]


@dataclass(frozen=True)
class Trust:
    """The whole trust: its own settings (attributes of TrustFile) plus academies and naming."""

    settings: TrustFile
    academies: tuple[AcademyFile, ...]
    config_dir: Path
    files: dict[str, Path] = field(default_factory=dict, compare=False)

    def __getattr__(self, name: str) -> Any:
        # trust.name, trust.tenant, trust.licences ... read straight from the validated trust.yaml.
        if name in TrustFile.model_fields:
            return getattr(self.settings, name)
        raise AttributeError(name)

    @property
    def names(self) -> Names:
        return Names(self.settings)

    def academy(self, code: str) -> AcademyFile:
        for a in self.academies:
            if a.code == code:
                return a
        known = ", ".join(a.code for a in self.academies) or "none"
        raise ConfigError(self.config_dir / "academies", f"no academy with code '{code}' (known: {known})")

    def tenants(self) -> tuple[TenantRef, ...]:
        target = TenantRef(self.settings.tenant.id, "target", None, tuple(self.settings.tenant.domains))
        return (
            target,
            *(
                TenantRef(a.legacy_tenant.id, "source", a.code, tuple(a.legacy_tenant.domains))
                for a in self.academies
            ),
        )

    def waves(self) -> dict[int, tuple[AcademyFile, ...]]:
        return {w: tuple(g) for w, g in itertools.groupby(self.academies, key=lambda a: a.wave)}

    def public_dict(self) -> dict[str, Any]:
        """The declaration as plain JSON-able data (no secrets exist in config to leak)."""
        return {
            "trust": self.settings.model_dump(mode="json"),
            "academies": [a.model_dump(mode="json") for a in self.academies],
        }


def _explain(err: Mapping[str, Any], model: type[BaseModel] | None = None) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; unknown keys are refused so typos are never ignored)"
    if kind == "missing":
        return "required field is missing"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping, got {type(err.get('input')).__name__}"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _validate(model: type[BaseModel], doc: YamlDocument) -> Any:
    if not isinstance(doc.data, dict):
        raise ConfigError(
            doc.file, f"top level must be a mapping of keys, got {type(doc.data).__name__}", line=1
        )
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        return_field = ".".join(str(p) for p in loc) or None
        raise ConfigError(doc.file, _explain(err), line=doc.line_of(loc), field=return_field) from None


def _read(path: Path, model: type[BaseModel]) -> tuple[Any, YamlDocument]:
    doc = read_yaml(path)
    if isinstance(doc.data, dict):
        refuse_secrets(doc)
    return _validate(model, doc), doc


def _check_templates(trust: TrustFile, doc: YamlDocument) -> None:
    checks = (
        ("user_upn", UPN_FIELDS),
        ("group_display_name", GROUP_NAME_FIELDS),
        ("group_mail_nickname", MAIL_NICKNAME_FIELDS),
    )
    for key, allowed in checks:
        template = getattr(trust.naming, key)
        try:
            used = template_fields(template)
        except ValueError as exc:
            raise ConfigError(
                doc.file,
                f"template does not parse: {exc}",
                line=doc.line_of(("naming", key)),
                field=f"naming.{key}",
            ) from None
        unknown = sorted(f for f in used if f not in allowed)
        if unknown or any(not f for f in used):
            raise ConfigError(
                doc.file,
                f"unknown template field(s) {unknown or ['{}']}; allowed: "
                f"{', '.join('{' + f + '}' for f in sorted(allowed))}",
                line=doc.line_of(("naming", key)),
                field=f"naming.{key}",
            )
    if trust.naming.user_upn.count("@") != 1:
        raise ConfigError(
            doc.file,
            "UPN template must contain exactly one '@' (local@domain)",
            line=doc.line_of(("naming", "user_upn")),
            field="naming.user_upn",
        )
    for key in ("given", "nickname", "surname", "initial"):
        if key in template_fields(trust.naming.user_upn.partition("@")[2]):
            raise ConfigError(
                doc.file,
                f"the domain part of the UPN template may not use {{{key}}}",
                line=doc.line_of(("naming", "user_upn")),
                field="naming.user_upn",
            )


def load_trust(config_dir: Path | str) -> Trust:
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        raise ConfigError(config_dir, "config directory not found (set --config-dir or TRUSTFOLD_CONFIG_DIR)")
    trust_path = config_dir / "trust.yaml"
    if not trust_path.is_file():
        raise ConfigError(trust_path, "trust.yaml not found; it declares the trust and its tenant")
    trust_file, trust_doc = _read(trust_path, TrustFile)
    _check_templates(trust_file, trust_doc)
    names = Names(trust_file)

    academy_dir = config_dir / "academies"
    paths = (
        sorted(p for p in academy_dir.glob("*") if p.suffix in (".yaml", ".yml"))
        if academy_dir.is_dir()
        else []
    )
    if len(paths) > MAX_ACADEMIES:
        raise ConfigError(academy_dir, f"{len(paths)} academy files; at most {MAX_ACADEMIES} are supported")
    academies: list[AcademyFile] = []
    files: dict[str, Path] = {}
    docs: dict[str, YamlDocument] = {}
    seen_tenants: dict[str, str] = {trust_file.tenant.id: str(trust_path)}
    seen_urns: dict[int, str] = {}
    seen_domains: dict[str, str] = {d: str(trust_path) for d in trust_file.tenant.domains}
    for path in paths:
        academy, doc = _read(path, AcademyFile)
        if academy.code != path.stem:
            raise ConfigError(
                path,
                f"code '{academy.code}' must match the file name '{path.stem}'",
                line=doc.line_of(("code",)),
                field="code",
            )
        if academy.code in files:
            raise ConfigError(
                path,
                f"duplicate academy code '{academy.code}' (also in {files[academy.code]})",
                line=doc.line_of(("code",)),
                field="code",
            )
        tid = academy.legacy_tenant.id
        if tid in seen_tenants:
            raise ConfigError(
                path,
                f"tenant id {tid} is already declared in {seen_tenants[tid]}",
                line=doc.line_of(("legacy_tenant", "id")),
                field="legacy_tenant.id",
            )
        if academy.urn in seen_urns:
            raise ConfigError(
                path,
                f"DfE URN {academy.urn} is already declared in {seen_urns[academy.urn]}",
                line=doc.line_of(("urn",)),
                field="urn",
            )
        for i, d in enumerate(academy.legacy_tenant.domains):
            if d in seen_domains:
                raise ConfigError(
                    path,
                    f"domain {d} is already declared in {seen_domains[d]} (a domain lives in "
                    "one tenant only)",
                    line=doc.line_of(("legacy_tenant", "domains", i)),
                    field=f"legacy_tenant.domains.{i}",
                )
            seen_domains[d] = str(path)
        zone = academy.domains.dns_zone
        if zone is not None and zone.zone not in academy.legacy_tenant.domains:
            raise ConfigError(
                path,
                f"'{zone.zone}' is not one of this academy's legacy_tenant.domains "
                f"({', '.join(academy.legacy_tenant.domains)})",
                line=doc.line_of(("domains", "dns_zone", "zone")),
                field="domains.dns_zone.zone",
            )
        seen_tenants[tid] = str(path)
        seen_urns[academy.urn] = str(path)
        files[academy.code] = path
        docs[academy.code] = doc
        academies.append(academy)

    _check_networks(trust_file, trust_path, trust_doc, academies, files, docs)
    _check_shared_mailboxes(trust_file, academies, files, docs)
    _check_names(trust_file, names, trust_path, trust_doc, academies, files, docs)
    academies.sort(key=lambda a: (a.wave, a.code))
    return Trust(settings=trust_file, academies=tuple(academies), config_dir=config_dir, files=files)


def _check_shared_mailboxes(
    trust: TrustFile, academies: list[AcademyFile], files: dict[str, Path], docs: dict[str, YamlDocument]
) -> None:
    """phases.mail.shared_mailboxes: each source in the academy's own tenant, each target in the trust's, and
    no mailbox named twice. One trust mailbox filled from two sources (two academies' offices) would show each
    school's mail to the other's staff: refused, never merged."""
    taken: dict[str, str] = {}
    for a in academies:
        seen: set[str] = set()
        for i, m in enumerate(a.phases.mail.shared_mailboxes):
            where = ("phases", "mail", "shared_mailboxes", i)

            def fail(key: str, message: str, a: AcademyFile = a, where: tuple[Any, ...] = where) -> None:
                raise ConfigError(
                    files[a.code],
                    message,
                    line=docs[a.code].line_of((*where, key)),
                    field=".".join(str(p) for p in (*where, key)),
                )

            own = m.source.rsplit("@", 1)[1]
            if own not in a.legacy_tenant.domains and not own.endswith(".onmicrosoft.com"):
                fail(
                    "source",
                    f"'{m.source}' is not at one of this academy's legacy_tenant.domains "
                    f"({', '.join(a.legacy_tenant.domains)}) or its onmicrosoft.com domain",
                )
            if m.source in seen:
                fail("source", f"'{m.source}' is named twice")
            seen.add(m.source)
            dest = m.target.rsplit("@", 1)[1]
            if dest not in trust.tenant.domains and not dest.endswith(".onmicrosoft.com"):
                fail(
                    "target",
                    f"'{m.target}' is not at one of the trust tenant's domains "
                    f"({', '.join(trust.tenant.domains)}): name the trust's shared mailbox",
                )
            if m.target in taken:
                fail(
                    "target",
                    f"'{m.target}' already receives {taken[m.target]}: one trust shared mailbox per source "
                    "(merging two would show each one's mail to the other's members)",
                )
            taken[m.target] = f"{m.source} ({files[a.code].name})"


def _check_networks(
    trust: TrustFile,
    trust_path: Path,
    trust_doc: YamlDocument,
    academies: list[AcademyFile],
    files: dict[str, Path],
    docs: dict[str, YamlDocument],
) -> None:
    hub = trust.azure.hub_cidr
    for i, a in enumerate(academies):
        net = a.network.cidr
        line = docs[a.code].line_of(("network", "cidr"))
        if net.overlaps(hub):
            raise ConfigError(
                files[a.code],
                f"{net} overlaps the hub network {hub} (azure.hub_cidr in {trust_path.name})",
                line=line,
                field="network.cidr",
            )
        for other in academies[:i]:
            if net.overlaps(other.network.cidr):
                raise ConfigError(
                    files[a.code],
                    f"{net} overlaps {other.network.cidr} of academy '{other.code}' ({files[other.code]})",
                    line=line,
                    field="network.cidr",
                )


def _check_names(
    trust: TrustFile,
    names: Names,
    trust_path: Path,
    trust_doc: YamlDocument,
    academies: list[AcademyFile],
    files: dict[str, Path],
    docs: dict[str, YamlDocument],
) -> None:
    for _key, (kind, name) in names.platform_azure_names().items():
        problem = azure_rules.check(kind, name)
        if problem:
            raise ConfigError(
                trust_path,
                f"derived {kind.replace('_', ' ')} name '{name}' {problem}; shorten the trust code",
                line=trust_doc.line_of(("code",)),
                field="code",
            )
    taken: dict[str, str] = {}
    for a in academies:
        doc, path = docs[a.code], files[a.code]
        domain = names.upn_domain(a)
        if domain not in trust.tenant.domains:
            raise ConfigError(
                trust_path,
                f"UPN template gives domain '{domain}' for academy '{a.code}', which the "
                f"trust tenant does not declare (tenant.domains: {', '.join(trust.tenant.domains)})",
                line=trust_doc.line_of(("naming", "user_upn")),
                field="naming.user_upn",
            )
        for _key, (kind, name) in names.academy_azure_names(a).items():
            problem = azure_rules.check(kind, name)
            if problem:
                raise ConfigError(
                    path,
                    f"derived {kind.replace('_', ' ')} name '{name}' {problem}",
                    line=doc.line_of(("code",)),
                    field="code",
                )
            if kind in ("storage_account", "key_vault"):
                if name in taken:
                    raise ConfigError(
                        path,
                        f"derived {kind} name '{name}' clashes with academy {taken[name]}",
                        line=doc.line_of(("code",)),
                        field="code",
                    )
                taken[name] = a.code
        nick = names.group_mail_nickname(a, "probe")
        problem = azure_rules.check("mail_nickname", nick)
        if problem:
            raise ConfigError(
                trust_path,
                f"group mailNickname template gives '{nick}', which {problem}",
                line=trust_doc.line_of(("naming", "group_mail_nickname")),
                field="naming.group_mail_nickname",
            )

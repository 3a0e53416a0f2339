"""A corpus of malformed configs: each exits 2 with one line naming the file and field, no traceback, fast,
and leaves no state behind."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.main import run

CONFIG = Path(__file__).resolve().parents[2] / "config"
Mutation = Callable[[Path], None]


def edit(rel: str, old: str, new: str, count: int = 1) -> Mutation:
    def apply(cfg: Path) -> None:
        p = cfg / rel
        text = p.read_text()
        assert old in text, f"corpus case out of date: {old!r} not in {rel}"
        p.write_text(text.replace(old, new, count))

    return apply


def write(rel: str, content: str | bytes) -> Mutation:
    def apply(cfg: Path) -> None:
        p = cfg / rel
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)

    return apply


def duplicate_academy(new_code: str, *edits: tuple[str, str]) -> Mutation:
    def apply(cfg: Path) -> None:
        text = (cfg / "academies" / "oakwood.yaml").read_text().replace("code: oakwood", f"code: {new_code}")
        for old, new in edits:
            text = text.replace(old, new)
        (cfg / "academies" / f"{new_code}.yaml").write_text(text)

    return apply


T, H, OAK = "trust.yaml", "academies/hillside.yaml", "academies/oakwood.yaml"
BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b]\n"
)

# (id, mutation, file named in the message, field or phrase named in the message)
CORPUS: list[tuple[str, Mutation, str, str]] = [
    ("yaml-does-not-parse", edit(H, "wave: 1", "wave: [1"), "hillside.yaml", "YAML does not parse"),
    ("empty-file", write(H, ""), "hillside.yaml", "empty"),
    ("only-comments", write(H, "# nothing\n"), "hillside.yaml", "no YAML document"),
    ("top-level-list", write(H, "- code: hillside\n"), "hillside.yaml", "top level must be a mapping"),
    ("top-level-scalar", write(T, "just a string\n"), "trust.yaml", "top level must be a mapping"),
    ("unknown-key-typo", edit(H, "wave: 1", "wave: 1\nwaev: 2"), "hillside.yaml", "waev"),
    (
        "unknown-nested-key",
        edit(T, "  retention_days: 365", "  retention_days: 365\n  retension: 1"),
        "trust.yaml",
        "logging.retension",
    ),
    ("not-utf8", write(H, b"code: hillside\nname: Caf\xe9\n"), "hillside.yaml", "UTF-8"),
    ("alias-bomb", write(H, BOMB), "hillside.yaml", "aliases"),
    ("oversized", write(H, "# " + "x" * 300_000 + "\n"), "hillside.yaml", "bytes"),
    ("duplicate-key", edit(H, "wave: 1", "wave: 1\nwave: 2"), "hillside.yaml", "duplicate key"),
    ("code-not-file-name", edit(H, "code: hillside", "code: hillsid"), "hillside.yaml", "code"),
    ("unsafe-code", edit(H, "code: hillside", "code: Hill Side"), "hillside.yaml", "code"),
    (
        "duplicate-tenant-id",
        duplicate_academy(
            "copy",
            ("urn: 147730", "urn: 147731"),
            ("10.1.6.0/24", "10.1.8.0/24"),
            ("oakwood.sch.uk", "copy.sch.uk"),
        ),
        "copy.yaml",
        "legacy_tenant.id",
    ),
    (
        "tenant-id-is-trust",
        edit(H, "1a2b3c4d-0001-4e5f-8a9b-0c1d2e3f4a51", "6f1c2a4e-8b7d-4c3e-9a10-2b5d7e9f0a11"),
        "hillside.yaml",
        "legacy_tenant.id",
    ),
    ("duplicate-urn", edit(OAK, "urn: 147730", "urn: 145201"), "oakwood.yaml", "urn"),
    (
        "duplicate-domain",
        edit(OAK, "[oakwood.sch.uk]", "[hillsideacademy.org.uk]"),
        "oakwood.yaml",
        "domains",
    ),
    (
        "tenant-id-not-guid",
        edit(H, "1a2b3c4d-0001-4e5f-8a9b-0c1d2e3f4a51", "hillside-tenant"),
        "hillside.yaml",
        "legacy_tenant.id",
    ),
    (
        "malformed-domain",
        edit(H, "[hillsideacademy.org.uk]", "[hillside_academy]"),
        "hillside.yaml",
        "domains",
    ),
    ("cidr-malformed", edit(H, "10.1.0.0/22", "10.1.0.300/22"), "hillside.yaml", "network.cidr"),
    ("cidr-host-bits", edit(H, "10.1.0.0/22", "10.1.0.5/22"), "hillside.yaml", "network.cidr"),
    ("cidr-public", edit(H, "10.1.0.0/22", "8.8.8.0/24"), "hillside.yaml", "not a private range"),
    ("cidr-overlaps-academy", edit(OAK, "10.1.6.0/24", "10.1.0.0/24"), "oakwood.yaml", "overlaps"),
    ("cidr-overlaps-hub", edit(OAK, "10.1.6.0/24", "10.0.1.0/24"), "oakwood.yaml", "hub"),
    (
        "upn-template-unknown-field",
        edit(T, "{given}.{surname}@{domain}", "{first}.{surname}@{domain}"),
        "trust.yaml",
        "naming.user_upn",
    ),
    (
        "upn-template-undeclared-domain",
        edit(T, "{given}.{surname}@{domain}", "{given}.{surname}@{academy}.example"),
        "trust.yaml",
        "does not declare",
    ),
    (
        "upn-template-no-at",
        edit(T, "{given}.{surname}@{domain}", "{given}.{surname}"),
        "trust.yaml",
        "naming.user_upn",
    ),
    (
        "primary-domain-undeclared",
        edit(T, "primary_domain: northernlights.org.uk", "primary_domain: other.org.uk"),
        "trust.yaml",
        "primary_domain",
    ),
    (
        "group-template-unknown-field",
        edit(T, '"{academy_upper} {name}"', '"{academy_upper} {title}"'),
        "trust.yaml",
        "naming.group_display_name",
    ),
    (
        "client-secret-pasted",
        edit(
            H,
            "secret_env: TRUSTFOLD_HILLSIDE_CLIENT_SECRET",
            "client_secret: abc8Q~Xyz0123456789abcdefghijklmnopqrstuv",
        ),
        "hillside.yaml",
        "secret",
    ),
    (
        "pem-pasted",
        edit(T, "name: Priya Shah", 'name: "-----BEGIN PRIVATE KEY-----MIIE"'),
        "trust.yaml",
        "PEM",
    ),
    (
        "connection-string",
        edit(H, "cost_centre: NLLT-HILL", 'cost_centre: "DefaultEndpointsProtocol=https;AccountKey=abc"'),
        "hillside.yaml",
        "connection string",
    ),
    ("password-key", edit(H, "wave: 1", "wave: 1\npassword: Summer2026!"), "hillside.yaml", "password"),
    (
        "jwt-pasted",
        edit(H, "name: Tom Hargreaves", "name: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig"),
        "hillside.yaml",
        "web token",
    ),
    ("wave-out-of-range", edit(H, "wave: 1", "wave: 0"), "hillside.yaml", "wave"),
    ("urn-not-six-digits", edit(H, "urn: 145201", "urn: 14520"), "hillside.yaml", "urn"),
    ("kind-unknown", edit(H, "kind: secondary", "kind: grammar"), "hillside.yaml", "kind"),
    (
        "email-malformed",
        edit(H, "it@hillsideacademy.org.uk", "it-at-hillside"),
        "hillside.yaml",
        "it_contact.email",
    ),
    (
        "credential-incomplete",
        edit(H, "    secret_env: TRUSTFOLD_HILLSIDE_CLIENT_SECRET\n", ""),
        "hillside.yaml",
        "credential",
    ),
    (
        "budget-negative",
        edit(H, "monthly_gbp: 900", "monthly_gbp: -5"),
        "hillside.yaml",
        "budget.monthly_gbp",
    ),
    (
        "location-outside-uk",
        edit(T, "location: uksouth", "location: westeurope"),
        "trust.yaml",
        "azure.location",
    ),
    ("trust-yaml-missing", lambda cfg: (cfg / "trust.yaml").unlink(), "trust.yaml", "not found"),
]


def _config(tmp_path: Path, mutate: Mutation) -> Path:
    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    mutate(cfg)
    return cfg


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode() + p.read_bytes())
    return h.hexdigest()


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("mutate", "file", "needle"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_malformed_config_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate: Mutation, file: str, needle: str
) -> None:
    cfg = _config(tmp_path, mutate)
    before = _digest(cfg)
    state = tmp_path / "state" / "state.db"
    code = run(["--config-dir", str(cfg), "--state", str(state), "config", "validate"])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and needle.lower() in lines[0].lower(), lines[0]
    assert file in lines[0] and str(cfg) in lines[0]
    assert re.search(r"\.ya?ml(:\d+)?: ", lines[0]), "the message must start with the file (and line)"
    assert not state.exists() and not state.parent.exists(), "bad input must leave no state behind"
    assert _digest(cfg) == before


@pytest.mark.parametrize("case", ["unknown-key-typo", "alias-bomb", "not-utf8", "cidr-overlaps-hub"])
def test_malformed_config_through_the_installed_command(tmp_path: Path, case: str) -> None:
    """The same contract through a real process: exit 2, one line, no traceback (-v adds one)."""
    _, mutate, file, needle = next(c for c in CORPUS if c[0] == case)
    cfg = _config(tmp_path, mutate)
    cmd = [
        sys.executable,
        "-c",
        "from cli.main import main; main()",
        "--config-dir",
        str(cfg),
        "--state",
        str(tmp_path / "s.db"),
        "config",
        "validate",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert file in proc.stderr and needle.lower() in proc.stderr.lower() and "Traceback" not in proc.stderr
    verbose = subprocess.run([*cmd[:3], "-v", *cmd[3:]], capture_output=True, text=True, timeout=30)
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr
    assert not (tmp_path / "s.db").exists()


def test_line_numbers_point_at_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, edit(H, "  cidr: 10.1.0.0/22", "  cidr: 10.1.0.0/33"))
    line = next(i for i, t in enumerate((cfg / H).read_text().splitlines(), 1) if "10.1.0.0/33" in t)
    assert run(["--config-dir", str(cfg), "config", "validate"]) == 2
    assert f"hillside.yaml:{line}: network.cidr:" in capsys.readouterr().err


def test_derived_azure_names_are_checked_at_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names are valid by construction from validated fields; the load-time check is the safety net should a
    naming rule ever change. Prove the net holds by breaking a rule."""
    from trust.naming import Names

    monkeypatch.setattr(Names, "storage_account", lambda self, academy: f"st-{academy.code}-UPPER")
    assert run(["--config-dir", str(CONFIG), "config", "validate"]) == 2
    err = capsys.readouterr().err
    assert (
        "derived storage account name 'st-brookfield-UPPER'" in err and "lowercase letters and digits" in err
    )
    assert "brookfield.yaml" in err and ": code:" in err

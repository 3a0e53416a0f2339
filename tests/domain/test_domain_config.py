"""The academy's `domains` setting: bad input is one line naming file, line and field (exit 2)."""

from __future__ import annotations

from pathlib import Path

from tests.domain.conftest import CONFIG, LEGACY, Cli, write_config


def test_keep_academy_domain_must_be_a_boolean(tmp_path: Path) -> None:
    config = tmp_path / "config"
    write_config(config)
    path = config / "academies" / "hillside.yaml"
    path.write_text(path.read_text().replace("keep_academy_domain: true", "keep_academy_domain: perhaps"))
    line = path.read_text().splitlines().index("  keep_academy_domain: perhaps") + 1
    res = Cli("http://127.0.0.1:9", tmp_path / "s.db", config)("config", "validate", check=False)
    assert res.code == 2
    assert res.err.startswith(f"error: {path}:{line}: domains.keep_academy_domain: ")
    assert len(res.err.strip().splitlines()) == 1
    assert not (tmp_path / "s.db").exists()
    assert CONFIG.exists()


def test_academy_domain_as_the_only_verified_one_is_refused(env) -> None:  # type: ignore[no-untyped-def]
    url, cli = env
    legacy = url.world.tenant(LEGACY)
    for d in legacy.domains:
        if d.get("isInitial"):
            d["isVerified"] = False  # no other sign-in domain for the legacy tenant's administrators
    res = cli("plan", "hillside", "--phase", "domain", check=False)
    assert res.code == 1
    assert "the legacy tenant's only verified domain" in res.err and "administrators" in res.err

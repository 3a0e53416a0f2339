"""phases.files.sharing in an academy's config: defaults follow the DfE baseline; bad values are bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cli.main import run
from tests.identity.conftest import CONFIG
from trust import load_trust


def _with(tmp: Path, sharing: str) -> Path:
    cfg = tmp / "config"
    shutil.copytree(CONFIG, cfg)
    path = cfg / "academies" / "hillside.yaml"
    path.write_text(path.read_text().replace("  files:\n", f"  files:\n    sharing: {sharing}\n", 1))
    return cfg


def test_defaults_forbid_anonymous_links_and_allow_organisation_links() -> None:
    rules = load_trust(CONFIG).academy("hillside").phases.files.sharing
    assert (rules.anonymous_links, rules.organization_links) == ("forbid", "allow")


@pytest.mark.parametrize("sharing", ["{anonymous_links: sometimes}", "{organisation_links: forbid}"])
def test_bad_sharing_setting_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sharing: str
) -> None:
    cfg = _with(tmp_path, sharing)
    state = tmp_path / "state.db"
    code = run(["--config-dir", str(cfg), "--state", str(state), "config", "validate"])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    (line,) = err.strip().splitlines()
    assert "hillside.yaml" in line and "sharing" in line and "Traceback" not in err
    assert not state.exists()


@pytest.mark.parametrize(
    ("sharing", "value"),
    [
        ("{organization_links: allow}", "allow"),  # written before issue 23: still the academy's width
        ("{organization_links: forbid}", "forbid"),
        ("{organization_links: trust-wide}", "trust-wide"),  # the one explicit way to go trust-wide
    ],
)
def test_organisation_link_values_old_and_new_load(tmp_path: Path, sharing: str, value: str) -> None:
    rules = load_trust(_with(tmp_path, sharing)).academy("hillside").phases.files.sharing
    assert rules.organization_links == value


def test_a_near_miss_for_trust_wide_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _with(tmp_path, "{organization_links: trustwide}")
    code = run(["--config-dir", str(cfg), "--state", str(tmp_path / "s.db"), "config", "validate"])
    _, err = capsys.readouterr()
    assert code == 2 and "organization_links" in err and "Traceback" not in err

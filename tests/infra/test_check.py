"""`trustfold infra check`: passes on the example trust, names resource and rule when the baseline breaks,
and a new academy adds exactly its own resources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli.main import run
from infra.check import declared_resources, run_check
from tests.infra.conftest import CONFIG, FIFTH, copy_config
from trust import load_trust


def test_check_passes_on_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--config-dir", str(CONFIG), "infra", "check", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"resources", "violations"} and out["violations"] == []
    r = out["resources"][0]
    assert set(r) == {"urn", "type", "name", "academy", "properties"}
    storage = [x for x in out["resources"] if x["type"] == "azure-native:storage:StorageAccount"]
    assert {x["academy"] for x in storage} == {a.code for a in load_trust(CONFIG).academies}
    assert all(x["properties"]["minimumTlsVersion"] == "TLS1_2" for x in storage)


def test_check_fails_naming_resource_and_rule(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An engineer weakens the landing zone's storage in code: CI fails naming the resource and the rule."""
    import infra.landing_zone as lz

    original = lz.storage.StorageAccount

    def weakened(name: str, **kwargs: Any) -> Any:
        kwargs["minimum_tls_version"] = "TLS1_0"
        return original(name, **kwargs)

    monkeypatch.setattr(lz.storage, "StorageAccount", weakened)
    assert run(["--config-dir", str(CONFIG), "infra", "check"]) == 1
    err = capsys.readouterr().err
    assert "MANDATORY: storage-encrypted-in-transit: urn:pulumi:" in err
    assert (
        "trustfold:landingzone:AcademyLandingZone$azure-native:storage:StorageAccount::hillside-storage"
        in err
    )
    assert "mandatory baseline violation" in err


def test_mutate_hook_reports_each_violation() -> None:
    trust = load_trust(CONFIG)

    def open_rdp(typ: str, name: str, props: dict[str, Any]) -> dict[str, Any] | None:
        if name == "oakwood-nsg-workloads":
            rule = {
                "name": "rdp",
                "direction": "Inbound",
                "access": "Allow",
                "sourceAddressPrefix": "Internet",
                "destinationPortRange": "3389",
                "description": "temporary",
            }
            return {**props, "securityRules": [*props["securityRules"], rule]}
        return None

    result = run_check(trust, mutate=open_rdp)
    assert [(v.policy, v.urn.rsplit("::", 1)[1]) for v in result.violations] == [
        ("no-internet-management-ports", "oakwood-nsg-workloads")
    ]


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = copy_config(tmp_path)
    (cfg / "academies" / "oakwood.yaml").write_text(
        (cfg / "academies" / "oakwood.yaml").read_text().replace("10.1.6.0/24", "10.1.0.0/24")
    )
    assert run(["--config-dir", str(cfg), "infra", "check"]) == 2
    assert "overlaps" in capsys.readouterr().err


def test_fifth_academy_adds_only_its_resources(tmp_path: Path) -> None:
    before = {(r.type, r.name) for r in declared_resources(load_trust(CONFIG))}
    cfg = copy_config(tmp_path)
    (cfg / "academies" / "riverside.yaml").write_text(FIFTH)
    after_trust = load_trust(cfg)
    after = {(r.type, r.name) for r in declared_resources(after_trust)}
    added = after - before
    assert before <= after, "adding an academy must not remove or rename anything"
    assert added and all(name.startswith("riverside-") for _, name in added)
    assert {t for t, _ in added} >= {
        "azure-native:resources:ResourceGroup",
        "azure-native:storage:StorageAccount",
        "azuread:index/administrativeUnit:AdministrativeUnit",
    }
    # ...and removing it again removes only its resources.
    (cfg / "academies" / "riverside.yaml").unlink()
    assert {(r.type, r.name) for r in declared_resources(load_trust(cfg))} == before
    assert not run_check(after_trust).violations

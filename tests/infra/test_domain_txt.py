"""The domain verification TXT record in an academy's Azure DNS zone, declared only when configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest

from tests.infra.conftest import copy_config
from trust import load_trust
from trust.errors import ConfigError

ZONE = """domains:
  keep_academy_domain: true
  dns_zone:
    zone: hillsideacademy.org.uk
    resource_group: rg-nllt-dns
    verification_txt: MS=ms12345678
    keep_txt: ["v=spf1 include:spf.protection.outlook.com -all"]
"""


def _trust(tmp_path: Path, extra: str) -> Any:
    config = copy_config(tmp_path)
    path = config / "academies" / "hillside.yaml"
    path.write_text(path.read_text() + extra)
    return load_trust(config)


def test_txt_record_set_in_the_zone(tmp_path: Path) -> None:
    trust = _trust(tmp_path, ZONE)
    from infra.mocks import install
    from infra.program import declare

    mocks = install(trust.settings.azure.subscription_id, stack="test")
    holder: dict[str, Any] = {}

    @pulumi.runtime.test
    def run() -> Any:
        holder.update(declare(trust))
        zones = holder["zones"]
        assert zones["oakwood"].domain_txt is None  # no zone configured: nothing declared
        rs = zones["hillside"].domain_txt

        def check(values: list[Any]) -> None:
            rid, ttl, records = values
            declared = next(r for r in mocks.resources if r.id == rid)
            assert declared.type == "azure-native:dns:RecordSet"
            i = declared.inputs
            assert (i["resourceGroupName"], i["zoneName"], i["relativeRecordSetName"], i["recordType"]) == (
                "rg-nllt-dns",
                "hillsideacademy.org.uk",
                "@",
                "TXT",
            )
            assert ttl == 3600
            assert [r["value"] for r in records] == [
                ["MS=ms12345678"],
                ["v=spf1 include:spf.protection.outlook.com -all"],
            ]

        return pulumi.Output.all(rs.id, rs.ttl, rs.txt_records).apply(check)

    run()


def test_zone_must_be_an_academy_domain(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _trust(tmp_path, ZONE.replace("zone: hillsideacademy.org.uk", "zone: example.org.uk"))
    text = str(err.value)
    assert "hillside.yaml" in text and "domains.dns_zone.zone" in text and "legacy_tenant.domains" in text


def test_bad_verification_value_names_file_line_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _trust(tmp_path, ZONE.replace("MS=ms12345678", "hello"))
    text = str(err.value)
    assert "hillside.yaml:" in text and "domains.dns_zone.verification_txt" in text

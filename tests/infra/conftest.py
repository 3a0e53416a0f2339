"""Pulumi mock harness for the infra tests (no CLI, no credentials, no network)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from trust import Trust, load_trust

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture(scope="session")
def trust() -> Trust:
    return load_trust(CONFIG)


@pytest.fixture
def mocks(trust: Trust):  # type: ignore[no-untyped-def]
    from infra.mocks import install

    return install(trust.settings.azure.subscription_id, stack="test")


def copy_config(tmp_path: Path) -> Path:
    dest = tmp_path / "config"
    shutil.copytree(CONFIG, dest)
    return dest


FIFTH = """code: riverside
name: Riverside Alternative Provision
kind: alternative-provision
urn: 150001
wave: 3
legacy_tenant:
  id: 1a2b3c4d-0005-4e5f-8a9b-0c1d2e3f4a55
  domains: [riverside-ap.sch.uk]
  credential: {kind: managed_identity}
network:
  cidr: 10.1.7.0/24
budget: {monthly_gbp: 150, cost_centre: NLLT-RIV}
it_contact: {name: Sam Okafor, email: it@riverside-ap.sch.uk}
"""

"""The Migration API staging account (infra/staging.py): declared with its lifecycle rule, least-privilege
delegation roles and its one documented network exception, asserted inside `apply`; the baseline policy pack
passes it and fails each weakening, under mocks (run_check's mutate hook) and rule by rule."""

from __future__ import annotations

from typing import Any

import pytest

from infra import ids
from infra.check import run_check
from infra.policy.rules import StackResource, check_resource, staging_guarded
from tests.infra.conftest import CONFIG
from tests.infra.test_components import check, declared  # noqa: F401 - the fixture
from trust import Trust, load_trust

STORAGE = "azure-native:storage:StorageAccount"


def test_staging_account_is_declared_guarded(declared: dict[str, Any], trust: Trust) -> None:  # noqa: F811
    for code, zone in declared["zones"].items():
        st = zone.staging
        a = st.account
        academy = trust.academy(code)
        days = academy.phases.files.staging.delete_after_days

        @check(
            a.name,
            a.allow_shared_key_access,
            a.public_network_access,
            a.enable_https_traffic_only,
            a.minimum_tls_version,
            a.allow_blob_public_access,
            a.tags,
        )
        def _(name, shared_key, network, https, tls, public, tags):  # type: ignore[no-untyped-def]
            assert (
                name == trust.names.staging_storage_account(academy) != trust.names.storage_account(academy)
            )
            assert shared_key is False and network == "Enabled" and https is True and tls == "TLS1_2"
            assert public is False and tags["purpose"] == "migration-staging" and tags["academy"] == code

        @check(st.lifecycle.policy)
        def _(policy):  # type: ignore[no-untyped-def]
            (rule,) = policy["rules"]
            d = rule["definition"]
            assert rule["enabled"] is True and d["filters"]["prefix_match"] == ["staging-"]
            assert d["actions"]["base_blob"]["delete"]["days_after_modification_greater_than"] == days
            assert d["actions"]["snapshot"]["delete"]["days_after_creation_greater_than"] == days

        @check(
            st.delegator.role_definition_id,
            st.delegator.scope,
            st.data.role_definition_id,
            st.data.scope,
            st.data.condition,
            st.data.principal_type,
            a.id,
        )
        def _(d_role, d_scope, c_role, c_scope, condition, ptype, account_id):  # type: ignore[no-untyped-def]
            assert d_role.endswith(ids.ROLE_STORAGE_BLOB_DELEGATOR) and d_scope == account_id
            assert c_role.endswith(ids.ROLE_STORAGE_BLOB_DATA_CONTRIBUTOR) and c_scope == account_id
            assert "StringStartsWith 'staging-'" in condition and ptype == "Group"


def test_the_policy_pack_passes_the_staging_account() -> None:
    result = run_check(load_trust(CONFIG))
    assert [v for v in result.violations if "staging" in v.urn] == []
    assert sum(1 for r in result.resources if r.type == "azure-native:storage:ManagementPolicy") == 4


@pytest.mark.parametrize(
    ("resource", "change", "policy"),
    [
        ("hillside-staging", {"allowSharedKeyAccess": True}, "storage-not-public"),
        ("hillside-staging-lifecycle", {"policy": {"rules": []}}, "staging-lifecycle-and-delegation"),
        ("hillside-staging-data", {"condition": None}, "staging-lifecycle-and-delegation"),
        (
            "hillside-staging-data",
            {"roleDefinitionId": "/x/roleDefinitions/" + ids.ROLE_STORAGE_BLOB_DATA_OWNER},
            "staging-lifecycle-and-delegation",
        ),
        (
            "hillside-storage",
            {"publicNetworkAccess": "Enabled", "networkRuleSet": {"defaultAction": "Allow"}},
            "storage-not-public",
        ),
    ],
)
def test_each_weakening_fails_the_pack_naming_resource(
    resource: str, change: dict[str, Any], policy: str
) -> None:
    def mutate(typ: str, name: str, props: dict[str, Any]) -> dict[str, Any] | None:
        return {**props, **change} if name == resource else None

    result = run_check(load_trust(CONFIG), mutate=mutate)
    assert any(v.policy == policy and v.mandatory for v in result.violations), result.violations
    assert all("hillside" in v.urn for v in result.violations)


def _stack(days: int, role: str, condition: str | None) -> list[StackResource]:
    acct = StackResource(
        "urn:acct", STORAGE, {"accountName": "migx", "tags": {"purpose": "migration-staging"}}, "id1"
    )
    rule = {
        "enabled": True,
        "definition": {"actions": {"baseBlob": {"delete": {"daysAfterModificationGreaterThan": days}}}},
    }
    pol = StackResource(
        "urn:pol",
        "azure-native:storage:ManagementPolicy",
        {"accountName": "migx", "policy": {"rules": [rule]}},
    )
    ra = StackResource(
        "urn:ra",
        "azure-native:authorization:RoleAssignment",
        {"scope": "id1", "roleDefinitionId": f"/r/{role}", "condition": condition},
    )
    return [acct, pol, ra]


def test_stack_rule_unit_cases() -> None:
    cond = "@Resource[...containers:name] StringStartsWith 'staging-'"
    assert staging_guarded(_stack(7, ids.ROLE_STORAGE_BLOB_DATA_CONTRIBUTOR, cond)) == []
    assert [u for u, _ in staging_guarded(_stack(60, ids.ROLE_STORAGE_BLOB_DATA_CONTRIBUTOR, cond))] == [
        "urn:acct"
    ]
    assert [u for u, _ in staging_guarded(_stack(7, ids.ROLE_STORAGE_BLOB_DATA_OWNER, cond))] == ["urn:ra"]
    assert [u for u, _ in staging_guarded(_stack(7, ids.ROLE_STORAGE_BLOB_DATA_CONTRIBUTOR, None))] == [
        "urn:ra"
    ]
    staging = {
        "tags": {"purpose": "migration-staging"},
        "allowBlobPublicAccess": False,
        "publicNetworkAccess": "Enabled",
        "allowSharedKeyAccess": False,
    }
    assert [r.name for r, _ in check_resource(STORAGE, staging) if r.name == "storage-not-public"] == []

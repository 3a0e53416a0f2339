"""Every baseline rule with a compliant and a non-compliant resource (Pulumi camelCase properties)."""

from __future__ import annotations

from typing import Any

import pytest

from infra import ids
from infra.policy.rules import RULES, STACK_RULES, StackResource, check_resource

STORAGE = "azure-native:storage:StorageAccount"
TAGS = {"academy": "x", "dfe-urn": "1", "cost-centre": "c", "owner": "o@x.uk", "wave": "1"}
GOOD_STORAGE = {
    "location": "uksouth",
    "tags": TAGS,
    "enableHttpsTrafficOnly": True,
    "minimumTlsVersion": "TLS1_2",
    "allowBlobPublicAccess": False,
    "publicNetworkAccess": "Disabled",
    "sku": {"name": "Standard_RAGRS"},
}

CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], str]] = [
    ("uk-locations", STORAGE, GOOD_STORAGE, {**GOOD_STORAGE, "location": "westeurope"}, "outside the UK"),
    ("mandatory-tags", STORAGE, GOOD_STORAGE, {**GOOD_STORAGE, "tags": {"academy": "x"}}, "dfe-urn"),
    (
        "storage-encrypted-in-transit",
        STORAGE,
        GOOD_STORAGE,
        {**GOOD_STORAGE, "minimumTlsVersion": "TLS1_0"},
        "TLS1_2",
    ),
    (
        "storage-not-public",
        STORAGE,
        GOOD_STORAGE,
        {**GOOD_STORAGE, "allowBlobPublicAccess": True},
        "allowBlobPublicAccess",
    ),
    (
        "storage-not-public",
        "azure-native:storage:BlobContainer",
        {"publicAccess": "None"},
        {"publicAccess": "Container"},
        "publicAccess",
    ),
    (
        "storage-retention",
        STORAGE,
        GOOD_STORAGE,
        {**GOOD_STORAGE, "sku": {"name": "Standard_LRS"}},
        "geo-redundant",
    ),
    (
        "storage-retention",
        "azure-native:storage:BlobServiceProperties",
        {"deleteRetentionPolicy": {"enabled": True, "days": 30}, "isVersioningEnabled": True},
        {"deleteRetentionPolicy": {"enabled": False}, "isVersioningEnabled": True},
        "soft delete",
    ),
    (
        "key-vault-protected",
        "azure-native:keyvault:Vault",
        {
            "properties": {
                "enableRbacAuthorization": True,
                "enablePurgeProtection": True,
                "softDeleteRetentionInDays": 90,
            }
        },
        {
            "properties": {
                "enableRbacAuthorization": True,
                "enablePurgeProtection": False,
                "softDeleteRetentionInDays": 90,
            }
        },
        "enablePurgeProtection",
    ),
    (
        "no-internet-management-ports",
        "azure-native:network:NetworkSecurityGroup",
        {
            "securityRules": [
                {
                    "name": "web",
                    "direction": "Inbound",
                    "access": "Allow",
                    "sourceAddressPrefix": "Internet",
                    "destinationPortRange": "443",
                    "description": "https",
                }
            ]
        },
        {
            "securityRules": [
                {
                    "name": "rdp",
                    "direction": "Inbound",
                    "access": "Allow",
                    "sourceAddressPrefix": "*",
                    "destinationPortRanges": ["3000-3500"],
                    "description": "oops",
                }
            ]
        },
        "3389",
    ),
    (
        "allow-rules-documented",
        "azure-native:network:NetworkSecurityGroup",
        {"securityRules": [{"name": "a", "access": "Allow", "description": "why"}]},
        {"securityRules": [{"name": "a", "access": "Allow"}]},
        "no description",
    ),
    (
        "subnets-have-nsg",
        "azure-native:network:VirtualNetwork",
        {"subnets": [{"name": "snet-a", "networkSecurityGroup": {"id": "/nsg"}}, {"name": "GatewaySubnet"}]},
        {"subnets": [{"name": "snet-a"}]},
        "snet-a",
    ),
    (
        "rbac-groups-least-privilege",
        "azure-native:authorization:RoleAssignment",
        {
            "principalType": "Group",
            "roleDefinitionId": f"/x/roleDefinitions/{ids.ROLE_CONTRIBUTOR}",
            "scope": "/subscriptions/s/resourceGroups/rg",
        },
        {
            "principalType": "Group",
            "roleDefinitionId": f"/x/roleDefinitions/{ids.ROLE_OWNER}",
            "scope": "/subscriptions/s/resourceGroups/rg",
        },
        "Owner",
    ),
    (
        "rbac-groups-least-privilege",
        "azure-native:authorization:RoleAssignment",
        {"principalType": "Group", "roleDefinitionId": ids.ROLE_CONTRIBUTOR, "scope": "/subscriptions/s"},
        {"principalType": "User", "roleDefinitionId": ids.ROLE_CONTRIBUTOR, "scope": "/subscriptions/s"},
        "groups only",
    ),
]


@pytest.mark.parametrize(
    ("rule_name", "typ", "good", "bad", "needle"),
    CASES,
    ids=[f"{c[0]}-{c[1].rsplit(':', 1)[1]}" for c in CASES],
)
def test_rule_passes_and_fails(
    rule_name: str, typ: str, good: dict[str, Any], bad: dict[str, Any], needle: str
) -> None:
    rule = next(r for r in RULES if r.name == rule_name)
    assert rule.check(typ, good) == []
    problems = rule.check(typ, bad)
    assert problems and any(needle in p for p in problems), problems
    assert any(r.name == rule_name for r, _ in check_resource(typ, bad))


def test_every_rule_is_covered() -> None:
    assert {r.name for r in RULES} == {c[0] for c in CASES}


def _stack(**extra: StackResource) -> list[StackResource]:
    ws = StackResource("urn:ws", "azure-native:operationalinsights:Workspace", {}, "/ws")
    st = StackResource("urn:st", STORAGE, {}, "/st")
    diag = StackResource(
        "urn:d", "azure-native:monitor:DiagnosticSetting", {"resourceUri": "/st", "workspaceId": "/ws"}
    )
    staff = StackResource(
        "urn:g", "azuread:index/group:Group", {"mailNickname": "nllt-x-staff", "objectId": "g1"}
    )
    mfa = StackResource(
        "urn:ca1",
        "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy",
        {
            "state": "enabled",
            "grantControls": {"builtInControls": ["mfa"]},
            "conditions": {
                "applications": {"includedApplications": ["All"]},
                "users": {"includedGroups": ["g1"]},
            },
        },
    )
    legacy = StackResource(
        "urn:ca2",
        "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy",
        {
            "state": "enabled",
            "grantControls": {"builtInControls": ["block"]},
            "conditions": {"clientAppTypes": ["exchangeActiveSync", "other"]},
        },
    )
    uk = StackResource(
        "urn:p",
        "azure-native:authorization:PolicyAssignment",
        {"policyDefinitionId": ids.UK_OFFICIAL_INITIATIVE},
    )
    base = {"ws": ws, "st": st, "diag": diag, "staff": staff, "mfa": mfa, "legacy": legacy, "uk": uk}
    base.update(extra)
    return [r for r in base.values() if r is not None]


@pytest.mark.parametrize(
    ("rule_name", "remove", "needle"),
    [
        ("diagnostics-to-central-workspace", "diag", "urn:st"),
        ("mfa-for-staff", "mfa", "urn:g"),
        ("legacy-auth-blocked", "legacy", "stack"),
        ("uk-official-assigned", "uk", "stack"),
    ],
)
def test_stack_rule_passes_and_fails(rule_name: str, remove: str, needle: str) -> None:
    rule = next(r for r in STACK_RULES if r.name == rule_name)
    assert rule.check(_stack()) == []
    failures = rule.check(_stack(**{remove: None}))  # type: ignore[arg-type]
    assert failures and failures[0][0] == needle

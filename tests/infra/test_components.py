"""Each component's security properties and names, asserted inside `apply` so unknowns cannot pass."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from infra import ids
from trust import Trust


@pytest.fixture
def declared(mocks: Any, trust: Trust) -> dict[str, Any]:
    from infra.program import declare

    holder: dict[str, Any] = {}

    @pulumi.runtime.test
    def run() -> None:
        holder.update(declare(trust))

    run()
    return holder


def check(*outputs: Any):  # type: ignore[no-untyped-def]
    """Run the assertions on resolved values; a pulumi.runtime.test awaits the returned output."""

    def wrap(fn):  # type: ignore[no-untyped-def]
        @pulumi.runtime.test
        def runner():  # type: ignore[no-untyped-def]
            return pulumi.Output.all(*outputs).apply(lambda values: fn(*values))

        runner()
        return fn

    return wrap


def test_storage_is_encrypted_private_geo_redundant(declared: dict[str, Any], trust: Trust) -> None:
    for code, zone in declared["zones"].items():
        a = zone.storage_account
        academy = trust.academy(code)

        @check(
            a.name,
            a.enable_https_traffic_only,
            a.minimum_tls_version,
            a.allow_blob_public_access,
            a.allow_shared_key_access,
            a.sku,
            a.public_network_access,
            a.tags,
        )
        def _(name, https, tls, public, shared_key, sku, network, tags):  # type: ignore[no-untyped-def]
            assert name == trust.names.storage_account(academy)
            assert https is True and tls == "TLS1_2" and public is False and shared_key is False
            assert sku["name"] in ("Standard_GRS", "Standard_RAGRS") and network == "Disabled"
            assert (
                tags["academy"] == code
                and tags["dfe-urn"] == str(academy.urn)
                and tags["wave"] == str(academy.wave)
            )

        assert a._protect is True, "data-bearing storage must be protected"
        b = zone.blob_service

        @check(b.delete_retention_policy, b.is_versioning_enabled)
        def _(retention, versioning):  # type: ignore[no-untyped-def]
            assert retention["enabled"] is True and retention["days"] >= 7 and versioning is True

        for c in zone.containers:
            assert c._protect is True

            @check(c.public_access)
            def _(access):  # type: ignore[no-untyped-def]
                assert access == "None"


def test_key_vaults_are_protected(declared: dict[str, Any], trust: Trust) -> None:
    vaults = [(z.key_vault, trust.names.key_vault(trust.academy(c))) for c, z in declared["zones"].items()]
    vaults.append((declared["platform"].key_vault, trust.names.platform_key_vault()))
    for vault, name in vaults:
        assert vault._protect is True

        @check(vault.name, vault.properties)
        def _(actual, props, name=name):  # type: ignore[no-untyped-def]
            assert actual == name
            assert props["enable_rbac_authorization"] is True and props["enable_purge_protection"] is True
            assert props["soft_delete_retention_in_days"] == 90 and props["tenant_id"] == trust.tenant.id


def test_networks_have_nsgs_peering_both_ways(declared: dict[str, Any], trust: Trust) -> None:
    for code, zone in declared["zones"].items():
        academy = trust.academy(code)

        @check(zone.network.name, zone.network.address_space, zone.network.subnets)
        def _(name, space, subnets, academy=academy):  # type: ignore[no-untyped-def]
            assert name == trust.names.spoke_network(academy)
            assert space["address_prefixes"] == [str(academy.network.cidr)]
            assert subnets and all(s["network_security_group"]["id"] for s in subnets)

        for nsg in zone.nsgs.values():

            @check(nsg.security_rules)
            def _(rules):  # type: ignore[no-untyped-def]
                inbound_internet = [r for r in rules if r["source_address_prefix"] == "Internet"]
                assert inbound_internet and all(r["access"] == "Deny" for r in inbound_internet)
                assert all(r.get("description") for r in rules if r["access"] == "Allow")

        to_hub, from_hub = zone.peerings

        @check(
            to_hub.remote_virtual_network,
            from_hub.remote_virtual_network,
            declared["platform"].hub.id,
            zone.network.id,
        )
        def _(remote_hub, remote_spoke, hub_id, spoke_id):  # type: ignore[no-untyped-def]
            assert remote_hub["id"] == hub_id and remote_spoke["id"] == spoke_id


def test_rbac_budget_and_lock_per_academy(declared: dict[str, Any], trust: Trust) -> None:
    entra = declared["entra"]
    for code, zone in declared["zones"].items():
        academy = trust.academy(code)
        ra = zone.role_assignment

        @check(
            ra.principal_id,
            ra.principal_type,
            ra.role_definition_id,
            ra.scope,
            zone.resource_group.id,
            entra.groups[code]["it-admins"].object_id,
        )
        def _(principal, ptype, role, scope, rg_id, admins):  # type: ignore[no-untyped-def]
            assert principal == admins and ptype == "Group" and scope == rg_id
            assert role.endswith(ids.ROLE_CONTRIBUTOR)

        @check(zone.budget.amount, zone.budget.notifications, zone.budget.scope, zone.resource_group.id)
        def _(amount, notes, scope, rg_id, academy=academy):  # type: ignore[no-untyped-def]
            assert amount == academy.budget.monthly_gbp and scope == rg_id
            assert all(academy.it_contact.email in n["contact_emails"] for n in notes.values())


def test_platform_logging_policy_defender(declared: dict[str, Any], trust: Trust) -> None:
    p = declared["platform"]
    assert p.workspace._protect is True

    @check(p.workspace.retention_in_days, p.workspace.name)
    def _(days, name):  # type: ignore[no-untyped-def]
        assert days == trust.logging.retention_days and name == trust.names.log_analytics_workspace()

    uk = p.policy_assignments["uk-official"]
    locations = p.policy_assignments["allowed-locations"]

    @check(uk.policy_definition_id, uk.enforcement_mode, locations.parameters)
    def _(definition, mode, params):  # type: ignore[no-untyped-def]
        assert definition == ids.UK_OFFICIAL_INITIATIVE and mode == "DoNotEnforce"
        assert params["listOfAllowedLocations"]["value"] == ["uksouth", "ukwest"]

    assert {"StorageAccounts", "KeyVaults", "VirtualMachines"} <= set(p.defender)
    for plan in p.defender.values():

        @check(plan.pricing_tier)
        def _(tier):  # type: ignore[no-untyped-def]
            assert tier == "Standard"

    @check(p.security_contact.emails, p.budget.amount)
    def _(emails, amount):  # type: ignore[no-untyped-def]
        assert emails == trust.security_contact.email and amount == trust.budget.monthly_gbp


def test_entra_units_groups_roles_and_conditional_access(declared: dict[str, Any], trust: Trust) -> None:
    e = declared["entra"]
    for academy in trust.academies:
        unit = e.units[academy.code]
        assert len(e.role_members[academy.code]) == len(ids.ACADEMY_ADMIN_ROLES)

        @check(
            unit.display_name,
            *(g.administrative_unit_ids for g in e.groups[academy.code].values()),
            unit.object_id,
            *(g.display_name for g in e.groups[academy.code].values()),
        )
        def _(name, *rest, academy=academy):  # type: ignore[no-untyped-def]
            unit_lists, unit_id, names = rest[:3], rest[3], rest[4:]
            assert name == trust.names.administrative_unit(academy)
            assert all(lst == [unit_id] for lst in unit_lists)
            assert set(names) == {
                trust.names.entra_group(academy, p)[0] for p in ("staff", "pupils", "it-admins")
            }

        for member in e.role_members[academy.code]:

            @check(
                member.administrative_unit_object_id,
                member.member_object_id,
                unit.object_id,
                e.groups[academy.code]["it-admins"].object_id,
            )
            def _(scope, who, unit_id, admins):  # type: ignore[no-untyped-def]
                assert scope == unit_id and who == admins

    @check(
        e.ca_mfa.conditions,
        e.ca_mfa.grant_controls,
        e.ca_mfa.state,
        e.break_glass.object_id,
        *(g["staff"].object_id for g in e.groups.values()),
    )
    def _(cond, grant, state, glass, *staff):  # type: ignore[no-untyped-def]
        assert state == "enabled" and grant["built_in_controls"] == ["mfa"]
        assert set(staff) <= set(cond["users"]["included_groups"])
        assert cond["users"]["excluded_groups"] == [glass]
        assert ids.ENTRA_GLOBAL_ADMIN in cond["users"]["included_roles"]

    @check(e.ca_block_legacy.conditions, e.ca_block_legacy.grant_controls)
    def _(cond, grant):  # type: ignore[no-untyped-def]
        assert set(cond["client_app_types"]) == {"exchangeActiveSync", "other"}
        assert grant["built_in_controls"] == ["block"]

"""Small shared pieces of the components: diagnostics wiring and a deny-by-default NSG."""

from __future__ import annotations

from datetime import UTC, datetime

import pulumi
import pulumi_azure_native.consumption as consumption
import pulumi_azure_native.keyvault as keyvault
import pulumi_azure_native.monitor as monitor
import pulumi_azure_native.network as network

ALL_LOGS = [monitor.DiagnosticsLogSettingsArgs(category_group="allLogs", enabled=True)]
ALL_METRICS = [monitor.DiagnosticsMetricSettingsArgs(category="AllMetrics", enabled=True)]


def diagnostics(
    name: str,
    resource_id: pulumi.Input[str],
    workspace_id: pulumi.Input[str],
    parent: pulumi.Resource,
    *,
    metrics: bool = True,
    logs: bool = True,
) -> monitor.DiagnosticSetting:
    """Send a resource's logs and metrics to the trust's central workspace (baseline row 10)."""
    return monitor.DiagnosticSetting(
        f"{name}-diag",
        name="to-central-workspace",
        resource_uri=resource_id,
        workspace_id=workspace_id,
        logs=ALL_LOGS if logs else None,
        metrics=ALL_METRICS if metrics else None,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def deny_inbound_nsg(
    name: str,
    nsg_name: str,
    resource_group: pulumi.Input[str],
    location: str,
    tags: dict[str, str],
    parent: pulumi.Resource,
    vnet_cidr: str,
) -> network.NetworkSecurityGroup:
    """Inbound from the internet denied by default; only documented intra-network traffic allowed (row 6)."""
    return network.NetworkSecurityGroup(
        name,
        network_security_group_name=nsg_name,
        resource_group_name=resource_group,
        location=location,
        tags=tags,
        security_rules=[
            network.SecurityRuleArgs(
                name="allow-vnet-inbound",
                priority=100,
                direction="Inbound",
                access="Allow",
                protocol="*",
                source_address_prefix="VirtualNetwork",
                source_port_range="*",
                destination_address_prefix=vnet_cidr,
                destination_port_range="*",
                description="Traffic from the trust's peered networks (hub and this spoke) only",
            ),
            network.SecurityRuleArgs(
                name="deny-internet-inbound",
                priority=4000,
                direction="Inbound",
                access="Deny",
                protocol="*",
                source_address_prefix="Internet",
                source_port_range="*",
                destination_address_prefix="*",
                destination_port_range="*",
                description="Baseline: no unauthenticated inbound connections from the internet",
            ),
        ],
        opts=pulumi.ResourceOptions(parent=parent),
    )


def protected_vault(
    name: str,
    vault_name: str,
    resource_group: pulumi.Input[str],
    location: str,
    tags: dict[str, str],
    tenant_id: str,
    workspace_id: pulumi.Input[str],
    parent: pulumi.Resource,
) -> keyvault.Vault:
    """A Key Vault as the baseline wants it (row 9): RBAC, purge protection, 90-day soft delete, private,
    protected from deletion, its logs in the central workspace."""
    vault = keyvault.Vault(
        name,
        vault_name=vault_name,
        resource_group_name=resource_group,
        location=location,
        tags=tags,
        properties=keyvault.VaultPropertiesArgs(
            tenant_id=tenant_id,
            sku=keyvault.SkuArgs(family="A", name="standard"),
            enable_rbac_authorization=True,
            enable_purge_protection=True,
            enable_soft_delete=True,
            soft_delete_retention_in_days=90,
            public_network_access="Disabled",
            network_acls=keyvault.NetworkRuleSetArgs(default_action="Deny", bypass="AzureServices"),
        ),
        opts=pulumi.ResourceOptions(parent=parent, protect=True),
    )
    diagnostics(name, vault.id, workspace_id, parent)
    return vault


def month_start() -> str:
    today = datetime.now(UTC)
    return f"{today.year:04d}-{today.month:02d}-01T00:00:00Z"


def monthly_budget(
    name: str,
    budget_name: str,
    scope: pulumi.Input[str],
    amount: int,
    email: str,
    action_group_id: pulumi.Input[str],
    parent: pulumi.Resource,
) -> consumption.Budget:
    """A monthly cost budget alerting at 80% and 100% (baseline rows 13-14). Azure wants the start in the
    current month, so later months' `pulumi up` must not try to move it: timePeriod is ignored after."""
    return consumption.Budget(
        name,
        budget_name=budget_name,
        scope=scope,
        amount=amount,
        category="Cost",
        time_grain="Monthly",
        time_period=consumption.BudgetTimePeriodArgs(start_date=month_start()),
        notifications={
            f"actual-{p}": consumption.NotificationArgs(
                enabled=True,
                operator="GreaterThanOrEqualTo",
                threshold=p,
                contact_emails=[email],
                contact_groups=[action_group_id],
            )
            for p in (80, 100)
        },
        opts=pulumi.ResourceOptions(parent=parent, ignore_changes=["timePeriod"]),
    )

"""TrustPlatform: what every academy shares: logging, secrets, hub, policy, Defender, alerts, budget."""

from __future__ import annotations

import pulumi
import pulumi_azure_native.aadiam as aadiam
import pulumi_azure_native.authorization as authorization
import pulumi_azure_native.monitor as monitor
import pulumi_azure_native.network as network
import pulumi_azure_native.operationalinsights as operationalinsights
import pulumi_azure_native.resources as resources
import pulumi_azure_native.security as security

from infra import ids
from infra.common import deny_inbound_nsg, diagnostics, monthly_budget, protected_vault
from trust import Trust

DEFENDER_PLANS = ("StorageAccounts", "KeyVaults", "VirtualMachines", "Arm")
UK_LOCATIONS = ["uksouth", "ukwest"]


class TrustPlatform(pulumi.ComponentResource):
    """Platform resource group, central workspace, Key Vault, hub network, policy, Defender, budget."""

    workspace_id: pulumi.Output[str]
    hub_network_id: pulumi.Output[str]
    hub_network_name: pulumi.Output[str]
    resource_group_name: pulumi.Output[str]
    action_group_id: pulumi.Output[str]

    def __init__(self, name: str, trust: Trust, opts: pulumi.ResourceOptions | None = None):
        super().__init__("trustfold:platform:TrustPlatform", name, None, opts)
        names = trust.names
        s = trust.settings
        loc = s.azure.location
        tags = names.platform_tags()
        subscription = f"/subscriptions/{s.azure.subscription_id}"
        child = pulumi.ResourceOptions(parent=self)
        protected = pulumi.ResourceOptions(parent=self, protect=True)

        rg = resources.ResourceGroup(
            "platform-rg",
            resource_group_name=names.platform_resource_group(),
            location=loc,
            tags=tags,
            opts=child,
        )
        authorization.ManagementLockAtResourceGroupLevel(
            "platform-rg-lock",
            resource_group_name=rg.name,
            lock_name="trustfold-no-delete",
            level="CanNotDelete",
            notes="Platform logs and secrets must not be deleted by accident",
            opts=child,
        )

        workspace = operationalinsights.Workspace(
            "platform-log",
            workspace_name=names.log_analytics_workspace(),
            resource_group_name=rg.name,
            location=loc,
            tags=tags,
            retention_in_days=s.logging.retention_days,
            sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
            opts=protected,
        )

        vault = protected_vault(
            "platform-kv", names.platform_key_vault(), rg.name, loc, tags, s.tenant.id, workspace.id, self
        )

        hub_cidr = str(s.azure.hub_cidr)
        hub_nsg = deny_inbound_nsg(
            "platform-hub-nsg",
            names.network_security_group(None, "shared"),
            rg.name,
            loc,
            tags,
            self,
            hub_cidr,
        )
        diagnostics("platform-hub-nsg", hub_nsg.id, workspace.id, self, metrics=False)
        hub = network.VirtualNetwork(
            "platform-hub",
            virtual_network_name=names.hub_network(),
            resource_group_name=rg.name,
            location=loc,
            tags=tags,
            address_space=network.AddressSpaceArgs(address_prefixes=[hub_cidr]),
            subnets=[
                network.SubnetArgs(
                    name=names.subnet("shared"),
                    address_prefix=str(next(s.azure.hub_cidr.subnets(new_prefix=24))),
                    network_security_group=network.NetworkSecurityGroupArgs(id=hub_nsg.id),
                )
            ],
            opts=child,
        )

        # Policy at the subscription (the trust's scope): deny what the baseline forbids, audit the rest.
        self.policy_assignments: dict[str, authorization.PolicyAssignment] = {}

        def assign(
            key: str,
            definition: str,
            display: str,
            mode: str = "Default",
            parameters: dict[str, object] | None = None,
            identity: bool = False,
        ) -> None:
            self.policy_assignments[key] = authorization.PolicyAssignment(
                f"policy-{key}",
                policy_assignment_name=f"{s.code}-{key}"[:64],
                scope=subscription,
                policy_definition_id=definition,
                display_name=display,
                enforcement_mode=mode,
                parameters={
                    k: authorization.ParameterValuesValueArgs(value=v) for k, v in (parameters or {}).items()
                }
                or None,
                identity=authorization.IdentityArgs(type="SystemAssigned") if identity else None,
                location=loc if identity else None,
                opts=child,
            )

        assign(
            "allowed-locations",
            ids.ALLOWED_LOCATIONS,
            "Resources only in UK South and UK West",
            parameters={"listOfAllowedLocations": UK_LOCATIONS},
        )
        assign("storage-secure-transfer", ids.STORAGE_SECURE_TRANSFER, "Secure transfer to storage accounts")
        assign("subnets-need-nsg", ids.SUBNETS_NEED_NSG, "Subnets must have a network security group")
        assign("mgmt-ports-closed", ids.MANAGEMENT_PORTS_CLOSED, "No management ports open to the internet")
        self.policy_assignments["activity-log"] = authorization.PolicyAssignment(
            "policy-activity-log",
            policy_assignment_name=f"{s.code}-activity-log",
            scope=subscription,
            policy_definition_id=ids.ACTIVITY_LOG_TO_WORKSPACE,
            display_name="Activity log to the central workspace",
            parameters={"logAnalytics": authorization.ParameterValuesValueArgs(value=workspace.id)},
            identity=authorization.IdentityArgs(type="SystemAssigned"),
            location=loc,
            opts=child,
        )
        assign(
            "uk-official", ids.UK_OFFICIAL_INITIATIVE, "UK OFFICIAL and UK NHS (audit)", mode="DoNotEnforce"
        )

        # The subscription's activity log and Entra's sign-in and audit logs go to the same workspace.
        monitor.SubscriptionDiagnosticSetting(
            "platform-activity-log",
            name="activity-to-central-workspace",
            workspace_id=workspace.id,
            logs=[
                monitor.SubscriptionLogSettingsArgs(category=c, enabled=True)
                for c in ("Administrative", "Security", "Policy", "Alert")
            ],
            opts=child,
        )
        aadiam.DiagnosticSetting(
            "platform-entra-logs",
            name="entra-to-central-workspace",
            workspace_id=workspace.id,
            logs=[
                aadiam.LogSettingsArgs(category=c, enabled=True)
                for c in (
                    "SignInLogs",
                    "AuditLogs",
                    "NonInteractiveUserSignInLogs",
                    "ServicePrincipalSignInLogs",
                )
            ],
            opts=child,
        )

        self.defender = {}
        for plan in DEFENDER_PLANS:
            self.defender[plan] = security.Pricing(
                f"defender-{plan.lower()}",
                pricing_name=plan,
                pricing_tier="Standard",
                scope_id=subscription,
                opts=child,
            )
        contact = s.security_contact
        self.security_contact = security.SecurityContact(
            "security-contact",
            security_contact_name="default",
            emails=contact.email,
            phone=contact.phone,
            is_enabled=True,
            notifications_by_role=security.SecurityContactPropertiesNotificationsByRoleArgs(
                state="On", roles=["Owner"]
            ),
            notifications_sources=[
                security.NotificationsSourceAlertArgs(source_type="Alert", minimal_severity="Medium")
            ],
            opts=child,
        )

        ag_name, ag_short = names.action_group()
        action_group = monitor.ActionGroup(
            "security-action-group",
            action_group_name=ag_name,
            group_short_name=ag_short,
            resource_group_name=rg.name,
            location="global",
            enabled=True,
            tags=tags,
            email_receivers=[
                monitor.MicrosoftCommonEmailReceiverArgs(
                    name="security-contact", email_address=contact.email, use_common_alert_schema=True
                )
            ],
            opts=child,
        )
        for key, operation in (
            ("policy-changes", "Microsoft.Authorization/policyAssignments/write"),
            ("role-changes", "Microsoft.Authorization/roleAssignments/write"),
        ):
            monitor.ActivityLogAlert(
                f"alert-{key}",
                activity_log_alert_name=f"{s.code}-{key}",
                resource_group_name=rg.name,
                location="global",
                enabled=True,
                scopes=[subscription],
                tags=tags,
                description=f"Tell the security contact about {key.replace('-', ' ')}",
                condition=monitor.AlertRuleAllOfConditionArgs(
                    all_of=[
                        monitor.AlertRuleAnyOfOrLeafConditionArgs(field="category", equals="Administrative"),
                        monitor.AlertRuleAnyOfOrLeafConditionArgs(field="operationName", equals=operation),
                    ]
                ),
                actions=monitor.ActionListArgs(
                    action_groups=[monitor.ActionGroupArgs(action_group_id=action_group.id)]
                ),
                opts=child,
            )

        self.budget = monthly_budget(
            "trust-budget",
            names.trust_budget(),
            subscription,
            s.budget.monthly_gbp,
            contact.email,
            action_group.id,
            self,
        )

        self.workspace, self.key_vault, self.hub, self.action_group = workspace, vault, hub, action_group
        self.resource_group = rg
        self.workspace_id = workspace.id
        self.hub_network_id = hub.id
        self.hub_network_name = hub.name
        self.resource_group_name = rg.name
        self.action_group_id = action_group.id
        self.register_outputs(
            {
                "workspace_id": workspace.id,
                "hub_network_id": hub.id,
                "key_vault_uri": vault.properties.apply(lambda p: p.vault_uri if p else None),
                "resource_group_name": rg.name,
                "action_group_id": action_group.id,
            }
        )

"""AcademyLandingZone: one academy's slice of the trust cloud, peered to the hub and held to the baseline."""

from __future__ import annotations

import pulumi
import pulumi_azure_native.authorization as authorization
import pulumi_azure_native.dns as dns
import pulumi_azure_native.network as network
import pulumi_azure_native.resources as resources
import pulumi_azure_native.storage as storage

from infra import ids
from infra.common import deny_inbound_nsg, diagnostics, monthly_budget, protected_vault
from infra.staging import StagingStorage
from infra.storage_account import hardened_storage_account
from trust import Academy, Trust

SUBNETS = ("workloads", "private-endpoints")


class AcademyLandingZone(pulumi.ComponentResource):
    """Resource group, spoke network, storage for migrated shared drives, Key Vault, RBAC, budget, tags."""

    resource_group_name: pulumi.Output[str]
    storage_account_name: pulumi.Output[str]
    spoke_network_id: pulumi.Output[str]

    def __init__(
        self,
        trust: Trust,
        academy: Academy,
        *,
        workspace_id: pulumi.Input[str],
        hub_network_id: pulumi.Input[str],
        hub_network_name: pulumi.Input[str],
        hub_resource_group: pulumi.Input[str],
        it_admin_group_id: pulumi.Input[str],
        action_group_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        code = academy.code
        super().__init__("trustfold:landingzone:AcademyLandingZone", code, None, opts)
        names = trust.names
        s = trust.settings
        loc = s.azure.location
        tags = names.tags(academy)
        child = pulumi.ResourceOptions(parent=self)
        protected = pulumi.ResourceOptions(parent=self, protect=True)

        rg = resources.ResourceGroup(
            f"{code}-rg",
            resource_group_name=names.resource_group(academy),
            location=loc,
            tags=tags,
            opts=child,
        )
        authorization.ManagementLockAtResourceGroupLevel(
            f"{code}-rg-lock",
            resource_group_name=rg.name,
            lock_name="trustfold-no-delete",
            level="CanNotDelete",
            notes="Holds migrated academy data; remove the lock deliberately before deleting",
            opts=child,
        )

        cidr = academy.network.cidr
        spoke_subnets = list(cidr.subnets(new_prefix=min(cidr.prefixlen + 1, 28)))
        nsgs = {}
        for purpose in SUBNETS:
            nsg = deny_inbound_nsg(
                f"{code}-nsg-{purpose}",
                names.network_security_group(academy, purpose),
                rg.name,
                loc,
                tags,
                self,
                str(cidr),
            )
            diagnostics(f"{code}-nsg-{purpose}", nsg.id, workspace_id, self, metrics=False)
            nsgs[purpose] = nsg
        spoke = network.VirtualNetwork(
            f"{code}-vnet",
            virtual_network_name=names.spoke_network(academy),
            resource_group_name=rg.name,
            location=loc,
            tags=tags,
            address_space=network.AddressSpaceArgs(address_prefixes=[str(cidr)]),
            subnets=[
                network.SubnetArgs(
                    name=names.subnet(p),
                    address_prefix=str(spoke_subnets[i]),
                    network_security_group=network.NetworkSecurityGroupArgs(id=nsgs[p].id),
                )
                for i, p in enumerate(SUBNETS)
            ],
            opts=child,
        )
        to_hub = network.VirtualNetworkPeering(
            f"{code}-peer-to-hub",
            virtual_network_peering_name=f"{names.spoke_network(academy)}-to-hub",
            resource_group_name=rg.name,
            virtual_network_name=spoke.name,
            remote_virtual_network=network.SubResourceArgs(id=hub_network_id),
            allow_virtual_network_access=True,
            allow_forwarded_traffic=True,
            opts=child,
        )
        from_hub = network.VirtualNetworkPeering(
            f"{code}-peer-from-hub",
            virtual_network_peering_name=f"hub-to-{names.spoke_network(academy)}",
            resource_group_name=hub_resource_group,
            virtual_network_name=hub_network_name,
            remote_virtual_network=network.SubResourceArgs(id=spoke.id),
            allow_virtual_network_access=True,
            allow_forwarded_traffic=True,
            opts=child,
        )
        self.peerings = [to_hub, from_hub]

        account = hardened_storage_account(
            f"{code}-storage",
            account_name=names.storage_account(academy),
            resource_group_name=rg.name,
            location=loc,
            tags=tags,
            sku="Standard_RAGRS",
            public_endpoint=False,
            opts=protected,
        )
        self.blob_service = storage.BlobServiceProperties(
            f"{code}-blob-service",
            account_name=account.name,
            resource_group_name=rg.name,
            blob_services_name="default",
            is_versioning_enabled=True,
            delete_retention_policy=storage.DeleteRetentionPolicyArgs(enabled=True, days=30),
            container_delete_retention_policy=storage.DeleteRetentionPolicyArgs(enabled=True, days=30),
            opts=child,
        )
        self.containers = []
        containers = ["staging", *(f"{m.target_site}-{m.target_library}" for m in academy.files.libraries)]
        for purpose in containers:
            container = names.storage_container(purpose)
            self.containers.append(
                storage.BlobContainer(
                    f"{code}-container-{container}",
                    account_name=account.name,
                    resource_group_name=rg.name,
                    container_name=container,
                    public_access="None",
                    opts=protected,
                )
            )
        diagnostics(f"{code}-storage", account.id, workspace_id, self, logs=False)
        diagnostics(
            f"{code}-storage-blob",
            account.id.apply(lambda i: f"{i}/blobServices/default"),
            workspace_id,
            self,
        )

        # Bulk file engine (issue 16): a transient staging account SharePoint's Migration API can read.
        self.staging = StagingStorage(
            trust,
            academy,
            resource_group_name=rg.name,
            workspace_id=workspace_id,
            operator_group_id=it_admin_group_id,
            parent=self,
        )

        vault = protected_vault(
            f"{code}-kv", names.key_vault(academy), rg.name, loc, tags, s.tenant.id, workspace_id, self
        )

        # The academy's own IT admins manage their resource group, and only it; never a single user.
        self.role_assignment = authorization.RoleAssignment(
            f"{code}-it-admins-contributor",
            principal_id=it_admin_group_id,
            principal_type="Group",
            role_definition_id=f"/subscriptions/{s.azure.subscription_id}/providers/Microsoft.Authorization/"
            f"roleDefinitions/{ids.ROLE_CONTRIBUTOR}",
            scope=rg.id,
            description=f"{academy.name} IT admins manage their landing zone",
            opts=child,
        )

        self.budget = monthly_budget(
            f"{code}-budget",
            names.academy_budget(academy),
            rg.id,
            academy.budget.monthly_gbp,
            academy.it_contact.email,
            action_group_id,
            self,
        )

        self.domain_txt = _domain_txt(academy, child)

        self.resource_group, self.network, self.nsgs = rg, spoke, nsgs
        self.storage_account, self.key_vault = account, vault
        self.resource_group_name = rg.name
        self.storage_account_name = account.name
        self.spoke_network_id = spoke.id
        self.register_outputs(
            {
                "resource_group_name": rg.name,
                "storage_account_name": account.name,
                "spoke_network_id": spoke.id,
                "key_vault_id": vault.id,
            }
        )


def _domain_txt(academy: Academy, opts: pulumi.ResourceOptions) -> dns.RecordSet | None:
    """The trust tenant's domain verification TXT record, where the trust hosts the academy's zone in Azure
    DNS (domains.dns_zone with verification_txt): the domain phase then runs without waiting for anyone.
    The apex TXT record set holds every apex TXT value, so values already there (SPF, other verifications)
    are declared alongside in keep_txt."""
    zone = academy.domains.dns_zone
    if zone is None or zone.verification_txt is None:
        return None
    return dns.RecordSet(
        f"{academy.code}-domain-verification-txt",
        resource_group_name=zone.resource_group,
        zone_name=zone.zone,
        relative_record_set_name="@",
        record_type="TXT",
        ttl=3600,
        txt_records=[dns.TxtRecordArgs(value=[v]) for v in (zone.verification_txt, *zone.keep_txt)],
        opts=opts,
    )

"""The baseline's storage account (standards 7 and 8): StorageV2, HTTPS only, TLS 1.2 at least, no public
blob access, no shared keys (Entra only, OAuth by default in the portal), no cross-tenant replication.
Callers choose what differs: redundancy, and whether the public endpoint is open (staging: SharePoint reads
it with a SAS) or closed (migrated data)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_azure_native.storage as storage


def hardened_storage_account(
    resource_name: str,
    *,
    account_name: str,
    resource_group_name: Any,
    location: Any,
    tags: dict[str, str],
    sku: str,
    public_endpoint: bool,
    opts: pulumi.ResourceOptions,
) -> storage.StorageAccount:
    return storage.StorageAccount(
        resource_name,
        account_name=account_name,
        resource_group_name=resource_group_name,
        location=location,
        tags=tags,
        kind="StorageV2",
        sku=storage.SkuArgs(name=sku),
        enable_https_traffic_only=True,
        minimum_tls_version="TLS1_2",
        allow_blob_public_access=False,
        allow_shared_key_access=False,
        allow_cross_tenant_replication=False,
        default_to_o_auth_authentication=True,
        public_network_access="Enabled" if public_endpoint else "Disabled",
        network_rule_set=storage.NetworkRuleSetArgs(
            default_action="Allow" if public_endpoint else "Deny", bypass="AzureServices"
        ),
        opts=opts,
    )

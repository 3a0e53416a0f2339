"""The academy's Migration API staging account (bulk file engine, issue 16).

SharePoint Online reads a migration package from Azure Blob storage over the public endpoint with the SAS
it is given. Microsoft documents no network path for it into a firewalled account: SharePoint is not among
Azure Storage's trusted services and no egress ranges are published for the Migration API (checked against
the Migration API and Azure Storage network-security pages; docs/sandbox.md). So the exception lives on a
separate, transient account and nowhere else; the academy's data account keeps public network access off.
What makes the exception acceptable, each checked by the baseline policy pack:
- public network access with **shared key disabled**: only Entra-authorised requests and user delegation SAS
  work (no account key exists to leak); https only, TLS 1.2, no anonymous containers;
- a lifecycle rule deleting staged blobs (and their snapshots) `delete_after_days` after they were written;
- the operator group holds Storage Blob Delegator (user delegation keys) and Storage Blob Data Contributor
  limited by a condition to containers named `staging-*`, at this account's scope only;
- diagnostics to the central workspace, the academy's tags plus `purpose: migration-staging`.
"""

from __future__ import annotations

import pulumi
import pulumi_azure_native.authorization as authorization
import pulumi_azure_native.storage as storage

from infra import ids
from infra.common import diagnostics
from infra.storage_account import hardened_storage_account
from trust import Academy, Trust

PURPOSE = "migration-staging"
CONTAINER_PREFIX = "staging-"
# Azure ABAC: data actions on blobs are allowed only inside containers whose name starts with staging-.
CONDITION = (
    "((!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'})"
    " AND !(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'})"
    " AND !(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete'})"
    " AND !(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'}))"
    " OR (@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name]"
    f" StringStartsWith '{CONTAINER_PREFIX}'))"
)


class StagingStorage:
    def __init__(
        self,
        trust: Trust,
        academy: Academy,
        *,
        resource_group_name: pulumi.Input[str],
        workspace_id: pulumi.Input[str],
        operator_group_id: pulumi.Input[str],
        parent: pulumi.Resource,
    ) -> None:
        code = academy.code
        names, s = trust.names, trust.settings
        child = pulumi.ResourceOptions(parent=parent)
        days = academy.phases.files.staging.delete_after_days
        self.account = hardened_storage_account(
            f"{code}-staging",
            account_name=names.staging_storage_account(academy),
            resource_group_name=resource_group_name,
            location=s.azure.location,
            tags={**names.tags(academy), "purpose": PURPOSE},
            # Transient copies of what is still in the source tenant: no geo-redundancy or retention wanted.
            sku="Standard_LRS",
            # The exception (see module doc): SharePoint reads over the public endpoint with a SAS.
            public_endpoint=True,
            opts=child,
        )
        self.lifecycle = storage.ManagementPolicy(
            f"{code}-staging-lifecycle",
            account_name=self.account.name,
            resource_group_name=resource_group_name,
            management_policy_name="default",
            policy=storage.ManagementPolicySchemaArgs(
                rules=[
                    storage.ManagementPolicyRuleArgs(
                        name="delete-staged-packages",
                        enabled=True,
                        type="Lifecycle",
                        definition=storage.ManagementPolicyDefinitionArgs(
                            filters=storage.ManagementPolicyFilterArgs(
                                blob_types=["blockBlob"], prefix_match=[CONTAINER_PREFIX]
                            ),
                            actions=storage.ManagementPolicyActionArgs(
                                base_blob=storage.ManagementPolicyBaseBlobArgs(
                                    delete=storage.DateAfterModificationArgs(
                                        days_after_modification_greater_than=days
                                    )
                                ),
                                snapshot=storage.ManagementPolicySnapShotArgs(
                                    delete=storage.DateAfterCreationArgs(
                                        days_after_creation_greater_than=days
                                    )
                                ),
                            ),
                        ),
                    )
                ]
            ),
            opts=child,
        )
        role = f"/subscriptions/{s.azure.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/"
        self.delegator = authorization.RoleAssignment(
            f"{code}-staging-delegator",
            principal_id=operator_group_id,
            principal_type="Group",
            role_definition_id=role + ids.ROLE_STORAGE_BLOB_DELEGATOR,
            scope=self.account.id,
            description=f"{academy.name}: user delegation keys for Migration API staging SAS",
            opts=child,
        )
        self.data = authorization.RoleAssignment(
            f"{code}-staging-data",
            principal_id=operator_group_id,
            principal_type="Group",
            role_definition_id=role + ids.ROLE_STORAGE_BLOB_DATA_CONTRIBUTOR,
            scope=self.account.id,
            condition=CONDITION,
            condition_version="2.0",
            description=f"{academy.name}: stage Migration API packages in staging-* containers only",
            opts=child,
        )
        diagnostics(f"{code}-staging", self.account.id, workspace_id, parent, logs=False)
        diagnostics(
            f"{code}-staging-blob",
            self.account.id.apply(lambda i: f"{i}/blobServices/default"),
            workspace_id,
            parent,
        )

"""Run the program under Pulumi's mocks: no CLI, no credentials, no network. Records every resource."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import pulumi

# Which input carries a resource's own Azure name, so the mock can answer `.name` like Azure would.
NAME_INPUTS = {
    "azure-native:resources:ResourceGroup": "resourceGroupName",
    "azure-native:network:VirtualNetwork": "virtualNetworkName",
    "azure-native:network:NetworkSecurityGroup": "networkSecurityGroupName",
    "azure-native:storage:StorageAccount": "accountName",
    "azure-native:keyvault:Vault": "vaultName",
    "azure-native:operationalinsights:Workspace": "workspaceName",
}


@dataclass
class Declared:
    type: str
    name: str
    inputs: dict[str, Any]
    id: str
    custom: bool
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    subscription_id: str = "00000000-0000-0000-0000-000000000000"
    resources: list[Declared] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        provider_type = args.typ.split(":")[1] if args.typ.count(":") >= 2 else args.typ
        rid = f"/subscriptions/{self.subscription_id}/providers/mock.{provider_type}/{args.name}"
        state = dict(args.inputs)
        state.setdefault("name", args.inputs.get(NAME_INPUTS.get(args.typ, ""), args.name))
        state["id"] = rid
        if args.typ.startswith("azuread:"):
            state["objectId"] = f"{args.name}-object-id"
        if args.typ == "azure-native:keyvault:Vault":
            props = dict(state.get("properties") or {})
            props["vaultUri"] = f"https://{args.inputs.get('vaultName')}.vault.azure.net/"
            state["properties"] = props
        with self._lock:
            self.resources.append(
                Declared(args.typ, args.name, dict(args.inputs), rid, bool(args.custom), state)
            )
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


def install(subscription_id: str, stack: str = "check") -> RecordingMocks:
    # Pulumi's mock runtime schedules on the thread's current event loop; an asyncio.run() earlier in the
    # same process (the CLI's migration commands) leaves the main thread without one.
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = RecordingMocks(subscription_id=subscription_id)
    pulumi.runtime.set_mocks(mocks, project="trustfold", stack=stack, preview=False)
    return mocks

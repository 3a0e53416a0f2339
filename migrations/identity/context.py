"""The identity phases' shared context: provenance markers, the run's context (ids, SKUs, licence groups),
the password sink, and reads of objects this tool may have created moments ago."""

from __future__ import annotations

import logging
import os
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrations.core.journal import Journal
from migrations.core.registry import IDENTITY_PHASES
from migrations.core.steps import Step
from migrations.core.store import StateStore
from migrations.graph.client import TenantConnection
from migrations.safety.private import private_dir
from migrations.safety.redaction import register_secret
from migrations.safety.sanitise import csv_line
from trust import Academy, Trust

log = logging.getLogger("trustfold.identity")

# The phase each operation is journaled under, also when the `identity` phase runs them as one graph.
OP_PHASE = {
    "create-user": "users",
    "assign-licence": "users",
    "create-group": "groups",
    "add-members": "memberships",
    "ensure-licence-group": "users",
    "assign-group-licence": "users",
}


def step_phase(step: Step) -> str:
    """The phase a step is journaled under: its operation's, except the licence groups' memberships, which
    the users phase adds (licences.mode group) with the memberships phase's operation."""
    return "users" if step.key.startswith("licmembers:") else OP_PHASE[step.op]


BIND_ROOT = "https://graph.microsoft.com/v1.0/directoryObjects/"


def marker_property(trust: Trust) -> str:
    client_id = trust.settings.tenant.credential.client_id or "0" * 32
    return f"extension_{client_id.replace('-', '')}_trustfoldSource"


def marker_value(academy: Academy, source_id: str) -> str:
    return f"{academy.code}|{academy.legacy_tenant.id}|{source_id}"


class PasswordSink:
    """Initial passwords go once to a per-run file created 0600; never to logs, plans or the state store."""

    def __init__(self, directory: Path, run_id: str):
        self.path = directory / f"{run_id}-initial-passwords.csv"
        self._fd: int | None = None

    def write(self, upn: str, password: str) -> None:
        register_secret(password)
        if self._fd is None:
            private_dir(self.path.parent)  # made 0700, or tightened again if an operator loosened it
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(self._fd, b"userPrincipalName,initialPassword\n")
        # The last line for a UPN wins: a create re-sent after a lost answer gets a fresh password.
        os.write(self._fd, csv_line([upn, password]).encode())
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def new_password() -> str:
    # The first character is a letter or digit: a password starting = + - @ would be read as a formula
    # when the password file is opened in a spreadsheet (20 characters still give over 120 bits).
    alphabet = string.ascii_letters + string.digits + "!#%+-=?@^_"
    while True:
        pw = secrets.choice(string.ascii_letters + string.digits) + "".join(
            secrets.choice(alphabet) for _ in range(19)
        )
        if any(c.islower() for c in pw) and any(c.isupper() for c in pw) and any(c.isdigit() for c in pw):
            return pw


@dataclass
class IdentityContext:
    trust: Trust
    academy: Academy
    store: StateStore
    target: TenantConnection
    passwords: PasswordSink | None = None
    sku_ids: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    # licences.mode group: the academy's staff / pupils groups found in the trust tenant before the run
    licence_groups: dict[str, Any] = field(default_factory=dict)

    @property
    def marker(self) -> str:
        return marker_property(self.trust)

    def remember(self, key: str, target_id: str | None, data: dict[str, Any]) -> None:
        if target_id:
            self.ids[key] = target_id

    def target_id(self, key: str) -> str | None:
        if key.startswith("match:"):
            return key.split(":", 1)[1]
        return self.ids.get(key)

    def load_ids(self) -> None:
        for phase in IDENTITY_PHASES:
            for key, h in Journal.state(self.store, self.academy.code, phase).items():
                if h["event"] == "done" and h["target_id"]:
                    self.ids[key] = h["target_id"]

    async def load_skus(self) -> None:
        body = await self.target.get("/subscribedSkus")
        self.sku_ids = {s["skuPartNumber"]: s["skuId"] for s in body.get("value", [])}

    async def find_by_marker(self, collection: str, value: str) -> dict[str, Any] | None:
        body = await self.target.get(
            f"/{collection}",
            {"$filter": f"{self.marker} eq '{value}'", "$select": f"id,displayName,{self.marker}"},
        )
        found = body.get("value", [])
        return found[0] if found else None


# ---- inputs from discovery and mapping ---------------------------------------------------------------------
async def _member_ids(conn: Any, gid: str, wait: float = 15.0) -> set[str]:
    """Member ids of a group this tool may have created moments ago: 404 (eventual consistency) is retried
    briefly, as for _read_own."""
    import asyncio
    import time

    from migrations.graph.client import GraphError

    deadline = time.monotonic() + wait
    while True:
        try:
            return {
                m["id"] async for m in conn.pages(f"/groups/{gid}/members", {"$select": "id", "$top": 999})
            }
        except GraphError as exc:
            if exc.response.status != 404 or time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.25)


async def _read_own(
    ctx: IdentityContext, path: str, params: dict[str, Any], wait: float = 15.0
) -> dict[str, Any]:
    """GET an object this tool created; a brand-new object can answer 404 for a few seconds (Graph's
    eventual consistency, graph-facts.md), so 404 is retried briefly."""
    import asyncio
    import time

    from migrations.graph.client import GraphError

    deadline = time.monotonic() + wait
    while True:
        try:
            return dict(await ctx.target.get(path, params))
        except GraphError as exc:
            if exc.response.status != 404 or time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.25)

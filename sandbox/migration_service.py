"""The sandbox SharePoint's Migration API state, per world: its own storage (a rehearsal's Azurite) for
provided containers and queues, the jobs it accepted (SPMigrationJobState), what it imported, and the ids
SharePoint would show for webs, lists and items."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sandbox.world import World

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PROGRESS_EVERY = 50
# SharePoint's SPMigrationJobState (migration-api-reference.md)
NONE, QUEUED, PROCESSING = 0, 2, 4


@dataclass
class Job:
    id: str
    tenant: str
    drive_id: str
    web_id: str
    source: str
    manifest: str
    queue: str | None
    key: bytes | None
    provided: bool
    verify: str | bool = True  # TLS verification for the report queue (a rehearsal's CA file over HTTPS)
    state: int = QUEUED
    events: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # every event as GetMigrationJobProgress returns it (JSON)


@dataclass
class MigrationService:
    """Per world: SharePoint's own storage (Azurite) for provided containers and queues, and the jobs."""

    blob_url: str | None = None
    queue_url: str | None = None
    account: str | None = None
    key: str | None = None
    rate: float = 200.0  # files a second per job
    verify: str | bool = True  # Azurite over HTTPS: the rehearsal's CA file (verification is never off)
    jobs: dict[str, Job] = field(default_factory=dict)
    provided: set[str] = field(default_factory=set)  # container/queue URLs (no query) SharePoint provisioned
    pending: asyncio.Queue[Job] | None = None
    worker: asyncio.Task[None] | None = None
    paused: bool = False  # tests hold queued jobs (e.g. to tamper with a staged package first)
    imports: dict[str, int] = field(default_factory=dict)  # "<drive id>/<url>" -> times imported
    # Report queues are being retired (migration-azure: "Deprecation is planned for the second half of
    # 2026"): a rehearsal of the world after that offers none, and jobs are followed only through
    # GetMigrationJobProgress.
    queues: bool = True


def service(world: World) -> MigrationService:
    svc = world.__dict__.get("_migration")
    if svc is None:
        svc = MigrationService()
        world.__dict__["_migration"] = svc
    return svc


def configure(
    world: World,
    *,
    blob_url: str,
    queue_url: str,
    account: str,
    key: str,
    rate: float = 200.0,
    ca_file: str | None = None,
    queues: bool = True,
) -> None:
    """Give the sandbox's SharePoint its own storage (Azurite): loopback only; over HTTPS, verified against
    `ca_file`."""
    for url in (blob_url, queue_url):
        if urlsplit(url).hostname not in LOOPBACK:
            raise ValueError(f"the sandbox only talks to loopback storage, not {url}")
    svc = service(world)
    svc.blob_url, svc.queue_url, svc.account, svc.key, svc.rate = blob_url, queue_url, account, key, rate
    svc.verify = ca_file or True
    svc.queues = queues


# ---- ids SharePoint would show -------------------------------------------------------------------------
def guid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "trustfold-sandbox:" + "/".join(parts)))


def item_guid(item: dict[str, Any]) -> str:
    return str(item.get("_spguid") or guid("item", item["id"]))

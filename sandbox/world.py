"""The sandbox's whole state: every tenant's directory and drives, the settings, the throttle and the stats.

Objects are stored as Graph JSON dicts (camelCase keys) so that $select and serialisation are direct.
Change tracking for delta is kept as "last change sequence per object" rather than a growing log, so memory
is bounded by the data, however long the server runs.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.settings import Settings
from sandbox.teams_state import TeamsStore
from sandbox.throttle import Throttle

STATE_VERSION = 1

try:  # the drives engineer's store; a minimal stand-in keeps the core usable until it lands.
    from sandbox.drives_state import DriveStore
except ImportError:  # pragma: no cover - only while drives_state.py does not exist yet

    class DriveStore:  # type: ignore[no-redef]
        def __init__(self, tenant_id: str) -> None:
            self.tenant_id = tenant_id

        def snapshot(self) -> dict[str, Any]:
            return {}

        def to_state(self) -> dict[str, Any]:
            return {}

        @classmethod
        def from_state(cls, tenant_id: str, state: dict[str, Any]) -> DriveStore:
            return cls(tenant_id)


@dataclass
class TenantState:
    """One Entra tenant: directory objects, memberships, deleted items, domains, SKUs, organization,
    drives."""

    id: str
    role: str  # "target" | "source"
    academy: str | None
    domains: list[dict[str, Any]] = field(default_factory=list)
    organization: dict[str, Any] = field(default_factory=dict)
    skus: list[dict[str, Any]] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    # group id -> member ids / owner ids, insertion-ordered (dict used as an ordered set)
    members: dict[str, dict[str, None]] = field(default_factory=dict)
    owners: dict[str, dict[str, None]] = field(default_factory=dict)
    # soft-deleted users and Microsoft 365 groups: id -> {"kind", "object", "memberOf", "ownerOf"}
    deleted: dict[str, dict[str, Any]] = field(default_factory=dict)
    # change tracking for delta queries
    seq: int = 0
    changed: dict[str, int] = field(default_factory=dict)  # object id -> last change seq
    removed: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # id -> (kind, seq, reason)
    member_changes: dict[str, dict[str, tuple[int, bool]]] = field(default_factory=dict)
    upn_index: dict[str, str] = field(default_factory=dict)  # lowercase UPN -> user id
    # Bumped by the admin API to make every outstanding delta token stale (410), as after a service resync.
    delta_epoch: int = 0
    # Objects created through the API, by monotonic creation time, for simulated replication lag (not saved).
    fresh: dict[str, float] = field(default_factory=dict)
    replication_lag_s: float = 0.0
    drives: Any = None
    # Admin consent, applications and OneDrive provisioning (sandbox/tenancy.py): granted application roles
    # (None = every role the sandbox knows), application objects by appId with their registered extension
    # properties, and OneDrive site requests: user id -> wall-clock time the site is ready.
    granted_roles: list[str] | None = None
    applications: dict[str, dict[str, Any]] = field(default_factory=dict)
    onedrive_ready: dict[str, float] = field(default_factory=dict)
    personal_site_calls: int = 0  # accepted CreatePersonalSiteEnqueueBulk calls (not saved)
    # Group-based licensing is processed in the background (sandbox/licensing.py): user id / group id ->
    # wall-clock time Entra's processing reaches it; the delay comes from the settings (not saved).
    licence_due: dict[str, float] = field(default_factory=dict)
    licence_groups_due: dict[str, float] = field(default_factory=dict)
    licensing_delay_s: float = 0.0
    # Conditional access policies (sandbox/conditional_access.py), as Graph returns them.
    ca_policies: list[dict[str, Any]] = field(default_factory=list)
    # Teams, channels, messages and education classes (sandbox/teams_state.py); None until first used.
    teams: Any = None

    def __post_init__(self) -> None:
        if self.drives is None:
            self.drives = DriveStore(self.id)

    # Lookups -------------------------------------------------------------------------------------------
    @property
    def verified_domains(self) -> set[str]:
        return {d["id"].lower() for d in self.domains if d.get("isVerified")}

    @property
    def default_domain(self) -> str:
        for d in self.domains:
            if d.get("isDefault"):
                return str(d["id"])
        return str(self.domains[0]["id"])

    def user_by_key(self, key: str) -> dict[str, Any] | None:
        """Users are addressed by id or userPrincipalName."""
        user = self.users.get(key)
        if user is None and "@" in key:
            uid = self.upn_index.get(key.lower())
            user = self.users.get(uid) if uid else None
        return user

    def created(self, oid: str) -> None:
        if self.replication_lag_s > 0:
            self.fresh[oid] = time.monotonic()

    def is_fresh(self, oid: str) -> bool:
        """True while a just-created object has not yet 'replicated' (Graph's eventual consistency)."""
        born = self.fresh.get(oid)
        if born is None:
            return False
        if time.monotonic() - born >= self.replication_lag_s:
            del self.fresh[oid]
            return False
        return True

    def object_kind(self, oid: str) -> str | None:
        if oid in self.users:
            return "user"
        if oid in self.groups:
            return "group"
        return None

    def licence_count(self) -> int:
        return sum(int(s["prepaidUnits"]["enabled"]) for s in self.skus)

    # Change tracking -----------------------------------------------------------------------------------
    def touch(self, oid: str) -> int:
        # Re-inserting keeps `changed` ordered by sequence, so delta pages need no sort.
        self.seq += 1
        self.changed.pop(oid, None)
        self.changed[oid] = self.seq
        self.removed.pop(oid, None)
        return self.seq

    def mark_removed(self, oid: str, kind: str, reason: str) -> None:
        self.seq += 1
        self.changed.pop(oid, None)
        self.removed.pop(oid, None)
        self.removed[oid] = (kind, self.seq, reason)

    def member_changed(self, gid: str, mid: str, present: bool) -> None:
        seq = self.touch(gid)
        self.member_changes.setdefault(gid, {})[mid] = (seq, present)

    def index_user(self, user: dict[str, Any]) -> None:
        self.upn_index[user["userPrincipalName"].lower()] = user["id"]

    # Persistence -----------------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "academy": self.academy,
            "domains": self.domains,
            "organization": self.organization,
            "skus": self.skus,
            "users": self.users,
            "groups": self.groups,
            "members": {g: list(m) for g, m in self.members.items()},
            "owners": {g: list(m) for g, m in self.owners.items()},
            "deleted": self.deleted,
            "seq": self.seq,
            "delta_epoch": self.delta_epoch,
            "changed": self.changed,
            "removed": {k: list(v) for k, v in self.removed.items()},
            "member_changes": {g: {m: list(v) for m, v in c.items()} for g, c in self.member_changes.items()},
            "drives": self.drives.to_state(),
            "granted_roles": self.granted_roles,
            "applications": self.applications,
            "onedrive_ready": self.onedrive_ready,
            "licence_due": self.licence_due,
            "licence_groups_due": self.licence_groups_due,
            "ca_policies": self.ca_policies,
            "teams": self.teams.to_state() if self.teams is not None else None,
        }

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> TenantState:
        t = cls(
            id=d["id"],
            role=d["role"],
            academy=d["academy"],
            domains=d["domains"],
            organization=d["organization"],
            skus=d["skus"],
            users=d["users"],
            groups=d["groups"],
            members={g: dict.fromkeys(m) for g, m in d["members"].items()},
            owners={g: dict.fromkeys(m) for g, m in d["owners"].items()},
            deleted=d["deleted"],
            seq=d["seq"],
            delta_epoch=int(d.get("delta_epoch", 0)),
            changed=d["changed"],
            removed={k: (v[0], v[1], v[2]) for k, v in d["removed"].items()},
            member_changes={
                g: {m: (v[0], v[1]) for m, v in c.items()} for g, c in d["member_changes"].items()
            },
            drives=DriveStore.from_state(d["id"], d.get("drives") or {}),
            granted_roles=d.get("granted_roles"),
            applications=d.get("applications") or {},
            onedrive_ready={k: float(v) for k, v in (d.get("onedrive_ready") or {}).items()},
            licence_due={k: float(v) for k, v in (d.get("licence_due") or {}).items()},
            licence_groups_due={k: float(v) for k, v in (d.get("licence_groups_due") or {}).items()},
            ca_policies=list(d.get("ca_policies") or []),
            teams=TeamsStore.from_state(d["teams"]) if d.get("teams") else None,
        )
        for u in t.users.values():
            t.index_user(u)
        return t

    def snapshot(self) -> dict[str, Any]:
        """The tenant as stable, diffable JSON (sorted keys and ids)."""

        def by_id(objs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
            return [dict(sorted(objs[k].items())) for k in sorted(objs)]

        return {
            "id": self.id,
            "role": self.role,
            "academy": self.academy,
            "organization": self.organization,
            "domains": sorted(self.domains, key=lambda x: x["id"]),
            "subscribedSkus": sorted(self.skus, key=lambda x: x["skuId"]),
            "users": by_id(self.users),
            "groups": by_id(self.groups),
            "members": {g: sorted(m) for g, m in sorted(self.members.items())},
            "owners": {g: sorted(m) for g, m in sorted(self.owners.items())},
            "deletedItems": [
                {"kind": v["kind"], "object": dict(sorted(v["object"].items()))}
                for _, v in sorted(self.deleted.items())
            ],
            "drives": self.drives.snapshot(),
            **({"teams": self.teams.snapshot()} if self.teams is not None else {}),
        }


@dataclass
class TenantStats:
    requests: int = 0
    writes: int = 0
    throttled: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    by_method: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "writes": self.writes,
            "throttled": self.throttled,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "by_method": dict(sorted(self.by_method.items())),
        }


class Stats:
    """Per-tenant request counters for GET /sandbox/stats; callable from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tenants: dict[str, TenantStats] = {}

    def record(
        self,
        tenant_id: str,
        *,
        method: str | None = None,
        request: bool = True,
        write: bool = False,
        throttled: bool = False,
        bytes_in: int = 0,
        bytes_out: int = 0,
    ) -> None:
        with self._lock:
            s = self._tenants.setdefault(tenant_id, TenantStats())
            if request:
                s.requests += 1
                if method:
                    s.by_method[method] += 1
            if write:
                s.writes += 1
            if throttled:
                s.throttled += 1
            s.bytes_in += bytes_in
            s.bytes_out += bytes_out

    def add_bytes(self, tenant_id: str, bytes_in: int = 0, bytes_out: int = 0) -> None:
        """For content streamed by drive routes (download/upload URLs)."""
        self.record(tenant_id, request=False, bytes_in=bytes_in, bytes_out=bytes_out)

    def as_dict(self, tenant_ids: list[str]) -> dict[str, Any]:
        with self._lock:
            return {"tenants": {t: self._tenants.get(t, TenantStats()).as_dict() for t in tenant_ids}}

    def reset(self) -> None:
        with self._lock:
            self._tenants.clear()


class World:
    """All tenants plus the settings, throttle and stats the app and the drive routes share."""

    def __init__(
        self,
        tenants: dict[str, TenantState],
        settings: Settings,
        config_dir: Path | None = None,
        state_path: Path | None = None,
    ) -> None:
        self.tenants = tenants
        self.settings = settings
        self.config_dir = config_dir
        self.state_path = state_path
        self.throttle = Throttle(settings, user_count=self._user_count)
        self._set_lag()
        self.stats = Stats()
        # Signs access tokens; per process, never persisted (tokens die with the server, like a key rollover).
        self.token_key = secrets.token_bytes(32)
        self.dirty = False
        self._save_lock = threading.Lock()
        self.apply_seats()
        self.refresh_budgets()

    def tenant(self, tenant_id: str) -> TenantState | None:
        return self.tenants.get(tenant_id.lower())

    def _user_count(self, tenant_id: str) -> int | None:
        t = self.tenants.get(tenant_id)
        return len(t.users) if t is not None else None

    def refresh_budgets(self) -> None:
        for t in self.tenants.values():
            self.throttle.set_tenant_size(t.id, len(t.users), t.licence_count())

    def apply_settings(self, settings: Settings) -> None:
        self.settings = settings
        self.throttle.configure(settings)
        self._set_lag()

    def _set_lag(self) -> None:
        for t in self.tenants.values():
            t.replication_lag_s = self.settings.replication_lag_ms / 1000
            t.licensing_delay_s = self.settings.group_licensing_delay_s

    def apply_seats(self, seats: tuple[tuple[str, str, int], ...] | None = None) -> None:
        """Set prepaid units from the settings (or the given entries); ValueError names a bad entry."""
        from sandbox.licensing import set_seats

        for tenant_id, sku, units in self.settings.seats if seats is None else seats:
            if tenant_id != "*":
                t = self.tenant(tenant_id)
                if t is None:
                    raise ValueError(f"seats: no tenant {tenant_id} in this sandbox")
                set_seats(t, {sku: units})
                continue
            holders = [
                t
                for t in self.tenants.values()
                if any(sku in (s["skuPartNumber"], s["skuId"]) for s in t.skus)
            ]
            if not holders:
                raise ValueError(f"seats: no tenant holds a SKU {sku!r}")
            for t in holders:
                set_seats(t, {sku: units})
        self.refresh_budgets()

    def replace_tenants(self, tenants: dict[str, TenantState]) -> None:
        self.tenants = tenants
        self.apply_seats()
        self._set_lag()
        self.throttle.reset()
        self.stats.reset()
        self.refresh_budgets()
        self.dirty = True

    def tenant_list(self) -> list[dict[str, Any]]:
        return [
            {
                "id": t.id,
                "role": t.role,
                "academy": t.academy,
                "domains": [d["id"] for d in t.domains],
            }
            for t in self.tenants.values()
        ]

    # Persistence ------------------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "seed": self.settings.seed,
            "size": self.settings.size,
            "tenants": [t.to_state() for t in self.tenants.values()],
        }

    def save(self) -> None:
        """Write the state file atomically (temp file in the same folder, then rename)."""
        if self.state_path is None:
            return
        with self._save_lock:
            self.dirty = False
            data = json.dumps(self.to_state(), separators=(",", ":"))
            write_atomic(self.state_path, data)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StateFileError(Exception):
    """The --state file cannot be read as sandbox state."""


def load_state(path: Path) -> tuple[dict[str, TenantState], int, int]:
    """Tenants, seed and size from a state file written by World.save()."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StateFileError(f"{path}: cannot read sandbox state ({exc})") from None
    if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
        raise StateFileError(f"{path}: not a sandbox state file of version {STATE_VERSION}")
    try:
        tenants = {t["id"]: TenantState.from_state(t) for t in raw["tenants"]}
    except (KeyError, TypeError, IndexError) as exc:
        raise StateFileError(f"{path}: damaged sandbox state (missing {exc})") from None
    return tenants, int(raw.get("seed", 1)), int(raw.get("size", 0))

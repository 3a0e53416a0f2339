"""The state store: one SQLite file (WAL) with a versioned schema, migrated forward on open.

Holds inventories, delta links, mappings, plans, the step journal, runs, phase status and the operator audit
log; never secrets. SQL stays portable (no SQLite-only types or functions in queries) so the same schema can
move to PostgreSQL behind this one interface when a trust runs several runners at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from migrations.core import killpoints
from trust.errors import ConfigError

# Each entry moves the schema from version i to i+1. Append only; never edit a released migration.
MIGRATIONS: list[Sequence[str]] = [
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE inventory (
            academy TEXT NOT NULL, tenant_id TEXT NOT NULL, kind TEXT NOT NULL, object_id TEXT NOT NULL,
            data TEXT NOT NULL, removed INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL,
            PRIMARY KEY (academy, kind, object_id))""",
        """CREATE TABLE delta_links (
            academy TEXT NOT NULL, resource TEXT NOT NULL, link TEXT NOT NULL, updated_at TEXT NOT NULL,
            PRIMARY KEY (academy, resource))""",
        """CREATE TABLE mappings (
            academy TEXT NOT NULL, kind TEXT NOT NULL, source_id TEXT NOT NULL, source_key TEXT,
            display_name TEXT, target_key TEXT, action TEXT NOT NULL, note TEXT, origin TEXT NOT NULL,
            data TEXT, updated_at TEXT NOT NULL,
            PRIMARY KEY (academy, kind, source_id))""",
        """CREATE TABLE plans (
            id TEXT PRIMARY KEY, academy TEXT NOT NULL, phase TEXT NOT NULL, created_at TEXT NOT NULL,
            digest TEXT NOT NULL, step_count INTEGER NOT NULL, body TEXT NOT NULL, kind TEXT NOT NULL)""",
        "CREATE INDEX plans_by_academy ON plans (academy, phase, created_at)",
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY, academy TEXT NOT NULL, phase TEXT NOT NULL, kind TEXT NOT NULL,
            plan_id TEXT, started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL,
            counts TEXT, operator TEXT)""",
        """CREATE TABLE journal (
            seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, academy TEXT NOT NULL, phase TEXT NOT NULL,
            plan_id TEXT, step_key TEXT NOT NULL, op TEXT NOT NULL, event TEXT NOT NULL,
            target_id TEXT, data TEXT, at TEXT NOT NULL)""",
        "CREATE INDEX journal_by_step ON journal (academy, phase, step_key)",
        """CREATE TABLE phase_status (
            academy TEXT NOT NULL, phase TEXT NOT NULL, status TEXT NOT NULL, detail TEXT,
            updated_at TEXT NOT NULL, PRIMARY KEY (academy, phase))""",
        """CREATE TABLE audit (
            seq INTEGER PRIMARY KEY, at TEXT NOT NULL, operator TEXT NOT NULL, host TEXT NOT NULL,
            command TEXT NOT NULL, academy TEXT, phase TEXT, plan_id TEXT, outcome TEXT NOT NULL,
            detail TEXT)""",
        """CREATE TABLE metrics (
            run_id TEXT NOT NULL, at TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL)""",
        "CREATE INDEX metrics_by_run ON metrics (run_id, name)",
    ),
    # 2: files - drives scanned with delta, their items, what was copied where, file findings.
    (
        """CREATE TABLE drives (
            academy TEXT NOT NULL, drive_key TEXT NOT NULL, kind TEXT NOT NULL, label TEXT NOT NULL,
            source_drive_id TEXT, target_ref TEXT NOT NULL, delta_link TEXT, scanned_at TEXT,
            PRIMARY KEY (academy, drive_key))""",
        """CREATE TABLE drive_items (
            academy TEXT NOT NULL, drive_key TEXT NOT NULL, item_id TEXT NOT NULL, parent_id TEXT,
            name TEXT NOT NULL, folder INTEGER NOT NULL, size INTEGER NOT NULL, hash TEXT, created TEXT,
            modified TEXT, ctag TEXT, deleted INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (academy, drive_key, item_id))""",
        """CREATE TABLE file_copies (
            academy TEXT NOT NULL, drive_key TEXT NOT NULL, source_id TEXT NOT NULL, folder INTEGER NOT NULL,
            target_drive TEXT NOT NULL, target_id TEXT NOT NULL, path TEXT NOT NULL, size INTEGER,
            hash TEXT, source_ctag TEXT, target_ctag TEXT, created INTEGER NOT NULL, at TEXT NOT NULL,
            PRIMARY KEY (academy, drive_key, source_id))""",
        """CREATE TABLE file_findings (
            academy TEXT NOT NULL, kind TEXT NOT NULL, object_id TEXT NOT NULL, display TEXT NOT NULL,
            message TEXT NOT NULL, handling TEXT NOT NULL, PRIMARY KEY (academy, kind, object_id))""",
    ),
    # 3: run locks - one writer per academy and phase (migrations/core/locks.py).
    (
        """CREATE TABLE run_locks (
            academy TEXT NOT NULL, phase TEXT NOT NULL, token TEXT NOT NULL, operator TEXT NOT NULL,
            host TEXT NOT NULL, pid INTEGER NOT NULL, command TEXT NOT NULL, started_at TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL, PRIMARY KEY (academy, phase))""",
    ),
    # 4: permissions - shared source items' permissions as read, and the grants a plan does not carry.
    (
        """CREATE TABLE share_items (
            academy TEXT NOT NULL, drive_key TEXT NOT NULL, item_id TEXT NOT NULL, permissions TEXT NOT NULL,
            removed INTEGER NOT NULL DEFAULT 0, read_at TEXT NOT NULL,
            PRIMARY KEY (academy, drive_key, item_id))""",
        """CREATE TABLE share_findings (
            academy TEXT NOT NULL, kind TEXT NOT NULL, object_id TEXT NOT NULL, display TEXT NOT NULL,
            message TEXT NOT NULL, handling TEXT NOT NULL, PRIMARY KEY (academy, kind, object_id))""",
    ),
    # 5: plans are numbered (what operators review and name with `run --plan N`); a plan's id is
    # its content (academy-phase-digest), so the same content planned twice gets two numbers.
    (
        "ALTER TABLE plans RENAME TO plans_unnumbered",
        "DROP INDEX IF EXISTS plans_by_academy",
        """CREATE TABLE plans (
            number INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, academy TEXT NOT NULL,
            phase TEXT NOT NULL, created_at TEXT NOT NULL, digest TEXT NOT NULL, step_count INTEGER NOT NULL,
            body TEXT NOT NULL, kind TEXT NOT NULL)""",
        "INSERT INTO plans (id, academy, phase, created_at, digest, step_count, body, kind) "
        "SELECT id, academy, phase, created_at, digest, step_count, body, kind FROM plans_unnumbered "
        "ORDER BY created_at",
        "DROP TABLE plans_unnumbered",
        "CREATE INDEX plans_by_academy ON plans (academy, phase, kind, number)",
    ),
    # 6: bulk file engine (issue 16): Migration API packages and their jobs, so a killed run re-attaches to a
    # job in flight instead of submitting it again. SAS URLs and keys are not here (a 0600 file beside it).
    (
        """CREATE TABLE bulk_packages (
            academy TEXT NOT NULL, package_id TEXT NOT NULL, target_drive TEXT NOT NULL, state TEXT NOT NULL,
            job_id TEXT, data TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (academy, package_id))""",
    ),
    # 7: mail (issue 24) - mailboxes and folders as discovered and where they went, every item imported
    # (source id -> target id and change key, written with the journal outcome), the items a target folder
    # held before trustfold imported into it (so an in-doubt import is recognised), and mail findings.
    (
        """CREATE TABLE mail_mailboxes (
            academy TEXT NOT NULL, source_mailbox TEXT NOT NULL, kind TEXT NOT NULL,
            source_user TEXT NOT NULL, display TEXT NOT NULL, target_user TEXT, target_mailbox TEXT,
            size INTEGER NOT NULL DEFAULT 0,
            items INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL, at TEXT NOT NULL,
            PRIMARY KEY (academy, source_mailbox))""",
        """CREATE TABLE mail_folders (
            academy TEXT NOT NULL, source_mailbox TEXT NOT NULL, source_folder TEXT NOT NULL,
            parent_folder TEXT, path TEXT NOT NULL, class TEXT NOT NULL, well_known TEXT,
            items INTEGER NOT NULL DEFAULT 0, target_folder TEXT, created INTEGER NOT NULL DEFAULT 0,
            delta_link TEXT, PRIMARY KEY (academy, source_mailbox, source_folder))""",
        """CREATE TABLE mail_items (
            academy TEXT NOT NULL, source_mailbox TEXT NOT NULL, source_item TEXT NOT NULL,
            source_folder TEXT NOT NULL, source_change_key TEXT, target_mailbox TEXT NOT NULL,
            target_folder TEXT NOT NULL, target_item TEXT NOT NULL, target_change_key TEXT,
            size INTEGER NOT NULL DEFAULT 0, item_type TEXT, at TEXT NOT NULL,
            PRIMARY KEY (academy, source_mailbox, source_item))""",
        "CREATE INDEX mail_items_by_target ON mail_items (academy, target_mailbox, target_folder)",
        """CREATE TABLE mail_baseline (
            academy TEXT NOT NULL, target_mailbox TEXT NOT NULL, target_folder TEXT NOT NULL,
            item_id TEXT NOT NULL, PRIMARY KEY (academy, target_mailbox, target_folder, item_id))""",
        """CREATE TABLE mail_findings (
            academy TEXT NOT NULL, kind TEXT NOT NULL, object_id TEXT NOT NULL, display TEXT NOT NULL,
            message TEXT NOT NULL, handling TEXT NOT NULL, PRIMARY KEY (academy, kind, object_id))""",
    ),
    # 8: teams (issue 25): what the teams phase does not carry (assignments, notebooks, Planner, apps,
    # unreadable history), per team or channel, for the report.
    (
        """CREATE TABLE team_findings (
            academy TEXT NOT NULL, kind TEXT NOT NULL, object_id TEXT NOT NULL, display TEXT NOT NULL,
            message TEXT NOT NULL, PRIMARY KEY (academy, kind, object_id))""",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(ConfigError):
    """The state file cannot be used (newer version, corrupt, unreadable): bad input, exit 2."""


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise StoreError(path, f"cannot read the state store ({exc.strerror})") from None
    if not head:
        # SQLite would take an empty file as a new database and a writing command would fill it with an empty
        # store: the history that was there (a truncated copy, a full disk) would be gone without a word.
        raise StoreError(
            path,
            "state file is empty (0 bytes), not a trustfold state store; nothing was changed. Restore it "
            "from a backup, or move it aside to start a new store",
        )
    if head != b"SQLite format 3\x00":
        raise StoreError(path, "not a trustfold state store (not a SQLite file); refusing to touch it")


def _make_private(path: Path, file: Path | None = None) -> None:
    """A new store: its folder 0700 and the file (FILE, else PATH) 0600 before SQLite opens it (-wal/-shm
    copy its mode)."""
    from migrations.safety.private import create_private_file, private_dir

    try:
        private_dir(path.parent)
        create_private_file(file or path)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
        raise StoreError(
            path, f"cannot create the state store: {blocker} is a file, not a folder; choose another --state"
        ) from None
    except OSError as exc:
        raise StoreError(path, f"cannot create the state store ({exc.strerror})") from None


def _tighten_store(path: Path) -> None:
    """Owner-only for the store, its -wal/-shm, its folder and trustfold's artefacts there (job keys, SAS,
    passwords, DNS change requests) and, when the folder is trustfold's own, everything in it."""
    from migrations.safety.private import tighten, tighten_state_folder, tighten_tree

    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        tighten(p)
    tighten_state_folder(path.parent)
    if path.parent.name == ".trustfold":
        tighten_tree(path.parent)


def read_only_problem(path: Path) -> str | None:
    """Why a writer cannot use the store at PATH (None when it can): the file, its folder or the mount."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "on a read-only file system"
    except OSError:
        pass
    if not os.access(path, os.W_OK):
        return "the file is not writable"
    if not os.access(path.parent, os.W_OK):
        return f"its folder {path.parent} is not writable"
    return None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class StateStore:
    """Thin wrapper over one connection; callers use `tx()` for writes and `rows()` for reads."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.conn = conn
        self._lock = threading.RLock()
        self.readonly = False

    @classmethod
    def open(cls, path: Path | str, *, create: bool = True, readonly: bool = False) -> StateStore:
        """Open (creating and migrating when allowed) the store at PATH.

        readonly: for commands that only read (status, report, audit): the file is opened with SQLite's
        `mode=ro`, nothing is migrated or written, and an archived copy or a read-only mount works.
        """
        path = Path(path)
        if readonly:
            return cls._open_readonly(path)
        if not path.exists():
            if not create:
                raise StoreError(path, "state store not found; run a command that creates it (e.g. discover)")
            cls._create(path)
        if path.is_dir():
            raise StoreError(path, "state path is a directory; expected a SQLite file")
        else:
            _check_header(path)
            problem = read_only_problem(path)
            if problem:
                # Exit 2, not 1: the operator pointed a writing command at a store that cannot be written
                # (archive, read-only mount); nothing was attempted and the fix is in their hands.
                raise StoreError(
                    path,
                    f"state store is read-only ({problem}); this command writes to it. Reading commands "
                    "(status, report, audit) work on it; use a writable copy to change anything",
                )
            _tighten_store(path)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        store = cls(path, conn)
        try:
            store._prepare(fresh=False)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(
                path, f"state store is unreadable or corrupt ({exc}); it was left untouched"
            ) from None
        except StoreError:
            conn.close()
            raise
        _tighten_store(path)
        return store

    @classmethod
    def _create(cls, path: Path) -> None:
        """A new store, complete before it has its name: built under a temporary name in the same folder and
        linked into place. A crash while it is made leaves no half-made (empty) file at PATH, which every
        command would refuse as not trustfold's."""
        tmp = path.with_name(f"{path.name}.new-{os.getpid()}-{threading.get_ident()}")
        side = [tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")]
        for p in side:  # left by a crashed attempt of a process with the same id; errors are _make_private's
            with contextlib.suppress(OSError):
                p.unlink(missing_ok=True)
        _make_private(path, tmp)
        try:
            conn = sqlite3.connect(tmp, timeout=30, isolation_level=None, check_same_thread=False)
            try:
                cls(tmp, conn)._prepare(fresh=True)
            finally:
                conn.close()  # the last connection checkpoints the WAL into the file and removes it
            # Another process that made it meanwhile keeps its own: theirs is as complete as ours.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        except OSError as exc:
            raise StoreError(path, f"cannot create the state store ({exc.strerror})") from None
        finally:
            for p in side:
                with contextlib.suppress(OSError):
                    p.unlink(missing_ok=True)

    @classmethod
    def _open_readonly(cls, path: Path) -> StateStore:
        if not path.exists():
            raise StoreError(path, "state store not found; run a command that creates it (e.g. discover)")
        if path.is_dir():
            raise StoreError(path, "state path is a directory; expected a SQLite file")
        _check_header(path)
        _tighten_store(path)
        uri = f"{path.resolve().as_uri()}?mode=ro"
        wal = Path(f"{path}-wal")
        if not os.access(path.parent, os.W_OK) and not Path(f"{path}-shm").exists():
            if wal.exists() and wal.stat().st_size > 0:
                raise StoreError(
                    path,
                    "state store is read-only and its write-ahead log (-wal) holds changes SQLite cannot "
                    "read without a -shm file; copy the store with its -wal to a writable folder",
                )
            # A WAL database needs a -shm index it cannot create in a read-only folder; with no WAL content
            # the file itself is complete, so SQLite may read it as immutable.
            uri += "&immutable=1"
        conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        store = cls(path, conn)
        store.readonly = True
        try:
            row = conn.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise StoreError(
                    path, f"state store failed its integrity check ({row[0] if row else 'no answer'})"
                )
            version = store._version()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(
                path, f"state store is unreadable or corrupt ({exc}); it was left untouched"
            ) from None
        except StoreError:
            conn.close()
            raise
        if version > SCHEMA_VERSION:
            conn.close()
            raise StoreError(
                path,
                f"state store has schema version {version}, newer than this trustfold "
                f"understands ({SCHEMA_VERSION}); upgrade trustfold",
            )
        return store

    def _prepare(self, *, fresh: bool) -> None:
        c = self.conn
        row = c.execute("PRAGMA quick_check").fetchone()
        if row is None or row[0] != "ok":
            raise StoreError(
                self.path, f"state store failed its integrity check ({row[0] if row else 'no answer'})"
            )
        # Whose file is it, before anything is written: switching to WAL rewrites the header of a file that
        # may turn out not to be ours.
        version = self._version(fresh=fresh)
        if version > SCHEMA_VERSION:
            raise StoreError(
                self.path,
                f"state store has schema version {version}, newer than this trustfold "
                f"understands ({SCHEMA_VERSION}); upgrade trustfold",
            )
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute("PRAGMA foreign_keys=ON")
        for target in range(version, SCHEMA_VERSION):
            with self.tx() as tx:
                for statement in MIGRATIONS[target]:
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(target + 1),),
                )

    def _version(self, *, fresh: bool = False) -> int:
        """The schema version; 0 only for a store this open created. A file that was already there is
        trustfold's only with its schema: any other SQLite file (another program's, or an empty database)
        is bad input, never migrated into a new store over whatever it held."""
        has_meta = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        row = (
            self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if has_meta
            else None
        )
        if row is None:
            tables = self.conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[
                0
            ]
            if tables:
                raise StoreError(
                    self.path, "SQLite file is not a trustfold state store (no trustfold schema)"
                )
            if not fresh:
                raise StoreError(
                    self.path,
                    "SQLite file holds no trustfold state store (an empty database); nothing was changed. "
                    "Restore it from a backup, or move it aside to start a new store",
                )
            return 0
        return int(row[0])

    @property
    def schema_version(self) -> int:
        return self._version()

    @contextmanager
    def tx(self, label: str = "") -> Iterator[sqlite3.Connection]:
        """One atomic write: committed on success, rolled back on any exception. `label` names the commit
        for the kill hook of crash tests (migrations.core.killpoints); it changes nothing else."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                killpoints.commit(label, "before")
                self.conn.execute("COMMIT")
                killpoints.commit(label, "after")

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        self.conn.close()

    # ---- small shared records ------------------------------------------------------------------------
    def set_phase_status(
        self, academy: str, phase: str, status: str, detail: dict[str, Any] | None = None
    ) -> None:
        with self.tx() as tx:
            tx.execute(
                "INSERT INTO phase_status (academy, phase, status, detail, updated_at) "
                "VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (academy, phase) DO UPDATE SET status = excluded.status, "
                "detail = excluded.detail, updated_at = excluded.updated_at",
                (academy, phase, status, dumps(detail or {}), now()),
            )

    def phase_statuses(self, academy: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT academy, phase, status, detail, updated_at FROM phase_status"
        params: tuple[Any, ...] = ()
        if academy:
            sql += " WHERE academy = ?"
            params = (academy,)
        return [
            {**dict(r), "detail": json.loads(r["detail"] or "{}")}
            for r in self.rows(sql + " ORDER BY 1, 2", params)
        ]

    def audit(
        self,
        *,
        operator: str,
        host: str,
        command: str,
        outcome: str,
        academy: str | None = None,
        phase: str | None = None,
        plan_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        with self.tx() as tx:
            tx.execute(
                "INSERT INTO audit (at, operator, host, command, academy, phase, plan_id, outcome, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (now(), operator, host, command, academy, phase, plan_id, outcome, dumps(detail or {})),
            )

    def audit_entries(self, academy: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM audit"
        params: tuple[Any, ...] = ()
        if academy:
            sql += " WHERE academy = ?"
            params = (academy,)
        return [
            {**dict(r), "detail": json.loads(r["detail"] or "{}")}
            for r in self.rows(sql + " ORDER BY seq", params)
        ]

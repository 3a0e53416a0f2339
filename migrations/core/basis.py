"""A plan's basis: what it was derived from (the config as loaded, the academy's mapping, the journal's
high-water mark), recorded when the plan is stored so that `run` finds a stale plan from the state store and
config alone, before any request, and can say what moved (Terraform's "Saved plan is stale").

Kept per part (a digest per config file and per mapping row) rather than as one digest, so the refusal names
the file and the rows. A plan stored by a release before this one has no basis: it is re-derived as before.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from migrations.core.store import StateStore, dumps
from migrations.safety.sanitise import terminal_text
from trust import Academy, Trust

if TYPE_CHECKING:
    from migrations.core.plan import Plan
    from migrations.core.registry import PhaseEnv

SHOWN = 5  # mapping rows named per refusal; the counts say the rest
TRUST_FILE = "trust.yaml"


def _digest(value: Any) -> str:
    # 64 bits per part: enough to tell a change, small enough to keep one per mapping row in the plan body.
    return hashlib.sha256(dumps(value).encode()).hexdigest()[:16]


def config_digests(trust: Trust, academy: Academy) -> dict[str, str]:
    """Config file (relative to the config folder) -> digest of its model as loaded: the validated values with
    defaults filled in, so comments, key order and spacing are not changes, a changed value is."""
    path = trust.files.get(academy.code, trust.config_dir / "academies" / f"{academy.code}.yaml")
    try:
        name = path.relative_to(trust.config_dir).as_posix()
    except ValueError:
        name = path.as_posix()
    return {
        TRUST_FILE: _digest(trust.settings.model_dump(mode="json")),
        name: _digest(academy.model_dump(mode="json")),
    }


def mapping_rows(store: StateStore, academy: str) -> dict[str, dict[str, Any]]:
    """The academy's mapping rows by kind:source_id, computed and imported (an operator's overrides)."""
    return {
        f"{r['kind']}:{r['source_id']}": {**dict(r), "data": json.loads(r["data"] or "{}")}
        for r in store.rows("SELECT * FROM mappings WHERE academy = ?", (academy,))
    }


def _row_digest(row: dict[str, Any]) -> str:
    """What a row maps, and nothing about where or when it was written: not `updated_at` (`discover`
    recomputing the same mapping is no change), nor the origin, note and import line (a mapping file
    imported unchanged but for one row changes that one row)."""
    data = {k: v for k, v in row["data"].items() if k not in ("import_file", "import_line")}
    meaning = {k: row[k] for k in ("kind", "source_id", "source_key", "display_name", "target_key", "action")}
    return _digest({**meaning, "data": data})


def journal_mark(store: StateStore, academy: str) -> int:
    rows = store.rows("SELECT MAX(seq) FROM journal WHERE academy = ?", (academy,))
    return int(rows[0][0] or 0)


@dataclass(frozen=True)
class Basis:
    config: dict[str, str]  # config file -> digest
    mapping: dict[str, str]  # kind:source_id -> digest of the row
    journal: int  # the academy's highest journal seq when the plan was made

    @staticmethod
    def now(trust: Trust, academy: Academy, store: StateStore) -> Basis:
        rows = mapping_rows(store, academy.code)
        return Basis(
            config_digests(trust, academy),
            {k: _row_digest(r) for k, r in rows.items()},
            journal_mark(store, academy.code),
        )

    def to_json(self) -> dict[str, Any]:
        return {"config": self.config, "mapping": self.mapping, "journal": self.journal}

    @staticmethod
    def from_json(d: dict[str, Any] | None) -> Basis | None:
        if not d:
            return None
        return Basis(dict(d["config"]), dict(d["mapping"]), int(d["journal"]))

    def moved(self, now: Basis, trust: Trust, store: StateStore, academy: str) -> list[str]:
        """What changed since this basis that invalidates the plan (config, mapping), one line each (mapping
        rows indented below their count); empty when the plan still stands on it."""
        lines = [
            f"{terminal_text(str(trust.config_dir / name))} changed"
            for name in sorted(self.config.keys() | now.config.keys())
            if self.config.get(name) != now.config.get(name)
        ]
        added = sorted(now.mapping.keys() - self.mapping.keys())
        removed = sorted(self.mapping.keys() - now.mapping.keys())
        changed = sorted(
            k for k in self.mapping.keys() & now.mapping.keys() if self.mapping[k] != now.mapping[k]
        )
        total = len(added) + len(removed) + len(changed)
        if total:
            lines.append(
                f"mapping changed: {total} row(s) ({len(added)} added, {len(removed)} removed, "
                f"{len(changed)} changed)"
            )
            rows = mapping_rows(store, academy)
            named = [("added", k) for k in added] + [("removed", k) for k in removed]
            named += [("changed", k) for k in changed]
            for what, key in named[:SHOWN]:
                lines.append(f"  {what}: {_describe(rows.get(key), key)}")
            if total > SHOWN:
                lines.append(f"  ... and {total - SHOWN} more (`trustfold mapping export {academy}`)")
        return lines

    def journal_since(self, store: StateStore, academy: str) -> str | None:
        """'journal advanced: N events by run X since the plan', or None. Not a refusal by itself: a resumed
        run has done steps since; re-deriving the plan decides whether it still holds."""
        rows = store.rows(
            "SELECT run_id, COUNT(*) AS n FROM journal WHERE academy = ? AND seq > ? "
            "GROUP BY run_id ORDER BY MIN(seq)",
            (academy, self.journal),
        )
        if not rows:
            return None
        runs = ", ".join(f"{r['n']} event(s) by run {terminal_text(r['run_id'])}" for r in rows)
        return f"journal advanced: {runs} since the plan"


def _describe(row: dict[str, Any] | None, key: str) -> str:
    """A mapping row as the operator reads it in the export: action, kind, the name it maps to."""
    if row is None:
        kind, _, source_id = key.partition(":")
        return f"{kind} {terminal_text(source_id)}"
    name = row["target_key"] or row["source_key"] or row["source_id"]
    return terminal_text(f"{row['action']} {row['kind']} {name}")


def with_basis(plan: Plan, env: PhaseEnv) -> Plan:
    """PLAN with the basis it was derived from, for `Plan.save` to record. Called by a phase's planner as it
    returns, after anything planning itself writes to the mapping (renumbered stale names); a re-derivation
    for review stores nothing and needs none."""
    if not env.options.get("review"):
        plan.basis = Basis.now(env.trust, env.academy, env.store).to_json()
    return plan

"""A plan: the ordered steps for an academy and phase, stored for review and `run --plan N`."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from migrations.core.steps import Step
from migrations.core.store import StateStore, dumps, now


@dataclass
class Plan:
    academy: str
    phase: str
    steps: list[Step]
    notes: list[str] = field(default_factory=list)
    already_present: int = 0
    created_at: str = field(default_factory=now)
    number: int | None = None  # set when stored: what operators review and name with `run --plan N`
    options: dict[str, Any] = field(default_factory=dict)  # planning options, re-used when re-derived
    # What the plan was derived from (migrations/core/basis.py), stored with it; None for a plan stored by an
    # earlier release, or derived only for review.
    basis: dict[str, Any] | None = None
    # What planning learnt that the run uses (a scan's counts, facts read from the tenants): it travels on the
    # plan, never on the handler, and is never stored; a plan loaded from the store has none.
    context: Any = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def digest(self) -> str:
        payload = json.dumps([s.to_json() for s in self.steps], sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()

    @property
    def id(self) -> str:
        return f"{self.academy}-{self.phase}-{self.digest[:12]}"

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.steps:
            out[s.op] = out.get(s.op, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "academy": self.academy,
            "phase": self.phase,
            "digest": self.digest,
            "created_at": self.created_at,
            "counts": self.counts(),
            "already_present": self.already_present,
            "notes": self.notes,
            "steps": [s.to_json() for s in self.steps],
        }

    def save(self, store: StateStore, kind: str = "apply") -> int:
        """Store the plan under the next plan number (kept for review and `run --plan N`); returns it."""
        body = dumps(
            {
                "steps": [s.to_json() for s in self.steps],
                "notes": self.notes,
                "already_present": self.already_present,
                "options": self.options,
                "basis": self.basis,
            }
        )
        with store.tx() as tx:
            cur = tx.execute(
                "INSERT INTO plans (id, academy, phase, created_at, digest, step_count, body, kind) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.id,
                    self.academy,
                    self.phase,
                    self.created_at,
                    self.digest,
                    len(self.steps),
                    body,
                    kind,
                ),
            )
            self.number = int(cur.lastrowid or 0)
        return self.number

    @staticmethod
    def _from_row(row: Any) -> Plan:
        body = json.loads(row["body"])
        return Plan(
            row["academy"],
            row["phase"],
            [Step.from_json(s) for s in body["steps"]],
            body.get("notes", []),
            body.get("already_present", 0),
            row["created_at"],
            number=row["number"],
            options=body.get("options", {}),
            basis=body.get("basis"),
        )

    @staticmethod
    def latest(store: StateStore, academy: str, phase: str, kind: str = "apply") -> Plan | None:
        rows = store.rows(
            "SELECT * FROM plans WHERE academy = ? AND phase = ? AND kind = ? ORDER BY number DESC LIMIT 1",
            (academy, phase, kind),
        )
        return Plan._from_row(rows[0]) if rows else None

    @staticmethod
    def load(store: StateStore, number: int) -> Plan | None:
        rows = store.rows("SELECT * FROM plans WHERE number = ?", (number,))
        return Plan._from_row(rows[0]) if rows else None

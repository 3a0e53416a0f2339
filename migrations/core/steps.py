"""Steps and their operations: one idempotent change to the target, stored as data in a plan.

A Step names its Operation, which knows how to turn it into a Graph request, read the answer, recognise that
it was already applied (by provenance marker), and, beside all that, how to undo it: whether it can be undone
at all (`reversible`), what undoing one step means (an UndoStep read from the journal), the line a rollback
plan prints for it and the undo itself. The undo driver (core/undo.py) only journals and orders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from migrations.graph.client import BatchItem, GraphResponse


@dataclass(frozen=True)
class Step:
    key: str
    op: str
    args: dict[str, Any]
    after: tuple[str, ...] = ()

    def describe(self) -> str:
        return operation(self.op).describe(self)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["after"] = list(self.after)
        d["description"] = self.describe()
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> Step:
        return Step(d["key"], d["op"], d["args"], tuple(d.get("after", ())))


@dataclass(frozen=True)
class SideWrite:
    """A store write that belongs to a step's outcome (a file_copies row, a mapping's target id): the Journal
    applies it in the same transaction as the outcome event, so a crash keeps both or neither."""

    sql: str
    params: tuple[Any, ...] = ()


@dataclass
class Outcome:
    status: str  # done | failed | already (forward); undone | kept | failed (undo)
    target_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    writes: list[SideWrite] = field(default_factory=list)


@dataclass
class History:
    """One step key's journal read in order (core/journal.history()): what resume and rollback need."""

    op: str  # the forward op (of its latest intent)
    latest: str  # the latest event; an old store's 'undo-done' reads as 'undone'
    seq: int  # journal position of its latest intent or done outcome
    args: dict[str, Any] = field(default_factory=dict)  # its latest intent's args
    data: dict[str, Any] = field(default_factory=dict)  # the latest event's data
    forward: str | None = None  # the latest forward event: intent | done | failed
    done: Outcome | None = None  # the last done outcome (target_id, data) not undone since
    intents: list[dict[str, Any]] = field(default_factory=list)  # args of every intent since done/undone
    resolved: str | None = None  # the target an undo found (by marker) for a step that recorded none


@dataclass
class UndoStep:
    """One step to undo, read from the journal: the forward step's key and op, the target it made (None when
    the forward step was left in doubt: the undo finds it, or finds nothing), what its outcome recorded and
    the args its intent carried."""

    phase: str
    key: str
    op: str
    target_id: str | None
    data: dict[str, Any]
    args: dict[str, Any]
    in_doubt: bool = False  # the forward step has an intent and no outcome: resolved at undo time

    def describe(self) -> str:
        return operation(self.op).describe_undo(self)


class Operation(Protocol):
    name: str
    batchable: bool
    reversible: bool  # False: a rollback leaves what it did in place (describe_undo says why)

    @property
    def undo_name(self) -> str:
        """The op its undo is journaled under: its name, but files' undo-copy / undo-mkdir and permissions'
        undo-share, as older stores and the crash tests' kill labels know them."""
        ...

    def describe(self, step: Step) -> str: ...

    def request(self, step: Step, ctx: Any) -> BatchItem: ...

    def outcome(self, step: Step, resp: GraphResponse, ctx: Any) -> Outcome | None:
        """Read the answer; None means 'unclear, reconcile'."""
        ...

    async def reconcile(self, step: Step, ctx: Any) -> Outcome | None:
        """Was this step already applied? Done outcome if so, None if not."""
        ...

    def undo_step(self, phase: str, key: str, history: History) -> UndoStep | None:
        """What undoing this step means, from its journal history; None when there is nothing to undo."""
        ...

    def describe_undo(self, step: UndoStep) -> str:
        """The one line a rollback plan prints for this undo."""
        ...

    async def undo(self, step: UndoStep, ctx: Any, found: Callable[[str], None]) -> Outcome:
        """Undo it: Outcome undone | kept (changed since the run, left in place) | failed (tried again by the
        next rollback). An undo that finds its target (it was in doubt) calls found(target_id) before it
        touches it, so a rollback killed after a delete still knows what it deleted."""
        ...


_OPERATIONS: dict[str, Operation] = {}


def register_operation(op: Operation) -> Operation:
    _OPERATIONS[op.name] = op
    return op


def operation(name: str) -> Operation:
    return _OPERATIONS[name]


def known_operation(name: str) -> Operation | None:
    return _OPERATIONS.get(name)

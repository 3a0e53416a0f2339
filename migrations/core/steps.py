"""Steps and their operations: one idempotent change to the target, stored as data in a plan.

A Step names its Operation, which knows how to turn it into a Graph request, read the answer, recognise that
it was already applied (by provenance marker), and undo what the journal recorded.
"""

from __future__ import annotations

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


class Operation(Protocol):
    name: str
    batchable: bool

    def describe(self, step: Step) -> str: ...

    def request(self, step: Step, ctx: Any) -> BatchItem: ...

    def outcome(self, step: Step, resp: GraphResponse, ctx: Any) -> Outcome | None:
        """Read the answer; None means 'unclear, reconcile'."""
        ...

    async def reconcile(self, step: Step, ctx: Any) -> Outcome | None:
        """Was this step already applied? Done outcome if so, None if not."""
        ...


_OPERATIONS: dict[str, Operation] = {}


def register_operation(op: Operation) -> Operation:
    _OPERATIONS[op.name] = op
    return op


def operation(name: str) -> Operation:
    return _OPERATIONS[name]

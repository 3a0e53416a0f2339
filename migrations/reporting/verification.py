"""The report's verification summary: what `trustfold verify` stored (phase_status(academy, "verify").detail)
read as one row per kind of check, for people; the detail itself stays whole in the JSON report.

The stored result is identity's (`ok`, `checked`, `differences`) with each phase's own result under its
name (`files`, `permissions`, `domain`, ...), whose checks and differences are also counted in the totals:
identity's share is what the phases' parts leave.
"""

from __future__ import annotations

from typing import Any

from migrations.core.registry import PHASE_ORDER

# Figures a phase's part may carry besides checked and differences, kept for the row (files: drives as a
# list of {"drive", "files", "matched", "bytes"} or, in older stores, their number).
EXTRA = ("files", "matched", "bytes", "grants", "note")


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _differences(part: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in part.get("differences") or [] if isinstance(d, dict)]


def _part_row(kind: str, part: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kind": kind,
        "checked": _int(part.get("checked")),
        "differences": len(_differences(part)),
    }
    row |= {k: part[k] for k in EXTRA if k in part and not isinstance(part[k], dict | list)}
    drives = part.get("drives")
    if isinstance(drives, list):
        listed = [d for d in drives if isinstance(d, dict)]
        row["drives"] = len(listed)
        row.setdefault("bytes", sum(_int(d.get("bytes")) for d in listed))
    elif drives is not None:
        row["drives"] = _int(drives)
    return row


def _order(kind: str) -> tuple[int, str]:
    return (PHASE_ORDER.index(kind) if kind in PHASE_ORDER else len(PHASE_ORDER), kind)


def verification_kinds(detail: dict[str, Any] | None) -> list[dict[str, Any]]:
    """[{"kind": "identity" | phase, "checked", "differences", and what the phase adds: "drives", "files",
    "matched", "bytes", "grants", "note"}], identity first, then phases in their order; [] before verify."""
    if detail is None:
        return []
    parts = {k: v for k, v in detail.items() if isinstance(v, dict)}
    rows = [_part_row(kind, parts[kind]) for kind in sorted(parts, key=_order)]
    identity = {
        "kind": "identity",
        "checked": max(_int(detail.get("checked")) - sum(r["checked"] for r in rows), 0),
        "differences": max(len(_differences(detail)) - sum(r["differences"] for r in rows), 0),
    }
    return [identity, *rows]

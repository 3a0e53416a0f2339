"""The copy-engine interface: how the files executor has a target drive's copy steps carried out. Two engines
implement it, the Graph engine (per-file uploads, files/phase.py) and the Migration API engine (packages
imported by SharePoint, files/bulk/engine.py); files/engine_choice.py picks one per drive. Everything that is
not a copy (folders, moves, adoptions, deletes) stays with the executor, on Graph."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from migrations.core.steps import Step


class CopyEngine(Protocol):
    async def copy_steps(self, steps: list[Step], concurrency: int, progress: Callable[[], None]) -> None:
        """Carry out these copy steps: each journaled (intent, then the outcome once the copy is checked),
        tallied in the run's counts, `progress` called as they settle. A step that fails is journaled and
        tallied as failed, never raised."""
        ...

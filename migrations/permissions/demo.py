"""The rehearsal's sharing steps (called from `trustfold demo`): plan and run the permissions phase for an
academy once its files are copied, so the report shows what sharing was carried and what was not."""

from __future__ import annotations

from collections.abc import Container

from trust import Academy


def demo_steps(academy: Academy, available: Container[str]) -> list[tuple[str, list[str]]]:
    """(label, trustfold argv) pairs, in order; none when the academy copies no files."""
    if "permissions" not in available or not academy.files.enabled:
        return []
    code = academy.code
    return [
        ("plan permissions", ["plan", code, "--phase", "permissions"]),
        # The run reuses the sharing scan its plan just made, as files do (every delta call costs a unit).
        ("run permissions", ["run", code, "--phase", "permissions", "--scan-age", "600"]),
    ]

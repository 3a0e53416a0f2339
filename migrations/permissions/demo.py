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
    # Planned and applied by one `run --replan`, as the rehearsal's other phases are (no review between):
    # the sharing scan is made once, and a drive read within the last 10 minutes is not read again (every
    # delta call costs a unit).
    return [("run permissions", ["run", code, "--phase", "permissions", "--replan", "--scan-age", "600"])]

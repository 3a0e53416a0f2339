"""Time of a full `trustfold demo` (fresh store, in-process sandbox, default size) against the 4-minute goal.

Prints the total, its ratio to the goal, and where the time went per kind of step (from the demo's own
audit entry). Figures only; never pass/fail. Usage: .venv/bin/python bench/demo_time.py [--size N]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from cli.main import run
from migrations.core.store import StateStore

GOAL_SECONDS = 240.0  # issue 22: every phase, offline, in under 4 minutes on 2 cores


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.db"
        started = time.monotonic()
        code = run(["--state", str(state), "demo", "--out", str(Path(tmp) / "report.html"), *argv])
        elapsed = time.monotonic() - started
        store = StateStore.open(state)
        entries = store.audit_entries()
        final = [e for e in entries if e["command"] == "demo"][-1]
        # Each verify's seconds per phase (the audit keeps every verify; the phase status only the last).
        by_phase: dict[str, float] = {}
        for e in entries:
            if e["command"] == "verify":
                for phase, s in (e["detail"] or {}).get("seconds", {}).items():
                    by_phase[phase] = by_phase.get(phase, 0.0) + float(s)
                for stage, s in (e["detail"] or {}).get("files_seconds", {}).items():
                    by_phase[f"files: {stage}"] = by_phase.get(f"files: {stage}", 0.0) + float(s)
        # 429 answers per phase run (each run's counts), so a step that draws them is named.
        throttled: dict[str, float] = {}
        for r in store.rows("SELECT academy, phase, kind, counts FROM runs ORDER BY started_at"):
            n = float((json.loads(r["counts"] or "{}") or {}).get("throttled") or 0)
            if n:
                key = f"{r['kind']} {r['phase']} ({r['academy']})"
                throttled[key] = throttled.get(key, 0.0) + n
        store.close()
    print(f"demo exit code {code}; {elapsed:.1f} s = {elapsed / GOAL_SECONDS:.2f} of the 4-minute goal")
    steps = final["detail"].get("step_seconds", {})
    for label, seconds in sorted(steps.items(), key=lambda kv: -kv[1]):
        print(f"  {label:<18} {seconds:7.1f} s  {seconds / elapsed:5.1%}")
    print("429 answers by run:", ", ".join(f"{k}: {v:g}" for k, v in throttled.items()) or "none")
    print("verify (every academy, both verifies), by phase:")
    for phase, seconds in sorted(by_phase.items(), key=lambda kv: -kv[1]):
        print(f"  {phase:<18} {seconds:7.1f} s  {seconds / elapsed:5.1%}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""`trustfold infra check` wall time for 1 and 50 academies, as a ratio of the 20 s goal for 50.

Run: .venv/bin/python bench/infra_check.py [--academies 1 50]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 20.0

ACADEMY = """code: a{i:03d}
name: Bench Academy {i}
kind: primary
urn: {urn}
wave: {wave}
legacy_tenant:
  id: 2b3c4d5e-{i:04d}-4e5f-8a9b-0c1d2e3f4a51
  domains: [bench{i}.sch.uk]
  credential: {{kind: managed_identity}}
network:
  cidr: 10.{second}.{third}.0/24
budget: {{monthly_gbp: 200, cost_centre: BENCH-{i}}}
it_contact: {{name: Bench Contact, email: it@bench{i}.sch.uk}}
"""


def make_config(n: int, where: Path) -> Path:
    cfg = where / f"config-{n}"
    (cfg / "academies").mkdir(parents=True)
    shutil.copy(ROOT / "config" / "trust.yaml", cfg / "trust.yaml")
    for i in range(n):
        (cfg / "academies" / f"a{i:03d}.yaml").write_text(
            ACADEMY.format(i=i, urn=200000 + i, wave=1 + i // 10, second=2 + i // 200, third=i % 200)
        )
    return cfg


def timed(cfg: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cli.main import main; main()",
            "--config-dir",
            str(cfg),
            "infra",
            "check",
        ],
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"infra check failed for {cfg}:\n{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--academies", type=int, nargs="+", default=[1, 50])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.academies:
            seconds = timed(make_config(n, Path(tmp)))
            print(
                f"infra check, {n:>3} academies: {seconds:6.2f} s  ratio to the {GOAL_SECONDS:.0f} s goal: "
                f"{seconds / GOAL_SECONDS:.2f}"
            )


if __name__ == "__main__":
    main()

"""A mapping CSV with a field over the csv module's size limit: exit 2 naming file and line, nothing
stored."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.identity.conftest import Cli


def test_oversized_csv_field_names_file_and_line(cli: Cli, tmp_path: Path) -> None:
    cli("discover", "hillside")
    exported = cli("mapping", "export", "hillside").stdout
    lines = exported.splitlines()
    assert len(lines) > 3
    # Line 3 carries a note longer than csv.field_size_limit() (131072 by default).
    huge = "x" * (csv.field_size_limit() + 10)
    lines[2] = lines[2] + huge
    edited = tmp_path / "edited.csv"
    edited.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = cli("mapping", "import", "hillside", str(edited), check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert err[0].startswith(f"error: {edited}:3: not a readable CSV line (field larger than field limit"), (
        err
    )
    assert cli("mapping", "export", "hillside").stdout == exported, "nothing stored"

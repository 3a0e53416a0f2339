"""CI fails if a virtual environment or another generated folder is tracked: a committed .venv pinned one
machine's interpreter and broke `make demo` / `make test` everywhere else."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Folders that tools generate (virtual environments, caches, build output, trustfold's own state and reports).
GENERATED_DIRS = re.compile(
    r"(^|/)(\.venv|venv|\.env|__pycache__|\.trustfold|reports|[^/]+\.egg-info|\.pytest_cache|\.hypothesis|"
    r"\.mypy_cache|\.ruff_cache|build|dist|node_modules)/"
)
# Files that only exist inside such folders, wherever they are.
GENERATED_FILES = re.compile(r"(^|/)(pyvenv\.cfg|[^/]+\.py[cod])$")


def generated(paths: list[str]) -> list[str]:
    return [p for p in paths if GENERATED_DIRS.search(p) or GENERATED_FILES.search(p)]


def tracked_files() -> list[str]:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed: not in a git checkout")
    inside = subprocess.run(
        [git, "-C", str(ROOT), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        pytest.skip("not in a git checkout (e.g. built from `git archive` output)")
    out = subprocess.run(
        [git, "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True, timeout=60
    ).stdout
    return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]


def test_no_generated_folder_is_tracked() -> None:
    files = tracked_files()
    assert "pyproject.toml" in files, "ls-files saw the project"
    found = generated(files)
    assert not found, f"generated files are tracked (git rm -r --cached them): {found[:20]}"


def test_the_check_catches_what_it_is_for() -> None:
    assert generated(
        [
            ".venv/bin/python3",
            "tools/venv/pyvenv.cfg",
            "migrations/__pycache__/store.cpython-311.pyc",
            ".trustfold/state.db",
            "reports/trustfold-report.html",
            "trustfold.egg-info/PKG-INFO",
            ".pytest_cache/v/cache/nodeids",
            ".hypothesis/examples/x",
            "build/lib/cli/main.py",
            "web/node_modules/x/index.js",
        ]
    ) == [
        ".venv/bin/python3",
        "tools/venv/pyvenv.cfg",
        "migrations/__pycache__/store.cpython-311.pyc",
        ".trustfold/state.db",
        "reports/trustfold-report.html",
        "trustfold.egg-info/PKG-INFO",
        ".pytest_cache/v/cache/nodeids",
        ".hypothesis/examples/x",
        "build/lib/cli/main.py",
        "web/node_modules/x/index.js",
    ]
    assert (
        generated(["migrations/reporting/render.py", "tests/report/test_cli.py", "docs/build-notes.md"]) == []
    )

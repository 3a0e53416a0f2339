"""The house's rules, read from the source with `ast` (docs/architecture.md): no import cycle in `migrations/`
(imports under TYPE_CHECKING and inside functions count too), the engine imports no phase, a phase imports
another only where it really depends on it, and the CLI stays thin."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "migrations"

# Packages that hold a phase, and the phase-to-phase imports that follow a real dependency.
PHASE_PACKAGES = {"identity", "files", "permissions", "domain", "mail", "teams"}
PHASE_DEPENDENCIES = {("domain", "identity"), ("permissions", "files"), ("teams", "files")}
# What each non-phase layer may import besides itself; phases may import these three and their own package.
LOWER_LAYERS = {"core": {"graph", "safety"}, "graph": {"safety"}, "safety": set()}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules(base: Path) -> dict[str, Path]:
    return {module_name(p): p for p in sorted(base.rglob("*.py"))}


def imported(path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """Every `migrations...` module this file imports, wherever the import stands. `from pkg import name`
    counts as importing pkg.name when that is a module, else pkg. The parent package a dotted import runs
    first is not counted: a phase package's __init__ registers its handler, and every module of the phase
    would otherwise 'import' the whole phase."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                raise AssertionError(f"{path}:{node.lineno}: relative import; use the absolute path")
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                yield (sub if sub in known else node.module), node.lineno


def import_graph() -> dict[str, set[str]]:
    mods = all_modules(MIGRATIONS)
    known = set(mods)
    return {
        name: {m for m, _ in imported(path, known) if m in known and m != name} for name, path in mods.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in sorted(graph.items()):
        here = package_of(mod)
        for dep in sorted(deps):
            there = package_of(dep)
            if there == here:
                continue
            if here in LOWER_LAYERS:
                if there not in LOWER_LAYERS[here]:
                    bad.append(f"{mod} -> {dep}: {here}/ may import only {sorted(LOWER_LAYERS[here])}")
            elif here in PHASE_PACKAGES:
                if there in LOWER_LAYERS or (here, there) in PHASE_DEPENDENCIES:
                    continue
                bad.append(
                    f"{mod} -> {dep}: a phase imports core, graph, safety and the phases it depends on"
                )
    return bad


def test_no_import_cycle_in_migrations() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles (TYPE_CHECKING and late imports included): " + "; ".join(
        " <-> ".join(c) for c in found
    )


def test_engine_imports_no_phase_and_phases_only_their_dependencies() -> None:
    assert layer_violations(import_graph()) == []


def test_the_checks_see_a_cycle_and_a_forbidden_import() -> None:
    # The rules above are only as good as these two detections.
    graph = {
        "migrations.core.a": {"migrations.files.x"},
        "migrations.files.x": {"migrations.core.a"},
        "migrations.identity.y": {"migrations.files.x"},
        "migrations.domain.z": {"migrations.identity.y"},
    }
    assert cycles(graph) == [["migrations.core.a", "migrations.files.x"]]
    assert layer_violations(graph) == [
        "migrations.core.a -> migrations.files.x: core/ may import only ['graph', 'safety']",
        "migrations.identity.y -> migrations.files.x: a phase imports core, graph, safety and the phases it "
        "depends on",
    ]


def test_type_checking_and_function_level_imports_count(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from migrations.files import bulk\n"
        "def f():\n    from migrations.core.store import StateStore\n"
    )
    got = {m for m, _ in imported(src, {"migrations.files.bulk", "migrations.core.store"})}
    assert got >= {"migrations.files.bulk", "migrations.core.store"}


def test_migrations_top_level_holds_app_and_packages_only() -> None:
    loose = sorted(p.name for p in MIGRATIONS.glob("*.py") if p.name not in ("__init__.py", "app.py"))
    assert loose == []
    assert (MIGRATIONS / "app.py").is_file()


def test_cli_imports_no_phase_package() -> None:
    known = set(all_modules(MIGRATIONS))
    bad = [
        f"{p.relative_to(ROOT)}:{line}: {m}"
        for p in sorted((ROOT / "cli").glob("*.py"))
        for m, line in imported(p, known)
        if package_of(m) in PHASE_PACKAGES and m.startswith("migrations.")
    ]
    assert bad == []


def test_json_choice_lives_in_the_renderer_only() -> None:
    users = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "cli").glob("*.py") if "as_json" in p.read_text()
    )
    assert users in ([], ["cli/render.py"])


def _function(path: Path, name: str) -> ast.FunctionDef:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise AssertionError(f"{name} not found in {path}")


@pytest.mark.parametrize("name", ["run", "plan", "verify", "rollback"])
def test_migrate_commands_stay_thin(name: str) -> None:
    node = _function(ROOT / "cli" / "migrate_cmds.py", name)
    # The function itself (its options are declared in its decorators).
    assert (node.end_lineno or 0) - node.lineno + 1 <= 40

"""A stored plan records its basis (config as loaded, the academy's mapping, the journal's high-water mark):
`run` refuses a plan whose config or mapping has changed before any request, naming what changed; the
journal moving on (a resumed run) is no refusal; a plan stored without a basis (the previous release) is
re-derived as before."""

from __future__ import annotations

import csv
import io
import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrations.core.basis import Basis
from migrations.core.plan import Plan
from migrations.core.store import StateStore
from sandbox.testing import running_sandbox
from tests.crash.harness import Trustfold
from tests.identity.conftest import CONFIG, InProcessCli, bootstrapped

ACADEMY = "hillside"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_sandbox(CONFIG, size=20, seed=5) as base:
        yield bootstrapped(str(base))


@pytest.fixture
def cli(url: str, tmp_path: Path) -> InProcessCli:
    httpx.post(f"{url}/sandbox/reset", json={}, timeout=60).raise_for_status()
    bootstrapped(url)
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    c = InProcessCli(url, tmp_path / "state.db", config)
    c("discover", ACADEMY)
    return c


def _requests(url: str) -> int:
    """Requests the sandbox has answered, every tenant."""
    tenants = httpx.get(f"{url}/sandbox/stats", timeout=30).json()["tenants"]
    return sum(t["requests"] for t in tenants.values())


def _dead_url() -> str:
    """A Graph URL nothing listens on: any request `run` makes fails to connect."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _refused_before_any_request(cli: InProcessCli, *args: str) -> str:
    """Run ARGS (a `run`): refused with exit 1; no request reached the sandbox, nor would one elsewhere."""
    before = _requests(cli.url)
    refused = cli(*args, check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert _requests(cli.url) == before, "the refused run sent requests"
    offline = InProcessCli(_dead_url(), cli.state, cli.config)(*args, check=False)
    assert offline.returncode == 1 and offline.stderr == refused.stderr, offline.stderr
    assert "Traceback" not in refused.stderr
    return refused.stderr


def _stored(state: Path, number: int) -> Plan:
    store = StateStore.open(state)
    try:
        plan = Plan.load(store, number)
    finally:
        store.close()
    assert plan is not None
    return plan


def _edit_budget(config: Path) -> Path:
    """A config change the users plan does not depend on (re-deriving it gives the same steps)."""
    path = config / "academies" / f"{ACADEMY}.yaml"
    path.write_text(path.read_text().replace("monthly_gbp: 900", "monthly_gbp: 950"))
    return path


def test_a_config_edit_refuses_the_plan_before_any_request(cli: InProcessCli) -> None:
    number = cli.json("plan", ACADEMY, "--phase", "users")["number"]
    path = _edit_budget(cli.config)
    err = _refused_before_any_request(cli, "run", ACADEMY, "--phase", "users")
    assert f"plan {number} ({ACADEMY} users" in err and f"{path} changed" in err, err
    assert "trust.yaml" not in err and "mapping changed" not in err, err
    assert f"trustfold plan {ACADEMY} --phase users" in err and "--replan" in err
    # Planned again, the plan stands on the edited config.
    again = cli.json("plan", ACADEMY, "--phase", "users")["number"]
    assert cli.json("run", ACADEMY, "--phase", "users", "--plan", str(again))["status"] == "succeeded"


def test_a_mapping_import_refuses_the_plan_naming_the_rows(cli: InProcessCli, tmp_path: Path) -> None:
    cli("plan", ACADEMY, "--phase", "users")
    rows = list(csv.DictReader(io.StringIO(cli("mapping", "export", ACADEMY).stdout)))
    row = next(r for r in rows if r["kind"] == "user" and r["action"] == "create")
    chosen = "chosen.by.operator@" + row["target_upn"].split("@")[1]
    row["target_upn"] = chosen
    edited = tmp_path / "mapping.csv"
    with edited.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    cli("mapping", "import", ACADEMY, str(edited))
    err = _refused_before_any_request(cli, "run", ACADEMY, "--phase", "users")
    assert "mapping changed: 1 row(s) (0 added, 0 removed, 1 changed)" in err, err
    assert f"changed: create user {chosen}" in err and "hillside.yaml" not in err, err


def test_a_resumed_run_is_not_refused_for_the_journal_it_wrote(url: str, tmp_path: Path) -> None:
    httpx.post(f"{url}/sandbox/reset", json={}, timeout=60).raise_for_status()
    bootstrapped(url)
    tf = Trustfold(url, tmp_path / "state.db")
    tf.ok("discover", ACADEMY)
    # Planned (and stored) by the harness, then killed after the first batch of users is committed.
    tf.killed("run", ACADEMY, "--phase", "users", at="outcome:create-user:1:after")
    store = StateStore.open(tf.state)
    try:
        stored = Plan.latest(store, ACADEMY, "users")
        assert stored is not None and stored.basis is not None
        basis = Basis.from_json(stored.basis)
        assert basis is not None
        killed = store.rows("SELECT id FROM runs WHERE academy = ? AND phase = 'users'", (ACADEMY,))
        assert len(killed) == 1
        since = basis.journal_since(store, ACADEMY)
    finally:
        store.close()
    assert since is not None and f"by run {killed[0]['id']} since the plan" in since, since
    out = json.loads(tf.ok("run", ACADEMY, "--phase", "users", "--json"))
    assert out["status"] == "succeeded" and out["plan"] == stored.number, out
    assert out["counts"]["done"] > 0


def test_a_plan_stored_without_a_basis_is_re_derived_as_before(cli: InProcessCli) -> None:
    number = cli.json("plan", ACADEMY, "--phase", "users")["number"]
    # As the previous release stored it: the same body, no basis.
    store = StateStore.open(cli.state)
    try:
        body: dict[str, Any] = json.loads(
            store.rows("SELECT body FROM plans WHERE number = ?", (number,))[0][0]
        )
        assert body.pop("basis"), "the plan was stored without its basis"
        with store.tx() as tx:
            tx.execute("UPDATE plans SET body = ? WHERE number = ?", (json.dumps(body), number))
    finally:
        store.close()
    _edit_budget(cli.config)
    # Nothing to compare the config with: re-derived, the same steps, applied.
    result = cli.json("run", ACADEMY, "--phase", "users")
    assert result["status"] == "succeeded" and result["plan"] == number, result

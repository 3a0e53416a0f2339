"""`run` applies the reviewed, numbered plan; refuses (exit 1, a diff summary) when the tenants or mapping
have changed since; `--plan N`, `--replan`; stale mapping (a name taken after discover)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.testing import graph_client, running_sandbox
from tests.identity.conftest import CONFIG, TARGET, Cli, InProcessCli, bootstrapped, snapshot
from trust import load_trust

TRUST = load_trust(CONFIG)
MARKER = "extension_0b6a9d2e3f414c5a8e7b1d2c3b4a5f60_trustfoldSource"
HILLSIDE = TRUST.academy("hillside")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_sandbox(CONFIG, size=20, seed=5) as base:
        yield bootstrapped(str(base))


def _reset(url: str) -> None:
    import httpx

    httpx.post(f"{url}/sandbox/reset", json={}, timeout=60).raise_for_status()
    bootstrapped(url)  # a reset tenant is new: its one-off set-up again


@pytest.fixture
def cli(url: str, tmp_path: Path) -> Cli:
    _reset(url)
    c = InProcessCli(url, tmp_path / "state.db")
    c("discover", "hillside")
    return c


def _mapping(cli: Cli) -> list[dict[str, str]]:
    text = cli("mapping", "export", "hillside").stdout
    return list(csv.DictReader(io.StringIO(text)))


def _a_created_user(cli: Cli) -> dict[str, str]:
    return next(r for r in _mapping(cli) if r["kind"] == "user" and r["action"] == "create")


def _squat(url: str, upn: str) -> None:
    """Someone creates a user in the trust tenant at `upn`, outside trustfold."""
    with graph_client(url, TARGET) as g:
        r = g.post(
            "/users",
            json={
                "accountEnabled": True,
                "displayName": "Someone Else",
                "mailNickname": upn.split("@")[0],
                "userPrincipalName": upn,
                "passwordProfile": {"password": "Xy7!placeholder-Pw", "forceChangePasswordNextSignIn": True},
            },
        )
        assert r.status_code == 201, r.text


def test_run_applies_the_stored_plan_and_refuses_when_the_source_changed(cli: Cli, url: str) -> None:
    planned = cli.json("plan", "hillside", "--phase", "users")
    number = planned["number"]
    assert isinstance(number, int) and planned["digest"]
    assert (
        f"plan {number + 1} for hillside users (digest " in cli("plan", "hillside", "--phase", "users").stdout
    )
    # The source changes after the review: a user is renamed and discover picks it up.
    user = _a_created_user(cli)
    with graph_client(url, HILLSIDE.legacy_tenant.id) as g:
        r = g.patch(f"/users/{user['source_id']}", json={"givenName": "Renamed", "displayName": "Renamed"})
        assert r.status_code == 204, r.text
    cli("discover", "hillside")
    before = snapshot(url)
    refused = cli("run", "hillside", "--phase", "users", check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "no longer matches the tenants and mapping" in refused.stderr
    assert "changed: create user renamed." in refused.stderr, refused.stderr
    assert "--replan" in refused.stderr and "Traceback" not in refused.stderr
    assert snapshot(url) == before, "a refused run wrote to the trust tenant"
    # The latest plan (number + 1, from the second `plan` above) is as stale; --replan plans and applies.
    applied = cli.json("run", "hillside", "--phase", "users", "--replan")
    assert applied["status"] == "succeeded" and applied["plan"] > number + 1
    assert any(u["userPrincipalName"].startswith("renamed.") for u in snapshot(url)["users"])


def test_run_picks_a_plan_by_number_and_checks_it_belongs(cli: Cli) -> None:
    none = cli("run", "hillside", "--phase", "users", check=False)
    assert none.returncode == 1 and "no stored plan for hillside users" in none.stderr
    users = cli.json("plan", "hillside", "--phase", "users")["number"]
    wrong = cli("run", "hillside", "--phase", "groups", "--plan", str(users), check=False)
    assert wrong.returncode == 2
    assert f"--plan: plan {users} is for hillside users, not hillside groups" in wrong.stderr
    missing = cli("run", "hillside", "--phase", "users", "--plan", "999", check=False)
    assert missing.returncode == 2 and "no plan number 999" in missing.stderr
    both = cli("run", "hillside", "--phase", "users", "--plan", str(users), "--replan", check=False)
    assert both.returncode == 2 and "exclude each other" in both.stderr
    result = cli.json("run", "hillside", "--phase", "users", "--plan", str(users))
    assert result["status"] == "succeeded" and result["plan"] == users
    assert result["counts"]["done"] == result["counts"]["planned"] > 0
    # Applying a plan that is fully done does nothing and says so.
    again = cli.json("run", "hillside", "--phase", "users", "--plan", str(users))
    assert again["counts"]["done"] == 0 and again["status"] == "succeeded"


def test_a_name_taken_after_discover_is_renumbered_at_plan_and_refused_at_run(cli: Cli, url: str) -> None:
    first, second = [r for r in _mapping(cli) if r["kind"] == "user" and r["action"] == "create"][:2]
    # Taken before `plan`: the computed row takes the next number, with a note.
    _squat(url, first["target_upn"])
    plan = cli.json("plan", "hillside", "--phase", "users")
    assert any(f"{first['target_upn']} was taken in the trust tenant" in n for n in plan["notes"])
    renamed = next(r for r in _mapping(cli) if r["source_id"] == first["source_id"])["target_upn"]
    assert renamed != first["target_upn"] and renamed.split("@")[0][-1].isdigit()
    # Taken after `plan`, before `run`: the reviewed plan no longer holds.
    _squat(url, second["target_upn"])
    refused = cli("run", "hillside", "--phase", "users", check=False)
    assert refused.returncode == 1 and "changed: create user" in refused.stderr, refused.stderr
    assert "mail_nickname, upn" in refused.stderr
    result = cli.json("run", "hillside", "--phase", "identity", "--replan")
    assert result["status"] == "succeeded", result
    assert cli.json("verify", "hillside")["ok"]
    # One graph run, each phase reported with its own part.
    status = {r["phase"]: r for r in cli.json("status", "hillside")}
    assert {status[p]["status"] for p in ("users", "groups", "memberships")} == {"done"}


def test_an_operator_edited_name_taken_after_import_is_refused_with_its_line(
    cli: Cli, url: str, tmp_path: Path
) -> None:
    rows = _mapping(cli)
    header = list(rows[0].keys())
    line, row = next(
        (n, r) for n, r in enumerate(rows, start=2) if r["kind"] == "user" and r["action"] == "create"
    )
    row["target_upn"] = "chosen.by.operator@" + row["target_upn"].split("@")[1]
    edited = tmp_path / "mapping.csv"
    with edited.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    cli("mapping", "import", "hillside", str(edited))
    _squat(url, row["target_upn"])
    before = _mapping(cli)
    refused = cli("plan", "hillside", "--phase", "users", check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"{edited}:{line}: target_upn:" in refused.stderr
    assert "now exists in the trust tenant" in refused.stderr and "Traceback" not in refused.stderr
    assert _mapping(cli) == before, "a refused plan changed the mapping"


def test_the_identity_graph_runs_through_replication_lag(tmp_path: Path) -> None:
    """New users and groups stay invisible to reads, lists and filters for 1.5 s: groups binding them as
    owners and memberships naming them are re-sent once a look-up (asked again, bounded) still misses them,
    and nothing is created twice."""
    with running_sandbox(CONFIG, size=20, seed=5, replication_lag_ms=1500) as base:
        bootstrapped(str(base))
        cli = InProcessCli(str(base), tmp_path / "state.db")
        cli("discover", "hillside")
        result = cli.json("run", "hillside", "--phase", "identity", "--replan", "--lag-tolerance", "3")
        assert result["status"] == "succeeded", result["failures"][:5]
        import httpx

        httpx.post(f"{base}/sandbox/faults", json={"replication_lag_ms": 0}).raise_for_status()
        assert cli.json("verify", "hillside")["ok"]
        snap = snapshot(str(base))
        markers = [o.get(MARKER) for o in snap["users"] + snap["groups"] if o.get(MARKER)]
        assert markers and len(markers) == len(set(markers)), "an object was created twice"

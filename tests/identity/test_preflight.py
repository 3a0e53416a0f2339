"""Issue 13's done-when: each preflight failure produced by a sandbox configured that way, with the fix
named; `run` refuses on a failing preflight; bootstrap twice changes nothing the second time; provisioning
of 450 users takes 3 admin calls and resumes after SIGKILL."""

from __future__ import annotations

import json
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from migrations.store import StateStore
from sandbox.testing import running_sandbox
from tests.identity.conftest import CONFIG, TARGET, TRUST_APP, Cli

EXT = f"extension_{TRUST_APP.replace('-', '')}_trustfoldSource"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """hillside discovered, bootstrapped and its users created; OneDrives not yet provisioned."""
    state = tmp_path_factory.mktemp("preflight") / "state.db"
    with running_sandbox(CONFIG, size=40, seed=4, onedrive_provision_delay_s=1) as url:
        cli = Cli(str(url), state)
        cli("discover", "hillside")
        cli("bootstrap", "--yes")
        cli("run", "hillside", "--phase", "users")
        yield url, state


def _preflight(cli: Cli, *args: str) -> tuple[int, list[dict]]:
    proc = cli("preflight", "hillside", "--json", *args, check=False)
    return proc.returncode, json.loads(proc.stdout)["checks"]


def _failing(checks: list[dict], name: str) -> dict:
    return next(c for c in checks if c["check"] == name and not c["ok"])


def test_preflight_failures_name_their_fix(prepared: tuple[str, Path], tmp_path: Path) -> None:
    url, state = prepared
    world = url.world  # type: ignore[attr-defined]
    target = world.tenant(TARGET)
    cli = Cli(url, state)

    # Unprovisioned OneDrives (the users exist, nobody asked SharePoint yet).
    code, checks = _preflight(cli)
    assert code == 1
    onedrive = _failing(checks, "onedrive")
    assert (
        "not provisioned" in onedrive["result"] and "trustfold provision-onedrive hillside" in onedrive["fix"]
    )

    # A missing application role, named by its Graph name with the consent URL.
    admin = f"{url}/sandbox/tenants/{TARGET}/roles"
    httpx.post(
        admin,
        json={"withhold": ["GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"]},
    )
    try:
        code, checks = _preflight(cli)
        perm = _failing(checks, "permissions")
        assert "GroupMember.ReadWrite.All" in perm["result"] and "Group.ReadWrite.All" in perm["fix"]
        assert f"adminconsent?client_id={TRUST_APP}" in perm["fix"]
    finally:
        httpx.post(admin, json={"reset": True})

    # The provenance extension property unregistered.
    app = target.applications[TRUST_APP]
    saved = list(app["extensionProperties"])
    app["extensionProperties"].clear()
    try:
        code, checks = _preflight(cli)
        ext = _failing(checks, "extension")
        assert EXT in ext["result"] and "trustfold bootstrap" in ext["fix"]
        # ... and run refuses to start a phase it gates, naming the check.
        proc = cli("run", "hillside", "--phase", "groups", check=False)
        assert proc.returncode == 1
        assert "preflight blocks groups" in proc.stderr and "trustfold bootstrap" in proc.stderr
    finally:
        app["extensionProperties"][:] = saved

    # Licence shortage: the pupil SKU has fewer free seats than pupils still to license.
    sku = next(s for s in target.skus if s["skuPartNumber"] == "STANDARDWOFFPACK_STUDENT")
    enabled = sku["prepaidUnits"]["enabled"]
    store = StateStore.open(state)
    store.tx().__enter__().execute("DELETE FROM journal WHERE phase = 'users' AND step_key LIKE 'licence:%'")
    store.close()
    sku["prepaidUnits"]["enabled"] = sku["consumedUnits"] + 1
    try:
        code, checks = _preflight(cli)
        lic = _failing(checks, "licences")
        assert "STANDARDWOFFPACK_STUDENT: 1 free" in lic["result"]
        assert "more STANDARDWOFFPACK_STUDENT seats" in lic["fix"]
    finally:
        sku["prepaidUnits"]["enabled"] = enabled

    # A missing target library, and a client secret where SharePoint needs a certificate: a config copy.
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    trust_yaml = config / "trust.yaml"
    trust_yaml.write_text(
        trust_yaml.read_text()
        .replace("kind: certificate", "kind: client_secret")
        .replace(
            "certificate_path_env: TRUSTFOLD_TRUST_CERTIFICATE_PATH", "secret_env: TRUSTFOLD_TRUST_SECRET"
        )
    )
    hill = config / "academies" / "hillside.yaml"
    hill.write_text(
        hill.read_text().replace("target: {site: hillside-staff", "target: {site: hillside-nowhere")
    )
    other = Cli(url, state)
    other.env = lambda: {**Cli.env(other), "TRUSTFOLD_CONFIG_DIR": str(config)}  # type: ignore[method-assign]
    code, checks = _preflight(other)
    assert code == 1
    site = _failing(checks, "sites")
    assert "hillside-nowhere" in site["result"] and "create site 'hillside-nowhere'" in site["fix"]
    sp = _failing(checks, "sharepoint-credential")
    assert "client secret" in sp["result"] and "kind: certificate" in sp["fix"]


def test_bootstrap_twice_changes_nothing_the_second_time(prepared: tuple[str, Path]) -> None:
    url, state = prepared
    cli = Cli(url, state)
    before = httpx.get(f"{url}/sandbox/stats").json()["tenants"][TARGET]["writes"]
    proc = cli("bootstrap", "--yes")
    assert "already registered; nothing changed" in proc.stdout
    assert httpx.get(f"{url}/sandbox/stats").json()["tenants"][TARGET]["writes"] == before
    store = StateStore.open(state)
    done = store.rows("SELECT count(*) FROM journal WHERE phase = 'bootstrap' AND event = 'done'")[0][0]
    store.close()
    assert done == 1  # registered once, by the fixture's bootstrap


def test_provisioning_450_users_takes_3_calls_and_resumes_after_sigkill(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    with running_sandbox(CONFIG, size=20, seed=5, onedrive_provision_delay_s=4) as url:
        target = url.world.tenant(TARGET)
        sku = target.skus[0]
        store = StateStore.open(state)
        with store.tx() as tx:
            for i in range(450):
                uid = str(uuid.uuid4())
                upn = f"p{i:03d}@northernlights.org.uk"
                target.users[uid] = {
                    "id": uid,
                    "userPrincipalName": upn,
                    "displayName": upn,
                    "assignedLicenses": [{"skuId": sku["skuId"], "disabledPlans": []}],
                }
                target.index_user(target.users[uid])
                tx.execute(
                    "INSERT INTO mappings (academy, kind, source_id, source_key, display_name, target_key, "
                    "action, note, origin, data, updated_at) VALUES ('hillside', 'user', ?, ?, ?, ?, 'create', '', "
                    "'computed', '{}', '2026-01-01T00:00:00Z')",
                    (f"s{i}", upn, upn, upn),
                )
        cli = Cli(url, state)
        proc = cli.popen("provision-onedrive", "hillside", "--timeout", "60")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = store.rows("SELECT count(*) FROM journal WHERE phase = 'onedrive' AND event = 'requested'")[
                0
            ][0]
            if n == 450:
                break
            time.sleep(0.1)
        assert n == 450 and proc.poll() is None  # every request journaled, still waiting for SharePoint
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert target.personal_site_calls == 3
        result = cli.json("provision-onedrive", "hillside", "--timeout", "60")
        assert result["calls"] == 0 and result["ready"] == 450 and result["waiting"] == []
        assert target.personal_site_calls == 3
        store.close()

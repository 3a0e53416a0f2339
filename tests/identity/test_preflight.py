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

from migrations.core.store import StateStore
from sandbox.testing import running_sandbox
from tests.identity.conftest import CONFIG, TARGET, TRUST_APP, Cli

EXT = f"extension_{TRUST_APP.replace('-', '')}_trustfoldSource"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """hillside and oakwood discovered, bootstrapped, hillside's users created; no OneDrive provisioned."""
    state = tmp_path_factory.mktemp("preflight") / "state.db"
    with running_sandbox(CONFIG, size=40, seed=4, onedrive_provision_delay_s=1) as url:
        cli = InProcess(str(url), state)
        for args in (
            ("discover", "hillside"),
            ("discover", "oakwood"),
            ("bootstrap", "--yes"),
            ("run", "hillside", "--phase", "users", "--replan"),
        ):
            code, out, err = cli(*args)
            assert code == 0, (args, out, err)
        yield url, state


class InProcess:
    """The CLI in this process (as the demo runs it): no interpreter start-up per command."""

    def __init__(self, url: str, state: Path, config: Path = CONFIG):
        self.url, self.state, self.config = url, state, config

    def __call__(self, *args: str) -> tuple[int, str, str]:
        import io
        from contextlib import redirect_stderr, redirect_stdout

        from cli.main import run

        out, err = io.StringIO(), io.StringIO()
        argv = ["--config-dir", str(self.config), "--state", str(self.state), "--graph-url", self.url, *args]
        with redirect_stdout(out), redirect_stderr(err):
            code = run(argv)
        return code, out.getvalue(), err.getvalue()


def _preflight(cli: InProcess, academy: str = "hillside") -> tuple[int, list[dict]]:
    code, out, _ = cli("preflight", academy, "--json")
    return code, json.loads(out)["checks"]


def _failing(checks: list[dict], name: str) -> dict:
    return next(c for c in checks if c["check"] == name and not c["ok"])


def test_preflight_failures_name_their_fix(prepared: tuple[str, Path], tmp_path: Path) -> None:
    url, state = prepared
    world = url.world  # type: ignore[attr-defined]
    target = world.tenant(TARGET)
    cli = InProcess(url, state)

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
        code, _, err = cli("run", "hillside", "--phase", "groups")
        assert code == 1
        assert "preflight blocks groups" in err and "trustfold bootstrap" in err
        # `--phase identity` (users, groups and memberships as one graph) is gated by the same checks.
        code, _, err = cli("run", "hillside", "--phase", "identity")
        assert code == 1
        assert "preflight blocks identity" in err and "trustfold bootstrap" in err
    finally:
        app["extensionProperties"][:] = saved

    # Licence shortage: oakwood (discovered, not yet run) needs more pupil seats than are free.
    sku = next(s for s in target.skus if s["skuPartNumber"] == "STANDARDWOFFPACK_STUDENT")
    enabled = sku["prepaidUnits"]["enabled"]
    sku["prepaidUnits"]["enabled"] = sku["consumedUnits"] + 1
    try:
        code, checks = _preflight(cli, "oakwood")
        assert code == 1
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
    code, checks = _preflight(InProcess(url, state, config))
    assert code == 1
    site = _failing(checks, "sites")
    assert "hillside-nowhere" in site["result"] and "create site 'hillside-nowhere'" in site["fix"]
    sp = _failing(checks, "sharepoint-credential")
    assert "client secret" in sp["result"] and "kind: certificate" in sp["fix"]


def test_domain_and_sharing_permissions_are_checked_and_requested(prepared: tuple[str, Path]) -> None:
    """The domain and permissions phases' application permissions (only those their pages list) are
    checked by preflight, gate `run`, and are listed by bootstrap with the consent URL."""
    url, state = prepared
    cli = InProcess(url, state)
    admin = f"{url}/sandbox/tenants/{TARGET}/roles"
    # Sites.FullControl.All stays granted: it writes files, but the sharing pages do not list it.
    withheld = ["Domain.ReadWrite.All", "Files.ReadWrite.All", "Sites.ReadWrite.All"]
    httpx.post(admin, json={"withhold": withheld}).raise_for_status()
    try:
        code, checks = _preflight(cli)
        assert code == 1
        perm = _failing(checks, "permissions")
        assert "Domain.ReadWrite.All (add and verify the domain, domain)" in perm["result"]
        assert (
            "Files.ReadWrite.All (share items (invite, createLink) and remove grants, permissions)"
            in (perm["result"])
        )
        assert "Domain.ReadWrite.All" in perm["fix"] and f"adminconsent?client_id={TRUST_APP}" in perm["fix"]
        assert set(perm["phases"]) == {"domain", "permissions"}
        code, out, err = cli("run", "hillside", "--phase", "domain")
        assert code == 1 and "preflight blocks domain" in err and "Domain.ReadWrite.All" in err
        code, out, _ = cli("bootstrap", "--yes", "--json")
        assert code == 0
        result = json.loads(out)
        assert "Domain.ReadWrite.All" in result["consent"][0]["missing"]
        assert {"Domain.ReadWrite.All", "Files.ReadWrite.All"} <= set(result["request"]["trust"])
        assert "Domain.ReadWrite.All" in result["request"]["academies"]
    finally:
        httpx.post(admin, json={"reset": True})


def test_bootstrap_twice_changes_nothing_the_second_time(prepared: tuple[str, Path]) -> None:
    url, state = prepared
    cli = InProcess(url, state)
    before = httpx.get(f"{url}/sandbox/stats").json()["tenants"][TARGET]["writes"]
    code, out, _ = cli("bootstrap", "--yes")
    assert code == 0 and "already registered; nothing changed" in out
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
                    "action, note, origin, data, updated_at) "
                    "VALUES ('hillside', 'user', ?, ?, ?, ?, 'create', '', 'computed', '{}', "
                    "'2026-01-01T00:00:00Z')",
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
        code, out, _ = InProcess(url, state)("provision-onedrive", "hillside", "--timeout", "60", "--json")
        assert code == 0
        result = json.loads(out)
        assert result["calls"] == 0 and result["ready"] == 450 and result["waiting"] == []
        assert target.personal_site_calls == 3
        store.close()


def test_provisioning_errors_the_operator_meets(prepared: tuple[str, Path], tmp_path: Path) -> None:
    """A client secret where SharePoint needs a certificate, and OneDrives still being created at the
    timeout: each a one-line error naming what to do."""
    url, state = prepared
    world = url.world  # type: ignore[attr-defined]
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
    code, _, err = InProcess(url, state, config)("provision-onedrive", "hillside", "--timeout", "5")
    assert code == 1 and "Unsupported app only token." in err
    code, _, err = InProcess(url, state, config)("run", "hillside", "--phase", "files")
    assert code == 1 and "sharepoint-credential" in err and "kind: certificate" in err

    world.apply_settings(world.settings.replace(onedrive_provision_delay_s=120))
    try:
        code, _, err = InProcess(url, state)("provision-onedrive", "hillside", "--timeout", "0.5")
        assert code == 1
        assert "OneDrives still being created after 0.5 s" in err
        assert "run `trustfold provision-onedrive hillside` again later" in err
    finally:
        world.apply_settings(world.settings.replace(onedrive_provision_delay_s=1))


def test_sharing_scan_needs_sites_full_control_and_bulk_needs_a_certificate(
    prepared: tuple[str, Path], tmp_path: Path
) -> None:
    """driveitem-delta: "In order to process permissions correctly your application will need to request
    Sites.FullControl.All" (else sharing changes are left out, silently): preflight names it for the legacy
    tenant's sharing scan, gates the permissions run, and bootstrap asks for it. The Migration API (files
    engine migration-api or auto) is app-only SharePoint REST: a certificate, named even without OneDrive."""
    url, state = prepared
    cli = InProcess(url, state)
    source = next(t["id"] for t in url.world.tenant_list() if t["academy"] == "hillside")  # type: ignore[attr-defined]
    admin = f"{url}/sandbox/tenants/{source}/roles"
    httpx.post(admin, json={"withhold": ["Sites.FullControl.All"]}).raise_for_status()
    try:
        code, checks = _preflight(cli)
        assert code == 1
        perm = next(c for c in _failing_all(checks, "permissions") if c["tenant"] == "hillside")
        assert "Sites.FullControl.All (read sharing changes in drive delta, permissions)" in perm["result"]
        assert perm["phases"] == ["permissions"] and "Sites.FullControl.All" in perm["fix"]
        code, _, err = cli("run", "hillside", "--phase", "permissions")
        assert code == 1 and "preflight blocks permissions" in err and "Sites.FullControl.All" in err
        code, out, _ = cli("bootstrap", "--yes", "--json")
        assert code == 0 and "Sites.FullControl.All" in json.loads(out)["request"]["academies"]
    finally:
        httpx.post(admin, json={"reset": True}).raise_for_status()

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
    hill.write_text(hill.read_text().replace("    engine: auto\n", "    engine: auto\n    onedrive: false\n"))
    _, checks = _preflight(InProcess(url, state, config))
    sp = _failing(checks, "sharepoint-credential")
    assert "the SharePoint Migration API (files engine migration-api/auto: hillside)" in sp["result"]
    assert "OneDrive provisioning" not in sp["result"] and "kind: certificate" in sp["fix"]


def _failing_all(checks: list[dict], name: str) -> list[dict]:
    return [c for c in checks if c["check"] == name and not c["ok"]]

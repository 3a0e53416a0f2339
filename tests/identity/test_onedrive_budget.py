"""OneDrive provisioning and preflight's site checks spend the trust tenant's SharePoint resource units
(every request counts, Graph and REST alike: learn.microsoft.com/sharepoint/dev/general-development/
how-to-avoid-getting-throttled-or-blocked-in-sharepoint-online). They must go through the client-side budget
and leave what they spent in the window the next command (a files run) loads, or that run draws 429s."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from migrations.core.store import StateStore
from sandbox.testing import running_sandbox
from tests.identity.conftest import CONFIG, TARGET, InProcessCli


def _admitted(url: object) -> int:
    """SharePoint units the sandbox admitted for the trust tenant so far."""
    return int(url.world.throttle.budgets(TARGET)["sharepoint_ru_admitted"])  # type: ignore[attr-defined]


def _saved_units(state: Path) -> int:
    """Units the saved SharePoint window of the trust tenant holds (one stamp per unit)."""
    path = state.parent / f"sharepoint-window-{TARGET}.json"
    return len(json.loads(path.read_text())) if path.exists() else 0


def _map_users(store: StateStore, target: object, n: int) -> None:
    sku = target.skus[0]  # type: ignore[attr-defined]
    with store.tx() as tx:
        for i in range(n):
            uid, upn = str(uuid.uuid4()), f"budget{i:02d}@northernlights.org.uk"
            target.users[uid] = {  # type: ignore[attr-defined]
                "id": uid,
                "userPrincipalName": upn,
                "displayName": upn,
                "accountEnabled": True,
                "assignedLicenses": [{"skuId": sku["skuId"], "disabledPlans": []}],
            }
            target.index_user(target.users[uid])  # type: ignore[attr-defined]
            tx.execute(
                "INSERT INTO mappings (academy, kind, source_id, source_key, display_name, target_key, "
                "action, note, origin, data, updated_at) VALUES ('hillside', 'user', ?, ?, ?, ?, 'create', "
                "'', 'computed', '{}', '2026-01-01T00:00:00Z')",
                (f"b{i}", upn, upn, upn),
            )


def test_provisioning_and_preflight_leave_their_sharepoint_spend_in_the_saved_window(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    with running_sandbox(CONFIG, size=10, seed=3, onedrive_provision_delay_s=1) as url:
        target = url.world.tenant(TARGET)
        store = StateStore.open(state)
        _map_users(store, target, 25)  # two $batch rounds of drive reads, polled while SharePoint works
        store.close()
        cli = InProcessCli(url, state)

        before = _admitted(url)
        proc = cli("provision-onedrive", "hillside", "--timeout", "60", "--json")
        assert json.loads(proc.stdout)["ready"] == 25
        spent = _admitted(url) - before
        assert spent >= 25  # every drive read at least once, and the admin call
        assert _saved_units(state) >= spent

        # Preflight for files: the site and library look-ups and the OneDrive check read SharePoint too.
        saved, before = _saved_units(state), _admitted(url)
        cli("preflight", "hillside", check=False)
        spent = _admitted(url) - before
        assert spent >= 25 + 2
        assert _saved_units(state) >= saved + spent


def test_no_wait_asks_and_returns_and_the_next_provisioning_waits(tmp_path: Path) -> None:
    """`provision-onedrive --no-wait` (the demo asks right after the users phase): the request is made and
    journaled, the command succeeds without waiting, and a later provisioning asks nothing again."""
    state = tmp_path / "state.db"
    with running_sandbox(CONFIG, size=10, seed=3, onedrive_provision_delay_s=2) as url:
        target = url.world.tenant(TARGET)
        store = StateStore.open(state)
        _map_users(store, target, 5)
        store.close()
        cli = InProcessCli(url, state)
        proc = cli("provision-onedrive", "hillside", "--no-wait")
        assert "0 OneDrives ready, 5 waiting, 5 requested in 1 calls" in proc.stdout
        assert "5 OneDrives being created by SharePoint; `trustfold run hillside --phase files` waits" in (
            proc.stderr
        )
        assert target.personal_site_calls == 1
        result = json.loads(cli("provision-onedrive", "hillside", "--timeout", "60", "--json").stdout)
        assert result["ready"] == 5 and result["calls"] == 0
        assert target.personal_site_calls == 1

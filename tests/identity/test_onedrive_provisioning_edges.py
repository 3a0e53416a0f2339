"""OneDrive provisioning against SharePoint's stricter answers (issue 22): while the timer job holds a request
Graph may answer 400 "Unable to retrieve user's mysite URL." rather than 404, and accounts blocked from
signing in or without a SharePoint plan never get a OneDrive, so trustfold neither asks for them nor waits."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from migrations.core.store import StateStore
from sandbox.testing import running_sandbox
from tests.identity.conftest import CONFIG, TARGET, InProcessCli


def _mapped_user(store: StateStore, target, i: int, **extra: object) -> str:
    sku = next(s for s in target.skus if s["skuPartNumber"] == "STANDARDWOFFPACK_FACULTY")
    uid, upn = str(uuid.uuid4()), f"edge{i}@northernlights.org.uk"
    target.users[uid] = {
        "id": uid,
        "userPrincipalName": upn,
        "displayName": upn,
        "accountEnabled": True,
        "assignedLicenses": [{"skuId": sku["skuId"], "disabledPlans": []}],
        **extra,
    }
    target.index_user(target.users[uid])
    with store.tx() as tx:
        tx.execute(
            "INSERT INTO mappings (academy, kind, source_id, source_key, display_name, target_key, action, "
            "note, origin, data, updated_at) VALUES ('hillside', 'user', ?, ?, ?, ?, 'create', '', "
            "'computed', '{}', '2026-01-01T00:00:00Z')",
            (f"edge{i}", upn, upn, upn),
        )
    return upn


def test_waiting_survives_unable_to_retrieve_mysite_and_skips_who_can_have_none(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    # A delay the client must wait through, polling while the sandbox answers 400 for the pending drives.
    with running_sandbox(CONFIG, size=20, seed=5, onedrive_provision_delay_s=3) as url:
        target = url.world.tenant(TARGET)
        sku = next(s for s in target.skus if s["skuPartNumber"] == "STANDARDWOFFPACK_FACULTY")
        no_sharepoint = [
            p["servicePlanId"] for p in sku["servicePlans"] if "SHAREPOINT" in p["servicePlanName"]
        ]
        store = StateStore.open(state)
        ready = [_mapped_user(store, target, i) for i in range(3)]
        blocked = _mapped_user(store, target, 3, accountEnabled=False)
        planless = _mapped_user(
            store, target, 4, assignedLicenses=[{"skuId": sku["skuId"], "disabledPlans": no_sharepoint}]
        )
        store.close()
        proc = InProcessCli(url, state)("provision-onedrive", "hillside", "--timeout", "60", "--json")
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["ready"] == 3 and result["waiting"] == [], result
        assert result["requested"] == 3  # never asked for accounts that can have no OneDrive
        assert result["cannot_have"] == sorted([blocked, planless]), result
        assert sorted(ready) == sorted(
            u["userPrincipalName"]
            for uid, u in target.users.items()
            if uid in target.drives.user_drive and u["userPrincipalName"].startswith("edge")
        )
        text = InProcessCli(url, state)("provision-onedrive", "hillside", "--timeout", "5")
        assert "2 users cannot have a OneDrive (sign-in blocked or no SharePoint plan)" in text.stdout

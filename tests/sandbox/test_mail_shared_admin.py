"""The sandbox's admin route that makes a shared mailbox as an Exchange administrator does (Microsoft 365
admin centre, Teams & groups > Shared mailboxes > Add a shared mailbox; Graph has no API for it): a name and
an address, and Exchange makes the mailbox with its own user account, sign-in blocked and unlicensed
(microsoft-365/admin/email/create-a-shared-mailbox, about-shared-mailboxes)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.testing import SandboxURL, graph_client, running_sandbox
from tests.sandbox.conftest import CONFIG


@pytest.fixture(scope="module")
def url() -> Iterator[SandboxURL]:
    with running_sandbox(CONFIG, size=20, seed=5) as base:
        yield base


def _target(url: SandboxURL) -> dict[str, object]:
    return next(t for t in httpx.get(f"{url}/sandbox/tenants").json() if t["role"] == "target")


def test_a_shared_mailbox_made_by_address_has_its_own_blocked_unlicensed_account(url: SandboxURL) -> None:
    t = _target(url)
    domain = str(t["domains"][0])  # type: ignore[index]
    address = f"hillside.office@{domain}"
    r = httpx.post(
        f"{url}/sandbox/tenants/{t['id']}/mail/mailboxes",
        json={"kind": "shared", "address": address, "displayName": "Hillside Office"},
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["kind"] == "shared" and made["address"] == address
    with graph_client(url, str(t["id"])) as g:
        user = g.get(f"/users/{address}", params={"$select": "id,accountEnabled,assignedLicenses"}).json()
        assert user["id"] == made["owner"]
        assert user["accountEnabled"] is False and user["assignedLicenses"] == []
        settings = g.get(f"/users/{user['id']}/settings/exchange").json()
        assert settings["primaryMailboxId"] == made["id"]
        folders = g.get(f"/admin/exchange/mailboxes/{made['id']}/folders", params={"$top": 50}).json()
        assert {"inbox", "calendar", "contacts"} <= {f.get("wellKnownName") for f in folders["value"]}
    # The address is taken now: Exchange refuses a second recipient with it.
    again = httpx.post(
        f"{url}/sandbox/tenants/{t['id']}/mail/mailboxes",
        json={"kind": "shared", "address": address.upper(), "displayName": "Again"},
    )
    assert again.status_code == 409 and "\n" not in again.json()["error"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"kind": "shared", "address": "no-at-sign", "displayName": "X"}, "address"),
        ({"kind": "shared", "address": "office@not-a-domain-of-this.tenant", "displayName": "X"}, "domain"),
        ({"kind": "shared", "address": "x@{domain}"}, "displayName"),
        ({"kind": "archive", "address": "x@{domain}", "displayName": "X"}, "owner"),
    ],
)
def test_bad_shared_mailbox_requests_answer_one_line(
    url: SandboxURL, body: dict[str, str], needle: str
) -> None:
    t = _target(url)
    domain = str(t["domains"][0])  # type: ignore[index]
    body = {k: v.replace("{domain}", domain) for k, v in body.items()}
    r = httpx.post(f"{url}/sandbox/tenants/{t['id']}/mail/mailboxes", json=body)
    assert r.status_code in (400, 404), r.text
    error = r.json()["error"]
    assert needle in error and "\n" not in error

"""Where the legacy tenant refuses to let trustfold read channel messages (a protected API Microsoft approves
per app: teams-protected-apis; Teams' export APIs are protected the same way), each channel gets an HTML
archive in its files folder in the trust (channel-get-filesfolder, driveitem-put-content) saying what could be
read and how to get the history, as a finding; a second run makes no second archive; rollback deletes them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.testing import running_sandbox
from tests.identity.conftest import CONFIG
from tests.teams.conftest import ACADEMY, World, identity_migrated

SUFFIX = " - history archive.html"


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_sandbox(CONFIG, size=20, seed=3, teams_protected_api_approved=False) as url:
        yield identity_migrated(url, tmp_path_factory.mktemp("archive") / "state.db")


def archives(w: World) -> dict[str, bytes]:
    """'team / channel' -> the archive page in that channel's files folder in the trust."""
    out: dict[str, bytes] = {}
    for name, team in w.teams().items():
        for cname, channel in w.channels(team["id"]).items():
            folder = w.get(f"/teams/{team['id']}/channels/{channel['id']}/filesFolder")
            drive = folder["parentReference"]["driveId"]
            for item in w.get(f"/drives/{drive}/items/{folder['id']}/children")["value"]:
                if item["name"].endswith(SUFFIX):
                    with w.graph() as g:
                        r = g.get(f"/drives/{drive}/items/{item['id']}/content", follow_redirects=True)
                        assert r.status_code == 200, r.text
                        out[f"{name} / {cname}"] = r.content
    return out


def test_each_unreadable_channel_gets_an_archive_in_its_files(refused: World) -> None:
    w = refused
    out = w.run()
    assert out["status"] == "succeeded", out
    found = archives(w)
    findings = w.rows("SELECT display, message FROM team_findings WHERE kind = 'history-not-readable'")
    assert len(found) == len(findings) == out["counts"]["channels"] > 0
    assert all("archive" in f["message"] for f in findings)
    page = next(iter(found.values())).decode()
    assert "Protected API access" in page and "teams-protected-apis" in page
    assert "<script" not in page.lower()
    # The archive step is journaled: a second pass makes no second file (and sends no new upload).
    sql = "SELECT COUNT(*) AS n FROM journal WHERE op = 'archive-channel' AND event = 'intent'"
    before = w.rows(sql)[0]["n"]
    again = w.run()
    assert again["status"] == "succeeded", again
    assert archives(w) == found
    assert w.rows(sql)[0]["n"] == before


def test_rollback_deletes_the_archives(refused: World) -> None:
    w = refused
    if not archives(w):
        w.run()
    w.cli("rollback", ACADEMY, "--phase", "teams", "--yes")
    assert archives(w) == {}

"""Hostile legacy-tenant text in teams (a channel's name and description, message bodies: control characters,
bidi overrides, terminal escapes, script, very long) reaches the terminal, the report (Markdown and HTML) and
the channel's history archive only through migrations/safety/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from migrations.safety.sanitise import UNSAFE
from migrations.teams import archive
from sandbox.testing import running_sandbox
from tests.identity.conftest import CONFIG
from tests.teams.conftest import ACADEMY, World, identity_migrated
from tests.teams.test_archive_history import archives

CHANNEL = "Room \u202egnp.exe\x07\x1b[31m red"  # reads "Room exe.png" with the override; BEL; an ANSI escape
SCRIPT = "<script>alert(document.cookie)</script><img src=x onerror=alert(1)>"


def _raw(text: str) -> set[str]:
    """Unsafe characters in an output (newline and tab belong to the format)."""
    return {c for c in text if c in UNSAFE - {"\n", "\t"}}


def test_the_archive_page_shows_hostile_text_inert() -> None:
    long = "x" * 5000
    page = archive.render(
        f"Team {SCRIPT}",
        CHANNEL + long,
        "standard",
        SCRIPT,
        f"refused \x1b]8;;http://evil\x07link\x1b]8;;\x07 {SCRIPT}",
        [{"name": SCRIPT, "config": {"websiteUrl": "javascript:alert(1)"}}],
        [
            archive.ArchivedMessage(
                "2026-01-05T09:00:00.000Z", f"Eve {SCRIPT}", "html", f"<p>hi</p>{SCRIPT}"
            ),
            archive.ArchivedMessage(
                "2026-01-05T09:01:00.000Z", "Bob\u202e", "text", f"{SCRIPT}\n{long}", True
            ),
        ],
    ).decode()
    assert "<script" not in page.lower() and "<img" not in page.lower()  # shown as text (&lt;...), inert
    assert 'href="javascript' not in page.lower()
    assert not _raw(page), _raw(page)
    assert "\\u202e" in page  # the override is shown, not obeyed
    assert f"{'x' * archive.NAME_LIMIT}" not in page.split("<h1>")[1].split("</h1>")[0]  # names are cut
    # A message body is kept as its words: the html message's text is there, its markup is not.
    assert "hi" in page and "&lt;script&gt;" in page  # the text message's script shows as text


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Path]]:
    tmp = tmp_path_factory.mktemp("hostile")
    with running_sandbox(CONFIG, size=20, seed=3, teams_protected_api_approved=False) as url:
        w = identity_migrated(url, tmp / "state.db")
        team = sorted(w.teams(w.source).values(), key=lambda t: t["displayName"])[0]
        with w.graph(w.source) as g:
            r = g.post(
                f"/teams/{team['id']}/channels",
                json={
                    "displayName": CHANNEL,
                    "description": SCRIPT + "y" * 900,
                    "membershipType": "standard",
                },
            )
            assert r.status_code == 201, r.text
        w.cli("discover", ACADEMY)
        yield w, tmp


def test_hostile_channel_text_reaches_terminal_report_and_archive_sanitised(
    hostile: tuple[World, Path],
) -> None:
    w, tmp = hostile
    plan = w.cli("plan", ACADEMY, "--phase", "teams")
    assert not _raw(plan.stdout + plan.stderr)
    out = w.run()
    assert out["status"] == "succeeded", out
    for fmt in ("md", "html"):
        path = tmp / f"report.{fmt}"
        w.cli("report", "--format", fmt, "--out", str(path))
        text = path.read_text()
        assert "gnp.exe" in text, f"the hostile channel's finding is not in the {fmt} report"
        assert not _raw(text), (fmt, _raw(text))
        assert "<script>alert" not in text
    pages = archives(w)
    mine = [name for name in pages if "gnp.exe" in name]
    assert len(mine) == 1, sorted(pages)
    page = pages[mine[0]].decode()
    assert not _raw(page) and "<script" not in page.lower() and "\\u202e" in page
    # The rollback preview lists every step trustfold would undo, the hostile channel's among them.
    preview = w.cli("rollback", ACADEMY, "--phase", "teams")
    assert "gnp.exe" in preview.stdout, "the hostile channel is not in the rollback preview"
    assert not _raw(preview.stdout + preview.stderr)

"""What unfinished copy steps journaled they would upload, and how a file found at their path is told apart
from one a trust user made (migrations/files/orphans.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from migrations.core.journal import Journal
from migrations.core.steps import Outcome, Step
from migrations.core.store import StateStore
from migrations.files.orphans import holds_ours, unfinished_copies

KEY = "copy:library:staff/Documents:item-1"
ARGS = {"path": "Open evening (hillside).mp4", "size": 10, "hash": "AAA=", "created": "2023-02-21T15:54:25Z"}


def _journal(tmp_path: Path) -> tuple[StateStore, Journal]:
    store = StateStore.open(tmp_path / "state.db")
    return store, Journal(store, "run-1", "hillside", "files", None)


def _copy(**changes: Any) -> Step:
    return Step(KEY, "copy", {**ARGS, **changes})


def test_every_intent_since_the_last_outcome_counts(tmp_path: Path) -> None:
    store, journal = _journal(tmp_path)
    journal.intents([_copy()])  # killed after the upload: in doubt
    journal.intents([_copy(hash="BBB=", size=12)])  # the source changed; the next attempt failed
    journal.outcomes([(_copy(hash="BBB=", size=12), Outcome("failed", None, {}, "exists"))])
    u = unfinished_copies(store, "hillside", "files")[KEY]
    assert u.event == "failed" and u.args["hash"] == "BBB="
    assert u.holds_ours(10, "AAA=", "2023-02-21T15:54:25.000Z")  # the first upload, unrecorded
    assert u.holds_ours(12, "BBB=", "2023-02-21T15:54:25Z")
    # The same bytes uploaded by someone in the trust carry their own creation time: not ours.
    assert not u.holds_ours(10, "AAA=", "2026-01-05T09:00:00Z")
    assert not u.holds_ours(10, "CCC=", "2023-02-21T15:54:25Z") and not u.holds_ours(None, "AAA=", None)


def test_a_done_or_undone_outcome_settles_the_step(tmp_path: Path) -> None:
    store, journal = _journal(tmp_path)
    journal.intents([_copy()])
    journal.outcomes([(_copy(), Outcome("done", "t-1", {"created": True}))])
    assert KEY not in unfinished_copies(store, "hillside", "files")
    journal.intents([_copy(hash="BBB=")])  # a later pass's copy, in doubt: only its own content counts
    u = unfinished_copies(store, "hillside", "files")[KEY]
    assert u.event == "intent" and u.contents == {(10, "BBB=", "2023-02-21T15:54:25")}


def test_replacements_and_empty_files(tmp_path: Path) -> None:
    store, journal = _journal(tmp_path)
    journal.intents([_copy(replace_id="t-1")])  # a replacement is in doubt by its own rule (in_doubt_hash)
    assert unfinished_copies(store, "hillside", "files")[KEY].contents == set()
    # Zero-byte files get their timestamps in a second request: size and hash decide.
    empty = [(0, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "2023-02-21T15:54:25")]
    assert holds_ours(empty, 0, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "2026-01-05T09:00:00Z")

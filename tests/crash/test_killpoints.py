"""The one kill hook's grammar: what TRUSTFOLD_TEST_KILL_AT accepts, what it refuses (naming the variable and
the grammar), and which boundary it kills at, counted in-process with the kill itself replaced."""

from __future__ import annotations

import pytest

from migrations.core import killpoints


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("outcome:copy:2", ("outcome:copy", 2, "after")),
        ("outcome:copy:2:before", ("outcome:copy", 2, "before")),
        ("undo-outcome:undo-copy:1:after", ("undo-outcome:undo-copy", 1, "after")),
        ("upload-fragment:1", ("upload-fragment", 1, "after")),
        ("permissions.sent:3", ("permissions.sent", 3, "after")),
        ("bulk.staged:1", ("bulk.staged", 1, "after")),
        ("*:4", ("*", 4, "after")),
    ],
)
def test_accepted(value: str, parsed: tuple[str, int, str]) -> None:
    assert killpoints.parse(value) == parsed


@pytest.mark.parametrize(
    "value", ["staged", "outcome:copy", "outcome:copy:0", "outcome:copy:-1", ":3", "3", "a,b:1", "x:1:later"]
)
def test_refused_naming_the_variable_and_the_grammar(value: str) -> None:
    with pytest.raises(ValueError) as err:
        killpoints.parse(value)
    message = str(err.value)
    assert message.startswith(f"TRUSTFOLD_TEST_KILL_AT={value!r}: expected <label>:<n>[:before|:after]")
    assert "* for any" in message and "bulk.packaging" in message


def _kills(monkeypatch: pytest.MonkeyPatch, value: str) -> list[str]:
    """Records each kill instead of dying; returns the list the boundaries below append to."""
    monkeypatch.setenv(killpoints.ENV, value)
    monkeypatch.setattr(killpoints, "_seen", {})
    events: list[str] = []
    monkeypatch.setattr(killpoints.os, "kill", lambda pid, sig: events.append("KILL"))
    return events


def _commit(events: list[str], labels: str) -> None:
    killpoints.commit(labels, "before")
    events.append(f"commit {labels}")
    killpoints.commit(labels, "after")


def test_labelled_commit_counted_and_killed_before_or_after(monkeypatch: pytest.MonkeyPatch) -> None:
    events = _kills(monkeypatch, "outcome:copy:2:before")
    _commit(events, "outcome:copy")
    _commit(events, "intent:copy")
    _commit(events, "outcome:create-folder,outcome:copy")  # a transaction of several step types: one match
    assert events == [
        "commit outcome:copy",
        "commit intent:copy",
        "KILL",
        "commit outcome:create-folder,outcome:copy",
    ]
    events = _kills(monkeypatch, "outcome:copy:1")
    _commit(events, "outcome:copy")
    assert events == ["commit outcome:copy", "KILL"]


def test_named_boundary_and_wildcard(monkeypatch: pytest.MonkeyPatch) -> None:
    events = _kills(monkeypatch, "permissions.sent:2")
    for _ in range(3):
        killpoints.reached("permissions.sent")
        events.append("sent")
    assert events == ["sent", "KILL", "sent", "sent"]
    events = _kills(monkeypatch, "*:3")  # every boundary counts: commits and named points alike
    _commit(events, "intent:rename-user")
    killpoints.reached("domain.sent")
    events.append("sent")
    _commit(events, "outcome:rename-user")
    assert events == ["commit intent:rename-user", "sent", "commit outcome:rename-user", "KILL"]


def test_unset_or_unlabelled_never_kills(monkeypatch: pytest.MonkeyPatch) -> None:
    events = _kills(monkeypatch, "*:1")
    _commit(events, "")  # unlabelled commits (run bookkeeping) are not boundaries
    monkeypatch.delenv(killpoints.ENV)
    _commit(events, "outcome:copy")
    killpoints.reached("bulk.staged")
    assert events == ["commit ", "commit outcome:copy"]

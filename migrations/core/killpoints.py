"""Test hook: end the process at an exact commit boundary of the state store, never by timing.

`TRUSTFOLD_TEST_KILL_AT="<label>:<n>[:before|:after]"` makes the n-th commit whose label matches end the
process with `os._exit(137)` (as SIGKILL would: no cleanup, no flush) just before or just after it commits
(default after). Labels are what callers pass to `StateStore.tx(label=...)`, e.g. `intent:create-user`,
`outcome:copy`, `undo-intent:create-group`, `undo-outcome:undo-copy`; a transaction covering several step
types carries all of them, comma-separated. Unset (always, outside tests), this costs one dict lookup.
"""

from __future__ import annotations

import os

ENV = "TRUSTFOLD_TEST_KILL_AT"
_seen: dict[str, int] = {}


def _spec() -> tuple[str, int, str] | None:
    text = os.environ.get(ENV)
    if not text:
        return None
    when = "after"
    head, _, last = text.rpartition(":")
    if last in ("before", "after"):
        when, text = last, head
    label, _, n = text.rpartition(":")
    if not label or not n.isdigit() or int(n) < 1:
        raise ValueError(f"{ENV}={os.environ.get(ENV)!r}: expected <label>:<n>[:before|:after]")
    return label, int(n), when


def commit(labels: str, when: str) -> None:
    """Called by the store around every labelled COMMIT; counts matches at 'before', kills when due."""
    spec = _spec()
    if spec is None or not labels:
        return
    label, n, at = spec
    if label not in labels.split(","):
        return
    if when == "before":
        _seen[label] = _seen.get(label, 0) + 1
    if _seen.get(label) == n and when == at:
        os._exit(137)


def reached(label: str) -> None:
    """A boundary that is not a store commit (an upload fragment accepted): counted and killed alike."""
    commit(label, "before")
    commit(label, "after")

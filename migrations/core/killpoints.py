"""Test hook: SIGKILL the process at an exact boundary, never by timing. The only kill hook in trustfold.

    TRUSTFOLD_TEST_KILL_AT=<label>:<n>[:before|:after]

kills the process with a real SIGKILL (no cleanup, no flush) at the n-th boundary (counted from 1, in this
process) whose label is <label>. A boundary is one of:

- a labelled commit of the state store: the label passed to `StateStore.tx(label=...)`, e.g.
  `intent:create-user`, `outcome:copy`, `undo-intent:create-group`, `undo-outcome:undo-copy`. A transaction
  covering several step types carries all of them, comma-separated, and matches any of them (counted once).
  `before` kills just before the COMMIT, `after` (the default) just after it.
- a named point that is not a commit, passed to `reached()`: `upload-fragment` (an upload fragment
  accepted), `permissions.sent` and `domain.sent` (a write answered, its outcome not yet journaled),
  `bulk.packaging`, `bulk.staged`, `bulk.submitted`, `bulk.importing` (the Migration API engine's package
  lifecycle), `mail.imported` (a mailbox item's import POST answered, its outcome not yet journaled).
  `before` and `after` are the same moment here.

<label> `*` matches every boundary, labelled commits and named points alike: `*:3` is the third boundary of
any kind, for sweeps that kill at a seeded boundary rather than a chosen one. Examples:
`outcome:copy:2:before`, `permissions.sent:3`, `bulk.staged:1`, `*:4`.

Unset (always, outside tests), a boundary costs one dict lookup. A malformed value raises ValueError naming
the variable and the grammar.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "TRUSTFOLD_TEST_KILL_AT"
ANY = "*"
GRAMMAR = (
    "<label>:<n>[:before|:after], <label> a store commit label (outcome:copy), a named boundary "
    "(upload-fragment, permissions.sent, domain.sent, bulk.packaging|staged|submitted|importing, "
    "mail.imported) "
    "or * for any, <n> a whole number from 1"
)

_seen: dict[str, int] = {}  # boundaries matched so far, per value of the variable
_lock = threading.Lock()  # named points may be reached from several threads


def parse(text: str) -> tuple[str, int, str]:
    """(label, n, when) from the variable's value; a malformed one raises ValueError naming the variable."""
    rest, when = text, "after"
    head, _, last = text.rpartition(":")
    if last in ("before", "after"):
        rest, when = head, last
    label, _, n = rest.rpartition(":")
    if not label or "," in label or not n.isdigit() or int(n) < 1:
        raise ValueError(f"{ENV}={text!r}: expected {GRAMMAR}")
    return label, int(n), when


def commit(labels: str, when: str) -> None:
    """Called by the store around every labelled COMMIT; counts matches at 'before', kills when due."""
    text = os.environ.get(ENV)
    if not text or not labels:
        return
    label, n, at = parse(text)
    if label != ANY and label not in labels.split(","):
        return
    with _lock:
        if when == "before":
            _seen[text] = _seen.get(text, 0) + 1
        due = _seen.get(text) == n and when == at
    if due:
        os.kill(os.getpid(), signal.SIGKILL)


def reached(label: str) -> None:
    """A named boundary that is not a store commit: counted and killed as a commit would be."""
    commit(label, "before")
    commit(label, "after")

"""Rules of history planning that need no tenant: times to the millisecond and their uniqueness in a channel
(teams-import-messages: a second message at the same millisecond is refused with 409)."""

from __future__ import annotations

from migrations.teams.context import millis
from migrations.teams.plan import _unique_ms


def test_times_are_kept_to_the_millisecond() -> None:
    assert millis("2025-09-03T08:30:00Z") == "2025-09-03T08:30:00.000Z"
    assert millis("2025-09-03T08:30:00.1234567Z") == "2025-09-03T08:30:00.123Z"
    assert millis("2025-09-03T08:30:00.5Z") == "2025-09-03T08:30:00.500Z"


def test_two_messages_at_one_millisecond_get_distinct_times() -> None:
    taken: set[str] = set()
    first = _unique_ms("2025-09-03T08:30:00.999Z", taken)
    second = _unique_ms("2025-09-03T08:30:00.9991Z", taken)
    third = _unique_ms("2025-09-03T08:30:00.999Z", taken)
    assert first == "2025-09-03T08:30:00.999Z"
    assert second == "2025-09-03T08:30:01.000Z"  # carried over the second boundary
    assert third == "2025-09-03T08:30:01.001Z"
    assert len({first, second, third}) == 3

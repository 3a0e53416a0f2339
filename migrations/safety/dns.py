"""DNS values a tenant hands us (record names, targets, TXT text) checked before they reach a zone-style
change file, a runbook line or a report. A value that is not plainly a DNS name or plain TXT text is
refused whole rather than cleaned: a "fixed" record would be a different record, and the operator would
publish it."""

from __future__ import annotations

import re

# A label of letters, digits and hyphens (RFC 1035), or an underscore label (_dmarc, _domainkey, _sip).
_LABEL = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?|_[a-z0-9][a-z0-9-]{0,61})$")
MAX_NAME = 253
MAX_TXT = 255  # one character-string in a TXT record (RFC 1035 3.3)
# Printable ASCII without the characters that end or escape a quoted zone-file string.
_TXT = re.compile(r"^[\x20-\x7e]+$")
_TXT_FORBIDDEN = frozenset('"\\')


def dns_name(value: object) -> str | None:
    """The name, lower case without a trailing dot, or None when it is not a DNS name."""
    if not isinstance(value, str):
        return None
    name = value.strip().lower().removesuffix(".")
    if not name or len(name) > MAX_NAME:
        return None
    labels = name.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return None
    return name


def dns_text(value: object) -> str | None:
    """TXT text fit to quote in a zone file and print on one line, or None."""
    if not isinstance(value, str) or not value or len(value) > MAX_TXT:
        return None
    if not _TXT.match(value) or any(c in _TXT_FORBIDDEN for c in value):
        return None
    return value


def dns_preference(value: object) -> int | None:
    """An MX preference (0..65535), or None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        return None
    return value

"""Values registered as secret are scrubbed from every log record and from anything passed to redact()."""

from __future__ import annotations

import logging
import re
import threading

_lock = threading.Lock()
_secrets: set[str] = set()
MASK = "***REDACTED***"


def register_secret(value: str | None) -> None:
    # Very short values would mask innocent text everywhere; real secrets are long.
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


# Pre-authenticated URLs (SharePoint download and upload URLs, SAS links) carry their credential in the
# query string: one pattern covers them all, however many files a run touches.
_URL_CREDENTIAL = re.compile(r"(?i)\b(tempauth|sig|access_token|client_secret|code)=[^&\s\"'<>]+")


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, MASK)
    return _URL_CREDENTIAL.sub(lambda m: f"{m.group(1)}={MASK}", text)


class RedactingFilter(logging.Filter):
    """Renders the message once, redacted, so no handler or formatter can see the raw secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True

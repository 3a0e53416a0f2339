"""Outlook service limits (learn.microsoft.com/graph/throttling-limits, "Outlook service limits"). "Limits per
app ID": 4 concurrent requests, "regardless of whether the requests all access the same mailbox, or access
different mailboxes" (and, the limit being the app id's, whichever tenant the mailbox is in). "Limits per app
ID and mailbox combination": 10,000 API requests in a 10-minute period, 150 MB uploaded (PATCH, POST, PUT) in
a 5-minute period. Each is answered as Exchange answers it through Graph: 429 with Retry-After and
`{"error": {"code": "ApplicationThrottled", "message": "Application is over its <limit> limit."}}`; the
MailboxConcurrency and IncomingBytes wordings are the ones Exchange sends (learn.microsoft.com/answers/
questions/1660054; github.com/O365/python-o365/issues/500), MailboxRequests follows their pattern.

These limits replace Graph's identity budget for Outlook paths (the pipeline classifies them "outlook").
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.errors import GraphError
from sandbox.settings import Budget
from sandbox.throttle import SlidingWindow, retry_after_header

OUTLOOK_REQUESTS = Budget(10_000, 600.0)
OUTLOOK_CONCURRENCY = 4
OUTLOOK_UPLOAD = Budget(150 * 1024 * 1024, 300.0)

# Graph paths served by Exchange: the mailbox import/export APIs and the ordinary mail, calendar and contact
# reads, plus a user's Exchange settings.
OUTLOOK_PATH = re.compile(
    r"^/v1\.0/(admin/exchange/mailboxes(/|$)"
    r"|users/[^/]+/(settings/exchange|mailFolders|messages|events|calendar|contacts|contactFolders)(/|$|\())"
)


def is_outlook_path(path: str) -> bool:
    return bool(OUTLOOK_PATH.match(path))


@dataclass(frozen=True)
class OutlookLimits:
    requests: Budget = OUTLOOK_REQUESTS
    concurrency: int = OUTLOOK_CONCURRENCY
    upload: Budget = OUTLOOK_UPLOAD
    enabled: bool = True


def throttled(limit: str, seconds: float) -> GraphError:
    return GraphError(
        429,
        "ApplicationThrottled",
        f"Application is over its {limit} limit.",
        headers={"Retry-After": retry_after_header(seconds)},
    )


class MailboxLimiter:
    """Requests in flight per app id, request and upload windows per (app, mailbox); thread-safe (the sandbox
    runs handlers on one loop, tests call it too)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = OutlookLimits()
        self._clock = clock
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], SlidingWindow] = {}
        self._upload: dict[tuple[str, str], SlidingWindow] = {}
        self._active: dict[str, int] = {}  # app id -> requests in flight, whatever their mailboxes
        self.refused: dict[str, int] = {"MailboxRequests": 0, "MailboxConcurrency": 0, "IncomingBytes": 0}

    def configure(self, limits: OutlookLimits) -> None:
        with self._lock:
            self.limits = limits
            self._requests.clear()
            self._upload.clear()

    def enter(self, app_id: str, mailbox: str, upload_bytes: int = 0) -> None:
        """Admit one request (raise 429 if over a limit); the caller must call leave() after."""
        lim = self.limits
        key = (app_id, mailbox)
        with self._lock:
            if not lim.enabled:
                self._active[app_id] = self._active.get(app_id, 0) + 1
                return
            now = self._clock()
            if self._active.get(app_id, 0) >= lim.concurrency:
                self.refused["MailboxConcurrency"] += 1
                raise throttled("MailboxConcurrency", 1)
            window = self._requests.setdefault(key, SlidingWindow(lim.requests.limit, lim.requests.seconds))
            wait = window.wait_for(now, 1)
            if wait > 0:
                self.refused["MailboxRequests"] += 1
                raise throttled("MailboxRequests", wait)
            if upload_bytes:
                up = self._upload.setdefault(key, SlidingWindow(lim.upload.limit, lim.upload.seconds))
                # One item larger than the whole budget (a 150 MB message is 200 MB of base64) still goes
                # through, but only into an empty window: it then holds the mailbox for the window's length.
                wait = up.wait_for(now, min(upload_bytes, lim.upload.limit))
                if wait > 0:
                    self.refused["IncomingBytes"] += 1
                    raise throttled("IncomingBytes", wait)
                up.add(now, upload_bytes)
            window.add(now, 1)
            self._active[app_id] = self._active.get(app_id, 0) + 1

    def leave(self, app_id: str, mailbox: str) -> None:
        """The request admitted by enter(app_id, mailbox) was answered: its app's slot is free again."""
        with self._lock:
            left = self._active.get(app_id, 0) - 1
            if left > 0:
                self._active[app_id] = left
            else:
                self._active.pop(app_id, None)

    def in_flight(self, app_id: str) -> int:
        """The app's requests admitted and not yet answered, across every mailbox and tenant."""
        with self._lock:
            return self._active.get(app_id, 0)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._upload.clear()
            self._active.clear()
            for k in self.refused:
                self.refused[k] = 0

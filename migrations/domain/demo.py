"""The domain cut-over in `trustfold demo`: one academy moves its domain, with the sandbox's admin calls
standing in for the two people outside trustfold (the Exchange administrator and whoever holds the zone).

Talks to the sandbox only through its URL (migrations never imports sandbox), and only to loopback.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from trust import Trust

Invoke = Callable[[str, str, list[str]], Any]  # (academy, label, argv) -> outcome with .code and .output


_PUBLISH = re.compile(r"publish TXT at ([a-z0-9.\-]+): (MS=ms[0-9]{8})")


def _records(output: str) -> list[tuple[str, str]]:
    """The TXT records `run` asks to publish, from its printed notes."""
    return _PUBLISH.findall(output)


def rehearse_domain(trust: Trust, graph_url: str, invoke: Invoke) -> list[Any]:
    """Plan, run to the DNS checkpoint, publish the TXT record, run to completion, verify: first academy."""
    if urlsplit(graph_url).hostname not in ("127.0.0.1", "localhost", "::1"):
        return []  # only a local sandbox has the admin calls that play DNS and Exchange
    academy = trust.academies[0]
    code = academy.code
    outcomes = [invoke(code, "plan domain", ["plan", code, "--phase", "domain"])]
    with httpx.Client(base_url=graph_url, timeout=60) as http:
        for name in academy.legacy_tenant.domains:  # the Exchange administrator readdresses groups
            http.post("/sandbox/exchange", json={"tenant": academy.legacy_tenant.id, "domain": name})
        first = invoke(code, "run domain", ["run", code, "--phase", "domain"])
        outcomes.append(first)
        for name, text in _records(first.output):  # whoever holds the zone publishes the TXT record
            http.post("/sandbox/dns", json={"action": "publish", "name": name, "text": text})
    outcomes.append(invoke(code, "run domain after DNS", ["run", code, "--phase", "domain"]))
    outcomes.append(invoke(code, "verify after domain", ["verify", code]))
    return outcomes

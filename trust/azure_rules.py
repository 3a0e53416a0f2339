"""Azure's and Entra's naming rules, as predicates that say what is wrong (None when the name is valid)."""

from __future__ import annotations

import re
from collections.abc import Callable

Rule = Callable[[str], str | None]


def _rule(
    pattern: str, lo: int, hi: int, allowed: str, extra: Callable[[str], str | None] | None = None
) -> Rule:
    compiled = re.compile(pattern)

    def check(name: str) -> str | None:
        if not lo <= len(name) <= hi:
            return f"must be {lo}-{hi} characters (is {len(name)})"
        if not compiled.fullmatch(name):
            return f"may contain only {allowed}"
        return extra(name) if extra else None

    return check


def _no_double_hyphen(name: str) -> str | None:
    return "must not contain '--'" if "--" in name else None


RULES: dict[str, Rule] = {
    "resource_group": _rule(
        r"[A-Za-z0-9_.()\-]*[A-Za-z0-9_()\-]", 1, 90, "letters, digits, _ . ( ) -, not ending in ."
    ),
    "virtual_network": _rule(r"[A-Za-z0-9][A-Za-z0-9_.\-]*[A-Za-z0-9_]", 2, 64, "letters, digits, _ . -"),
    "subnet": _rule(r"[A-Za-z0-9]([A-Za-z0-9_.\-]*[A-Za-z0-9_])?", 1, 80, "letters, digits, _ . -"),
    "network_security_group": _rule(
        r"[A-Za-z0-9]([A-Za-z0-9_.\-]*[A-Za-z0-9_])?", 1, 80, "letters, digits, _ . -"
    ),
    "peering": _rule(r"[A-Za-z0-9]([A-Za-z0-9_.\-]*[A-Za-z0-9_])?", 1, 80, "letters, digits, _ . -"),
    "storage_account": _rule(r"[a-z0-9]+", 3, 24, "lowercase letters and digits"),
    "key_vault": _rule(
        r"[A-Za-z][A-Za-z0-9\-]*[A-Za-z0-9]",
        3,
        24,
        "letters, digits and -, starting with a letter",
        _no_double_hyphen,
    ),
    "log_analytics_workspace": _rule(r"[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9]", 4, 63, "letters, digits and -"),
    "action_group": _rule(r"[A-Za-z0-9_.\-]+", 1, 260, "letters, digits, _ . -"),
    "action_group_short": _rule(r"[A-Za-z0-9_.\-]+", 1, 12, "letters, digits, _ . -"),
    "budget": _rule(r"[A-Za-z0-9_\-]+", 1, 63, "letters, digits, _ -"),
    "storage_container": _rule(r"[a-z0-9](-?[a-z0-9])*", 3, 63, "lowercase letters, digits, single -"),
    "entra_display_name": _rule(r"[^\x00-\x1f]+", 1, 256, "printable characters"),
    "mail_nickname": _rule(
        r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+",
        1,
        64,
        "ASCII letters, digits and !#$%&'*+-/=?^_`{|}~ (no spaces or @()\\[]\";:.<>,)",
    ),
    "upn_local": _rule(
        r"[A-Za-z0-9'.\-_!#^~]+",
        1,
        64,
        "A-Z a-z 0-9 ' . - _ ! # ^ ~",
        lambda n: (
            "must not start or end with '.' or contain '..'"
            if n.startswith(".") or n.endswith(".") or ".." in n
            else None
        ),
    ),
}


def check(kind: str, name: str) -> str | None:
    return RULES[kind](name)

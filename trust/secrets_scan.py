"""Refuse secrets pasted into config: config holds references to secrets, never their values."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from trust.errors import ConfigError
from trust.yaml_source import YamlDocument

# Keys whose *name* says they would hold a secret value. References end in _env / _ref / _name.
_SECRET_KEY = re.compile(
    r"(^|_)(password|passwd|secret|client_secret|api_key|apikey|key|token|private_key|"
    r"connection_string|sas|credential_value)$",
    re.I,
)
_REFERENCE_KEY = re.compile(r"_(env|ref|name|id|path)$", re.I)

_SECRET_VALUE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an Entra client secret", re.compile(r"[A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{30,}")),
    ("a JSON web token", re.compile(r"eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.")),
    ("a PEM private key or certificate", re.compile(r"-----BEGIN [A-Z ]+-----")),
    (
        "a storage connection string or key",
        re.compile(r"(AccountKey|SharedAccessKey|SharedAccessSignature)=", re.I),
    ),
    ("a SAS token", re.compile(r"[?&]sig=[A-Za-z0-9%+/=]{20,}")),
    ("a password in a URL", re.compile(r"://[^/\s:@]+:[^/\s@]+@")),
)


def _entropy(s: str) -> float:
    counts = Counter(s)
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


def _looks_random(value: str) -> bool:
    """A long, high-entropy token mixing character classes: how keys and secrets look."""
    if len(value) < 32 or " " in value:
        return False
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[+/=_~\-.]"))
    return classes >= 3 and _entropy(value) > 4.2


def _walk(data: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    yield loc, data
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _walk(v, (*loc, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _walk(v, (*loc, i))


def refuse_secrets(doc: YamlDocument) -> None:
    for loc, value in _walk(doc.data):
        field = ".".join(str(p) for p in loc)
        key = str(loc[-1]) if loc else ""
        is_value = isinstance(value, str | int) and not isinstance(value, bool) and value != ""
        if is_value and loc and _SECRET_KEY.search(key) and not _REFERENCE_KEY.search(key):
            raise ConfigError(
                doc.file,
                "looks like a secret value; config holds references only (e.g. secret_env: NAME_OF_ENV_VAR)",
                line=doc.line_of(loc),
                field=field,
            )
        if isinstance(value, str):
            for what, pattern in _SECRET_VALUE_PATTERNS:
                if pattern.search(value):
                    raise ConfigError(
                        doc.file,
                        f"value looks like {what}; secrets never go in config (reference them by name)",
                        line=doc.line_of(loc),
                        field=field,
                    )
            if _looks_random(value):
                raise ConfigError(
                    doc.file,
                    "value looks like a key or secret (long random token); secrets never go in config",
                    line=doc.line_of(loc),
                    field=field,
                )

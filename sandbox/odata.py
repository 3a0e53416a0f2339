"""OData query options as Graph's directory supports them: $filter, $select, $top, $count, paging tokens.

Follows learn.microsoft.com/graph/query-parameters and learn.microsoft.com/graph/aad-advanced-queries:
eq, startswith, in and any() work by default; ne, not and endswith need advanced query capabilities
(ConsistencyLevel: eventual plus $count=true). String comparisons are case-insensitive, as in Entra ID.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.errors import GraphError

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN_RE = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)(?![\w-])|(?P<punct>[(),:/])|(?P<word>[A-Za-z_$@][\w.@$-]*))"
)


def unsupported(message: str = "Unsupported Query.") -> GraphError:
    return GraphError(400, "Request_UnsupportedQuery", message)


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise GraphError(
                400, "BadRequest", f"Invalid filter clause: syntax error at position {pos} in '{text}'."
            )
        pos = m.end()
        if m.group("str") is not None:
            out.append(("lit", m.group("str")[1:-1].replace("''", "'")))
        elif m.group("num") is not None:
            num = m.group("num")
            out.append(("lit", float(num) if "." in num else int(num)))
        elif m.group("punct") is not None:
            out.append(("p", m.group("punct")))
        else:
            word = m.group("word")
            low = word.lower()
            if low in ("true", "false"):
                out.append(("lit", low == "true"))
            elif low == "null":
                out.append(("lit", None))
            else:
                out.append(("w", word))
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _norm(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


@dataclass
class FilterContext:
    resource: str  # "User" | "Group"
    filterable: frozenset[str]
    collections: frozenset[str]
    advanced: bool
    extension_re: re.Pattern[str]


class _Parser:
    def __init__(self, text: str, ctx: FilterContext) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.ctx = ctx
        self.text = text

    def peek(self) -> tuple[str, Any] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None:
            raise GraphError(400, "BadRequest", f"Invalid filter clause: unexpected end of '{self.text}'.")
        self.i += 1
        return tok

    def expect(self, kind: str, value: str | None = None) -> Any:
        tok = self.take()
        if tok[0] != kind or (value is not None and str(tok[1]).lower() != value):
            raise GraphError(
                400, "BadRequest", f"Invalid filter clause: expected {value or kind} in '{self.text}'."
            )
        return tok[1]

    def parse(self) -> Predicate:
        pred = self.expr()
        if self.peek() is not None:
            raise GraphError(400, "BadRequest", f"Invalid filter clause: unexpected '{self.peek()[1]}'.")  # type: ignore[index]
        return pred

    def expr(self) -> Predicate:
        left = self.term()
        while (tok := self.peek()) and tok[0] == "w" and tok[1].lower() in ("and", "or"):
            self.take()
            right = self.term()
            if tok[1].lower() == "and":
                left = (lambda a, b: lambda o: a(o) and b(o))(left, right)
            else:
                left = (lambda a, b: lambda o: a(o) or b(o))(left, right)
        return left

    def prop(self, name: str) -> str:
        ctx = self.ctx
        if name not in ctx.filterable and not ctx.extension_re.match(name):
            if name.startswith("extension_"):
                # A directory extension nobody registered: Graph does not know the property at all.
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    f"Property '{name}' does not exist as a declared property or extension property.",
                )
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"Unsupported or invalid query filter clause specified for property '{name}' of "
                f"resource '{ctx.resource}'.",
            )
        return name

    def need_advanced(self, what: str) -> None:
        if not self.ctx.advanced:
            raise unsupported(
                f"Operator '{what}' is not supported because the required parameters might be missing. "
                "Try adding $count=true query parameter and ConsistencyLevel:eventual header."
            )

    def term(self) -> Predicate:
        tok = self.take()
        if tok == ("p", "("):
            inner = self.expr()
            self.expect("p", ")")
            return inner
        if tok[0] != "w":
            raise GraphError(400, "BadRequest", f"Invalid filter clause near '{tok[1]}'.")
        word: str = tok[1]
        low = word.lower()
        if low == "not":
            self.need_advanced("not")
            inner = self.term()
            return lambda o: not inner(o)
        if low in ("startswith", "endswith"):
            if low == "endswith":
                self.need_advanced("endsWith")
            self.expect("p", "(")
            name = self.prop(self.expect("w"))
            self.expect("p", ",")
            lit = self.expect("lit")
            self.expect("p", ")")
            if not isinstance(lit, str):
                raise GraphError(400, "BadRequest", f"Invalid filter clause: {word} needs a string.")
            needle = lit.lower()
            if low == "startswith":
                return lambda o: isinstance(o.get(name), str) and o[name].lower().startswith(needle)
            return lambda o: isinstance(o.get(name), str) and o[name].lower().endswith(needle)
        name = self.prop(word)
        nxt = self.peek()
        if nxt == ("p", "/"):
            # groupTypes/any(c:c eq 'Unified')
            self.take()
            self.expect("w", "any")
            self.expect("p", "(")
            var = self.expect("w")
            self.expect("p", ":")
            self.expect("w", var.lower())
            self.expect("w", "eq")
            lit = _norm(self.expect("lit"))
            self.expect("p", ")")
            return lambda o: any(_norm(v) == lit for v in (o.get(name) or []))
        op = str(self.expect("w")).lower()
        if op == "in":
            self.expect("p", "(")
            values = [_norm(self.expect("lit"))]
            while self.peek() == ("p", ","):
                self.take()
                values.append(_norm(self.expect("lit")))
            self.expect("p", ")")
            choices = set(values)
            return lambda o: _norm(o.get(name)) in choices
        if op not in ("eq", "ne", "ge", "le"):
            raise GraphError(400, "BadRequest", f"Invalid filter clause: unknown operator '{op}'.")
        lit = _norm(self.expect("lit"))
        if name in self.ctx.collections:
            raise unsupported(f"Unsupported or invalid query filter clause specified for property '{name}'.")
        if op == "eq":
            return lambda o: _norm(o.get(name)) == lit
        self.need_advanced(op)
        if op == "ne":
            return lambda o: _norm(o.get(name)) != lit
        if op == "ge":
            return lambda o: o.get(name) is not None and _norm(o.get(name)) >= lit
        return lambda o: o.get(name) is not None and _norm(o.get(name)) <= lit


def parse_filter(text: str, ctx: FilterContext) -> Predicate:
    return _Parser(text, ctx).parse()


def parse_select(
    text: str | None, known: frozenset[str], resource: str, ext_re: re.Pattern[str]
) -> list[str] | None:
    if not text:
        return None
    props = [p.strip() for p in text.split(",") if p.strip()]
    for p in props:
        if p not in known and not ext_re.match(p):
            raise GraphError(
                400,
                "Request_BadRequest",
                f"Could not find a property named '{p}' on type 'microsoft.graph.{resource}'.",
            )
    return props


def parse_top(text: str | None, default: int = 100, maximum: int = 999) -> int:
    if text is None:
        return default
    try:
        top = int(text)
    except ValueError:
        raise GraphError(400, "BadRequest", f"Invalid value '{text}' for $top query option.") from None
    if not 1 <= top <= maximum:
        raise GraphError(
            400,
            "Request_BadRequest",
            f"Invalid page size specified: '{top}'. Must be between 1 and {maximum} inclusive.",
        )
    return top


def encode_token(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any] | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (ValueError, TypeError):
        return None
    return value if isinstance(value, dict) else None

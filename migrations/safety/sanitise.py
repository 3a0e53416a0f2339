"""The one sanitising layer for untrusted text: what a legacy tenant says reaches spreadsheets, terminals,
reports and target names only through these functions.

- CSV cells (`csv_cell` / `csv_value`): OWASP's rule against formula injection, made reversible so that a
  mapping exported, reviewed and imported again is exactly what was exported.
- Terminals (`terminal_text`, `terminal_markup`): escape sequences removed, stray controls shown escaped.
- HTML pages trustfold writes (`html_text`, `html_plain`): escaped, invisible characters shown, and an
  untrusted HTML fragment reduced to its words (never its markup).
- Reports (`report_text`): no control or invisible formatting character survives into Markdown, HTML or
  JSON; in JSON the visible `\\uXXXX` form is itself the JSON escape, so the data is kept.
- Names (`clean_name`, `name_problems`): bidirectional controls and zero-width characters removed, control
  characters replaced, and what was done described so the caller records it as a finding.

Nothing here imports from the rest of trustfold, so any module may use it.
"""

from __future__ import annotations

import csv
import html
import io
import logging
import re
import unicodedata
from collections.abc import Sequence
from html.parser import HTMLParser

# Bidirectional controls: embeddings, overrides and isolates reorder what follows them on screen
# ("\u202etxt.exe" shows as "exe.txt"); the marks are invisible.
BIDI = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u200e", "\u200f", "\u061c"]
)
ZERO_WIDTH = frozenset(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"])
CONTROLS = frozenset([chr(c) for c in range(0x20)] + ["\x7f"] + [chr(c) for c in range(0x80, 0xA0)])
LINE_SEPARATORS = frozenset(["\u2028", "\u2029"])
# Everything that must never reach an output raw.
UNSAFE = CONTROLS | BIDI | ZERO_WIDTH | LINE_SEPARATORS
_UNSAFE_RE = re.compile("[" + "".join(re.escape(c) for c in sorted(UNSAFE)) + "]")
_UNSAFE_IN_REPORT = re.compile("[" + "".join(re.escape(c) for c in sorted(UNSAFE - {"\n", "\t"})) + "]")

# Terminal escape sequences, 7-bit (ESC ...) and 8-bit (C1) forms. A string sequence (OSC: titles, OSC 8
# hyperlinks, OSC 52 clipboard writes; DCS, SOS, PM, APC) goes with its payload up to BEL or ST. An
# unterminated one loses only its introducer: swallowing the rest of the line would let a name hide what
# follows it, so the payload stays, as plain text.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[ -/]*[0-~]",
)

# ---- CSV ---------------------------------------------------------------------------------------------------
# OWASP (CSV injection): a cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice
# and Google Sheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def _escape_code(ch: str) -> str:
    return f"\\u{ord(ch):04x}"


def _needs_quote(text: str) -> bool:
    return bool(text) and (
        text.startswith(FORMULA_START)
        or text.startswith(QUOTE)
        or text != text.strip()  # import strips unquoted cells; a quoted cell keeps its spaces
        or _UNSAFE_RE.search(text) is not None
    )


def csv_cell(value: object) -> str:
    """The cell to write for an untrusted value.

    Safe values are written as they are. Any other value is written as a quote followed by the value with
    backslashes doubled and control/invisible characters as \\uXXXX: a spreadsheet shows it as text, the file
    holds no control character, and `csv_value` gives back exactly the original.
    """
    text = "" if value is None else str(value)
    if not _needs_quote(text):
        return text
    return QUOTE + _UNSAFE_RE.sub(lambda m: _escape_code(m.group()), text.replace("\\", "\\\\"))


_UNESCAPE = re.compile(r"\\(\\|u[0-9a-fA-F]{4})")


def csv_value(cell: str | None) -> str:
    """The value of a cell read back (inverse of `csv_cell`). A cell edited by hand without the quote is
    taken as typed, less surrounding whitespace; a lone backslash in a quoted cell stays as it is."""
    if cell is None:
        return ""
    if not cell.startswith(QUOTE):
        return cell.strip()

    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        return "\\" if code == "\\" else chr(int(code[1:], 16))

    return _UNESCAPE.sub(one, cell[1:])


def csv_row(values: Sequence[object]) -> list[str]:
    return [csv_cell(v) for v in values]


def csv_line(values: Sequence[object]) -> str:
    """One CSV record ending in a newline, every cell through `csv_cell`, for files written line by line."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(csv_row(values))
    return buf.getvalue()


# ---- terminals and reports ---------------------------------------------------------------------------------
def terminal_text(value: object) -> str:
    """One line safe to print: escape sequences removed with their payload, every other control, bidi or
    zero-width character (newlines and tabs too) shown as \\uXXXX so nothing is hidden or forged."""
    text = "" if value is None else str(value)
    text = _ESCAPE_SEQUENCE.sub("", text)
    return _UNSAFE_RE.sub(lambda m: _escape_code(m.group()), text)


def terminal_markup(value: object) -> str:
    """`terminal_text` with rich markup escaped, for text printed through a rich console with markup on."""
    from rich.markup import escape

    return escape(terminal_text(value))


def report_text(text: str) -> str:
    """A rendered report (Markdown, HTML or JSON) with every control or invisible character but newline and
    tab written as \\uXXXX: visible in Markdown and HTML, the standard escape inside a JSON string."""
    return _UNSAFE_IN_REPORT.sub(lambda m: _escape_code(m.group()), text)


def html_text(value: object, *, limit: int | None = None) -> str:
    """Untrusted text for an HTML page trustfold writes: every control or invisible character shown as
    \\uXXXX, then escaped (quotes too, so it is safe inside an attribute); cut to `limit` characters with an
    ellipsis when given."""
    text = "" if value is None else str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "\u2026"
    return html.escape(report_text(text), quote=True)


class _PlainText(HTMLParser):
    """The words of an HTML fragment: tags dropped, the content of script, style and the like dropped with
    them, each block on its own line."""

    _SKIP = frozenset(["script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math"])
    _BREAK = frozenset(["p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"])

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAK:
            self.parts.append("\n")
        elif tag == "img" and not self._skipping:
            self.parts.append("[image]")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BREAK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_plain(fragment: str) -> str:
    """The readable text of an untrusted HTML fragment (a Teams message body), with no markup left: what an
    archive shows, through `html_text`, instead of the message's own HTML (which may carry script)."""
    parser = _PlainText()
    parser.feed(fragment)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)


class TerminalFilter(logging.Filter):
    """Log messages quote tenant data: render them once, made safe for a terminal or a log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = terminal_text(record.getMessage())
        record.args = None
        if record.exc_text:  # a traceback keeps its lines; each is made safe
            record.exc_text = "\n".join(terminal_text(line) for line in record.exc_text.split("\n"))
        return True


# ---- names -------------------------------------------------------------------------------------------------
def _label(ch: str) -> str:
    name = unicodedata.name(ch, "")
    if not name:
        kind = unicodedata.category(ch)
        name = (
            "DELETE" if ch == "\x7f"
            else "CONTROL CHARACTER" if kind == "Cc"
            else "SURROGATE" if kind == "Cs"
            else "NONCHARACTER"
        )  # fmt: skip
    return f"U+{ord(ch):04X} {name}"


def name_problems(name: str | None) -> list[str]:
    """The spoofing or control characters in a name, each once, as 'U+202E RIGHT-TO-LEFT OVERRIDE'."""
    seen: dict[str, None] = {}
    for ch in name or "":
        if ch in UNSAFE:
            seen.setdefault(ch)
    return [_label(ch) for ch in seen]


def clean_name(name: str, *, replacement: str = "_") -> str:
    """The name with bidi controls and zero-width characters removed and control characters (C0, DEL, C1,
    line separators) replaced, so it shows as what it is. Never empty when the input was not."""
    out = "".join(
        "" if ch in BIDI or ch in ZERO_WIDTH else replacement if ch in UNSAFE else ch for ch in name
    )
    return out if out or not name else replacement


NAME_RULE = "bidirectional and zero-width characters removed, control characters replaced with _"


# ---- XML (the Migration API's manifests) ------------------------------------------------------------------
# XML 1.0's Char production leaves out C0 controls but tab, newline and carriage return, the surrogates and
# U+FFFE / U+FFFF; the Migration API decodes no escape (a character reference to them is itself invalid XML).
XML_FORBIDDEN = frozenset(
    [chr(c) for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)]
    + [chr(c) for c in range(0xD800, 0xE000)]
    + ["\ufffe", "\uffff"]
)
# What SharePoint will not take in a file or folder name although XML could carry it: the same controls (it
# refuses tab, newline and carriage return in names too) and DEL.
NAME_FORBIDDEN_IN_SHAREPOINT = XML_FORBIDDEN | {"\t", "\n", "\r", "\x7f"}
_XML_FORBIDDEN_RE = re.compile(
    "["
    + "".join(re.escape(c) for c in sorted(XML_FORBIDDEN - {chr(c) for c in range(0xD800, 0xE000)}))
    + "\ud800-\udfff]"
)


def path_problems(path: str) -> list[str]:
    """The characters of a file or folder path that neither a Migration API manifest nor SharePoint can
    carry, each once, labelled like `name_problems`: an item holding any is failed with them as its finding
    (it cannot be renamed silently: the target's name would no longer be the source's)."""
    seen: dict[str, None] = {}
    for ch in path:
        if ch in NAME_FORBIDDEN_IN_SHAREPOINT:
            seen.setdefault(ch)
    return [_label(ch) for ch in seen]


def xml_text(value: str, *, replacement: str = "_") -> str:
    """An untrusted value (a display name) as manifest XML may carry it and a reader sees it: `clean_name`
    (bidi and zero-width characters removed, controls replaced) and every character XML 1.0 cannot carry
    replaced."""
    return _XML_FORBIDDEN_RE.sub(replacement, clean_name(value, replacement=replacement))


def xml_forbidden(value: str) -> bool:
    return _XML_FORBIDDEN_RE.search(value) is not None

"""The sanitising layer on its own: CSV cells, terminal text, report text, names and passwords."""

from __future__ import annotations

import csv
import io
import logging
import random
import re
import string
from pathlib import Path

import pytest

from migrations.files.names import safe_name
from migrations.identity.context import PasswordSink, new_password
from migrations.safety.sanitise import (
    NAME_RULE,
    TerminalFilter,
    clean_name,
    csv_cell,
    csv_line,
    csv_row,
    csv_value,
    name_problems,
    report_text,
    terminal_markup,
    terminal_text,
)
from tests.hostile_text.spreadsheet import formula_cells, load

# C0 controls, DEL and C1 controls: none may reach a terminal, a report or a spreadsheet raw.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
INVISIBLE = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u200b-\u200d\u2060\ufeff]")

HOSTILE = [
    '=HYPERLINK("http://evil.example/x","click")',
    "+SUM(1,2)",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "'already quoted",
    "''twice",
    "'",
    "=",
    "back\\slash",
    "=back\\u0041slash",
    "\\u202e written out",
    "  padded  ",
    "tab\tinside",
    "new\nline",
    "\x1b]8;;http://evil.example\x07click here\x1b]8;;\x07",
    "\x1b]52;c;ZXZpbA==\x07",
    "\x1b]0;pwned title\x1b\\",
    "\x1b[2J\x1b[Hcleared",
    "\x9b31mred\x9b0m",
    "\x9d0;c1 title\x9c",
    "Jo\u202eexe.txt",
    "zero\u200bwidth",
    "del\x7fete",
    "nul\x00byte",
    "\ufeffbom",
    "Zoë Ünal-O'Brien",
    "plain name",
    "",
]


def _csv_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for r in rows:
        w.writerow(csv_row(r))
    return buf.getvalue()


def test_the_old_export_would_have_given_excel_formulas() -> None:
    """The check can fail: written raw (as `mapping export` did), these names are formulas in Excel."""
    # (Names a raw CSV cannot even carry - a bare CR, NUL, ESC - are left out here; openpyxl refuses them.)
    loadable = [n for n in HOSTILE if not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", n)]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([[n] for n in loadable])
    found = formula_cells(load(buf.getvalue()))
    assert len(found) >= 6, found


def test_csv_cells_are_never_formulas_and_hold_no_control_character() -> None:
    text = _csv_text([[n] for n in HOSTILE])
    assert formula_cells(load(text)) == []
    assert not CONTROL.search(text.replace("\n", "")), "a control character reached the CSV"
    assert not INVISIBLE.search(text)
    assert csv_cell('=HYPERLINK("x")') == '\'=HYPERLINK("x")'
    assert csv_cell("plain name") == "plain name", "ordinary names are written as they are"


@pytest.mark.parametrize("value", HOSTILE)
def test_csv_round_trip_is_exact(value: str) -> None:
    record = next(csv.reader(io.StringIO(_csv_text([[value]]))))
    assert csv_value(record[0]) == value


def test_csv_round_trip_random_strings() -> None:
    rng = random.Random(11)
    alphabet = "=+-@'\\ \t\r\nau\u202e\u200b\x7f\x1b\x9b\x00\"," + string.ascii_letters
    for _ in range(3000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        cell = csv_cell(value)
        assert csv_value(cell) == value, (value, cell)
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_hand_edited_cells_are_read_as_typed() -> None:
    assert csv_value("  user  ") == "user"
    assert csv_value("'=kept") == "=kept"
    assert csv_value("'C:\\lone") == "C:\\lone", "a lone backslash typed by hand stays"
    assert csv_value(None) == ""


def test_terminal_text_strips_sequences_and_shows_controls() -> None:
    for name in HOSTILE:
        out = terminal_text(name)
        assert not CONTROL.search(out), (name, out)
        assert not INVISIBLE.search(out), (name, out)
    assert terminal_text("\x1b]8;;http://evil.example\x07click\x1b]8;;\x07") == "click"
    assert terminal_text("\x1b]52;c;ZXZpbA==\x07ok") == "ok", "the clipboard payload goes with the sequence"
    # Unterminated: the introducer goes, the rest of the line stays visible (nothing after it is hidden).
    assert terminal_text("a\x1b]0;unterminated (staff)") == "a0;unterminated (staff)"
    assert terminal_text("\x1b]0;t\x1b\\ok\x1b[31m") == "ok"
    assert terminal_text("Jo\u202eexe.txt") == "Jo\\u202eexe.txt", "shown, not hidden"
    assert terminal_text("two\nlines") == "two\\u000alines", "no forged second line"
    assert terminal_markup("[bold red]x[/]") == "\\[bold red]x\\[/]"


def test_report_text_keeps_layout_and_json_stays_exact() -> None:
    import json

    payload = json.dumps({"name": "del\x7f \u202e \x9b", "n": "a\x00b"}, ensure_ascii=False, indent=1)
    cleaned = report_text(payload)
    assert not CONTROL.search(cleaned.replace("\n", "")) and not INVISIBLE.search(cleaned)
    assert "\n" in cleaned
    assert json.loads(cleaned) == {"name": "del\x7f \u202e \x9b", "n": "a\x00b"}


def test_logged_names_are_made_safe() -> None:
    record = logging.LogRecord(
        "t", logging.WARNING, __file__, 1, "renamed %s", ("\x1b]0;x\x07a\u202eb",), None
    )
    assert TerminalFilter().filter(record)
    assert record.getMessage() == "renamed a\\u202eb"
    record.exc_text = "Traceback\n  ValueError: \x1b]0;x\x07bad \u202ename"
    TerminalFilter().filter(record)
    assert record.exc_text == "Traceback\n  ValueError: bad \\u202ename"


def test_names_with_spoofing_characters_are_cleaned_and_described() -> None:
    assert name_problems("Jo\u202eexe.txt") == ["U+202E RIGHT-TO-LEFT OVERRIDE"]
    assert name_problems("a\u200bb\x7fc") == ["U+200B ZERO WIDTH SPACE", "U+007F DELETE"]
    assert name_problems("Zoë Ünal") == []
    assert clean_name("Jo\u202eexe.txt") == "Joexe.txt"
    assert clean_name("a\u200bb\x7fc\x1bd") == "ab_c_d"
    assert clean_name("\u200b\u200d") == "_", "never empty"
    assert "removed" in NAME_RULE and "replaced" in NAME_RULE


def test_file_names_with_spoofing_characters_are_findings_with_the_rule() -> None:
    fixed = safe_name("\u202etxt.exe")
    assert fixed.name == "txt.exe"
    assert "spoofing characters removed (U+202E RIGHT-TO-LEFT OVERRIDE)" in fixed.reason
    fixed = safe_name("re\u200bport\u2066.docx")
    assert fixed.name == "report.docx" and "U+200B ZERO WIDTH SPACE" in fixed.reason
    assert "U+2066 LEFT-TO-RIGHT ISOLATE" in fixed.reason
    fixed = safe_name("a\x7fb.txt")
    assert fixed.name == "a_b.txt" and "control characters replaced with _ (U+007F DELETE)" in fixed.reason
    assert safe_name("ordinary.txt").reason == ""


def test_no_password_starts_with_a_formula_character(tmp_path: Path) -> None:
    # 4 of the 72 characters are formula leads: the old generator failed this within 3000 draws (p < 1e-70).
    passwords = [new_password() for _ in range(3000)]
    assert not [p for p in passwords if p.startswith(("=", "+", "-", "@"))]
    assert all(len(p) == 20 for p in passwords)
    assert len({p[1:] for p in passwords}) == len(passwords)
    sink = PasswordSink(tmp_path, "run1")
    sink.write("jo.bloggs@northernlights.org.uk", passwords[0])
    sink.close()
    text = sink.path.read_text()
    assert formula_cells(load(text)) == []
    assert list(csv.reader(io.StringIO(text)))[1] == ["jo.bloggs@northernlights.org.uk", passwords[0]]
    assert csv_line(["a", "=b"]) == "a,'=b\n"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_cli_logs_quote_names_safely(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    from cli.logs import configure

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure(verbose=False, fmt=fmt)
        logging.getLogger("trustfold.test").warning("renamed %s", "\x1b]52;c;ZXZpbA==\x07a\u202eb\x7f")
        err = capsys.readouterr().err
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    assert "renamed a" in err and "ZXZpbA" not in err
    assert not CONTROL.search(err.replace("\n", "")) and not INVISIBLE.search(err)

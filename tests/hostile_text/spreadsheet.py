"""Load CSV text into an openpyxl workbook the way a spreadsheet interprets cells when it opens a CSV."""

from __future__ import annotations

import csv
import io

from openpyxl import Workbook

FORMULA_LEADS = ("=", "+", "-", "@")


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def excel_value(text: str) -> str:
    """Excel (and LibreOffice) drop leading tabs, carriage returns and spaces, then read = + - @ as the start
    of a formula ('+A1' becomes '=+A1', '@SUM(A1)' becomes '=SUM(A1)'); anything else is text or a number."""
    lead = text.lstrip("\t\r ")
    if lead.startswith(FORMULA_LEADS) and not _number(lead):
        return "=" + lead[1:] if lead[0] in "=@" else "=" + lead
    return text


def load(csv_text: str) -> Workbook:
    wb = Workbook()
    ws = wb.active
    for r, record in enumerate(csv.reader(io.StringIO(csv_text)), start=1):
        for c, cell in enumerate(record, start=1):
            ws.cell(row=r, column=c, value=excel_value(cell))
    return wb


def formula_cells(wb: Workbook) -> list[str]:
    return [
        f"{cell.coordinate}={cell.value!r}"
        for row in wb.active.iter_rows()
        for cell in row
        if cell.data_type == "f"
    ]

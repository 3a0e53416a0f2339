"""The migration report: a data model built only from the state store, rendered as HTML, Markdown or JSON.

from migrations.reporting import build_report, render
report = build_report(store, trust=None, academy=None)
text = render(report, "html")     # "html" | "md" | "json"
"""

from __future__ import annotations

from migrations.reporting.model import PHASES, AcademyReport, PhaseReport, Report, build_report
from migrations.reporting.render import FORMATS, render

__all__ = [
    "FORMATS",
    "PHASES",
    "AcademyReport",
    "PhaseReport",
    "Report",
    "build_report",
    "render",
]

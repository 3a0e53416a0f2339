"""Inline SVG charts, generated here so the report needs no script, font or image from anywhere."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from migrations.reporting.model import CHANGE_PHASES, AcademyReport, SeriesPoint

COLOURS = {"done": "#2e7d32", "already_present": "#66bb6a", "skipped": "#f9a825", "failed": "#c62828"}


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def progress_chart(academies: list[AcademyReport]) -> str:
    """One stacked bar per academy and change phase: done, already present, skipped, failed of planned."""
    rows = [(a, p) for a in academies for p in a.phases if p.phase in CHANGE_PHASES]
    if not rows:
        return ""
    label_w, bar_w, row_h = 330, 420, 22
    height = row_h * len(rows) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" data-chart="progress" '
        f'viewBox="0 0 {label_w + bar_w + 90} {height}" width="100%">',
        "<title>Progress per phase</title>",
    ]
    for i, (a, p) in enumerate(rows):
        y = 10 + i * row_h
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end" class="lbl">'
            f"{escape(a.name)} · {escape(p.phase)}</text>"
        )
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{bar_w}" height="{row_h - 6}" class="track"/>')
        total = max(p.planned, p.done + p.already_present + p.skipped + p.failed, 1)
        x = float(label_w)
        for key, colour in COLOURS.items():
            value = getattr(p, key)
            if value <= 0:
                continue
            w = bar_w * value / total
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 6}" fill="{colour}">'
                f"<title>{escape(key.replace('_', ' '))}: {value}</title></rect>"
            )
            x += w
        share = (p.done + p.already_present) / total if total else 0
        parts.append(f'<text x="{label_w + bar_w + 6}" y="{y + 14}" class="lbl">{share:.0%}</text>')
    legend_y = height - 12
    for j, (key, colour) in enumerate(COLOURS.items()):
        lx = label_w + j * 110
        parts.append(f'<rect x="{lx}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 14}" y="{legend_y}" class="lbl">{escape(key.replace("_", " "))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def throughput_chart(
    series: list[SeriesPoint], *, field: str, title: str, unit: str, scale: Callable[[float], str] = _fmt
) -> str:
    """A line over time (seconds since the first sample) of one rate from the metrics table."""
    points = [(p.t, getattr(p, field)) for p in series]
    if len(points) < 2 or not any(v for _, v in points):
        return ""
    w, h, left, bottom = 680, 220, 80, 30
    t_max = max(t for t, _ in points) or 1.0
    v_max = max(v for _, v in points) or 1.0
    plot_w, plot_h = w - left - 10, h - bottom - 10

    def xy(t: float, v: float) -> str:
        return f"{left + plot_w * t / t_max:.1f},{10 + plot_h * (1 - v / v_max):.1f}"

    path = " ".join(xy(t, v) for t, v in points)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" data-chart="{escape(field)}" '
        f'viewBox="0 0 {w} {h}" width="100%"><title>{escape(title)}</title>'
        f'<line x1="{left}" y1="{10 + plot_h}" x2="{w - 10}" y2="{10 + plot_h}" class="axis"/>'
        f'<line x1="{left}" y1="10" x2="{left}" y2="{10 + plot_h}" class="axis"/>'
        f'<text x="{left - 6}" y="16" text-anchor="end" class="lbl">{escape(scale(v_max))}</text>'
        f'<text x="{left - 6}" y="{10 + plot_h}" text-anchor="end" class="lbl">0</text>'
        f'<text x="{left}" y="{h - 8}" class="lbl">0 s</text>'
        f'<text x="{w - 10}" y="{h - 8}" text-anchor="end" class="lbl">{_fmt(t_max)} s</text>'
        f'<text x="{left + 8}" y="24" class="lbl">{escape(unit)}</text>'
        f'<polyline points="{path}" fill="none" stroke="#1565c0" stroke-width="2"/></svg>'
    )

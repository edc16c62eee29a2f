"""Small charts drawn on the server as inline SVG: bars (down or across) and a line. No script, no
library in the browser; they scale with the page (viewBox, width 100%) from 360 px to print.

Each chart is an image for screen readers (role="img") named by its <title> and described by its
<desc>, which says where the numbers are: the table next to it is the chart's data, for everyone.
The templates give the words (translated); this module only draws.
"""
from __future__ import annotations

from typing import Callable, Sequence

from markupsafe import Markup, escape

WIDTH = 360  # viewBox units: about one CSS pixel each on a phone 360 px wide
FONT = 12
INK, GRID, BAR, LINE = "#0b0c0c", "#b1b4b6", "#0b4f8a", "#0b4f8a"

Point = tuple[str, float]  # (label, value)


def percent(share: float) -> str:
    """0.625 -> 62.5%: a value shown at a bar's end."""
    return f"{share * 100:.1f}%"


def percent_axis(share: float) -> str:
    """0.5 -> 50%: the labels of a percentage axis."""
    return f"{share * 100:.0f}%"


def _n(x: float) -> str:
    """A coordinate, short."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _open(chart_id: str, title: str, desc: str, height: float) -> list[str]:
    cid = escape(chart_id)
    return [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {_n(height)}" role="img" '
        f'aria-labelledby="{cid}-title {cid}-desc" font-size="{FONT}" '
        f'font-family="system-ui, sans-serif" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(desc)}</desc>',
    ]


def _text(x: float, y: float, text: str, anchor: str = "start") -> str:
    return (f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" fill="{INK}">'
            f"{escape(text)}</text>")


def _y_axis(parts: list[str], left: float, top: float, plot_w: float, plot_h: float,
            top_value: float, label: Callable[[float], str]) -> None:
    """Gridlines and labels at 0, half and the top value."""
    for share in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - share)
        parts.append(f'<line x1="{_n(left)}" y1="{_n(y)}" x2="{_n(left + plot_w)}" y2="{_n(y)}" '
                     f'stroke="{GRID}" stroke-width="1"/>')
        parts.append(_text(left - 4, y + FONT / 3, label(top_value * share), "end"))


def _x_labels(parts: list[str], labels: Sequence[str], xs: Sequence[float], y: float) -> None:
    """The first, middle and last labels (more would overlap at 360 px)."""
    if not labels:
        return
    picks = sorted({0, len(labels) // 2, len(labels) - 1}) if len(labels) > 2 else range(len(labels))
    for k in picks:
        anchor = "start" if k == 0 and len(labels) > 1 else "end" if k == len(labels) - 1 and len(labels) > 1 else "middle"
        parts.append(_text(xs[k], y, labels[k], anchor))


def _top(values: Sequence[float], top_value: float | None) -> float:
    return top_value if top_value else max([v for v in values if v > 0] or [1])


def bars(chart_id: str, title: str, desc: str, points: Sequence[Point], *,
         label: Callable[[float], str] = lambda v: f"{v:,.0f}", top_value: float | None = None) -> Markup:
    """Vertical bars, one per point (days, in order); the y axis from 0 to top_value (default:
    the largest value)."""
    left, right, top, bottom = 44, 8, 10, 24
    height = 190
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    values = [max(v, 0) for _, v in points]
    top_value = _top(values, top_value)
    parts = _open(chart_id, title, desc, height)
    _y_axis(parts, left, top, plot_w, plot_h, top_value, label)
    step = plot_w / max(len(points), 1)
    gap = min(step * 0.2, 4)
    for k, v in enumerate(values):
        h = plot_h * min(v / top_value, 1)
        parts.append(f'<rect x="{_n(left + k * step + gap / 2)}" y="{_n(top + plot_h - h)}" '
                     f'width="{_n(max(step - gap, 0.5))}" height="{_n(h)}" fill="{BAR}"/>')
    centres = [left + (k + 0.5) * step for k in range(len(points))]
    _x_labels(parts, [p[0] for p in points], centres, height - 6)
    parts.append("</svg>")
    return Markup("".join(parts))


def bars_across(chart_id: str, title: str, desc: str, points: Sequence[Point], *,
                label: Callable[[float], str] = lambda v: f"{v:,.0f}", top_value: float | None = None) -> Markup:
    """Horizontal bars, one row per point, the name on the left and the value at the bar's end:
    for a list of names (sub-districts) that reads at 360 px."""
    left, right, row = 76, 52, 20
    top = 4
    height = top + row * max(len(points), 1) + 4
    plot_w = WIDTH - left - right
    values = [max(v, 0) for _, v in points]
    top_value = _top(values, top_value)
    parts = _open(chart_id, title, desc, height)
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{_n(height - 4)}" stroke="{GRID}" '
                 'stroke-width="1"/>')
    for k, ((name, _), v) in enumerate(zip(points, values)):
        y = top + k * row
        w = plot_w * min(v / top_value, 1)
        parts.append(_text(left - 4, y + row / 2 + FONT / 3, name, "end"))
        parts.append(f'<rect x="{left}" y="{_n(y + 3)}" width="{_n(w)}" height="{row - 6}" fill="{BAR}"/>')
        parts.append(_text(left + w + 4, y + row / 2 + FONT / 3, label(v)))
    parts.append("</svg>")
    return Markup("".join(parts))


def line(chart_id: str, title: str, desc: str, points: Sequence[Point], *,
         label: Callable[[float], str] = percent_axis, top_value: float = 1.0) -> Markup:
    """A line through the points (days, in order), the y axis from 0 to top_value (default 100 %);
    a point without a value (None) breaks the line."""
    left, right, top, bottom = 44, 8, 10, 24
    height = 190
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    parts = _open(chart_id, title, desc, height)
    _y_axis(parts, left, top, plot_w, plot_h, top_value, label)
    step = plot_w / max(len(points) - 1, 1)
    xs = [left + k * step for k in range(len(points))] if len(points) > 1 else [left + plot_w / 2]
    runs, run = [], []
    for x, (_, v) in zip(xs, points):
        if v is None:
            runs, run = runs + ([run] if run else []), []
            continue
        run.append(f"{_n(x)},{_n(top + plot_h * (1 - min(max(v / top_value, 0), 1)))}")
    runs += [run] if run else []
    for r in runs:
        if len(r) == 1:
            x, y = r[0].split(",")
            parts.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{LINE}"/>')
        else:
            parts.append(f'<polyline points="{" ".join(r)}" fill="none" stroke="{LINE}" '
                         'stroke-width="2.5" stroke-linejoin="round"/>')
    _x_labels(parts, [p[0] for p in points], xs, height - 6)
    parts.append("</svg>")
    return Markup("".join(parts))

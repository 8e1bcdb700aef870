"""Small inline SVG plots for the HTML report (no JavaScript, no external resources).

Each function returns one ``<svg>`` element as text; hovering a bar or cell shows its value
through an SVG ``<title>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

#: Colours of sites, in order (colour-blind friendly).
PALETTE: tuple[str, ...] = ("#3b6fb6", "#e08a2c", "#4f9d69", "#b6497a", "#7a6bb6", "#8c8c8c")
_FONT = "font-family:system-ui,sans-serif;font-size:11px"


def colour(i: int) -> str:
    """The colour of the i-th site."""
    return PALETTE[i % len(PALETTE)]


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if abs(x) < 1e6 else f"{x:.3g}"


def _label(x: float) -> str:
    """A short axis label (3 significant digits)."""
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-2:
        return f"{x:.2g}"
    return f"{x:.3g}"


def ticks(n: int, most: int) -> list[int]:
    """Indexes of at most ``most`` evenly spaced labels among ``n``.

    The first is always included, the last when it does not crowd its neighbour.
    """
    if n <= 0:
        return []
    every = max(1, -(-n // max(1, most)))
    out = list(range(0, n, every))
    if out[-1] != n - 1 and (n - 1 - out[-1]) * 2 >= every:
        out.append(n - 1)
    return out


def hbar_chart(
    rows: Sequence[tuple[str, Sequence[float | None]]],
    series: Sequence[str],
    maximum: float = 100.0,
    unit: str = "%",
    label_width: int | None = None,
    bar_width: int = 360,
) -> str:
    """Horizontal grouped bars: one group per row, one bar per series (site).

    Parameters
    ----------
    rows : sequence of (label, values)
        Values per series, ``None`` for none.
    series : sequence of str
        Series names (sites), for the legend and tooltips.
    maximum : float
        Value at the right end of the axis.
    unit : str
        Unit shown after values.
    label_width, bar_width : int
        Widths in pixels of the label column (default: fits the longest label) and of the
        bars.
    """
    if label_width is None:
        label_width = 12 + round(6.2 * max((len(label) for label, _ in rows), default=10))
    bar_h, gap = 11, 5
    group_h = bar_h * len(series) + gap
    legend_h = 18 if len(series) > 1 else 0
    height = legend_h + group_h * len(rows) + 20
    width = label_width + bar_width + 60
    out = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" style="{_FONT}">'
    ]
    if legend_h:
        for i, name in enumerate(series):
            x = label_width + i * 120
            out.append(
                f'<rect x="{x}" y="3" width="10" height="10" fill="{colour(i)}"/>'
                f'<text x="{x + 14}" y="12">{escape(name)}</text>'
            )
    for r, (label, values) in enumerate(rows):
        y0 = legend_h + r * group_h
        out.append(
            f'<text x="{label_width - 6}" y="{y0 + group_h / 2 + 2:.1f}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        for i, value in enumerate(values):
            y = y0 + i * bar_h
            if value is None:
                out.append(f'<text x="{label_width + 2}" y="{y + 9}" fill="#999">n/a</text>')
                continue
            w = 0.0 if maximum <= 0 else max(0.0, min(1.0, value / maximum)) * bar_width
            tip = f"{escape(label)} — {escape(series[i])}: {_num(value)}{unit}"
            out.append(
                f'<rect x="{label_width}" y="{y}" width="{w:.1f}" height="{bar_h - 1}" '
                f'fill="{colour(i)}"><title>{tip}</title></rect>'
                f'<text x="{label_width + w + 4:.1f}" y="{y + 9}">{_num(value)}{unit}</text>'
            )
    axis_y = legend_h + group_h * len(rows) + 4
    out.append(
        f'<line x1="{label_width}" y1="{axis_y}" x2="{label_width + bar_width}" y2="{axis_y}" '
        'stroke="#999"/>'
    )
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        tick = label_width + frac * bar_width
        out.append(
            f'<text x="{tick:.1f}" y="{axis_y + 13}" text-anchor="middle" fill="#666">'
            f"{_num(frac * maximum)}{unit}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def column_chart(values: Sequence[tuple[str, float]], title: str, width: int = 760) -> str:
    """Vertical columns (e.g. active patients per year)."""
    height, top, bottom, left = 120, 16, 22, 40
    n = max(1, len(values))
    step = (width - left - 10) / n
    peak = max((v for _, v in values), default=0.0) or 1.0
    plot_h = height - top - bottom
    out = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" style="{_FONT}"><text x="{left}" y="11" fill="#444">{escape(title)}</text>'
    ]
    for i, (label, v) in enumerate(values):
        h = plot_h * v / peak
        x = left + i * step
        out.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{max(step - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="{PALETTE[0]}"><title>{escape(label)}: {_num(v)}</title></rect>'
        )
    out.append(
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" fill="#666">{_num(peak)}</text>'
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" fill="#666">0</text>'
    )
    for i in ticks(len(values), max(2, int((width - left) // 60))):
        x = left + i * step + step / 2
        out.append(
            f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" fill="#666">'
            f"{escape(values[i][0])}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    values: dict[tuple[str, str], float],
    label_width: int | None = None,
    max_width: int = 900,
) -> str:
    """A grid of percentages (0-100) coloured from white to blue; missing cells stay grey.

    Parameters
    ----------
    rows, columns : sequence of str
        Row labels (variables) and column labels (years).
    values : dict
        ``(row, column) → percentage``.
    label_width, max_width : int
        Width of the labels (default: fits the longest); total width available.
    """
    if label_width is None:
        label_width = 12 + round(6.2 * max((len(r) for r in rows), default=10))
    cell_w = max(3.0, min(16.0, (max_width - label_width) / max(1, len(columns))))
    cell_h, top = 12, 16
    width = label_width + cell_w * len(columns) + 10
    height = top + cell_h * len(rows) + 18
    out = [
        f'<svg class="chart" width="{width:.0f}" height="{height}" '
        f'viewBox="0 0 {width:.0f} {height}" role="img" style="{_FONT}">'
    ]
    for j in ticks(len(columns), max(2, int(cell_w * len(columns) // 40))):
        x = label_width + j * cell_w + cell_w / 2
        out.append(
            f'<text x="{x:.1f}" y="{top - 4}" text-anchor="middle" fill="#666">'
            f"{escape(columns[j])}</text>"
        )
    for i, row in enumerate(rows):
        y = top + i * cell_h
        out.append(
            f'<text x="{label_width - 6}" y="{y + 9}" text-anchor="end">{escape(row)}</text>'
        )
        for j, col in enumerate(columns):
            v = values.get((row, col))
            x = label_width + j * cell_w
            fill = "#eeeeee" if v is None else _blue(v)
            tip = f"{escape(row)} {escape(col)}: " + ("no value" if v is None else f"{_num(v)}%")
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{cell_w - 0.5:.1f}" height="{cell_h - 1}" '
                f'fill="{fill}"><title>{tip}</title></rect>'
            )
    legend_y = top + cell_h * len(rows) + 4
    for k, pct in enumerate((0, 25, 50, 75, 100)):
        x = label_width + k * 46
        out.append(
            f'<rect x="{x}" y="{legend_y}" width="12" height="10" fill="{_blue(pct)}" '
            f'stroke="#ccc"/><text x="{x + 15}" y="{legend_y + 9}" fill="#666">{pct}%</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _blue(pct: float) -> str:
    t = max(0.0, min(1.0, pct / 100.0))
    r = round(255 - t * (255 - 33))
    g = round(255 - t * (255 - 102))
    b = round(255 - t * (255 - 172))
    return f"#{r:02x}{g:02x}{b:02x}"


def histogram(
    edges: Sequence[float],
    counts: Sequence[int],
    scale: str,
    unit: str,
    marks: Sequence[tuple[float, str]] = (),
    width: int = 340,
    height: int = 130,
) -> str:
    """A histogram over given bin edges (equal widths on screen for log bins).

    Parameters
    ----------
    edges : sequence of float
        ``len(counts) + 1`` bin edges.
    counts : sequence of int
        Values per bin.
    scale : str
        ``linear`` or ``log`` (only changes the axis note).
    unit : str
        Unit of the values.
    marks : sequence of (value, label)
        Vertical dashed lines (e.g. the clinical range), drawn when inside the edges.
    width, height : int
        Size in pixels.
    """
    left, right, top, bottom = 34, 8, 8, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(counts))
    step = plot_w / n
    peak = max(counts, default=0) or 1
    out = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" style="{_FONT}">'
    ]
    for i, c in enumerate(counts):
        h = plot_h * c / peak
        tip = f"[{_label(edges[i])}, {_label(edges[i + 1])}) {escape(unit)}: {c}"
        out.append(
            f'<rect x="{left + i * step:.1f}" y="{top + plot_h - h:.1f}" '
            f'width="{max(step - 0.5, 0.5):.1f}" height="{h:.1f}" fill="{PALETTE[0]}">'
            f"<title>{tip}</title></rect>"
        )
    base = top + plot_h
    out.append(f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="#999"/>')
    out.append(
        f'<text x="{left - 3}" y="{top + 8}" text-anchor="end" fill="#666">{peak}</text>'
        f'<text x="{left - 3}" y="{base}" text-anchor="end" fill="#666">0</text>'
    )
    if edges:
        ticks = sorted({0, len(edges) - 1, (len(edges) - 1) // 2})
        for k in ticks:
            x = left + k * step
            out.append(
                f'<text x="{x:.1f}" y="{base + 12}" text-anchor="middle" fill="#666">'
                f"{_label(edges[k])}</text>"
            )
        note = f"{escape(unit)}{', log scale' if scale == 'log' else ''}"
        out.append(
            f'<text x="{left + plot_w}" y="{height - 2}" text-anchor="end" fill="#666">{note}'
            "</text>"
        )
        for value, label in marks:
            pos = _position(edges, value)
            if pos is None:
                continue
            x = left + pos * step
            out.append(
                f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{base}" stroke="#c0392b" '
                f'stroke-dasharray="3,2"><title>{escape(label)}</title></line>'
            )
    out.append("</svg>")
    return "".join(out)


def _position(edges: Sequence[float], value: float) -> float | None:
    """Fractional bin position of a value inside the edges (``None`` outside)."""
    if not edges or value < edges[0] or value > edges[-1]:
        return None
    for i in range(len(edges) - 1):
        a, b = edges[i], edges[i + 1]
        if a <= value <= b:
            return i + (0.0 if b == a else (value - a) / (b - a))
    return None

"""Inline SVG x–y plots for the run report: lines, step curves, bands and markers.

The same conventions as :mod:`cardiobox.quality.svg` (its palette and font, no script, no
external resource, hover text through SVG ``<title>``), for the curves that module does not
draw: ROC and calibration curves, Kaplan–Meier curves with their confidence bands and
training-loss histories. Every label is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Literal

from cardiobox.quality.svg import colour

_FONT = "font-family:system-ui,sans-serif;font-size:11px"
#: Margins of the plot area inside the SVG (left, right, top, bottom) in pixels.
_MARGIN = (46, 12, 24, 36)

Corner = Literal["top-right", "bottom-right", "bottom-left"]
Path = Callable[[Sequence[tuple[float, float]]], str]
Scale = Callable[[float], float]


@dataclass(frozen=True)
class Series:
    """One curve of a plot.

    Parameters
    ----------
    name : str
        Legend text (escaped when drawn).
    points : sequence of (x, y)
        The curve's points in order; non-finite ones are skipped.
    band : sequence of (x, lower, upper)
        A shaded band (e.g. a confidence interval) drawn under the curve.
    step : bool
        Draw as a right-continuous step function (hold y until the next x, then jump), as a
        survival curve; the band too.
    markers : bool
        Mark each point with a dot whose hover text gives its coordinates.
    """

    name: str
    points: Sequence[tuple[float, float]]
    band: Sequence[tuple[float, float, float]] = ()
    step: bool = False
    markers: bool = False


def _finite(*values: float) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def _label(x: float) -> str:
    """A short tick label (3 significant digits)."""
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-2:
        return f"{x:.2g}"
    return f"{x:.3g}"


def nice_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]."""
    if not (_finite(lo, hi) and hi > lo):
        return [lo]
    power = 10 ** math.floor(math.log10((hi - lo) / max(most, 1)))
    for m in (1, 2, 5, 10, 20):
        step = m * power
        first = math.ceil(lo / step - 1e-9)
        last = math.floor(hi / step + 1e-9)
        if last - first + 1 <= most:  # the finest round step with at most ``most`` ticks
            break
    return [round(k * step, 12) for k in range(first, last + 1)]


def _range(values: list[float], given: tuple[float, float] | None) -> tuple[float, float]:
    if given is not None:
        return given
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def _steps(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The vertices of a step function through the points."""
    out: list[tuple[float, float]] = []
    for x, y in points:
        if out:
            out.append((x, out[-1][1]))
        out.append((x, y))
    return out


def xy_plot(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
    legend: Corner = "top-right",
    width: int = 440,
    height: int = 320,
) -> str:
    """One ``<svg>`` element plotting the series on shared axes.

    Parameters
    ----------
    series : sequence of Series
        The curves, coloured in order by :func:`cardiobox.quality.svg.colour`.
    title, x_label, y_label : str
        Texts of the plot (escaped).
    x_range, y_range : tuple of float, optional
        Axis ranges; by default the data's, padded by 5 %.
    diagonal : bool
        Draw the dashed line y = x (chance for ROC, perfect calibration).
    legend : {"top-right", "bottom-right", "bottom-left"}
        The corner of the plot area holding the legend (where the curves are not).
    width, height : int
        Size in pixels.

    Returns
    -------
    str
        The SVG markup (no script, no external resource).
    """
    left, right, top, bottom = _MARGIN
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [x for s in series for x, y in s.points if _finite(x, y)]
    ys = [y for s in series for x, y in s.points if _finite(x, y)]
    ys += [v for s in series for _, lo, hi in s.band if _finite(lo, hi) for v in (lo, hi)]
    x0, x1 = _range(xs, x_range)
    y0, y1 = _range(ys, y_range)

    def px(x: float) -> float:
        return left + (min(max(x, x0), x1) - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (min(max(y, y0), y1) - y0) / (y1 - y0) * plot_h

    def path(vertices: Sequence[tuple[float, float]]) -> str:
        return " ".join(
            f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for i, (x, y) in enumerate(vertices)
        )

    out = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" style="{_FONT}"><title>{escape(title)}</title>'
        f'<text x="{left}" y="14" font-weight="600">{escape(title)}</text>'
    ]
    for tick in nice_ticks(x0, x1):
        x = px(tick)
        out.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#eee"/>'
            f'<text x="{x:.1f}" y="{top + plot_h + 13}" text-anchor="middle" fill="#666">'
            f"{_label(tick)}</text>"
        )
    for tick in nice_ticks(y0, y1):
        y = py(tick)
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end" fill="#666">'
            f"{_label(tick)}</text>"
        )
    out.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#999"/>'
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text transform="translate(12,{top + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    if diagonal:
        lo, hi = max(x0, y0), min(x1, y1)
        if hi > lo:
            out.append(
                f'<line x1="{px(lo):.1f}" y1="{py(lo):.1f}" x2="{px(hi):.1f}" y2="{py(hi):.1f}" '
                'stroke="#aaa" stroke-dasharray="4,3"/>'
            )
    for i, s in enumerate(series):
        out.append(_series(s, colour(i), path, px, py))
    out.append(_legend(series, legend, (left, top, plot_w, plot_h)))
    out.append("</svg>")
    return "".join(out)


def _series(s: Series, fill: str, path: Path, px: Scale, py: Scale) -> str:
    """The markup of one series (band, curve, markers)."""
    parts = []
    band = [(x, lo, hi) for x, lo, hi in s.band if _finite(x, lo, hi)]
    if band:
        upper = [(x, hi) for x, _, hi in band]
        lower = [(x, lo) for x, lo, _ in band]
        if s.step:
            upper, lower = _steps(upper), _steps(lower)
        parts.append(
            f'<path d="{path(upper + lower[::-1])} Z" fill="{fill}" fill-opacity="0.18" '
            f'stroke="none"><title>{escape(s.name)}: interval</title></path>'
        )
    points = [(x, y) for x, y in s.points if _finite(x, y)]
    if points:
        line = _steps(points) if s.step else points
        parts.append(
            f'<path d="{path(line)}" fill="none" stroke="{fill}" stroke-width="1.8">'
            f"<title>{escape(s.name)}</title></path>"
        )
    if s.markers:
        for x, y in points:
            parts.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{fill}">'
                f"<title>{escape(s.name)}: ({_label(x)}, {_label(y)})</title></circle>"
            )
    return "".join(parts)


def _legend(series: Sequence[Series], corner: Corner, area: tuple[int, int, int, int]) -> str:
    """Legend entries in one corner of the plot area (left, top, width, height)."""
    left, top, width, height = area
    out = []
    for i, s in enumerate(series):
        if corner == "top-right":
            y = top + 12 + 14 * i
        else:
            y = top + height - 6 - 14 * (len(series) - 1 - i)
        if corner == "bottom-left":
            out.append(
                f'<rect x="{left + 6}" y="{y - 8}" width="10" height="10" fill="{colour(i)}"/>'
                f'<text x="{left + 20}" y="{y}">{escape(s.name)}</text>'
            )
            continue
        right = left + width
        out.append(
            f'<rect x="{right - 14}" y="{y - 8}" width="10" height="10" fill="{colour(i)}"/>'
            f'<text x="{right - 18}" y="{y}" text-anchor="end">{escape(s.name)}</text>'
        )
    return "".join(out)


def roc_plot(series: Sequence[Series], title: str, width: int = 440) -> str:
    """ROC curves (false- against true-positive rate) on the unit square, with the diagonal."""
    return xy_plot(
        series,
        title=title,
        x_label="false-positive rate",
        y_label="true-positive rate",
        x_range=(0.0, 1.0),
        y_range=(0.0, 1.0),
        diagonal=True,
        legend="bottom-right",
        width=width,
    )

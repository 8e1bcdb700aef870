"""The synthetic-data quality report: ``report.json`` and a self-contained ``report.html``.

The JSON document holds every measure of :class:`~cardiobox.synth.evaluate.Evaluation`, the
privacy guarantee of the synthesizer (when given) and the verdict of the release gate
(:mod:`cardiobox.synth.gate`). The HTML page shows the same for people: inline CSS and SVG
plots (the helpers of :mod:`cardiobox.quality.svg` and :mod:`cardiobox.xyplot`), no
script and no external resource. Every name that comes from the user (columns, categories,
the domain) is escaped.

The report describes the real data (its marginals, a model trained on it, distances to its
rows): it is not covered by the synthesizer's privacy guarantee and stays with the data
holder unless reviewed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import orjson

from cardiobox import __version__, htmlparts
from cardiobox.quality import svg
from cardiobox.synth.evaluate import Evaluation, Marginal, ModelUtility, Versus
from cardiobox.synth.gate import DEFAULT_THRESHOLDS, GateResult, Thresholds, check_release
from cardiobox.xyplot import Series, roc_plot, xy_plot

SCHEMA_VERSION = "cardiobox.synth-report/1"
#: Columns whose marginals are drawn (the largest 1-way TVD first).
MARGINAL_PLOTS = 4
#: Pairs of columns listed and drawn as the worst (largest 2-way TVD).
WORST_PAIRS = 10
#: Up to this many columns the 2-way TVD of every pair is drawn as a heat map.
HEATMAP_COLUMNS = 40
_SERIES = ("synthetic", "noise floor (holdout)", "independent baseline")
#: The same, short enough for the legends of the bar charts (120 pixels each).
_LEGEND = ["synthetic", "noise floor", "independent"]

NOT_PRIVATE_NOTE = (
    "This report is computed on the real data (its marginals, models trained on it, distances "
    "to its rows). It is not covered by the synthesizer's privacy guarantee: keep it with the "
    "real data, or review it before sharing it."
)
BASELINE_NOTE = (
    "The independent-columns baseline is sampled from the product of the real training "
    "table's 1-way marginals, for reference only; it is never released."
)


def report_json(result: Evaluation, gate: GateResult) -> dict[str, Any]:
    """The report as a JSON-ready dict.

    Parameters
    ----------
    result : Evaluation
        The measures.
    gate : GateResult
        The verdict of the release gate on them.

    Returns
    -------
    dict
        ``schema``, ``generated_at``, ``cardiobox_version``, every field of
        :meth:`Evaluation.to_dict` (``guarantee`` included) and ``gate``.
    """
    return {
        "schema": SCHEMA_VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cardiobox_version": __version__,
        **result.to_dict(),
        "gate": gate.to_dict(),
    }


# -- formatting ---------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;max-width:1180px;
padding:16px 28px;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #3b6fb6;padding-bottom:3px;
margin-top:2em}nav a{margin-right:12px}.meta{color:#555}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f5f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.fail{color:#b03a2e;font-weight:600}.pass{color:#2e7d4f;font-weight:600}.na{color:#888}
.verdict{font-size:1.3em;padding:8px 12px;border-radius:6px;display:inline-block}
.verdict.pass{background:#e6f4ea}.verdict.fail{background:#fbe9e7}
.note{background:#fff8e1;border-left:4px solid #e0a800;padding:6px 10px;margin:10px 0}
.plots{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 10px}
.card h3{font-size:14px;margin:0 0 4px}.small{font-size:12px;color:#555}
"""


def _fmt(x: float | int | None, digits: int = 3) -> str:
    if x is None:
        return '<span class="na">–</span>'
    if isinstance(x, int):
        return str(x)
    return f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return _fmt(None) if x is None else f"{100 * x:.1f} %"


def _ceiling(x: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``x`` (an axis end)."""
    if not x > 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(x))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= x * (1 - 1e-12))


def _percent_rows(rows: Sequence[tuple[str, Sequence[float | None]]]) -> tuple[list[Any], float]:
    """Rows of shares as percentages, and the axis end of their bar chart."""
    out = [(label, [None if v is None else 100 * v for v in values]) for label, values in rows]
    peak = max((v for _, values in out for v in values if v is not None), default=0.0)
    return out, _ceiling(peak)


def _versus_row(name: str, v: Versus, percent: bool = False) -> list[str]:
    show = _pct if percent else _fmt
    return [escape(name), show(v.synthetic), show(v.noise_floor), show(v.independent)]


# -- sections -----------------------------------------------------------------------------


def _summary(result: Evaluation, gate: GateResult) -> str:
    verdict = (
        '<p class="verdict pass">Release gate: passed</p>'
        if gate.passed
        else '<p class="verdict fail">Release gate: REFUSED — '
        f"{len(gate.failures)} threshold{'s' if len(gate.failures) != 1 else ''} failed</p>"
    )
    checks = htmlparts.table(
        ["threshold", "measure", "value", "limit", "result"],
        (
            [
                f"<code>{escape(c.threshold)}</code>",
                escape(c.measure),
                _fmt(c.value),
                f"{'≤' if c.threshold.startswith('max_') else '≥'} {c.limit:g}",
                '<span class="pass">pass</span>' if c.passed else '<span class="fail">fail</span>',
            ]
            for c in gate.checks
        ),
        (2, 3),
    )
    if not gate.checks:
        checks = "<p>No thresholds were set: the gate checked nothing.</p>"
    g = result.guarantee
    if g:
        guarantee = htmlparts.table(
            ["mechanism", "ε", "δ", "ρ (zCDP)"],
            [
                [
                    escape(str(g.get("mechanism", "–"))),
                    escape(str(g.get("epsilon", "–"))),
                    escape(str(g.get("delta", "–"))),
                    escape(str(g.get("rho", "–"))),
                ]
            ],
        )
        if g.get("domain_public") is False:
            guarantee += (
                '<p class="fail">The domain was drafted from the data: its bounds and '
                "categories are not covered by this guarantee.</p>"
            )
        shown = ("mechanism", "epsilon", "delta", "rho", "domain_public")
        extra = {k: v for k, v in g.items() if k not in shown}
        if extra:
            guarantee += (
                '<p class="small">'
                + "; ".join(f"{escape(str(k))}: {escape(str(v))}" for k, v in extra.items())
                + "</p>"
            )
    else:
        guarantee = (
            '<p class="fail">No privacy guarantee was recorded with the synthetic table: '
            "treat it as not private.</p>"
        )
    rows = htmlparts.table(
        ["table", "rows"], ([escape(k), str(v)] for k, v in result.rows.items()), (1,)
    )
    f = result.fidelity
    key = [
        _versus_row("mean 1-way TVD", f.one_way_mean),
        _versus_row("mean 2-way TVD", f.two_way_mean),
        _versus_row("worst 2-way TVD", f.two_way_max),
        _versus_row("mean |ΔV| (Cramér's V)", f.association_mean),
    ]
    measures = htmlparts.table(["measure (lower is closer)", *_SERIES], key, (1, 2, 3))
    oor = ""
    if any(result.out_of_range.values()):
        items = "".join(
            f"<li>{escape(table)}: "
            + ", ".join(f"{escape(c)} ({n})" for c, n in cols.items())
            + "</li>"
            for table, cols in result.out_of_range.items()
            if cols
        )
        oor = (
            "<p>Values outside the domain, coded OUT_OF_RANGE (never clipped into a bin):</p>"
            f"<ul>{items}</ul>"
        )
    return htmlparts.section(
        "summary",
        "Summary",
        verdict
        + checks
        + "<h3>Privacy guarantee of the synthetic table</h3>"
        + guarantee
        + "<h3>Tables</h3>"
        + rows
        + "<h3>Fidelity at a glance</h3>"
        + measures
        + f'<p class="note">{escape(NOT_PRIVATE_NOTE)} {escape(BASELINE_NOTE)}</p>'
        + oor,
    )


def _marginal_card(name: str, m: Marginal) -> str:
    rows = [
        (label, [t, s, h])
        for label, t, s, h in zip(m.labels, m.train, m.synthetic, m.holdout, strict=True)
        if t or s or h
    ]
    pct, top = _percent_rows(rows)
    chart = svg.hbar_chart(pct, ["real train", "synthetic", "holdout"], maximum=top, bar_width=240)
    return f'<div class="card"><h3>{escape(name)}</h3>{chart}</div>'


def _fidelity(result: Evaluation) -> str:
    f = result.fidelity
    intro = (
        "<p>Total variation distance TVD = ½ Σ |p − q| between the real training table and "
        "each table, on the codes of the domain (bins, categories, MISSING and OUT_OF_RANGE), "
        "shown in percent of rows. The noise floor is the distance of a real holdout "
        f"({result.rows['holdout']} rows) from the training table: sampling alone puts it "
        "there (the fewer holdout rows, the higher the floor; the synthetic table has "
        f"{result.rows['synthetic']}). The independent baseline keeps every column's "
        "distribution and none of their relations.</p>"
    )
    one_rows, top = _percent_rows(
        [(c, [v.synthetic, v.noise_floor, v.independent]) for c, v in f.one_way.items()]
    )
    one_chart = svg.hbar_chart(one_rows, _LEGEND, maximum=top)
    one_table = htmlparts.table(
        ["column", *_SERIES], (_versus_row(c, v, True) for c, v in f.one_way.items()), (1, 2, 3)
    )
    parts = [
        intro,
        "<h3>1-way TVD per column</h3>",
        f'<div class="plots">{one_chart}</div>',
        f"<details><summary>Table</summary>{one_table}</details>",
    ]
    if f.pairs:
        worst = f.pairs[:WORST_PAIRS]
        pair_rows, top = _percent_rows(
            [
                (" × ".join(p.columns), [p.tvd.synthetic, p.tvd.noise_floor, p.tvd.independent])
                for p in worst
            ]
        )
        parts.append(f"<h3>2-way TVD: the {len(worst)} worst pairs</h3>")
        parts.append(f'<div class="plots">{svg.hbar_chart(pair_rows, _LEGEND, maximum=top)}</div>')
        parts.append(
            htmlparts.table(
                ["pair", *_SERIES, "Cramér's V (train)", "|ΔV| synthetic", "|ΔV| holdout"],
                (
                    [
                        f"{escape(p.columns[0])} × {escape(p.columns[1])}",
                        _pct(p.tvd.synthetic),
                        _pct(p.tvd.noise_floor),
                        _pct(p.tvd.independent),
                        _fmt(p.association_train),
                        _fmt(p.association.synthetic),
                        _fmt(p.association.noise_floor),
                    ]
                    for p in worst
                ),
                range(1, 7),
            )
        )
        if len(result.columns) <= HEATMAP_COLUMNS:
            # numbered columns: full names do not fit side by side above the cells
            number = {c: str(k + 1) for k, c in enumerate(result.columns)}
            rows = [f"{c} ({number[c]})" for c in result.columns]
            values = {}
            for p in f.pairs:
                if p.tvd.synthetic is not None:
                    a, b = p.columns
                    values[(f"{a} ({number[a]})", number[b])] = 100 * p.tvd.synthetic
                    values[(f"{b} ({number[b]})", number[a])] = 100 * p.tvd.synthetic
            parts.append("<h3>2-way TVD of every pair (synthetic, percent)</h3>")
            parts.append(svg.heatmap(rows, list(number.values()), values))
        parts.append(
            "<p>Association: Cramér's V of every pair of columns (on the codes, so it applies "
            "to every kind of column), compared as |V − V<sub>train</sub>|: mean "
            f"{_fmt(f.association_mean.synthetic)} for the synthetic table, "
            f"{_fmt(f.association_mean.noise_floor)} for the holdout, "
            f"{_fmt(f.association_mean.independent)} for the independent baseline.</p>"
        )
    worst_columns = sorted(f.one_way, key=lambda c: f.one_way[c].synthetic or 0.0, reverse=True)
    worst_columns = worst_columns[:MARGINAL_PLOTS]
    cards = "".join(_marginal_card(c, f.marginals[c]) for c in worst_columns)
    parts.append(
        f"<h3>Marginals of the {len(worst_columns)} columns with the largest 1-way TVD "
        "(percent of rows)</h3>"
    )
    parts.append(f'<div class="plots">{cards}</div>')
    return htmlparts.section("fidelity", "Fidelity", "".join(parts))


def _roc_series(models: Sequence[ModelUtility]) -> list[Series]:
    out = []
    for m in models:
        for label, curve, value in (
            ("TSTR", m.roc_tstr, m.tstr),
            ("TRTR", m.roc_trtr, m.trtr),
        ):
            if curve and value is not None:
                name = f"{label} {m.model.replace('_', ' ')} ({value:.3f})"
                out.append(Series(name, [(p["fpr"], p["tpr"]) for p in curve]))
    return out


def _utility(result: Evaluation) -> str:
    u = result.utility
    if u is None:
        return htmlparts.section(
            "utility",
            "Utility",
            "<p>No outcome column was given: utility was not measured.</p>",
        )
    intro = (
        f"<p>Outcome <code>{escape(u.outcome)}</code> (positive: "
        f"<code>{escape(u.positive)}</code>), tested on {u.test_rows} real holdout rows "
        f"({u.test_positives} positive). Models trained on the synthetic table (TSTR), on the "
        "real training table (TRTR) and on the independent baseline; logistic regression on "
        "one-hot codes, histogram gradient boosting on the codes, fixed seeds.</p>"
    )
    table = htmlparts.table(
        ["model", "TSTR AUROC", "TRTR AUROC", "TSTR / TRTR", "independent baseline AUROC"],
        (
            [
                escape(m.model.replace("_", " ")),
                _fmt(m.tstr),
                _fmt(m.trtr),
                _fmt(m.ratio),
                _fmt(m.independent),
            ]
            for m in u.models
        ),
        (1, 2, 3, 4),
    )
    notes = [n for m in u.models for n in m.notes]
    note_html = "".join(f"<p class='small'>{escape(n)}</p>" for n in dict.fromkeys(notes))
    dropped = {k: v for k, v in u.dropped.items() if v}
    if dropped:
        note_html += (
            "<p class='small'>Rows without a known outcome, left out: "
            + ", ".join(f"{escape(k)} {v}" for k, v in dropped.items())
            + "</p>"
        )
    series = _roc_series(u.models)
    plot = roc_plot(series, "ROC curves on the real holdout", width=520) if series else ""
    return htmlparts.section(
        "utility", "Utility", intro + table + note_html + f'<div class="plots">{plot}</div>'
    )


def _privacy(result: Evaluation) -> str:
    p = result.privacy
    n_sy, n_ho = sum(p.dcr_synthetic), sum(p.dcr_holdout)
    intro = (
        f"<p>Distance to the closest record (DCR): {escape(p.distance)}, from 0 (a copy of a "
        f"training row's codes) to {p.max_distance}. Computed for {n_sy} synthetic and "
        f"{n_ho} holdout rows (a seeded sample); exact copies count every row. A synthetic "
        "table that does not copy its training rows lies no closer to them than a holdout "
        "does.</p>"
    )
    table = htmlparts.table(
        ["measure", "synthetic", "holdout (reference)"],
        [
            [
                "median DCR to the training table",
                f"{p.median_synthetic:g}",
                f"{p.median_holdout:g}",
            ],
            [
                "share closer than the holdout's median DCR",
                _pct(p.closer_than_holdout_median),
                _pct(p.closer_than_holdout_median_holdout),
            ],
            [
                "share of exact copies of a training row (codes)",
                _pct(p.exact_copy_share),
                _pct(p.exact_copy_share_holdout),
            ],
        ],
        (1, 2),
    )
    mia = (
        f"<p>Membership-inference attack (score = −DCR to the synthetic table; "
        f"{p.mia_members} training rows as members, {p.mia_non_members} holdout rows as "
        f"non-members): AUROC <strong>{p.mia_auroc:.3f}</strong>. 0.5 means the synthetic "
        "table does not tell who was in the training table; 1 means it gives every member "
        "away.</p>"
    )
    dcr_plot = xy_plot(
        [
            Series(
                "synthetic → train",
                [(k, 100 * c / max(n_sy, 1)) for k, c in enumerate(p.dcr_synthetic)],
                markers=True,
            ),
            Series(
                "holdout → train",
                [(k, 100 * c / max(n_ho, 1)) for k, c in enumerate(p.dcr_holdout)],
                markers=True,
            ),
        ],
        title="Distance to the closest training record",
        x_label="columns with other codes",
        y_label="percent of rows",
        x_range=(-0.5, p.max_distance + 0.5),
        y_range=(0.0, 100.0),
    )
    mia_plot = xy_plot(
        [Series(f"attack (AUROC {p.mia_auroc:.3f})", [(r["fpr"], r["tpr"]) for r in p.mia_roc])],
        title="Membership-inference attack ROC",
        x_label="false-positive rate (holdout rows)",
        y_label="true-positive rate (training rows)",
        x_range=(0.0, 1.0),
        y_range=(0.0, 1.0),
        diagonal=True,
        legend="bottom-right",
    )
    return htmlparts.section(
        "privacy",
        "Privacy",
        intro + table + mia + f'<div class="plots">{dcr_plot}{mia_plot}</div>',
    )


def render_html(result: Evaluation, gate: GateResult) -> str:
    """The report as one self-contained HTML page.

    Parameters
    ----------
    result : Evaluation
        The measures.
    gate : GateResult
        The verdict of the release gate.

    Returns
    -------
    str
        HTML with inline CSS and SVG; no script, no external resource; every user-given
        name escaped.
    """
    sections = [
        ("summary", "Summary"),
        ("fidelity", "Fidelity"),
        ("utility", "Utility"),
        ("privacy", "Privacy"),
    ]
    nav = "".join(f'<a href="#{sid}">{title}</a>' for sid, title in sections)
    name = escape(result.domain)
    body = _summary(result, gate) + _fidelity(result) + _utility(result) + _privacy(result)
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Synthetic data quality — {name}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>Synthetic data quality report</h1><p class='meta'>Domain {name} · "
        f"{len(result.columns)} columns · seed {result.seed} · generated {generated} · "
        f"cardiobox {escape(__version__)}</p><nav>{nav}</nav></header>{body}"
        f"<footer class='small'><p>{escape(NOT_PRIVATE_NOTE)}</p></footer></body></html>\n"
    )


def write_report(
    result: Evaluation,
    folder: str | Path,
    *,
    thresholds: Thresholds | Mapping[str, Any] | str | Path = DEFAULT_THRESHOLDS,
) -> Path:
    """Write ``report.json`` and ``report.html`` into a folder (created when missing).

    Parameters
    ----------
    result : Evaluation
        The measures (:func:`cardiobox.synth.evaluate.evaluate`).
    folder : str or Path
        The output folder.
    thresholds : Thresholds, mapping, str or Path
        The release thresholds the verdict is given against (default
        :data:`~cardiobox.synth.gate.DEFAULT_THRESHOLDS`).

    Returns
    -------
    Path
        The HTML page; ``report.json`` lies beside it.
    """
    gate = check_release(result, thresholds)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    html_path = out / "report.html"
    (out / "report.json").write_bytes(
        orjson.dumps(
            report_json(result, gate), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
        )
    )
    html_path.write_text(render_html(result, gate), encoding="utf-8")
    return html_path

"""The run report: ``report.json`` and a self-contained ``report.html`` of a federated run.

``report.json`` is :meth:`RunReport.to_dict` as written. ``report.html`` shows the same for
people — inline CSS and SVG, no script, no external resource, so it opens offline:

- the run: task, parameters, the sites that took part, those that refused or failed (with
  their reasons), rounds, seconds and the zCDP ρ each site spent;
- the result in tables: coefficients and fit statistics (``logreg``, ``linreg``, ``cox``,
  with the concordance), counts per site (``count``), per-variable statistics with their
  histograms (``describe``), contingency tables (``crosstab``), groups, medians and the
  log-rank test (``km``);
- for evaluated models (``mlp``, ``gbt``, ``logreg`` with ``evaluate`` or ``split_column``)
  the pooled and per-site metrics with their bootstrap intervals;
- plots: the pooled ROC and calibration curves, Kaplan–Meier curves with their confidence
  bands, and the training-loss history (``mlp``, ``gbt``).

Every string that comes from the request or the result (column, level and site names,
reasons) is escaped: results hold names users chose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import orjson

from cardiobox import htmlparts
from cardiobox.federated.hub import RunReport
from cardiobox.quality import svg
from cardiobox.xyplot import Series, roc_plot, xy_plot

#: Results whose JSON is larger than this are not repeated in the HTML (see report.json).
MAX_INLINE_JSON = 200_000

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;max-width:1180px;
padding:16px 28px;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #3b6fb6;padding-bottom:3px;
margin-top:2em}h3{margin-bottom:.3em}
.meta{color:#555}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f5f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.na{color:#888}.warning{color:#a86500}
code,pre{font-size:12px;background:#f4f4f4;padding:0 3px;border-radius:3px}
pre{padding:8px;overflow-x:auto;max-height:480px}
.plots{display:flex;flex-wrap:wrap;gap:18px}
details summary{cursor:pointer;font-weight:600;margin:6px 0}
.small{font-size:12px;color:#555}
"""

#: Coefficient-table columns: (result key, header).
_COEFFICIENT_COLUMNS = (
    ("coefficients", "coefficient"),
    ("std_errors", "std. error"),
    ("ci_lower", "CI lower"),
    ("ci_upper", "CI upper"),
    ("z_values", "z"),
    ("t_values", "t"),
    ("p_values", "p"),
    ("hazard_ratios", "hazard ratio"),
)
#: Fit statistics shown under a coefficient table, when present.
_FIT_STATISTICS = (
    "n",
    "events",
    "iterations",
    "converged",
    "log_likelihood",
    "null_log_likelihood",
    "deviance",
    "aic",
    "bic",
    "pseudo_r_squared",
    "llr",
    "llr_p_value",
    "r_squared",
    "adj_r_squared",
    "sigma",
    "f_statistic",
    "f_p_value",
    "df_model",
    "df_resid",
    "l2",
    "ties",
    "strata",
    "concordance",
)
#: Metric columns of the evaluation tables: (key, header).
_METRICS = (
    ("auroc", "AUROC"),
    ("auprc", "AUPRC"),
    ("accuracy", "accuracy"),
    ("brier", "Brier"),
    ("calibration_slope", "calibration slope"),
    ("calibration_intercept", "calibration intercept"),
)


# -- formatting -----------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    """A value for a table cell, escaped; ``None`` shows as a dash."""
    if value is None:
        return '<span class="na">–</span>'
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return escape(str(value))
        return f"{value:.4g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return escape(value)
    return f"<code>{escape(_json(value))}</code>"


def _json(value: Any, indent: bool = False) -> str:
    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    if indent:
        option |= orjson.OPT_INDENT_2
    return orjson.dumps(value, option=option, default=str).decode()


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


# -- the run --------------------------------------------------------------------------------------
def _run_section(report: RunReport) -> str:
    everyone = sorted({*report.sites, *report.refused, *report.failed, *report.rho})
    rows = []
    for site in everyone:
        if site in report.sites:
            status, why = "took part", ""
        elif site in report.refused:
            status, why = '<span class="warning">refused</span>', escape(report.refused[site])
        elif site in report.failed:
            status, why = '<span class="warning">failed</span>', escape(report.failed[site])
        else:
            status, why = "dropped", ""
        rho = report.rho.get(site)
        rows.append([escape(site), status, why, _fmt(rho)])
    summary = htmlparts.table(
        ["task", "run", "rounds", "seconds", "sites taking part"],
        [
            [
                escape(report.task),
                f"<code>{escape(report.run_id)}</code>",
                str(report.rounds),
                f"{report.seconds:.2f}",
                str(len(report.sites)),
            ]
        ],
        (2, 3, 4),
    )
    sites = htmlparts.table(["site", "status", "reason", "ρ spent (zCDP)"], rows, (3,))
    params = htmlparts.table(
        ["parameter", "value"],
        ([escape(str(k)), _fmt(v)] for k, v in report.params.items()),
    )
    return htmlparts.section("run", "Run", summary + sites + "<h3>Parameters</h3>" + params)


# -- results by kind ------------------------------------------------------------------------------
def _coefficients(result: Mapping[str, Any]) -> str:
    coefficients = result["coefficients"]
    columns = [(k, h) for k, h in _COEFFICIENT_COLUMNS if isinstance(result.get(k), dict)]
    rows = [
        [escape(str(term)), *(_fmt(result[k].get(term)) for k, _ in columns)]
        for term in coefficients
    ]
    table = htmlparts.table(["term", *(h for _, h in columns)], rows, range(1, len(columns) + 1))
    level = result.get("alpha")
    note = (
        f'<p class="small">Intervals at level {1 - level:.0%}.</p>'
        if isinstance(level, float)
        else ""
    )
    stats = [(k, result[k]) for k in _FIT_STATISTICS if k in result]
    fit = htmlparts.table(["statistic", "value"], ([escape(k), _fmt(v)] for k, v in stats), (1,))
    per_site = ""
    if isinstance(result.get("per_site_n"), dict):
        keys = [k for k in ("per_site_n", "per_site_events", "per_site_concordance") if k in result]
        rows = [
            [escape(str(site)), *(_fmt(result[k].get(site)) for k in keys)]
            for site in result["per_site_n"]
        ]
        headers = [k.removeprefix("per_site_") for k in keys]
        per_site = "<h3>Per site</h3>" + htmlparts.table(
            ["site", *headers], rows, range(1, len(keys) + 1)
        )
    return htmlparts.section("coefficients", "Coefficients", table + note + fit + per_site)


def _counts(result: Mapping[str, Any]) -> str:
    rows = [[escape(str(s)), _fmt(n)] for s, n in result["per_site"].items()]
    rows.append(["<strong>total</strong>", f"<strong>{_fmt(result.get('total'))}</strong>"])
    note = '<p class="small">– : below the site\'s minimum cell count (suppressed).</p>'
    return htmlparts.section("counts", "Counts", htmlparts.table(["site", "n"], rows, (1,)) + note)


def _describe(result: Mapping[str, Any]) -> str:
    parts = []
    for name, stats in result["variables"].items():
        quantiles = stats.get("quantiles") or {}
        rows = [
            [escape(k), _fmt(stats.get(k))] for k in ("n", "missing", "mean", "sd") if k in stats
        ]
        rows += [[f"quantile {escape(str(q))}", _fmt(v)] for q, v in quantiles.items()]
        hist = stats.get("histogram") or {}
        plot = ""
        edges, counts = hist.get("edges"), hist.get("counts")
        if isinstance(edges, list) and isinstance(counts, list) and counts:
            plot = svg.histogram(
                [float(e) for e in edges], [int(c or 0) for c in counts], "linear", str(name)
            )
        parts.append(
            f"<h3>{escape(str(name))}</h3><div class='plots'>"
            f"{htmlparts.table(['statistic', 'value'], rows, (1,))}{plot}</div>"
        )
    note = (
        f'<p class="small">Histogram bins below {_fmt(result.get("suppressed_below"))} are '
        "suppressed (drawn empty).</p>"
    )
    return htmlparts.section("variables", "Variables", "".join(parts) + note)


def _crosstab(result: Mapping[str, Any]) -> str:
    if "levels" in result:  # one-way
        rows = [
            [escape(str(level)), _fmt(n)]
            for level, n in zip(result["levels"], result["counts"], strict=False)
        ]
        rows.append(["<strong>total</strong>", _fmt(result.get("total"))])
        table = htmlparts.table([str(result.get("row")), "n"], rows, (1,))
    else:
        columns = [str(c) for c in result["column_levels"]]
        rows = [
            [escape(str(level)), *(_fmt(c) for c in counts), _fmt(total)]
            for level, counts, total in zip(
                result["row_levels"], result["counts"], result["row_totals"], strict=False
            )
        ]
        rows.append(
            [
                "<strong>total</strong>",
                *(_fmt(c) for c in result["column_totals"]),
                _fmt(result.get("total")),
            ]
        )
        header = [f"{result.get('row')} \\ {result.get('column')}", *columns, "total"]
        table = htmlparts.table(header, rows, range(1, len(columns) + 2))
    chi2 = result.get("chi2")
    test = ""
    if isinstance(chi2, dict):
        test = (
            f"<p>χ² = {_fmt(chi2.get('statistic'))}, df = {_fmt(chi2.get('dof'))}, "
            f"p = {_fmt(chi2.get('p'))}</p>"
        )
    note = (
        f'<p class="small">– : cells below {_fmt(result.get("suppressed_below"))} and their '
        "complements are suppressed.</p>"
    )
    return htmlparts.section("table", "Contingency table", table + test + note)


def _km_curves(result: Mapping[str, Any]) -> list[Series]:
    times = [float(t) for t in result.get("times", [])]
    if not times:
        return []
    start = min(0.0, times[0])
    out = []
    for label, group in result["groups"].items():
        survival = group.get("survival") or []
        lower = group.get("ci_lower") or [None] * len(survival)
        upper = group.get("ci_upper") or [None] * len(survival)
        points, band = [(start, 1.0)], [(start, 1.0, 1.0)]
        last: tuple[Any, Any, Any] | None = None
        for j, (t, s, lo, hi) in enumerate(zip(times, survival, lower, upper, strict=False)):
            # Only where the curve or its band changes (and the end): grids may be fine.
            if (s, lo, hi) == last and j != len(survival) - 1:
                continue
            last = (s, lo, hi)
            value, low, high = _number(s), _number(lo), _number(hi)
            if value is None:
                continue
            points.append((t, value))
            if low is not None and high is not None:
                band.append((t, low, high))
        out.append(Series(str(label), points, band, step=True))
    return out


def _km(result: Mapping[str, Any]) -> str:
    curves = _km_curves(result)
    alpha = result.get("alpha")
    level = f"{1 - alpha:.0%} " if isinstance(alpha, float) else ""
    plot = xy_plot(
        curves,
        title=f"Kaplan–Meier ({level}confidence bands)",
        x_label="time",
        y_label="survival",
        y_range=(0.0, 1.0),
        legend="bottom-left",
        width=560,
    )
    rows = [
        [escape(str(label)), _fmt(g.get("n")), _fmt(g.get("events")), _fmt(g.get("median"))]
        for label, g in result["groups"].items()
    ]
    table = htmlparts.table(["group", "n", "events", "median"], rows, (1, 2, 3))
    test = result.get("logrank")
    logrank = ""
    if isinstance(test, dict):
        logrank = (
            f"<p>Log-rank test: χ² = {_fmt(test.get('statistic'))}, df = "
            f"{_fmt(test.get('dof'))}, p = {_fmt(test.get('p'))}</p>"
        )
    return htmlparts.section(
        "survival", "Survival", f"<div class='plots'>{plot}</div>{table}{logrank}"
    )


def _with_ci(value: Any, interval: Any) -> str:
    text = _fmt(value)
    if isinstance(interval, list) and len(interval) == 2 and value is not None:
        text += f' <span class="small">[{_fmt(interval[0])}, {_fmt(interval[1])}]</span>'
    return text


def _metric_row(name: str, metrics: Mapping[str, Any] | None) -> list[str]:
    if metrics is None:
        withheld = '<span class="na">withheld (small cells)</span>'
        return [name, withheld, *([""] * len(_METRICS))]
    ci = metrics.get("ci") or {}
    return [
        name,
        _fmt(metrics.get("n")),
        *(_with_ci(metrics.get(k), ci.get(k)) for k, _ in _METRICS),
    ]


def _roc_plot(glob: Mapping[str, Any]) -> str:
    roc = glob.get("roc") or []
    if not roc:
        return ""
    points = [(float(p["fpr"]), float(p["tpr"])) for p in roc]
    ci = (glob.get("ci") or {}).get("auroc")
    label = f"pooled, AUROC {_plain(glob.get('auroc'))}"
    if isinstance(ci, list):
        label += f" [{_plain(ci[0])}, {_plain(ci[1])}]"
    return roc_plot([Series(label, points)], "ROC curve (pooled)")


def _calibration_plot(glob: Mapping[str, Any]) -> str:
    curve = glob.get("calibration_curve") or []
    if not curve:
        return ""
    points = [(float(p["mean_predicted"]), float(p["observed"])) for p in curve]
    label = (
        f"pooled, slope {_plain(glob.get('calibration_slope'))}, "
        f"intercept {_plain(glob.get('calibration_intercept'))}"
    )
    return xy_plot(
        [Series(label, points, markers=True)],
        title="Calibration (pooled, 10 bins)",
        x_label="mean predicted probability",
        y_label="observed rate",
        x_range=(0.0, 1.0),
        y_range=(0.0, 1.0),
        diagonal=True,
        legend="bottom-right",
    )


def _plain(value: Any) -> str:
    """A number as short text for an SVG label (escaped by the plot)."""
    return "–" if _number(value) is None else f"{float(value):.3g}"


def _evaluation(evaluation: Mapping[str, Any]) -> str:
    glob = evaluation.get("global") or {}
    per_site = evaluation.get("per_site") or {}
    rows = [_metric_row("<strong>pooled</strong>", glob)]
    rows += [_metric_row(escape(str(s)), m) for s, m in per_site.items()]
    header = ["", "n", *(h for _, h in _METRICS)]
    table = htmlparts.table(header, rows, range(1, len(_METRICS) + 2))
    where = evaluation.get("evaluated_on")
    note = (
        f"<p>Evaluated on {escape(str(where))}. Intervals: percentile bootstrap (pooled: Poisson "
        "bootstrap of secure sums; per site: computed at the site).</p>"
        if where
        else ""
    )
    plots = _roc_plot(glob) + _calibration_plot(glob)
    plots_html = f"<div class='plots'>{plots}</div>" if plots else ""
    return htmlparts.section("evaluation", "Evaluation", note + table + plots_html)


def _history(history: Sequence[Mapping[str, Any]]) -> str:
    points = []
    x_label = "round"
    for entry in history:
        if "round" in entry:
            x, y = _number(entry.get("round")), _number(entry.get("loss"))
        else:
            x_label = "trees"
            x, y = _number(entry.get("trees")), _number(entry.get("train_logloss"))
        if x is not None and y is not None:
            points.append((x, y))
    if not points:
        return ""
    plot = xy_plot(
        [Series("pooled training loss", points, markers=len(points) <= 60)],
        title="Training loss",
        x_label=x_label,
        y_label="mean log-loss",
    )
    return htmlparts.section("history", "Training", f"<div class='plots'>{plot}</div>")


def _result_sections(task: str, result: Mapping[str, Any] | None) -> list[str]:
    if result is None:
        return [
            htmlparts.section("result", "Result", "<p>No result: the run stopped (see above).</p>")
        ]
    sections = []
    if isinstance(result.get("coefficients"), dict):
        sections.append(_coefficients(result))
    if task == "count" and isinstance(result.get("per_site"), dict):
        sections.append(_counts(result))
    if task == "describe" and isinstance(result.get("variables"), dict):
        sections.append(_describe(result))
    if task == "crosstab" and ("levels" in result or "row_levels" in result):
        sections.append(_crosstab(result))
    if isinstance(result.get("groups"), dict) and "times" in result:
        sections.append(_km(result))
    if isinstance(result.get("evaluation"), dict):
        sections.append(_evaluation(result["evaluation"]))
    elif isinstance(result.get("global"), dict):
        sections.append(_evaluation(result))
    if isinstance(result.get("history"), list):
        sections.append(_history(result["history"]))
    text = _json(result, indent=True)
    raw = (
        f"<details><summary>The result as JSON</summary><pre>{escape(text)}</pre></details>"
        if len(text) <= MAX_INLINE_JSON
        else f'<p class="small">The result ({len(text):,} characters) is in report.json.</p>'
    )
    sections.append(htmlparts.section("json", "Result (JSON)", raw))
    return sections


# -- the page -------------------------------------------------------------------------------------
def render_html(report: RunReport) -> str:
    """The report as one self-contained HTML page.

    Parameters
    ----------
    report : RunReport
        What the run did (its result may be ``None`` when the run stopped).

    Returns
    -------
    str
        HTML with inline CSS and SVG; no script, no external resource.
    """
    body = "".join([_run_section(report), *_result_sections(report.task, report.result)])
    title = f"Federated run: {escape(report.task)}"
    sites = ", ".join(escape(s) for s in report.sites) or "none"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{title}</h1><p class='meta'>Run <code>{escape(report.run_id)}</code> · "
        f"sites {sites}</p></header>{body}"
        "<footer class='small'><p>Every figure here is an aggregate released under the "
        "sites' policies: counts below a site's minimum cell count are suppressed, and "
        "sums over sites come from secure aggregation.</p></footer></body></html>\n"
    )


def write_report(report: RunReport, folder: str | Path) -> Path:
    """Write ``report.json`` and ``report.html`` of a run into a folder (created).

    Parameters
    ----------
    report : RunReport
        What the run did.
    folder : str or Path
        Output folder.

    Returns
    -------
    Path
        The HTML file (``report.json`` is beside it).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_bytes(
        orjson.dumps(
            report.to_dict(),
            option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
        )
    )
    html_path = out / "report.html"
    html_path.write_text(render_html(report), encoding="utf-8")
    return html_path

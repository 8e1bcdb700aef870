"""The quality report: a JSON document and a self-contained HTML page.

The JSON document (``quality.json``) has the shape of :data:`REPORT_SCHEMA` (a JSON Schema,
documented in docs/quality.md); :func:`validate_report` checks a document against it. The
HTML page (``quality.html``) holds the same content for people: inline CSS, inline SVG
plots, no script and no external resource, so it can be opened offline at the site.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import orjson

from cardiobox import htmlparts
from cardiobox.cdm.dictionary import Category
from cardiobox.quality import svg
from cardiobox.quality.completeness import completeness_json
from cardiobox.quality.engine import STATUSES, CheckResult, QualityResult
from cardiobox.quality.spec import CATEGORIES

SCHEMA_VERSION = "cardiobox.quality/1"

_NUM = {"type": ["number", "null"]}
_INT = {"type": "integer"}
_STR = {"type": "string"}
_COUNTS = {
    "type": "object",
    "required": ["checks", "by_status", "by_category"],
    "properties": {
        "checks": _INT,
        "by_status": {"type": "object", "required": list(STATUSES)},
        "by_category": {"type": "object", "required": list(CATEGORIES)},
    },
}

#: JSON Schema (draft 2020-12 subset) of ``quality.json``.
REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "cardiobox data-quality report",
    "type": "object",
    "required": [
        "schema",
        "generated_at",
        "cardiobox_version",
        "reference_date",
        "checks_file",
        "thresholds",
        "sites",
        "summary",
        "checks",
        "completeness",
        "distributions",
    ],
    "properties": {
        "schema": {"const": SCHEMA_VERSION},
        "generated_at": _STR,
        "cardiobox_version": _STR,
        "reference_date": _STR,
        "checks_file": _STR,
        "thresholds": {
            "type": "object",
            "required": ["defaults", "categories", "overrides", "file"],
            "properties": {
                "defaults": {"type": "object", "required": list(CATEGORIES)},
                "categories": {"type": "object", "required": list(CATEGORIES)},
                "overrides": {"type": "object", "required": ["categories", "checks"]},
                "file": {"type": ["string", "null"]},
            },
        },
        "sites": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["site", "store", "seconds", "stats", "quarantine", "findings"],
                "properties": {
                    "site": _STR,
                    "store": _STR,
                    "seconds": {"type": "number"},
                    "stats": {"type": "object", "required": ["resources", "patients", "by_type"]},
                    "quarantine": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["rule", "resource_type", "items"],
                        },
                    },
                    "findings": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": [
                                "severity",
                                "rule",
                                "resource_type",
                                "element",
                                "findings",
                                "resources",
                            ],
                        },
                    },
                },
            },
        },
        "summary": {
            "type": "object",
            "required": ["checks", "by_status", "by_category", "sites", "by_site", "failed"],
            "properties": {
                **_COUNTS["properties"],  # type: ignore[dict-item]
                "sites": {"type": "array", "items": _STR},
                "by_site": {"type": "object", "additionalProperties": _COUNTS},
                "failed": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": [
                            "site",
                            "id",
                            "category",
                            "severity",
                            "numerator",
                            "denominator",
                            "pct_failing",
                            "threshold",
                        ],
                    },
                },
            },
        },
        "checks": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "id",
                    "site",
                    "category",
                    "subcategory",
                    "description",
                    "severity",
                    "reads",
                    "numerator",
                    "denominator",
                    "pct_failing",
                    "threshold",
                    "threshold_source",
                    "status",
                    "examples",
                ],
                "properties": {
                    "id": _STR,
                    "site": _STR,
                    "category": {"enum": list(CATEGORIES)},
                    "subcategory": {
                        "enum": ["value", "relational", "computational", "atemporal", "temporal"]
                    },
                    "severity": {"enum": ["error", "warning", "info"]},
                    "numerator": _INT,
                    "denominator": _INT,
                    "pct_failing": _NUM,
                    "threshold": {"type": "number"},
                    "status": {"enum": list(STATUSES)},
                    "examples": {
                        "type": "array",
                        "maxItems": 5,
                        "items": {
                            "type": "object",
                            "required": ["resource_type", "id", "element", "value"],
                            "properties": {
                                "resource_type": _STR,
                                "id": _STR,
                                "element": {"type": ["string", "null"]},
                                "value": {"type": ["string", "null"]},
                            },
                            "additionalProperties": False,
                        },
                    },
                },
            },
        },
        "completeness": {
            "type": "object",
            "required": ["patients", "variables", "over_time"],
            "properties": {
                "patients": {"type": "object"},
                "variables": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": [
                            "variable",
                            "name",
                            "category",
                            "resource",
                            "supported",
                            "sites",
                        ],
                    },
                },
                "over_time": {"type": "object"},
            },
        },
        "distributions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "site",
                    "variable",
                    "name",
                    "unit",
                    "n",
                    "mean",
                    "sd",
                    "min",
                    "p05",
                    "p25",
                    "median",
                    "p75",
                    "p95",
                    "max",
                    "range",
                    "histogram",
                ],
                "properties": {"n": _INT, "mean": _NUM, "sd": _NUM, "median": _NUM},
            },
        },
    },
}


# -- JSON -------------------------------------------------------------------------------------
def report_json(result: QualityResult) -> dict[str, Any]:
    """The report as a JSON-ready dict (see :data:`REPORT_SCHEMA`).

    Parameters
    ----------
    result : QualityResult
        The outcome of :func:`cardiobox.quality.run_quality`.
    """
    return {
        "schema": SCHEMA_VERSION,
        "generated_at": result.generated_at,
        "cardiobox_version": result.version,
        "reference_date": result.reference_date.isoformat(),
        "checks_file": result.checks_file,
        "thresholds": result.thresholds.to_dict(),
        "sites": [
            {
                "site": s.site,
                "store": s.store,
                "seconds": round(s.seconds, 3),
                "stats": s.stats,
                "quarantine": s.quarantine,
                "findings": s.findings,
            }
            for s in result.sites
        ],
        "summary": result.summary(),
        "checks": [c.to_dict() for c in result.checks],
        "completeness": completeness_json(
            {s.site: s.completeness for s in result.sites}, result.dictionary
        ),
        "distributions": [{"site": s.site, **d} for s in result.sites for d in s.distributions],
    }


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def validate_report(doc: Any, schema: dict[str, Any] | None = None, path: str = "$") -> list[str]:
    """Check a document against :data:`REPORT_SCHEMA` (the subset of JSON Schema it uses).

    Parameters
    ----------
    doc : Any
        The document (parsed JSON).
    schema : dict, optional
        Defaults to :data:`REPORT_SCHEMA`.
    path : str
        Where ``doc`` is, for messages.

    Returns
    -------
    list of str
        Problems found, as ``path: message``; empty when the document conforms.
    """
    schema = REPORT_SCHEMA if schema is None else schema
    errors: list[str] = []
    if "const" in schema and doc != schema["const"]:
        errors.append(f"{path}: expected {schema['const']!r}")
    if "enum" in schema and doc not in schema["enum"]:
        errors.append(f"{path}: {doc!r} is not one of {schema['enum']}")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(
            isinstance(doc, _TYPES[t])
            and not (t in ("integer", "number") and isinstance(doc, bool))
            for t in types
        )
        if not ok:
            return [*errors, f"{path}: expected {' or '.join(types)}, found {type(doc).__name__}"]
    if isinstance(doc, dict):
        errors += [f"{path}: missing {k!r}" for k in schema.get("required", []) if k not in doc]
        props = schema.get("properties", {})
        for k, v in doc.items():
            if k in props:
                errors += validate_report(v, props[k], f"{path}.{k}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: unexpected {k!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += validate_report(v, schema["additionalProperties"], f"{path}.{k}")
    if isinstance(doc, list):
        if "maxItems" in schema and len(doc) > schema["maxItems"]:
            errors.append(f"{path}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(doc):
                errors += validate_report(item, schema["items"], f"{path}[{i}]")
    return errors


# -- HTML -------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0 auto;max-width:1180px;
padding:16px 28px;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #3b6fb6;padding-bottom:3px;
margin-top:2em}h3{margin-bottom:.3em}
nav a{margin-right:12px}.meta{color:#555}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f5f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.fail{color:#b03a2e;font-weight:600}.pass{color:#2e7d4f}.na{color:#888}
.error{color:#b03a2e}.warning{color:#a86500}
code{font-size:12px;background:#f4f4f4;padding:0 3px;border-radius:3px}
ul.examples{margin:0;padding-left:16px;font-size:12px}
.cards{display:flex;flex-wrap:wrap;gap:14px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 10px;width:350px}
.card h3{font-size:14px;margin:0 0 4px}.card table{font-size:11px;margin:4px 0}
details summary{cursor:pointer;font-weight:600;margin:6px 0}
.small{font-size:12px;color:#555}
"""


def _status_html(status: str) -> str:
    cls = {"fail": "fail", "pass": "pass"}.get(status, "na")
    return f'<span class="{cls}">{escape(status)}</span>'


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}".rstrip("0").rstrip(".") + " %"


def _examples(c: CheckResult) -> str:
    if not c.examples:
        return ""
    items = "".join(
        f"<li><code>{escape(str(e['resource_type']))}/{escape(str(e['id']))}</code> "
        f"{escape(str(e['element'] or ''))}"
        + (f": <code>{escape(str(e['value']))}</code>" if e.get("value") is not None else "")
        + "</li>"
        for e in c.examples
    )
    return f'<ul class="examples">{items}</ul>'


def _summary_section(result: QualityResult) -> str:
    summary = result.summary()
    rows = []
    for site in summary["sites"]:
        counts = summary["by_site"][site]
        for cat in CATEGORIES:
            c = counts["by_category"][cat]
            rows.append(
                [
                    escape(site),
                    cat,
                    _count(c["fail"], "fail"),
                    _count(c["pass"], "pass"),
                    str(c["not-applicable"]),
                ]
            )
    total = summary["by_status"]
    text = (
        f"<p>{summary['checks']} check results over {len(summary['sites'])} site(s): "
        f"{_count(total['fail'], 'fail')} failing, {_count(total['pass'], 'pass')} passing, "
        f"{total['not-applicable']} not applicable (nothing to check).</p>"
    )
    table = htmlparts.table(["site", "category", "fail", "pass", "not applicable"], rows, (2, 3, 4))
    return f'<section id="summary"><h2>Summary</h2>{text}{table}</section>'


def _count(n: int, status: str) -> str:
    return f'<span class="{status}">{n}</span>' if n else "0"


def _failing_section(result: QualityResult) -> str:
    failing = [c for c in result.checks if c.status == "fail"]
    failing.sort(key=lambda c: (c.severity != "error", -(c.pct_failing or 0.0), c.site, c.id))
    if not failing:
        body = "<p>No check fails.</p>"
    else:
        body = htmlparts.table(
            ["site", "check", "category", "severity", "failing", "%", "threshold", "examples"],
            (
                [
                    escape(c.site),
                    f"<code>{escape(c.id)}</code><br><span class='small'>"
                    f"{escape(c.description)}</span>",
                    f"{c.category}<br><span class='small'>{c.subcategory}</span>",
                    f'<span class="{c.severity}">{c.severity}</span>',
                    f"{c.numerator:,} / {c.denominator:,}",
                    _pct(c.pct_failing),
                    _pct(c.threshold),
                    _examples(c),
                ]
                for c in failing
            ),
            (4, 5, 6),
        )
    return f'<section id="failing-checks"><h2>Failing checks</h2>{body}</section>'


def _completeness_section(result: QualityResult) -> str:
    sites = [s.site for s in result.sites]
    comp = {s.site: s.completeness for s in result.sites}
    present, absent, unsupported = [], [], []
    order = list(Category)
    for v in sorted(result.dictionary, key=lambda v: order.index(v.category)):
        pcts = [comp[s].pct(v.id) for s in sites]
        if all(p is None for p in pcts) and any(v.id in comp[s].unsupported for s in sites):
            unsupported.append(v)
        elif any(p for p in pcts):
            present.append((v, pcts))
        else:
            absent.append(v)
    patients = ", ".join(f"{escape(s)}: {comp[s].patients:,}" for s in sites)
    parts = [
        '<section id="completeness"><h2>Completeness per variable</h2>',
        f"<p>Share of stored patients with at least one value of each data-model variable "
        f"(patients: {patients}).</p>",
    ]
    if present:
        rows = [(f"{v.name()} ({v.id})", pcts) for v, pcts in present]
        parts.append(svg.hbar_chart(rows, sites))
    else:
        parts.append("<p>No variable of the data model has a value.</p>")
    if absent:
        by_cat: dict[Category, list[str]] = {}
        for v in absent:
            by_cat.setdefault(v.category, []).append(v.id)
        items = "".join(
            f"<li><b>{escape(cat.value)}</b>: {escape(', '.join(ids))}</li>"
            for cat, ids in by_cat.items()
        )
        parts.append(
            f"<details><summary>{len(absent)} variables without any value</summary>"
            f"<ul class='small'>{items}</ul></details>"
        )
    if unsupported:
        ids = ", ".join(v.id for v in unsupported)
        parts.append(f"<p class='small'>Not measurable (no codes or element known): {ids}</p>")
    parts.append("</section>")
    return "".join(parts)


def _over_time_section(result: QualityResult) -> str:
    parts = [
        '<section id="completeness-over-time"><h2>Completeness over time</h2>',
        "<p>Per calendar year of the value's date: the share of patients active that year "
        "(with any dated record) who have a value that year. Grey: no value.</p>",
    ]
    for s in result.sites:
        c = s.completeness
        parts.append(f"<h3>{escape(s.site)}</h3>")
        if not c.active:
            parts.append("<p>No dated records.</p>")
            continue
        years = [str(y) for y in sorted(c.active)]
        parts.append(
            svg.column_chart([(y, float(c.active[int(y)])) for y in years], "active patients")
        )
        names = {v.id: v.name() for v in result.dictionary}
        rows = sorted(c.by_year, key=lambda v: (-sum(c.by_year[v].values()), v))
        values = {
            (f"{names.get(v, v)}", str(y)): 100.0 * n / c.active[y]
            for v in rows
            for y, n in c.by_year[v].items()
            if c.active.get(y)
        }
        parts.append(svg.heatmap([names.get(v, v) for v in rows], years, values))
    parts.append("</section>")
    return "".join(parts)


def _distributions_section(result: QualityResult) -> str:
    parts = [
        '<section id="distributions"><h2>Distributions</h2>',
        "<p>Quantity variables in their canonical unit (derived ones, such as age and length "
        "of stay, once per encounter). Bins come from the dictionary's plausible range; "
        "dashed lines mark the clinical range of the checks.</p>",
    ]
    ranges = result.clinical_ranges
    cards = []
    # Side by side: each variable's histograms of every site, in the dictionary's order.
    order = {v.id: i for i, v in enumerate(result.dictionary)}
    pairs = [(s.site, d) for s in result.sites for d in s.distributions]
    for site_name, d in sorted(pairs, key=lambda p: order.get(p[1]["variable"], 0)):
        h = d["histogram"]
        plot = ""
        if h and h["counts"]:
            marks = [
                (x, f"clinical range {lab}")
                for x, lab in zip(ranges.get(d["variable"], ()), ("low", "high"), strict=False)
            ]
            plot = svg.histogram(h["edges"], h["counts"], h["scale"], d["unit"] or "", marks)
        stats = htmlparts.table(
            ["n", "mean", "sd", "min", "p05", "median", "p95", "max"],
            [
                [f"{d['n']:,}"]
                + [_fmt(d[k]) for k in ("mean", "sd", "min", "p05", "median", "p95", "max")]
            ],
            tuple(range(8)),
        )
        outside = ""
        if h and (h["below"] or h["above"]):
            outside = f"<p class='small'>below range: {h['below']}, above: {h['above']}</p>"
        site = f" — {escape(site_name)}" if len(result.sites) > 1 else ""
        cards.append(
            f"<div class='card'><h3>{escape(d['name'])} ({escape(d['unit'] or '')})"
            f"{site}</h3>{plot}{stats}{outside}</div>"
        )
    parts.append(f"<div class='cards'>{''.join(cards)}</div>" if cards else "<p>No quantity.</p>")
    parts.append("</section>")
    return "".join(parts)


def _fmt(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.4g}"


def _store_section(result: QualityResult) -> str:
    parts = [
        '<section id="store"><h2>Store</h2>',
        "<p>What the site store holds, what its import rejected (quarantine) and the "
        "warnings it recorded beside stored resources (findings), by rule.</p>",
    ]
    for s in result.sites:
        st = s.stats
        parts.append(
            f"<h3>{escape(s.site)} <span class='small'>{escape(s.store)}</span></h3>"
            f"<p>{st.get('resources', 0):,} resources of {st.get('patients', 0):,} patients; "
            f"quarantined: {st.get('quarantined', 0):,}; warnings: {st.get('warnings', 0):,}; "
            f"loads: {st.get('loads', 0)}.</p>"
        )
        parts.append(
            htmlparts.table(
                ["resource type", "resources", "patients"],
                (
                    [escape(t), f"{c['resources']:,}", f"{c['patients']:,}"]
                    for t, c in st.get("by_type", {}).items()
                ),
                (1, 2),
            )
        )
        parts.append("<h4>Quarantine by rule</h4>")
        parts.append(
            htmlparts.table(
                ["rule", "resource type", "items"],
                (
                    [escape(q["rule"]), escape(q["resource_type"]), f"{q['items']:,}"]
                    for q in s.quarantine
                ),
                (2,),
            )
            if s.quarantine
            else "<p>Nothing quarantined.</p>"
        )
        parts.append("<h4>Findings by rule</h4>")
        parts.append(
            htmlparts.table(
                ["severity", "rule", "resource type", "element", "findings", "resources"],
                (
                    [
                        escape(f["severity"]),
                        escape(f["rule"]),
                        escape(f["resource_type"]),
                        escape(f["element"] or ""),
                        f"{f['findings']:,}",
                        f"{f['resources']:,}",
                    ]
                    for f in s.findings
                ),
                (4, 5),
            )
            if s.findings
            else "<p>No findings.</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def _all_checks_section(result: QualityResult) -> str:
    parts = ['<section id="checks"><h2>All checks</h2>']
    for cat in CATEGORIES:
        rs = [c for c in result.checks if c.category == cat]
        counts = {st: sum(c.status == st for c in rs) for st in STATUSES}
        label = ", ".join(f"{n} {st}" for st, n in counts.items())
        rows = (
            [
                escape(c.site),
                f"<code>{escape(c.id)}</code>",
                c.subcategory,
                _status_html(c.status),
                f"{c.numerator:,} / {c.denominator:,}",
                _pct(c.pct_failing),
                _pct(c.threshold),
                escape(c.description),
            ]
            for c in rs
        )
        parts.append(
            f"<details><summary>{cat} ({label})</summary>"
            + htmlparts.table(
                [
                    "site",
                    "check",
                    "subcategory",
                    "status",
                    "failing",
                    "%",
                    "threshold",
                    "description",
                ],
                rows,
                (4, 5, 6),
            )
            + "</details>"
        )
    parts.append("</section>")
    return "".join(parts)


def _thresholds_section(result: QualityResult) -> str:
    t = result.thresholds.to_dict()
    rows = [[cat, _pct(t["defaults"][cat]), _pct(t["categories"][cat])] for cat in CATEGORIES]
    over = t["overrides"]["checks"]
    extra = (
        "<p>Overrides per check: "
        + ", ".join(f"<code>{escape(k)}</code>: {_pct(v)}" for k, v in over.items())
        + "</p>"
        if over
        else ""
    )
    source = escape(t["file"]) if t["file"] else "none (defaults of checks.yaml)"
    return (
        '<section id="thresholds"><h2>Thresholds</h2>'
        "<p>A check passes when its share of failing rows is at most its threshold. "
        f"Thresholds file: {source}.</p>"
        + htmlparts.table(["category", "default", "in force"], rows, (1, 2))
        + extra
        + "</section>"
    )


def render_html(result: QualityResult) -> str:
    """The report as one self-contained HTML page.

    Parameters
    ----------
    result : QualityResult
        The outcome of :func:`cardiobox.quality.run_quality`.

    Returns
    -------
    str
        HTML with inline CSS and SVG; no script, no external resource.
    """
    sites = ", ".join(escape(s.site) for s in result.sites)
    sections = [
        ("summary", "Summary"),
        ("failing-checks", "Failing checks"),
        ("completeness", "Completeness"),
        ("completeness-over-time", "Over time"),
        ("distributions", "Distributions"),
        ("store", "Store"),
        ("checks", "All checks"),
        ("thresholds", "Thresholds"),
    ]
    nav = "".join(f'<a href="#{sid}">{title}</a>' for sid, title in sections)
    body = "".join(
        [
            _summary_section(result),
            _failing_section(result),
            _completeness_section(result),
            _over_time_section(result),
            _distributions_section(result),
            _store_section(result),
            _all_checks_section(result),
            _thresholds_section(result),
        ]
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Data quality — {sites}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>Data quality report</h1><p class='meta'>Sites: {sites} · generated "
        f"{escape(result.generated_at)} · reference date {result.reference_date.isoformat()} · "
        f"cardiobox {escape(result.version)}</p><nav>{nav}</nav></header>"
        f"{body}<footer class='small'><p>Checks follow the Kahn framework (conformance, "
        "completeness, plausibility). Examples show resource ids and values only; this report "
        "stays at the site.</p></footer></body></html>\n"
    )


def write_report(result: QualityResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``quality.html`` and ``quality.json`` into a folder (created).

    Parameters
    ----------
    result : QualityResult
        The outcome of :func:`cardiobox.quality.run_quality`.
    out_dir : str or Path
        Output folder.

    Returns
    -------
    tuple of Path
        The HTML and the JSON file.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    html_path, json_path = folder / "quality.html", folder / "quality.json"
    html_path.write_text(render_html(result), encoding="utf-8")
    json_path.write_bytes(
        orjson.dumps(report_json(result), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    )
    return html_path, json_path

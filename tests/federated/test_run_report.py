"""The run report: report.json equals the RunReport, report.html escapes names and draws plots."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cardiobox.cli.main import app
from cardiobox.federated import run
from cardiobox.federated.hub import RunReport
from cardiobox.federated.report import render_html, write_report
from cardiobox.privacy.policy import SitePolicy
from cardiobox.xyplot import Series, nice_ticks, xy_plot

POLICY = SitePolicy(min_sites=3, min_cell_count=5)
HOSTILE = "<script>alert(1)</script>"


def svgs(html: str) -> list[str]:
    return re.findall(r"<svg.*?</svg>", html, re.S)


def hostile_sites(hf_sites: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """The heart-failure sites with a group column and levels named like markup."""
    out = {}
    for name, path in hf_sites.items():
        df = pd.read_csv(path)
        df[HOSTILE] = np.where(df["sex"] == 1, "<b>men</b>", "<img src=x onerror=alert(2)>")
        out[name] = tmp_path / f"hostile_{name}.csv"
        df.to_csv(out[name], index=False)
    return out


def test_km_report_escapes_names_and_draws_the_curves(
    hf_sites: dict[str, Path], tmp_path: Path
) -> None:
    params = {"duration": "time", "event": "DEATH_EVENT", "group": HOSTILE, "step": 5}
    params["max_time"] = 285
    report = run("km", hostile_sites(hf_sites, tmp_path), params, policy=POLICY)
    html_path = write_report(report, tmp_path / "out")
    assert html_path == tmp_path / "out" / "report.html"
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved == json.loads(json.dumps(report.to_dict()))

    html = html_path.read_text()
    assert "<script" not in html and "<img" not in html and "<b>men" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the parameter, shown escaped
    assert "&lt;img src=x onerror=alert(2)&gt;" in html  # a level, in the legend and table
    plots = svgs(html)
    assert len(plots) == 1 and "Kaplan–Meier" in plots[0]
    assert plots[0].count('fill-opacity="0.18"') == 2  # one confidence band per group
    assert "Log-rank test" in html and "north" in html


def test_mlp_report_has_metrics_roc_calibration_and_loss(
    hf_sites: dict[str, Path], tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    covariates = ["age", "ejection_fraction", "serum_creatinine", "serum_sodium"]
    params = {"outcome": "DEATH_EVENT", "covariates": covariates, "rounds": 3, "lr": 0.1}
    report = run("mlp", hf_sites, params, policy=POLICY)
    html = render_html(report)
    titles = [re.search(r"<title>(.*?)</title>", s).group(1) for s in svgs(html)]
    assert titles == ["ROC curve (pooled)", "Calibration (pooled, 10 bins)", "Training loss"]
    glob = report.result["global"]
    low, high = glob["ci"]["auroc"]
    assert f"{glob['auroc']:.4g}" in html and f"[{low:.4g}, {high:.4g}]" in html
    for site in hf_sites:
        assert f"<td>{site}</td>" in html
    assert "Evaluated on training rows" in html


def test_hand_made_report_escapes_every_name(tmp_path: Path) -> None:
    evil = "<img src=x onerror=alert(3)>"
    result = {
        "coefficients": {HOSTILE: 0.5},
        "std_errors": {HOSTILE: 0.1},
        "per_site_n": {evil: 40},
        "evaluation": {
            "evaluated_on": f"test rows ({HOSTILE} = 'test')",
            "global": {"n": 40, "auroc": 0.7, "ci": {"auroc": [0.6, 0.8]}, "roc": []},
            "per_site": {evil: None},
        },
    }
    report = RunReport(
        "run1", "logreg", {"covariates": [HOSTILE], "where": f"{evil} > 1"}, result,
        sites=[evil], refused={"x": HOSTILE}, failed={"<y>": evil}, rounds=3, seconds=1.5,
        rho={evil: 0.0},
    )  # fmt: skip
    html = render_html(report)
    assert "<script" not in html and "<img" not in html and "<y>" not in html
    assert html.count("&lt;script&gt;") >= 4  # parameter, term, reason, evaluated_on
    assert "withheld (small cells)" in html
    write_report(report, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text()) == report.to_dict()


def test_a_run_without_result_still_reports_its_sites() -> None:
    report = RunReport("r", "cox", {}, None, refused={"a": "[small-cell] too few"}, rounds=1)
    html = render_html(report)
    assert "No result" in html and "[small-cell] too few" in html and "refused" in html


def test_cli_writes_the_report(hf_sites: dict[str, Path], tmp_path: Path) -> None:
    sites = [arg for name, path in hf_sites.items() for arg in ("--site", f"{name}={path}")]
    out = tmp_path / "cli-report"
    result = CliRunner().invoke(
        app, ["fed", "run", "count", *sites, "--report", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "report.json").read_text())
    assert saved["task"] == "count" and set(saved["result"]["per_site"]) == set(hf_sites)
    assert "Counts" in (out / "report.html").read_text()


def test_xy_plot_skips_non_finite_points_and_ticks_are_round() -> None:
    assert nice_ticks(0, 1) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3, 287) == [50, 100, 150, 200, 250]
    assert nice_ticks(-0.05, 1.05) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    plot = xy_plot(
        [Series("a & b", [(0, 0), (0.5, float("nan")), (1, 1)], markers=True)],
        title="t",
        x_label="x",
        y_label="y",
    )
    assert plot.count("<circle") == 2 and "a &amp; b" in plot and "nan" not in plot

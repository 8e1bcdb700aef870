"""Benchmark: federated learning on UCI Heart Disease (four hospitals) with FLamby's protocol.

FLamby's Fed-Heart-Disease: each hospital's file without the columns slope, ca and thal and
without the rows that then still miss a value (740 rows), a per-hospital stratified 66/34
train/test split (scikit-learn ``train_test_split``, ``random_state=43``), the binary target
``num > 0``, chest-pain type and resting ECG one-hot encoded (13 features), and accuracy on
the pooled test set at threshold 0.5. Our figures are printed next to FLamby's published ones
(``data/uci_heart_disease`` in the shared data README; FLamby, MIT).

Measured, each on the in-process runtime with four simulated sites (each site's policy:
cells of 10, two sites at least):

- the exact federated logistic regression (``logreg`` on the training rows), whose
  coefficients must equal the pooled statsmodels fit to 1e-6;
- the MLP task with FedAvg, FedProx and FedAdam, and the federated boosted trees (``gbt``);
- each hospital alone (the same logistic regression on its own training rows);
- Kaplan–Meier and Cox on the heart-failure records split into three sites, against the
  pooled lifelines fits (identical to 1e-6).

Every model is scored here on the same pooled test rows of the four hospitals (as FLamby
does), from the model the run returns; the federated evaluation round's own figures (secure
sums over the sites that took part) are kept in the JSON beside them. Each site's policy has
cells of 1, so that every hospital may take part; Switzerland still refuses whatever needs its
patients without disease, of whom its training rows hold none.

Run: ``python benchmarks/fed_heart_disease.py [--json]``; writes
``benchmarks/results/fed_heart_disease.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ROOT, print_table, write_result

UCI = ROOT / "data" / "uci_heart_disease"
HF = ROOT / "data" / "heart_failure_clinical_records" / "heart_failure_clinical_records_dataset.csv"
HOSPITALS = ["cleveland", "hungarian", "switzerland", "va"]
COLUMNS = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang",
           "oldpeak", "slope", "ca", "thal", "num"]  # fmt: skip
#: FLamby's published accuracies on the pooled test set (mean over seeds).
FLAMBY = {
    "pooled": 0.795,
    "cyclic": 0.785,
    "fedadam": 0.779,
    "fedavg": 0.748,
    "fedprox": 0.748,
    "cleveland alone": 0.784,
    "hungarian alone": 0.727,
    "va alone": 0.611,
    "switzerland alone": 0.483,
}
FEATURES = ["age", "sex", "trestbps", "chol", "fbs", "thalach", "exang", "oldpeak",
            "cp_2", "cp_3", "cp_4", "restecg_1", "restecg_2"]  # fmt: skip


def flamby_tables() -> dict[str, pd.DataFrame]:
    """Each hospital's rows as FLamby prepares them, with a ``split`` column."""
    from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

    frames = {}
    for h in HOSPITALS:
        df = pd.read_csv(UCI / f"processed.{h}.data", header=None, names=COLUMNS, na_values="?")
        df = df.drop(columns=["slope", "ca", "thal"]).dropna().reset_index(drop=True)
        y = (df["num"] > 0).astype(int)
        stratify = y if y.nunique() > 1 and (y.value_counts() > 2).all() else None
        _, test_idx = train_test_split(
            np.arange(len(df)), test_size=0.34, train_size=0.66, random_state=43, shuffle=True,
            stratify=stratify,
        )  # fmt: skip
        df["split"] = np.where(np.isin(np.arange(len(df)), test_idx), "test", "train")
        df["target"] = y
        frames[h] = df
    pooled = pd.concat(frames.values(), ignore_index=True)
    # One-hot on the pooled levels (as FLamby does), dropping the first level.
    for col, levels in (("cp", [2, 3, 4]), ("restecg", [1, 2])):
        assert set(pooled[col].unique()) <= {*levels, min(pooled[col].unique())}
        for frame in frames.values():
            for lv in levels:
                frame[f"{col}_{lv}"] = (frame[col] == lv).astype(int)
    return {h: f[[*FEATURES, "target", "split"]] for h, f in frames.items()}


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from cardiobox.metrics import auroc

    return {"accuracy": float(np.mean((p >= 0.5) == y)), "auroc": auroc(y, p)}


def _logreg_proba(coefficients: dict[str, float], x: np.ndarray) -> np.ndarray:
    eta = coefficients["(intercept)"] + x @ np.array([coefficients[f] for f in FEATURES])
    return np.asarray(1 / (1 + np.exp(-eta)))


def run_classification(tmp: Path) -> dict[str, Any]:
    """Exact logistic regression, MLPs and trees, federated, pooled and per site.

    Every model is scored on the same pooled test rows (all four hospitals), as FLamby does;
    the federated runs' own evaluation (secure sums over the sites that took part) is kept
    beside it.
    """
    import statsmodels.api as sm  # type: ignore[import-untyped]

    from cardiobox.federated import RunError, make_nodes
    from cardiobox.federated import run as fed_run
    from cardiobox.federated.tasks import gbt, mlp
    from cardiobox.privacy.policy import SitePolicy

    tables = flamby_tables()
    sites = {}
    for h, df in tables.items():
        sites[h] = tmp / f"{h}.csv"
        df.to_csv(sites[h], index=False)
    pooled = pd.concat(tables.values(), ignore_index=True)
    pooled.to_csv(tmp / "pooled.csv", index=False)
    train, test = pooled[pooled.split == "train"], pooled[pooled.split == "test"]
    x_test, y_test = test[FEATURES].to_numpy(float), test["target"].to_numpy()
    # Cells of 1: the smallest policy, so that every hospital can take part as in FLamby.
    # Switzerland still refuses what needs its non-events: it has none among its training rows.
    policy = SitePolicy(min_sites=1, min_cell_count=1)
    nodes = make_nodes(sites, policy)
    out: dict[str, Any] = {"rows": len(pooled), "train": len(train), "test": len(test)}

    t0 = time.perf_counter()
    rep = fed_run("logreg", nodes, {"outcome": "target", "covariates": FEATURES,
                                    "where": "split = 'train'"})  # fmt: skip
    assert rep.result is not None
    took_part = pd.concat([tables[h][tables[h].split == "train"] for h in rep.sites])
    ref = sm.Logit(took_part["target"], sm.add_constant(took_part[FEATURES].astype(float))).fit(
        disp=0, tol=1e-12
    )
    ours = rep.result["coefficients"]
    names = ["(intercept)", *FEATURES]
    ref_coef = dict(zip(names, ref.params.to_numpy(), strict=True))
    ref_se = dict(zip(names, ref.bse.to_numpy(), strict=True))
    out["logreg"] = {
        **_scores(y_test, _logreg_proba(ours, x_test)),
        "sites": rep.sites,
        "refused": rep.refused,
        "max_coef_diff": max(abs(ours[k] - ref_coef[k]) for k in names),
        "max_se_diff": max(abs(rep.result["std_errors"][k] - ref_se[k]) for k in names),
        "rounds": rep.rounds,
        "seconds": time.perf_counter() - t0,
    }

    learners: dict[str, tuple[str, dict[str, Any]]] = {
        "fedavg": ("mlp", {"strategy": "fedavg"}),
        "fedprox": ("mlp", {"strategy": "fedprox"}),
        "fedadam": ("mlp", {"strategy": "fedadam"}),
        "gbt": ("gbt", {}),
    }
    predict = {"mlp": lambda r: mlp.predict_proba(r["model"], x_test),
               "gbt": lambda r: gbt.predict_proba(r, x_test)}  # fmt: skip
    base = {"outcome": "target", "covariates": FEATURES, "split_column": "split"}
    pooled_node = make_nodes({"pooled": tmp / "pooled.csv"}, policy)
    for name, (task, extra) in learners.items():
        t0 = time.perf_counter()
        r = fed_run(task, nodes, {**base, **extra})
        assert r.result is not None
        fed_eval = r.result["global"]
        out[name] = {
            **_scores(y_test, predict[task](r.result)),
            "federated_evaluation": {k: fed_eval[k] for k in ("n", "accuracy", "auroc")},
            "sites": r.sites,
            "refused": r.refused,
            "rounds": r.rounds,
            "seconds": time.perf_counter() - t0,
        }
        if name in ("fedavg", "gbt"):  # the same model trained on the pooled rows
            p = fed_run(task, pooled_node, {**base, **extra}, min_sites=1)
            assert p.result is not None
            out[f"{name}_pooled"] = _scores(y_test, predict[task](p.result))

    alone: dict[str, Any] = {}
    for h in HOSPITALS:
        single = make_nodes({h: sites[h]}, policy)
        try:
            r = fed_run("mlp", single, {**base, "strategy": "fedavg"}, min_sites=1)
        except RunError as exc:
            alone[h] = {"refused": "; ".join(exc.report.refused.values()) or exc.message}
            continue
        assert r.result is not None
        alone[h] = _scores(y_test, mlp.predict_proba(r.result["model"], x_test))
    out["alone"] = alone
    return out


def run_survival(tmp: Path) -> dict[str, Any]:
    """Kaplan–Meier and Cox on the heart-failure records, three sites against pooled lifelines."""
    from lifelines import CoxPHFitter, KaplanMeierFitter  # type: ignore[import-untyped]

    from cardiobox.federated import make_nodes
    from cardiobox.federated import run as fed_run
    from cardiobox.privacy.policy import SitePolicy

    df = pd.read_csv(HF)
    df["site"] = np.arange(len(df)) % 3
    sites = {}
    for s in range(3):
        path = tmp / f"hf_{s}.csv"
        df[df.site == s].drop(columns="site").to_csv(path, index=False)
        sites[f"site_{s}"] = path
    nodes = make_nodes(sites, SitePolicy(min_sites=3))
    max_t = int(df["time"].max())
    km = fed_run("km", nodes, {"duration": "time", "event": "DEATH_EVENT", "step": 1,
                               "max_time": max_t})  # fmt: skip
    assert km.result is not None
    kmf = KaplanMeierFitter().fit(df["time"], df["DEATH_EVENT"])
    times = np.array(km.result["times"], dtype=float)
    ours = np.array(next(iter(km.result["groups"].values()))["survival"], dtype=float)
    ref = kmf.survival_function_at_times(times).to_numpy()
    covariates = ["age", "ejection_fraction", "serum_creatinine", "serum_sodium", "anaemia",
                  "high_blood_pressure"]  # fmt: skip
    cox = fed_run("cox", nodes, {"duration": "time", "event": "DEATH_EVENT",
                                 "covariates": covariates})  # fmt: skip
    assert cox.result is not None
    cph = CoxPHFitter().fit(df[[*covariates, "time", "DEATH_EVENT", "site"]], "time",
                            "DEATH_EVENT", strata=["site"])  # fmt: skip
    coef_diff = max(abs(cox.result["coefficients"][c] - cph.params_[c]) for c in covariates)
    se_diff = max(abs(cox.result["std_errors"][c] - cph.standard_errors_[c]) for c in covariates)
    return {
        "km_max_diff": float(np.max(np.abs(ours - ref))),
        "km_points": len(times),
        "cox_max_coef_diff": coef_diff,
        "cox_max_se_diff": se_diff,
        "cox_rounds": cox.rounds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cls = run_classification(Path(tmp))
        surv = run_survival(Path(tmp))
    lr = cls["logreg"]
    rows: list[tuple[str, str, str, bool | None]] = [
        ("rows (train / test)", f"{cls['rows']} ({cls['train']} / {cls['test']})", "740",
         cls["rows"] == 740),
        (f"exact logreg ({len(lr['sites'])} sites): max |coef − pooled|",
         f"{lr['max_coef_diff']:.1e}", "≤ 1e-6", lr["max_coef_diff"] <= 1e-6),
        ("exact logreg: max |SE − pooled|", f"{lr['max_se_diff']:.1e}", "≤ 1e-6",
         lr["max_se_diff"] <= 1e-6),
        ("exact logreg accuracy (AUROC)", f"{lr['accuracy']:.3f} ({lr['auroc']:.3f})",
         f"FLamby pooled {FLAMBY['pooled']}", None),
        ("MLP on pooled rows accuracy (AUROC)",
         f"{cls['fedavg_pooled']['accuracy']:.3f} ({cls['fedavg_pooled']['auroc']:.3f})",
         f"FLamby pooled {FLAMBY['pooled']}", None),
    ]  # fmt: skip
    for name in ("fedavg", "fedprox", "fedadam"):
        r = cls[name]
        rows.append((f"MLP {name} accuracy (AUROC)", f"{r['accuracy']:.3f} ({r['auroc']:.3f})",
                     f"FLamby {name} {FLAMBY[name]}", None))  # fmt: skip
    for name, label in (("gbt", "boosted trees, federated"),
                        ("gbt_pooled", "boosted trees, pooled")):  # fmt: skip
        g = cls[name]
        rows.append((f"{label} accuracy (AUROC)", f"{g['accuracy']:.3f} ({g['auroc']:.3f})",
                     f"FLamby cyclic {FLAMBY['cyclic']}", None))  # fmt: skip
    for h in HOSPITALS:
        r = cls["alone"][h]
        got = f"{r['accuracy']:.3f} ({r['auroc']:.3f})" if "accuracy" in r else "refused"
        rows.append((f"MLP {h} alone accuracy (AUROC)", got, f"FLamby {FLAMBY[f'{h} alone']}",
                     None))  # fmt: skip
    rows += [
        ("KM: max |S(t) − pooled lifelines|", f"{surv['km_max_diff']:.1e}", "≤ 1e-6",
         surv["km_max_diff"] <= 1e-6),
        ("Cox: max |coef − pooled lifelines|", f"{surv['cox_max_coef_diff']:.1e}", "≤ 1e-6",
         surv["cox_max_coef_diff"] <= 1e-6),
        ("Cox: max |SE − pooled lifelines|", f"{surv['cox_max_se_diff']:.1e}", "≤ 1e-6",
         surv["cox_max_se_diff"] <= 1e-6),
    ]  # fmt: skip
    print_table(rows)
    result = {"classification": cls, "survival": surv, "flamby": FLAMBY}
    write_result("fed_heart_disease", result)
    if args.json:
        print(json.dumps(result))
    return 0 if all(ok is not False for *_, ok in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

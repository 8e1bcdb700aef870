"""Derived features: formulas over other columns of the analysis table.

* ``egfr_ckd_epi_2021`` — eGFR (mL/min/1.73 m²) by the race-free CKD-EPI 2021 creatinine
  equation (Inker et al., N Engl J Med 2021): ``142 × min(Scr/κ, 1)^α × max(Scr/κ, 1)^−1.200
  × 0.9938^age × 1.012 [female]``, Scr in mg/dL (µmol/L ÷ 88.42), κ 0.7 (female) or 0.9,
  α −0.241 (female) or −0.302. Inputs: ``creatinine`` (µmol/L), ``age`` (years), ``sex``.
* ``bmi`` — weight (kg) / height (m)²; inputs ``weight`` (kg), ``height`` (cm).
* ``maggic`` — the MAGGIC integer risk score for heart failure (Pocock et al., Eur Heart J
  2013): inputs ``lvef`` (%), ``age``, ``sbp`` (mm Hg), ``bmi``, ``creatinine`` (µmol/L),
  ``nyha`` (1–4), ``sex``, ``smoker``, ``diabetes``, ``copd``, ``hf_18_months``,
  ``beta_blocker``, ``acei_arb`` (booleans). Missing inputs make the score missing.
"""

from __future__ import annotations

from cardiobox.errors import InputError

_NEEDS = {
    "egfr_ckd_epi_2021": ("creatinine", "age", "sex"),
    "bmi": ("weight", "height"),
    "maggic": (
        "lvef",
        "age",
        "sbp",
        "bmi",
        "creatinine",
        "nyha",
        "sex",
        "smoker",
        "diabetes",
        "copd",
        "hf_18_months",
        "beta_blocker",
        "acei_arb",
    ),
}


def _col(name: str) -> str:
    # An output column computed before (the derived column is selected over them).
    return 'd."' + name.replace('"', '""') + '"'


def _steps(x: str, bounds: list[tuple[float, int]], top: int) -> str:
    """CASE giving points by the first upper bound (exclusive) that ``x`` is below."""
    whens = " ".join(f"WHEN {x} < {b!r} THEN {p}" for b, p in bounds)
    return f"CASE WHEN {x} IS NULL THEN NULL {whens} ELSE {top} END"


def derived_sql(kind: str, inputs: dict[str, str], where: str) -> tuple[str, str, str]:
    """(SQL over the projected columns, description, unit) of a derived feature."""
    missing = [k for k in _NEEDS[kind] if k not in inputs]
    unknown = [k for k in inputs if k not in _NEEDS[kind]]
    if missing or unknown:
        raise InputError(
            f"{where}: {kind} needs the inputs {list(_NEEDS[kind])}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {unknown}" if unknown else ""),
            rule="derived-inputs",
        )
    c = {k: _col(v) for k, v in inputs.items()}
    if kind == "bmi":
        return (
            f"round({c['weight']} / pow({c['height']} / 100.0, 2), 2)",
            "body-mass index (weight / height²)",
            "kg/m2",
        )
    if kind == "egfr_ckd_epi_2021":
        scr = f"({c['creatinine']} / 88.42)"
        # sex as the data model writes it; another coding (1/0) gives no eGFR, not an error
        sex = f"lower(CAST({c['sex']} AS VARCHAR))"
        female = f"({sex} = 'female')"
        kappa = f"CASE WHEN {female} THEN 0.7 ELSE 0.9 END"
        alpha = f"CASE WHEN {female} THEN -0.241 ELSE -0.302 END"
        return (
            # least()/greatest() skip NULLs: without the test a missing creatinine gave a value
            f"CASE WHEN {sex} IN ('female', 'male') AND {c['creatinine']} IS NOT NULL "
            "THEN round(142 * "
            f"pow(least({scr} / {kappa}, 1), {alpha}) * pow(greatest({scr} / {kappa}, 1), -1.2) "
            f"* pow(0.9938, {c['age']}) * CASE WHEN {female} THEN 1.012 ELSE 1 END, 1) END",
            "eGFR by CKD-EPI 2021 (creatinine, age, sex)",
            "mL/min/{1.73_m2}",
        )
    ef, age, sbp = c["lvef"], c["age"], c["sbp"]
    ef_pts = _steps(ef, [(20, 7), (25, 6), (30, 5), (35, 3), (40, 2)], 0)
    age_bounds = [55, 60, 65, 70, 75, 80]
    age_pts = {
        "low": [0, 1, 2, 4, 6, 8, 10],
        "mid": [0, 2, 4, 6, 8, 10, 13],
        "high": [0, 3, 5, 7, 9, 12, 15],
    }
    sbp_bounds = [110, 120, 130, 140, 150]
    sbp_pts = {
        "low": [5, 4, 3, 2, 1, 0],
        "mid": [3, 2, 1, 1, 0, 0],
        "high": [2, 1, 1, 0, 0, 0],
    }

    def by_ef(x: str, bounds: list[int], pts: dict[str, list[int]]) -> str:
        def s(key: str) -> str:
            return _steps(x, list(zip(bounds, pts[key][:-1], strict=True)), pts[key][-1])

        return (
            f"CASE WHEN {ef} IS NULL THEN NULL WHEN {ef} < 30 THEN {s('low')} "
            f"WHEN {ef} < 40 THEN {s('mid')} ELSE {s('high')} END"
        )

    bmi_pts = _steps(c["bmi"], [(15, 6), (20, 5), (25, 3), (30, 2)], 0)
    crea_pts = _steps(
        c["creatinine"], [(90, 0), (110, 1), (130, 2), (150, 3), (170, 4), (210, 5), (250, 6)], 8
    )
    nyha_pts = f"CASE {c['nyha']} WHEN 1 THEN 0 WHEN 2 THEN 2 WHEN 3 THEN 6 WHEN 4 THEN 8 END"

    def flag(name: str, points: int, when: bool = True) -> str:
        test = c[name] if when else f"NOT {c[name]}"
        return f"CASE WHEN {c[name]} IS NULL THEN NULL WHEN {test} THEN {points} ELSE 0 END"

    sex = f"lower(CAST({c['sex']} AS VARCHAR))"
    male = f"CASE WHEN {sex} = 'male' THEN 1 WHEN {sex} = 'female' THEN 0 END"
    parts = [
        ef_pts,
        by_ef(age, age_bounds, age_pts),
        by_ef(sbp, sbp_bounds, sbp_pts),
        bmi_pts,
        crea_pts,
        nyha_pts,
        male,
        flag("smoker", 1),
        flag("diabetes", 3),
        flag("copd", 2),
        flag("hf_18_months", 2),
        flag("beta_blocker", 3, when=False),
        flag("acei_arb", 1, when=False),
    ]
    return (
        " + ".join(f"({p})" for p in parts),
        "MAGGIC heart-failure risk score (integer points, Pocock 2013)",
        "",
    )

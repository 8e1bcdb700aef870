"""What is measured, coded and prescribed at each encounter, in canonical units.

Each function returns a table as a dict of equal-length numpy arrays with at least the
columns ``patient`` (patient index), ``encounter`` (encounter index) and ``time`` (minutes
since 1970-01-01, local clock). Missing numbers are NaN. Values are in the data model's
canonical units (creatinine umol/L, haemoglobin g/dL, NT-proBNP pg/mL, ...); a hospital's
own units are applied when its extract is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cardiobox.demo.hospitals.cohort import (
    HFMREF,
    HFREF,
    INPATIENT,
    MINUTES_PER_DAY,
    OUTPATIENT,
    REASON_AF,
    REASON_COPD,
    REASON_HF,
    REASON_MI,
    REASON_STROKE,
    BoolArray,
    Cohort,
    FloatArray,
    IntArray,
    ckd_epi_egfr,
    creatinine_for_egfr,
    minutes_in_window,
)

Table = dict[str, NDArray[Any]]

#: Laboratory analytes, by data-dictionary variable id (canonical unit in the comment).
LAB_ANALYTES = (
    "nt_probnp",  # pg/mL
    "creatinine",  # umol/L
    "egfr",  # mL/min/{1.73_m2}
    "potassium",  # mmol/L
    "sodium",  # mmol/L
    "hemoglobin",  # g/dL
)
NTP, CREA, EGFR, K, NA, HB = range(6)

#: Moments at which things are measured.
ADMISSION, DISCHARGE, VISIT = 0, 1, 2

#: Diagnoses: key -> (ICD-10 code, SNOMED CT code or "" when the SNOMED hospital uses
#: another key). Every ICD-10 code belongs to a data-dictionary phenotype.
DIAGNOSES: dict[str, tuple[str, str]] = {
    "hf_unspecified": ("I50.9", "84114007"),
    "hf_congestive": ("I50.0", "42343007"),
    "hf_left": ("I50.1", "85232009"),
    "hhd_hf": ("I11.0", ""),
    "hkd_hf": ("I13.0", ""),
    "af_paroxysmal": ("I48.0", "282825002"),
    "af_persistent": ("I48.1", "440059007"),
    "af_permanent": ("I48.2", "440028005"),
    "hypertension": ("I10", "59621000"),
    "diabetes2": ("E11.9", "44054006"),
    "diabetes2_renal": ("E11.2", ""),
    "ckd3": ("N18.3", "433144002"),
    "ckd4": ("N18.4", "431857002"),
    "ckd5": ("N18.5", "433146000"),
    "ihd_chronic": ("I25.1", "53741008"),
    "old_mi": ("I25.2", "1755008"),
    "copd": ("J44.9", "13645005"),
    "copd_exacerbation": ("J44.1", "195951007"),
    "anaemia": ("D64.9", "271737000"),
    "iron_deficiency_anaemia": ("D50.9", "87522002"),
    "dyslipidaemia": ("E78.5", "55822004"),
    "obesity": ("E66.9", "414916001"),
    "nstemi": ("I21.4", "401314000"),
    "stroke": ("I63.9", "422504002"),
}
DX_KEYS = tuple(DIAGNOSES)
#: The key a SNOMED CT hospital codes instead of a key without a SNOMED code.
SNOMED_FALLBACK = {"hhd_hf": "hf_unspecified", "hkd_hf": "hf_unspecified"}
SNOMED_FALLBACK["diabetes2_renal"] = "diabetes2"


@dataclass(frozen=True)
class Drug:
    """A medicine: ATC code, therapeutic class, usual doses (mg) and doses per day."""

    atc: str
    cls: str
    doses: tuple[float, ...]
    per_day: int


#: Medicines prescribed at discharge. Every ATC code belongs to a data-dictionary group.
DRUGS: dict[str, Drug] = {
    "furosemide": Drug("C03CA01", "loop", (20, 40, 80), 1),
    "torasemide": Drug("C03CA04", "loop", (5, 10, 20), 1),
    "bumetanide": Drug("C03CA02", "loop", (1, 2), 1),
    "bisoprolol": Drug("C07AB07", "beta_blocker", (1.25, 2.5, 5, 10), 1),
    "carvedilol": Drug("C07AG02", "beta_blocker", (6.25, 12.5, 25), 2),
    "metoprolol": Drug("C07AB02", "beta_blocker", (25, 50, 100, 200), 1),
    "nebivolol": Drug("C07AB12", "beta_blocker", (2.5, 5), 1),
    "enalapril": Drug("C09AA02", "ace_inhibitor", (2.5, 5, 10), 2),
    "ramipril": Drug("C09AA05", "ace_inhibitor", (2.5, 5, 10), 1),
    "perindopril": Drug("C09AA04", "ace_inhibitor", (2, 4, 8), 1),
    "losartan": Drug("C09CA01", "arb", (25, 50, 100), 1),
    "candesartan": Drug("C09CA06", "arb", (4, 8, 16, 32), 1),
    "valsartan": Drug("C09CA03", "arb", (40, 80, 160), 2),
    "sacubitril_valsartan": Drug("C09DX04", "arni", (50, 100, 200), 2),
    "spironolactone": Drug("C03DA01", "mra", (12.5, 25, 50), 1),
    "eplerenone": Drug("C03DA04", "mra", (25, 50), 1),
    "dapagliflozin": Drug("A10BK01", "sglt2i", (10,), 1),
    "empagliflozin": Drug("A10BK03", "sglt2i", (10,), 1),
    "acenocoumarol": Drug("B01AA07", "vka", (1, 4), 1),
    "phenprocoumon": Drug("B01AA04", "vka", (3,), 1),
    "warfarin": Drug("B01AA03", "vka", (2.5, 5), 1),
    "apixaban": Drug("B01AF02", "doac", (2.5, 5), 2),
    "rivaroxaban": Drug("B01AF01", "doac", (15, 20), 1),
    "edoxaban": Drug("B01AF03", "doac", (30, 60), 1),
    "dabigatran": Drug("B01AE07", "doac", (110, 150), 2),
    "atorvastatin": Drug("C10AA05", "statin", (20, 40, 80), 1),
    "simvastatin": Drug("C10AA01", "statin", (20, 40), 1),
    "rosuvastatin": Drug("C10AA07", "statin", (10, 20), 1),
    "aspirin": Drug("B01AC06", "antiplatelet", (80, 100), 1),
    "clopidogrel": Drug("B01AC04", "antiplatelet", (75,), 1),
    "metformin": Drug("A10BA02", "metformin", (500, 850, 1000), 2),
    "insulin_glargine": Drug("A10AE04", "insulin", (), 1),
    "digoxin": Drug("C01AA05", "digoxin", (0.125, 0.25), 1),
    "amiodarone": Drug("C01BD01", "amiodarone", (100, 200), 1),
    "ivabradine": Drug("C01EB17", "ivabradine", (5, 7.5), 2),
}
DRUG_KEYS = tuple(DRUGS)
DRUG_CLASSES = (
    "loop",
    "beta_blocker",
    "ace_inhibitor",
    "arb",
    "arni",
    "mra",
    "sglt2i",
    "vka",
    "doac",
    "statin",
    "antiplatelet",
    "metformin",
    "insulin",
    "digoxin",
    "amiodarone",
    "ivabradine",
)


def _year(minutes: IntArray) -> IntArray:
    days = (minutes // MINUTES_PER_DAY).astype("datetime64[D]")
    return np.asarray(days.astype("datetime64[Y]").astype(np.int64) + 1970, dtype=np.int64)


def _age(cohort: Cohort, patient: IntArray, minutes: IntArray) -> FloatArray:
    return np.asarray(
        (minutes // MINUTES_PER_DAY - cohort.patients.birth_day[patient]) / 365.25,
        dtype=np.float64,
    )


def _draws(rng: np.random.Generator, cohort: Cohort) -> Table:
    """Blood draws: at admission, at discharge (survivors) and at most outpatient visits."""
    enc = cohort.encounters
    ip = np.flatnonzero(enc.kind == INPATIENT)
    op = np.flatnonzero(enc.kind == OUTPATIENT)
    adm_time = enc.start[ip] + rng.integers(20, 120, size=ip.size)
    out = ip[~enc.died[ip]]
    dis_time = minutes_in_window(rng, enc.end[out] // MINUTES_PER_DAY, 7, 9.5)
    vis = op[rng.random(op.size) < 0.85]
    vis_time = enc.start[vis] - rng.integers(30, 90, size=vis.size)
    encounter = np.concatenate([ip, out, vis])
    return {
        "encounter": encounter,
        "patient": enc.patient[encounter],
        "time": np.concatenate([adm_time, dis_time, vis_time]),
        "moment": np.concatenate(
            [
                np.full(ip.size, ADMISSION),
                np.full(out.size, DISCHARGE),
                np.full(vis.size, VISIT),
            ]
        ),
    }


def labs(rng: np.random.Generator, cohort: Cohort) -> Table:
    """Laboratory results, one row per result (long format), canonical units.

    Columns: ``patient``, ``encounter``, ``time``, ``moment``, ``analyte`` (index into
    :data:`LAB_ANALYTES`), ``value``.
    """
    pts, enc = cohort.patients, cohort.encounters
    d = _draws(rng, cohort)
    p, e, moment = d["patient"], d["encounter"], d["moment"]
    m = p.size
    k = np.where(enc.kind[e] == INPATIENT, enc.number[e], 0)
    nyha = enc.nyha_in[e]
    age = _age(cohort, p, d["time"])
    ntp_mult = np.select(
        [moment == ADMISSION, moment == DISCHARGE],
        [
            np.array([1.0, 1.0, 1.6, 2.3, 3.2])[nyha]
            * np.where(enc.reason[e] == REASON_HF, 1, 0.7),
            np.full(m, 1.15),
        ],
        0.9,
    )
    ntp = np.clip(pts.ntprobnp[p] * ntp_mult * rng.lognormal(0, 0.3, m) * 1.1**k, 40, 34500)
    crea_mult = np.select([moment == ADMISSION, moment == DISCHARGE], [1.15, 1.08], 1.0)
    crea = creatinine_for_egfr(pts.egfr[p], age, pts.male[p])
    crea = np.clip(crea * crea_mult * rng.lognormal(0, 0.08, m) * (1 + 0.04 * k), 50, 1100)
    egfr = np.clip(ckd_epi_egfr(crea, age, pts.male[p]), 4, 130)
    pot = (
        pts.potassium[p]
        + rng.normal(0, 0.35, m)
        + np.select([moment == DISCHARGE, moment == VISIT], [-0.1, 0.1], 0.0)
    )
    pot = np.clip(pot, 2.7, 6.6)
    sod = pts.sodium[p] + rng.normal(0, 2.3, m) - 2.5 * ((moment == ADMISSION) & (nyha == 4))
    sod = np.clip(sod, 118, 152)
    hb = np.clip(pts.hb[p] + rng.normal(0, 0.5, m) - 0.15 * k, 6.5, 18)
    values = (ntp, crea, egfr, pot, sod, hb)
    # Which analytes each draw has: all at admission; at discharge renal function and ions,
    # sometimes NT-proBNP and haemoglobin; at visits the heart-failure panel.
    has_ntp = (moment != DISCHARGE) | (rng.random(m) < 0.45)
    has_hb = (moment == ADMISSION) | (rng.random(m) < 0.35)
    has = (
        has_ntp,
        np.ones(m, np.bool_),
        np.ones(m, np.bool_),
        np.ones(m, np.bool_),
        np.ones(m, np.bool_),
        has_hb,
    )
    parts: list[Table] = []
    for a, (vals, mask) in enumerate(zip(values, has, strict=True)):
        idx = np.flatnonzero(mask)
        parts.append(
            {
                "patient": p[idx],
                "encounter": e[idx],
                "time": d["time"][idx],
                "moment": moment[idx],
                "analyte": np.full(idx.size, a, dtype=np.int64),
                "value": vals[idx],
            }
        )
    out = {c: np.concatenate([t[c] for t in parts]) for c in parts[0]}
    return sort_table(out, ("patient", "time", "analyte"))


def sort_table(table: Table, keys: tuple[str, ...]) -> Table:
    """Sort a table by ``keys`` (the first key is the most significant)."""
    order = np.lexsort(tuple(table[k] for k in reversed(keys)))
    return {c: v[order] for c, v in table.items()}


def vitals(rng: np.random.Generator, cohort: Cohort) -> Table:
    """Vital signs, one row per time of measurement (wide), canonical units.

    Columns: ``sbp``, ``dbp`` (mm[Hg]), ``hr`` (/min), ``spo2`` (%), ``temp`` (Cel, only at
    admission), ``weight`` (kg), ``height`` (cm, only at the index admission).
    """
    pts, enc = cohort.patients, cohort.encounters
    ip = np.flatnonzero(enc.kind == INPATIENT)
    op = np.flatnonzero(enc.kind == OUTPATIENT)
    out = ip[~enc.died[ip]]
    e = np.concatenate([ip, out, op])
    moment = np.concatenate(
        [np.full(ip.size, ADMISSION), np.full(out.size, DISCHARGE), np.full(op.size, VISIT)]
    )
    time = np.concatenate(
        [
            enc.start[ip] + rng.integers(10, 60, size=ip.size),
            minutes_in_window(rng, enc.end[out] // MINUTES_PER_DAY, 8, 10.5),
            enc.start[op] + rng.integers(0, 10, size=op.size),
        ]
    )
    p = enc.patient[e]
    m = e.size
    adm = moment == ADMISSION
    af_now = pts.af_permanent[p] | (pts.comorbidity["af"][p] & (rng.random(m) < 0.3))
    sbp = np.clip(pts.sbp[p] + rng.normal(0, 13, m) + 10 * adm, 78, 215)
    dbp = np.clip(sbp * 0.56 + rng.normal(0, 7, m), 40, 118)
    dbp = np.minimum(dbp, sbp - 20)
    hr = np.where(
        af_now,
        np.where(adm, rng.normal(104, 18, m), rng.normal(80, 11, m)),
        np.where(adm, rng.normal(89, 14, m), rng.normal(70, 9, m)),
    )
    hr = np.clip(hr, 42, 165)
    spo2 = np.clip(
        np.where(adm, rng.normal(93.5, 2.6, m), rng.normal(96, 1.6, m))
        - 1.5 * pts.comorbidity["copd"][p],
        82,
        100,
    )
    temp = np.where(adm, np.clip(rng.normal(36.6, 0.35, m), 35.6, 38.6), np.nan)
    congestion = np.select([adm, moment == DISCHARGE], [rng.normal(3.2, 1.2, m), 0.0], 0.4)
    weight = np.clip(pts.weight[p] + congestion + rng.normal(0, 0.6, m), 35, 220)
    index_adm = adm & (enc.number[e] == 0)
    height = np.where(index_adm, pts.height[p], np.nan)
    table = {
        "patient": p,
        "encounter": e,
        "time": time,
        "moment": moment,
        "sbp": np.round(sbp),
        "dbp": np.round(dbp),
        "hr": np.round(hr),
        "spo2": np.round(spo2),
        "temp": np.round(temp, 1),
        "weight": np.round(weight, 1),
        "height": np.round(height),
    }
    return sort_table(table, ("patient", "time"))


def echo(rng: np.random.Generator, cohort: Cohort) -> Table:
    """Echocardiograms: LVEF (%), LVEDD (mm), TAPSE (mm), LA volume index (mL/m2)."""
    pts, enc = cohort.patients, cohort.encounters
    m_all = len(enc)
    first = (enc.kind == INPATIENT) & (enc.number == 0)
    later_hf = (enc.kind == INPATIENT) & (enc.number > 0) & (enc.reason == REASON_HF)
    visit = (enc.kind == OUTPATIENT) & (enc.number == 1)
    u = rng.random(m_all)
    chosen = (first & (u < 0.93)) | (later_hf & (u < 0.30)) | (visit & (u < 0.35))
    e = np.flatnonzero(chosen)
    p = enc.patient[e]
    m = e.size
    los = (enc.end[e] // MINUTES_PER_DAY) - (enc.start[e] // MINUTES_PER_DAY)
    offset = np.floor(rng.random(m) * np.maximum(los, 1)).astype(np.int64)
    same_day = enc.start[e] + rng.integers(60, 180, size=m)
    later_day = minutes_in_window(rng, enc.start[e] // MINUTES_PER_DAY + offset, 9, 14)
    inpatient_time = np.where(offset == 0, same_day, later_day)
    time = np.where(enc.kind[e] == INPATIENT, inpatient_time, enc.start[e] + 20)
    ph = pts.phenotype[p]
    lvef = np.clip(pts.lvef[p] + rng.normal(0, 3.0, m), 10, 78)
    lvedd = np.clip(
        np.select(
            [ph == HFREF, ph == HFMREF],
            [rng.normal(63, 6, m), rng.normal(56, 5, m)],
            rng.normal(48, 4, m),
        ),
        36,
        84,
    )
    tapse = np.clip(rng.normal(np.where(ph == HFREF, 15.5, 18.5), 3.5), 6, 30)
    lavi = np.clip(rng.normal(42 + 12 * pts.comorbidity["af"][p], 11), 18, 110)
    table = {
        "patient": p,
        "encounter": e,
        "time": time,
        "lvef": np.round(lvef),
        "lvedd": np.round(lvedd),
        "tapse": np.round(tapse),
        "lavi": np.round(lavi),
    }
    return sort_table(table, ("patient", "time"))


def ecg(rng: np.random.Generator, cohort: Cohort) -> Table:
    """Resting 12-lead ECGs: rhythm (AF or sinus), rate, PR, QRS, QTc (ms), LBBB."""
    pts, enc = cohort.patients, cohort.encounters
    u = rng.random(len(enc))
    chosen = np.where(enc.kind == INPATIENT, u < 0.95, u < 0.40)
    e = np.flatnonzero(chosen)
    p = enc.patient[e]
    m = e.size
    adm = enc.kind[e] == INPATIENT
    time = np.where(adm, enc.start[e] + rng.integers(15, 90, size=m), enc.start[e] + 10)
    paroxysmal_now = rng.random(m) < np.where(adm, 0.35, 0.15)
    af = (
        pts.af_permanent[p]
        | (pts.comorbidity["af"][p] & paroxysmal_now)
        | (adm & (enc.reason[e] == REASON_AF))
    )
    hr = np.where(
        af,
        np.where(adm, rng.normal(106, 20, m), rng.normal(79, 12, m)),
        np.where(adm, rng.normal(88, 14, m), rng.normal(68, 9, m)),
    )
    lbbb = pts.lbbb[p]
    pr = np.where(af, np.nan, np.round(np.clip(rng.normal(176, 28, m), 110, 320)))
    qrs = np.where(
        lbbb, np.clip(rng.normal(152, 14, m), 122, 210), np.clip(rng.normal(96, 12, m), 70, 124)
    )
    qtc = np.clip(rng.normal(442, 22, m) + 18 * lbbb, 370, 540)
    table = {
        "patient": p,
        "encounter": e,
        "time": time,
        "af": af,
        "hr": np.round(np.clip(hr, 40, 170)),
        "pr": pr,
        "qrs": np.round(qrs),
        "qtc": np.round(qtc),
        "lbbb": lbbb,
    }
    return sort_table(table, ("patient", "time"))


def nyha(rng: np.random.Generator, cohort: Cohort) -> Table:
    """NYHA class assessments: at admission, at discharge (survivors) and at visits."""
    enc = cohort.encounters
    ip = np.flatnonzero(enc.kind == INPATIENT)
    out = ip[~enc.died[ip]]
    op = np.flatnonzero(enc.kind == OUTPATIENT)
    e = np.concatenate([ip, out, op])
    table = {
        "patient": enc.patient[e],
        "encounter": e,
        "time": np.concatenate(
            [
                enc.start[ip] + rng.integers(30, 180, size=ip.size),
                minutes_in_window(rng, enc.end[out] // MINUTES_PER_DAY, 8, 10.5),
                enc.start[op] + rng.integers(5, 15, size=op.size),
            ]
        ),
        "moment": np.concatenate(
            [np.full(ip.size, ADMISSION), np.full(out.size, DISCHARGE), np.full(op.size, VISIT)]
        ),
        "nyha": np.concatenate([enc.nyha_in[ip], enc.nyha_out[out], enc.nyha_in[op]]),
    }
    return sort_table(table, ("patient", "time"))


def diagnoses(rng: np.random.Generator, cohort: Cohort) -> Table:
    """Coded diagnoses of each stay: the main one (``position`` 1) and the secondary ones.

    Columns: ``dx`` (index into :data:`DX_KEYS`), ``position`` (1 = main), ``time`` (the
    day of discharge at midnight).
    """
    pts, enc = cohort.patients, cohort.encounters
    ip = np.flatnonzero(enc.kind == INPATIENT)
    p = enc.patient[ip]
    m = ip.size
    com = pts.comorbidity
    dx = {key: i for i, key in enumerate(DX_KEYS)}
    # Patient-level choices, so a patient keeps the same codes from stay to stay.
    pu = np.random.default_rng(rng.integers(2**63)).random((pts.n, 4))
    hf_choice = np.select(
        [pu[:, 0] < 0.5, pu[:, 0] < 0.8],
        [dx["hf_unspecified"], dx["hf_congestive"]],
        dx["hf_left"],
    )
    hf_choice = np.where(
        com["hypertension"] & com["ckd"] & (pu[:, 1] < 0.25),
        dx["hkd_hf"],
        np.where(com["hypertension"] & (pu[:, 1] < 0.30), dx["hhd_hf"], hf_choice),
    )
    reason = enc.reason[ip]
    main = np.select(
        [reason == REASON_AF, reason == REASON_COPD, reason == REASON_MI, reason == REASON_STROKE],
        [
            np.where(pts.af_permanent[p], dx["af_permanent"], dx["af_persistent"]),
            np.full(m, dx["copd_exacerbation"]),
            np.full(m, dx["nstemi"]),
            np.full(m, dx["stroke"]),
        ],
        hf_choice[p],
    )
    af_code = np.where(
        pts.af_permanent,
        dx["af_permanent"],
        np.where(pu[:, 2] < 0.6, dx["af_paroxysmal"], dx["af_persistent"]),
    )
    ckd_code = np.select([pts.egfr >= 30, pts.egfr >= 15], [dx["ckd3"], dx["ckd4"]], dx["ckd5"])
    secondary: list[tuple[BoolArray, IntArray]] = [
        (reason != REASON_HF, hf_choice[p]),
        (com["af"][p] & (reason != REASON_AF), af_code[p]),
        (
            com["hypertension"][p] & ~np.isin(main, [dx["hhd_hf"], dx["hkd_hf"]]),
            np.full(m, dx["hypertension"]),
        ),
        (
            com["diabetes"][p],
            np.where(com["ckd"][p] & (pu[p, 3] < 0.3), dx["diabetes2_renal"], dx["diabetes2"]),
        ),
        (com["ckd"][p], ckd_code[p]),
        (com["ihd"][p], np.where(pu[p, 3] < 0.4, dx["old_mi"], dx["ihd_chronic"])),
        (com["copd"][p] & (reason != REASON_COPD), np.full(m, dx["copd"])),
        (com["anaemia"][p], np.where(pu[p, 2] < 0.5, dx["iron_deficiency_anaemia"], dx["anaemia"])),
        (com["dyslipidaemia"][p], np.full(m, dx["dyslipidaemia"])),
        (com["obesity"][p] & (rng.random(m) < 0.7), np.full(m, dx["obesity"])),
    ]
    parts_e = [ip]
    parts_dx = [main]
    parts_pos = [np.ones(m, dtype=np.int64)]
    for j, (mask, code) in enumerate(secondary):
        coded = mask & ((rng.random(m) < 0.92) | (j == 0))
        parts_e.append(ip[coded])
        parts_dx.append(code[coded])
        parts_pos.append(np.full(int(coded.sum()), j + 2, dtype=np.int64))
    e = np.concatenate(parts_e)
    table: Table = {
        "patient": enc.patient[e],
        "encounter": e,
        "time": (enc.end[e] // MINUTES_PER_DAY) * MINUTES_PER_DAY,
        "dx": np.concatenate(parts_dx).astype(np.int64),
        "position": np.concatenate(parts_pos),
    }
    table = sort_table(table, ("encounter", "position"))
    # Renumber positions 1, 2, 3, ... within each stay.
    start = np.r_[0, np.flatnonzero(np.diff(table["encounter"])) + 1]
    counts = np.diff(np.r_[start, table["encounter"].size])
    table["position"] = np.arange(table["encounter"].size) - np.repeat(start, counts) + 1
    return table


def _share_by_year(year: IntArray, table: dict[int, float]) -> FloatArray:
    years = np.array(sorted(table))
    shares = np.array([table[y] for y in years])
    return np.asarray(np.interp(year, years, shares), dtype=np.float64)


def medications(
    rng: np.random.Generator,
    cohort: Cohort,
    preferences: dict[str, dict[str, float]],
    vka_share: float = 0.3,
) -> Table:
    """Discharge prescriptions of the survivors of each stay.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.
    cohort : Cohort
        The cohort.
    preferences : dict
        For each therapeutic class in :data:`DRUG_CLASSES`, the hospital's choice of agents
        as ``{drug key: weight}``.
    vka_share : float
        Share of anticoagulated patients on a vitamin K antagonist rather than a DOAC.

    Returns
    -------
    dict
        Columns ``patient``, ``encounter``, ``time`` (start: the day of discharge),
        ``drug`` (index into :data:`DRUG_KEYS`) and ``dose`` (mg, NaN when dosed by
        INR or units).
    """
    pts, enc = cohort.patients, cohort.encounters
    e = np.flatnonzero((enc.kind == INPATIENT) & ~enc.died)
    p = enc.patient[e]
    year = _year(enc.end[e])
    ph = pts.phenotype[p]
    com = pts.comorbidity
    # Patient-level propensities and agents: the same patient gets the same drugs.
    prng = np.random.default_rng(rng.integers(2**63))
    u = {c: prng.random(pts.n)[p] for c in (*DRUG_CLASSES, "arni_switch", "rasi_kind")}
    agent: dict[str, IntArray] = {}
    key_index = {k: i for i, k in enumerate(DRUG_KEYS)}
    for cls in DRUG_CLASSES:
        prefs = preferences.get(cls) or {k: 1.0 for k, d in DRUGS.items() if d.cls == cls}
        keys = list(prefs)
        w = np.array([prefs[k] for k in keys], dtype=np.float64)
        pick = prng.choice(len(keys), size=pts.n, p=w / w.sum())
        agent[cls] = np.array([key_index[k] for k in keys])[pick][p]

    def by_ph(a: float, b: float, c: float) -> FloatArray:
        return np.asarray(np.array([a, b, c])[ph], dtype=np.float64)

    af = com["af"][p]
    ihd = com["ihd"][p]
    dm = com["diabetes"][p]
    low_gfr = pts.egfr[p] < 30
    rasi = u["ace_inhibitor"] < by_ph(0.86, 0.72, 0.55) * np.where(low_gfr, 0.6, 1.0)
    arni_share = np.where(
        ph == HFREF,
        _share_by_year(year, {2018: 0.12, 2020: 0.30, 2022: 0.45, 2024: 0.55}),
        np.where(ph == HFMREF, _share_by_year(year, {2020: 0.0, 2022: 0.10, 2024: 0.15}), 0.0),
    )
    arni = rasi & (u["arni_switch"] < arni_share)
    acei = rasi & ~arni & (u["rasi_kind"] < 0.6)
    arb = rasi & ~arni & ~acei
    sglt2_share = np.where(
        ph == HFREF,
        _share_by_year(year, {2019: 0.03, 2020: 0.12, 2021: 0.45, 2022: 0.62, 2024: 0.72}),
        _share_by_year(year, {2021: 0.02, 2022: 0.25, 2023: 0.45, 2024: 0.55}),
    )
    sglt2_share = np.maximum(sglt2_share, np.where(dm, 0.22, 0.0))
    oac = af & (u["vka"] < 0.82)
    vka = oac & (u["doac"] < vka_share)
    given: dict[str, BoolArray] = {
        "loop": u["loop"] < 0.88,
        "beta_blocker": u["beta_blocker"] < np.minimum(by_ph(0.90, 0.80, 0.62) + 0.1 * af, 0.95),
        "ace_inhibitor": acei,
        "arb": arb,
        "arni": arni,
        "mra": u["mra"] < by_ph(0.68, 0.50, 0.32) * np.where(low_gfr, 0.3, 1.0),
        "sglt2i": (u["sglt2i"] < sglt2_share) & (pts.egfr[p] >= 20),
        "vka": vka,
        "doac": oac & ~vka,
        "statin": u["statin"] < np.where(ihd | dm | com["dyslipidaemia"][p], 0.78, 0.12),
        "antiplatelet": ihd & (u["antiplatelet"] < np.where(oac, 0.10, 0.75)),
        "metformin": dm & ~low_gfr & (u["metformin"] < 0.55),
        "insulin": dm & (u["insulin"] < 0.25),
        "digoxin": af & (u["digoxin"] < 0.15),
        "amiodarone": u["amiodarone"] < 0.06,
        "ivabradine": (ph == HFREF) & ~af & (u["ivabradine"] < 0.06),
    }
    parts: list[Table] = []
    for cls in DRUG_CLASSES:
        idx = np.flatnonzero(given[cls])
        drug = agent[cls][idx]
        parts.append({"row": idx, "drug": drug})
    row = np.concatenate([t["row"] for t in parts])
    drug = np.concatenate([t["drug"] for t in parts])
    dose = np.full(row.size, np.nan)
    for key, info in DRUGS.items():
        sel = drug == key_index[key]
        if info.doses and sel.any():
            dose[sel] = rng.choice(np.asarray(info.doses, dtype=np.float64), size=int(sel.sum()))
    table: Table = {
        "patient": p[row],
        "encounter": e[row],
        "time": (enc.end[e][row] // MINUTES_PER_DAY) * MINUTES_PER_DAY,
        "drug": drug,
        "dose": dose,
    }
    return sort_table(table, ("encounter", "drug"))

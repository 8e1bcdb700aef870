"""The patients and their stories: who they are, when they are admitted, seen and die.

Everything here is language- and hospital-neutral: times are integer minutes since
1970-01-01 in the hospital's local wall-clock time, values are in the data model's canonical
units. :mod:`cardiobox.demo.hospitals.render` turns them into one hospital's extract.

The model, per patient: a heart-failure phenotype (HFrEF / HFmrEF / HFpEF) with its baseline
LVEF, age and sex; comorbidities at realistic prevalences; an index heart-failure admission
between 2018 and mid-2023; then, after each discharge, competing times to death and to the
next admission (a share of them within 30 days), and outpatient follow-up visits between
admissions, until death or the end of follow-up (31 December 2024). In-hospital death ends a
stay. Nothing is dated after a patient's death.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

MINUTES_PER_DAY = 1440
#: First possible index admission, last possible index admission, end of follow-up (days).
STUDY_START = int(np.datetime64("2018-01-01", "D").astype(np.int64))
INDEX_END = int(np.datetime64("2023-06-30", "D").astype(np.int64))
FOLLOW_UP_END = int(np.datetime64("2024-12-31", "D").astype(np.int64))
MAX_ADMISSIONS = 12

PHENOTYPES = ("HFrEF", "HFmrEF", "HFpEF")
HFREF, HFMREF, HFPEF = 0, 1, 2

#: Comorbidity prevalence by phenotype (HFrEF, HFmrEF, HFpEF), after European HF registries
#: (ESC-HF-LT, SwedeHF): older, more female, more AF and hypertension in HFpEF; more IHD in
#: HFrEF.
COMORBIDITY_PREVALENCE: dict[str, tuple[float, float, float]] = {
    "af": (0.38, 0.45, 0.52),
    "hypertension": (0.60, 0.70, 0.82),
    "diabetes": (0.36, 0.34, 0.33),
    "ckd": (0.38, 0.40, 0.45),
    "ihd": (0.55, 0.48, 0.30),
    "copd": (0.19, 0.18, 0.21),
    "anaemia": (0.30, 0.30, 0.36),
    "dyslipidaemia": (0.55, 0.52, 0.45),
    "obesity": (0.20, 0.24, 0.36),
}
COMORBIDITIES = tuple(COMORBIDITY_PREVALENCE)

#: Encounter kinds.
INPATIENT, OUTPATIENT = 0, 1
#: Admission sources.
ADMIT_EMERGENCY, ADMIT_GP, ADMIT_OUTPATIENT, ADMIT_TRANSFER = 0, 1, 2, 3
#: Discharge destinations.
DISCHARGE_HOME, DISCHARGE_DEATH, DISCHARGE_TRANSFER, DISCHARGE_NURSING = 0, 1, 2, 3
#: Main reasons for admission.
REASONS = ("heart_failure", "atrial_fibrillation", "copd_exacerbation", "nstemi", "stroke")
REASON_HF, REASON_AF, REASON_COPD, REASON_MI, REASON_STROKE = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class CohortParams:
    """Case-mix knobs that differ between hospitals.

    Parameters
    ----------
    age_mean : float
        Mean age at the index admission.
    phenotype_shares : tuple of float
        Shares of HFrEF, HFmrEF and HFpEF.
    annual_mortality : float
        One-year mortality after discharge of an average-risk patient.
    readmission_30d : float
        Probability of a readmission within 30 days of a discharge.
    readmission_mean_days : float
        Mean time to a later readmission (exponential), for an average-risk patient.
    in_hospital_mortality : float
        Probability of dying during a stay, for an average-risk patient.
    los_median : float
        Median length of stay in days.
    follow_up_visit : float
        Probability of an outpatient visit 2 to 8 weeks after each discharge.
    """

    age_mean: float = 76.0
    phenotype_shares: tuple[float, float, float] = (0.45, 0.20, 0.35)
    annual_mortality: float = 0.20
    readmission_30d: float = 0.17
    readmission_mean_days: float = 650.0
    in_hospital_mortality: float = 0.045
    los_median: float = 7.0
    follow_up_visit: float = 0.75


@dataclass
class Patients:
    """Patient-level facts (arrays of length ``n``)."""

    n: int
    male: BoolArray
    birth_day: IntArray
    index_day: IntArray
    age_index: FloatArray
    phenotype: IntArray
    comorbidity: dict[str, BoolArray]
    lvef: FloatArray
    egfr: FloatArray
    hb: FloatArray
    ntprobnp: FloatArray
    potassium: FloatArray
    sodium: FloatArray
    weight: FloatArray
    height: FloatArray
    sbp: FloatArray
    af_permanent: BoolArray
    lbbb: BoolArray
    risk: FloatArray
    death_day: IntArray  # -1 when alive at the end of follow-up
    in_hospital_death: BoolArray


@dataclass
class Encounters:
    """Encounters: inpatient stays and outpatient visits (arrays of equal length)."""

    patient: IntArray
    kind: IntArray
    start: IntArray  # minutes
    end: IntArray  # minutes
    number: IntArray  # admission number (0 = index) for stays; visit number for visits
    reason: IntArray
    admit_source: IntArray
    discharge: IntArray
    died: BoolArray
    nyha_in: IntArray
    nyha_out: IntArray

    def __len__(self) -> int:
        return int(self.patient.shape[0])


@dataclass
class Cohort:
    """A simulated cohort: patients and their encounters, sorted by patient and time."""

    patients: Patients
    encounters: Encounters


def minutes_in_window(
    rng: np.random.Generator, days: IntArray, lo_hour: float, hi_hour: float
) -> IntArray:
    """Random times on ``days`` between ``lo_hour`` and ``hi_hour`` (local clock).

    Windows stay clear of 01:00-04:00, where the change to and from summer time makes some
    local times ambiguous or impossible.
    """
    minute = rng.integers(int(lo_hour * 60), int(hi_hour * 60), size=days.shape[0])
    return days * MINUTES_PER_DAY + minute


def creatinine_for_egfr(egfr: FloatArray, age: FloatArray, male: BoolArray) -> FloatArray:
    """Serum creatinine (umol/L) that gives ``egfr`` by the CKD-EPI 2021 equation."""
    kappa = np.where(male, 0.9, 0.7)
    alpha = np.where(male, -0.302, -0.241)
    sex = np.where(male, 1.0, 1.012)
    ratio = egfr / (142.0 * 0.9938**age * sex)
    scr_over_k = np.where(ratio <= 1.0, ratio ** (-1 / 1.2), ratio ** (1 / alpha))
    return np.asarray(scr_over_k * kappa * 88.4, dtype=np.float64)


def ckd_epi_egfr(creatinine: FloatArray, age: FloatArray, male: BoolArray) -> FloatArray:
    """eGFR (mL/min/1.73 m2) from serum creatinine (umol/L) by CKD-EPI 2021."""
    kappa = np.where(male, 0.9, 0.7)
    alpha = np.where(male, -0.302, -0.241)
    sex = np.where(male, 1.0, 1.012)
    r = (creatinine / 88.4) / kappa
    egfr = 142.0 * np.minimum(r, 1.0) ** alpha * np.maximum(r, 1.0) ** -1.2 * 0.9938**age * sex
    return np.asarray(egfr, dtype=np.float64)


def _patients(rng: np.random.Generator, n: int, params: CohortParams) -> Patients:
    shares = np.asarray(params.phenotype_shares, dtype=np.float64)
    phenotype = rng.choice(3, size=n, p=shares / shares.sum()).astype(np.int64)
    male = rng.random(n) < np.array([0.70, 0.60, 0.45])[phenotype]
    age = np.clip(rng.normal(params.age_mean - 2.0 * (phenotype == HFREF), 10.5), 32, 99)
    index_day = rng.integers(STUDY_START, INDEX_END + 1, size=n)
    birth_day = index_day - np.floor(age * 365.25).astype(np.int64) - rng.integers(0, 365, n)
    age = (index_day - birth_day) / 365.25
    comorbidity: dict[str, BoolArray] = {}
    for name, prev in COMORBIDITY_PREVALENCE.items():
        p = np.asarray(prev)[phenotype]
        if name == "ckd":
            p = np.clip(p + 0.012 * (age - params.age_mean), 0.05, 0.9)
        comorbidity[name] = rng.random(n) < p
    lvef = np.select(
        [phenotype == HFREF, phenotype == HFMREF],
        [np.clip(rng.normal(29, 6, n), 12, 40), rng.uniform(41, 49.9, n)],
        np.clip(rng.normal(59, 6, n), 50, 75),
    )
    ckd = comorbidity["ckd"]
    egfr = np.where(
        ckd,
        np.clip(rng.normal(38, 11, n), 9, 59),
        np.clip(rng.normal(86 - 0.6 * (age - 60), 12, n), 60, 115),
    )
    hb = np.where(male, 14.0, 12.8) - 2.3 * comorbidity["anaemia"] - 0.4 * ckd
    hb = np.clip(hb + rng.normal(0, 0.9, n), 7.5, 17.5)
    log_ntp = (
        np.log(np.array([3200.0, 2300.0, 1500.0]))[phenotype]
        + 0.30 * comorbidity["af"]
        + 0.45 * ckd
        + 0.015 * (age - 75)
        + rng.normal(0, 0.55, n)
    )
    ntprobnp = np.exp(log_ntp)
    potassium = 4.25 + 0.25 * ckd + rng.normal(0, 0.25, n)
    sodium = 139.0 + rng.normal(0, 2.2, n)
    height = np.where(male, rng.normal(174, 7, n), rng.normal(161, 6.5, n))
    bmi = np.clip(
        np.where(comorbidity["obesity"], rng.normal(34, 3.5, n), rng.normal(25.5, 3, n)), 17, 55
    )
    weight = bmi * (height / 100) ** 2
    sbp = np.clip(rng.normal(np.array([118.0, 126.0, 136.0])[phenotype], 14), 90, 180)
    af_permanent = comorbidity["af"] & (rng.random(n) < 0.6)
    lbbb = rng.random(n) < np.array([0.30, 0.15, 0.07])[phenotype]
    risk = np.exp(
        0.035 * (age - 75)
        + 0.40 * ckd
        + 0.20 * (phenotype == HFREF)
        + 0.20 * comorbidity["copd"]
        + 0.25 * comorbidity["anaemia"]
        + 0.10 * comorbidity["diabetes"]
    )
    risk = risk / risk.mean()
    return Patients(
        n=n,
        male=male,
        birth_day=birth_day,
        index_day=index_day,
        age_index=age,
        phenotype=phenotype,
        comorbidity=comorbidity,
        lvef=lvef,
        egfr=egfr,
        hb=hb,
        ntprobnp=ntprobnp,
        potassium=potassium,
        sodium=sodium,
        weight=weight,
        height=height,
        sbp=sbp,
        af_permanent=af_permanent,
        lbbb=lbbb,
        risk=risk,
        death_day=np.full(n, -1, dtype=np.int64),
        in_hospital_death=np.zeros(n, dtype=np.bool_),
    )


def _nyha_admission(rng: np.random.Generator, reason: IntArray) -> IntArray:
    hf = rng.choice(np.array([2, 3, 4]), size=reason.shape[0], p=[0.10, 0.50, 0.40])
    other = rng.choice(np.array([2, 3, 4]), size=reason.shape[0], p=[0.45, 0.45, 0.10])
    return np.asarray(np.where(reason == REASON_HF, hf, other), dtype=np.int64)


def simulate_cohort(rng: np.random.Generator, n: int, params: CohortParams) -> Cohort:
    """Simulate ``n`` patients with heart failure and all their encounters.

    Parameters
    ----------
    rng : numpy.random.Generator
        The random source (the only one; the same seed gives the same cohort).
    n : int
        Number of patients.
    params : CohortParams
        The hospital's case mix.

    Returns
    -------
    Cohort
        Patients and encounters, encounters sorted by patient and start time.
    """
    pts = _patients(rng, n, params)
    index_day = pts.index_day
    daily_hazard = -np.log(1.0 - params.annual_mortality) / 365.25
    chunks: list[dict[str, IntArray]] = []
    day = index_day.copy()
    active = np.arange(n)
    for k in range(MAX_ADMISSIONS):
        if active.size == 0:
            break
        m = active.size
        adm_day = day[active]
        risk = pts.risk[active]
        reason = np.full(m, REASON_HF, dtype=np.int64)
        if k > 0:
            reason = rng.choice(len(REASONS), size=m, p=[0.72, 0.10, 0.07, 0.07, 0.04])
            reason = np.where(
                (reason == REASON_AF) & ~pts.comorbidity["af"][active], REASON_HF, reason
            )
            reason = np.where(
                (reason == REASON_COPD) & ~pts.comorbidity["copd"][active], REASON_HF, reason
            )
        nyha_in = _nyha_admission(rng, reason)
        los = np.clip(
            np.round(rng.lognormal(np.log(params.los_median), 0.55, m) + 0.8 * (nyha_in == 4)),
            1,
            60,
        ).astype(np.int64)
        p_die = params.in_hospital_mortality * risk * (1.0 + 0.6 * (nyha_in == 4)) * 1.08**k
        died = rng.random(m) < np.clip(p_die, 0, 0.5)
        dis_day = adm_day + los
        source = rng.choice(4, size=m, p=[0.72, 0.10, 0.12, 0.06])
        destination = np.where(
            died,
            DISCHARGE_DEATH,
            rng.choice(np.array([0, 2, 3]), size=m, p=[0.86, 0.05, 0.09]),
        )
        improve = rng.choice(np.array([0, 1, 2]), size=m, p=[0.15, 0.60, 0.25])
        nyha_out = np.where(died, 4, np.clip(nyha_in - improve, 1, 4))
        start = minutes_in_window(rng, adm_day, 8, 20)
        end = minutes_in_window(rng, dis_day, 11, 19)
        chunks.append(
            {
                "patient": active,
                "kind": np.full(m, INPATIENT, dtype=np.int64),
                "start": start,
                "end": end,
                "number": np.full(m, k, dtype=np.int64),
                "reason": reason.astype(np.int64),
                "admit_source": source.astype(np.int64),
                "discharge": destination.astype(np.int64),
                "died": died.astype(np.int64),
                "nyha_in": nyha_in,
                "nyha_out": nyha_out.astype(np.int64),
            }
        )
        pts.death_day[active[died]] = dis_day[died]
        pts.in_hospital_death[active[died]] = True

        # After discharge: competing times to death and to the next admission.
        alive = active[~died]
        d0 = dis_day[~died]
        r = pts.risk[alive]
        m2 = alive.size
        t_death = rng.exponential(1.0 / (daily_hazard * r * 1.1**k), m2)
        early = rng.random(m2) < params.readmission_30d * np.sqrt(r)
        t_late = rng.exponential(params.readmission_mean_days / np.sqrt(r) / 1.1**k, m2) + 2
        t_readmit = np.where(early, rng.uniform(2, 30, m2), t_late)
        readmit_day = d0 + np.ceil(t_readmit).astype(np.int64)
        death_day = d0 + np.ceil(t_death).astype(np.int64)
        readmitted = (t_readmit < t_death) & (readmit_day <= FOLLOW_UP_END)
        dies = ~readmitted & (death_day <= FOLLOW_UP_END)
        pts.death_day[alive[dies]] = death_day[dies]
        next_event = np.where(readmitted, readmit_day, np.where(dies, death_day, FOLLOW_UP_END + 1))
        # Outpatient visits: one 2-8 weeks after discharge, another about six months later.
        for v, (lo, hi, p) in enumerate(((14, 57, params.follow_up_visit), (150, 220, 0.55))):
            visit_day = d0 + rng.integers(lo, hi, size=m2)
            has = (rng.random(m2) < p) & (visit_day < next_event) & (visit_day <= FOLLOW_UP_END)
            idx = np.flatnonzero(has)
            vstart = minutes_in_window(rng, visit_day[idx], 9, 14)
            nyha_c = np.clip(nyha_out[~died][idx] + rng.choice([-1, 0, 0, 0, 1], idx.size), 1, 4)
            chunks.append(
                {
                    "patient": alive[idx],
                    "kind": np.full(idx.size, OUTPATIENT, dtype=np.int64),
                    "start": vstart,
                    "end": vstart + rng.integers(15, 40, size=idx.size),
                    "number": np.full(idx.size, v, dtype=np.int64),
                    "reason": np.full(idx.size, REASON_HF, dtype=np.int64),
                    "admit_source": np.full(idx.size, -1, dtype=np.int64),
                    "discharge": np.full(idx.size, -1, dtype=np.int64),
                    "died": np.zeros(idx.size, dtype=np.int64),
                    "nyha_in": nyha_c.astype(np.int64),
                    "nyha_out": nyha_c.astype(np.int64),
                }
            )
        day[alive[readmitted]] = readmit_day[readmitted]
        active = alive[readmitted]

    cols = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
    order = np.lexsort((cols["start"], cols["patient"]))
    enc = Encounters(
        patient=cols["patient"][order],
        kind=cols["kind"][order],
        start=cols["start"][order],
        end=cols["end"][order],
        number=cols["number"][order],
        reason=cols["reason"][order],
        admit_source=cols["admit_source"][order],
        discharge=cols["discharge"][order],
        died=cols["died"][order].astype(np.bool_),
        nyha_in=cols["nyha_in"][order],
        nyha_out=cols["nyha_out"][order],
    )
    return Cohort(patients=pts, encounters=enc)

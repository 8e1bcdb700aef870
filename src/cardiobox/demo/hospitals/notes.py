"""Clinical notes in the hospital's language: discharge summaries and clinic letters.

Each note is assembled from the hospital's phrase book (``data/<name>/notes.yaml``) with the
facts of its encounter: symptoms (present, negated or not mentioned), NYHA class, LVEF,
vital signs, laboratory values in the hospital's units, ECG and treatment. What each note
says is also returned as a truth table, so that NLP can be scored against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cardiobox.demo.hospitals import textio
from cardiobox.demo.hospitals.clinical import (
    ADMISSION,
    CREA,
    DRUG_KEYS,
    DRUGS,
    NTP,
    VISIT,
    Table,
)
from cardiobox.demo.hospitals.cohort import (
    COMORBIDITIES,
    INPATIENT,
    MINUTES_PER_DAY,
    PHENOTYPES,
    REASON_AF,
    REASON_COPD,
    REASON_MI,
    REASONS,
    Cohort,
    FloatArray,
    IntArray,
)
from cardiobox.demo.hospitals.profile import Profile

#: Findings a note may state as present or absent, and their probabilities
#: (present, negated) in discharge summaries and in clinic letters; the rest of the time
#: the note does not mention them.
FINDINGS = ("orthopnoea", "pnd", "oedema", "chest_pain", "fever", "palpitations", "crackles")
_P_DISCHARGE = {
    "orthopnoea": (0.55, 0.30),
    "pnd": (0.20, 0.10),
    "oedema": (0.65, 0.30),
    "chest_pain": (0.03, 0.60),
    "fever": (0.02, 0.50),
    "palpitations": (0.03, 0.20),
    "crackles": (0.70, 0.25),
}
_P_VISIT = {
    "orthopnoea": (0.10, 0.50),
    "pnd": (0.03, 0.20),
    "oedema": (0.25, 0.65),
    "chest_pain": (0.02, 0.30),
    "fever": (0.0, 0.05),
    "palpitations": (0.05, 0.20),
    "crackles": (0.10, 0.60),
}
PRESENT, NEGATED, UNMENTIONED = 1, 0, -1


@dataclass
class Notes:
    """The notes (one per encounter) and what each says."""

    table: Table
    text: list[str]
    truth: dict[str, NDArray[Any]]


def _first_per_encounter(
    n_enc: int, encounter: IntArray, values: NDArray[Any], where: NDArray[np.bool_] | None = None
) -> FloatArray:
    """The first value of each encounter (rows are in time order), NaN where none."""
    out = np.full(n_enc, np.nan)
    sel = np.ones(encounter.size, np.bool_) if where is None else where
    e = encounter[sel][::-1]
    out[e] = np.asarray(values, dtype=np.float64)[sel][::-1]  # the first write wins last
    return out


def _last_known(patient: IntArray, values: FloatArray) -> FloatArray:
    """Carry each patient's last non-NaN value forward (rows sorted by patient and time)."""
    n = values.size
    valid = ~np.isnan(values)
    last = np.maximum.accumulate(np.where(valid, np.arange(n), -1))
    ok = (last >= 0) & (patient[np.maximum(last, 0)] == patient)
    return np.where(ok, values[np.maximum(last, 0)], np.nan)


def _states(rng: np.random.Generator, p_present: FloatArray, p_negated: FloatArray) -> IntArray:
    u = rng.random(p_present.size)
    return np.where(
        u < p_present, PRESENT, np.where(u < p_present + p_negated, NEGATED, UNMENTIONED)
    ).astype(np.int64)


class _Picker:
    """Chooses phrase variants with pre-drawn random numbers (one stream per note)."""

    __slots__ = ("draws", "i")

    def __init__(self, draws: list[int]):
        self.draws = draws
        self.i = 0

    def __call__(self, options: str | list[str]) -> str:
        if isinstance(options, str):
            return options
        k = self.draws[self.i % len(self.draws)]
        self.i += 1
        return options[k % len(options)]


def build_notes(
    rng: np.random.Generator,
    cohort: Cohort,
    profile: Profile,
    phrases: dict[str, Any],
    tables: dict[str, Table],
) -> Notes:
    """Write one note per encounter: a discharge summary per stay, a letter per visit.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.
    cohort : Cohort
        The cohort.
    profile : Profile
        The hospital (units and decimal separator of the values quoted in notes).
    phrases : dict
        The hospital's phrase book.
    tables : dict
        The clean canonical tables (``labs``, ``vitals``, ``echo``, ``ecg``,
        ``medications``).

    Returns
    -------
    notes : Notes
        The notes' text, their encounters and times, and what each says.
    """
    pts, enc = cohort.patients, cohort.encounters
    n = len(enc)
    vit, lab, ech, ecg_t, med = (
        tables["vitals"],
        tables["labs"],
        tables["echo"],
        tables["ecg"],
        tables["medications"],
    )
    first_vitals = np.isin(vit["moment"], [ADMISSION, VISIT])
    v = {
        c: _first_per_encounter(n, vit["encounter"], vit[c], first_vitals)
        for c in ("sbp", "dbp", "hr", "spo2", "weight")
    }
    w_out = _first_per_encounter(n, vit["encounter"], vit["weight"], ~first_vitals)
    first_draw = np.isin(lab["moment"], [ADMISSION, VISIT])
    ntp = _first_per_encounter(
        n, lab["encounter"], lab["value"], first_draw & (lab["analyte"] == NTP)
    )
    crea = _first_per_encounter(
        n, lab["encounter"], lab["value"], first_draw & (lab["analyte"] == CREA)
    )
    lvef_here = _first_per_encounter(n, ech["encounter"], ech["lvef"])
    lvef_known = _last_known(enc.patient, lvef_here)
    ecg_af = _first_per_encounter(n, ecg_t["encounter"], ecg_t["af"])
    ecg_hr = _first_per_encounter(n, ecg_t["encounter"], ecg_t["hr"])
    ecg_qrs = _first_per_encounter(n, ecg_t["encounter"], ecg_t["qrs"])
    ecg_lbbb = _first_per_encounter(n, ecg_t["encounter"], ecg_t["lbbb"])
    meds_start = np.searchsorted(med["encounter"], np.arange(n), side="left")
    meds_end = np.searchsorted(med["encounter"], np.arange(n), side="right")

    inpatient = enc.kind == INPATIENT
    p = enc.patient
    probs = {
        f: (
            np.where(inpatient, _P_DISCHARGE[f][0], _P_VISIT[f][0]).astype(np.float64),
            np.where(inpatient, _P_DISCHARGE[f][1], _P_VISIT[f][1]).astype(np.float64),
        )
        for f in FINDINGS
    }
    af_now = ecg_af == 1
    probs["chest_pain"] = (
        np.where(inpatient & (enc.reason == REASON_MI), 1.0, probs["chest_pain"][0]),
        probs["chest_pain"][1],
    )
    probs["fever"] = (
        np.where(inpatient & (enc.reason == REASON_COPD), 0.3, probs["fever"][0]),
        probs["fever"][1],
    )
    probs["palpitations"] = (
        np.where(af_now | (enc.reason == REASON_AF), 0.4, probs["palpitations"][0]),
        probs["palpitations"][1],
    )
    state = {f: _states(rng, *probs[f]) for f in FINDINGS}
    pillows = rng.integers(2, 4, size=n)
    draws = rng.integers(0, 1 << 30, size=(n, 48))

    dec = profile.csv.decimal
    ntp_t = profile.labs["nt_probnp"]
    crea_t = profile.labs["creatinine"]
    ph = phrases
    note_time = np.where(
        inpatient,
        np.where(enc.died, enc.end, enc.end - np.int64(30)),
        enc.start + np.int64(30),
    )
    # Everything the loop reads, as Python lists and pre-printed text (fast to index).
    age = ((enc.start // MINUTES_PER_DAY - pts.birth_day[p]) / 365.25).astype(np.int64)
    history = _histories(pts.comorbidity, ph)
    weight_loss = np.where(np.isnan(w_out), 2.0, np.maximum(v["weight"] - w_out, 0.5))
    text_of = {
        "weight": textio.numbers(v["weight"], 1, dec).to_pylist(),
        "loss": textio.numbers(weight_loss, 1, dec).to_pylist(),
        "ntp": textio.numbers(ntp * ntp_t.factor, ntp_t.decimals, dec).to_pylist(),
        "crea": textio.numbers(crea * crea_t.factor, crea_t.decimals, dec).to_pylist(),
        "death": textio.times(enc.end, profile.formats.date).to_pylist(),
    }
    drug_text = _drug_texts(med, profile, bool(ph.get("lower_drugs")))
    ints = {
        k: np.nan_to_num(a, nan=-1).astype(np.int64).tolist()
        for k, a in {
            "sbp": v["sbp"],
            "dbp": v["dbp"],
            "hr": v["hr"],
            "spo2": v["spo2"],
            "lvef_here": lvef_here,
            "lvef_known": lvef_known,
            "ecg_af": ecg_af,
            "ecg_hr": ecg_hr,
            "ecg_qrs": ecg_qrs,
            "ecg_lbbb": ecg_lbbb,
        }.items()
    }
    has_labs = (~np.isnan(ntp) & ~np.isnan(crea)).tolist()
    states = {f: state[f].tolist() for f in FINDINGS}
    facts = {
        "inpatient": inpatient.tolist(),
        "died": enc.died.tolist(),
        "reason": enc.reason.tolist(),
        "male": pts.male[p].tolist(),
        "phenotype": pts.phenotype[p].tolist(),
        "patient": p.tolist(),
        "age": age.tolist(),
        "nyha_in": enc.nyha_in.tolist(),
        "nyha_out": enc.nyha_out.tolist(),
        "pillows": pillows.tolist(),
        "meds_start": meds_start.tolist(),
        "meds_end": meds_end.tolist(),
    }
    texts = [
        _compose(
            ph,
            _Picker(draws[i].tolist()),
            inpatient=facts["inpatient"][i],
            died=facts["died"][i],
            reason=REASONS[facts["reason"][i]],
            male=facts["male"][i],
            age=facts["age"][i],
            phenotype=PHENOTYPES[facts["phenotype"][i]],
            history=history[facts["patient"][i]],
            nyha_in=facts["nyha_in"][i],
            nyha_out=facts["nyha_out"][i],
            states={f: states[f][i] for f in FINDINGS},
            pillows=facts["pillows"][i],
            ints={k: a[i] for k, a in ints.items()},
            texts={k: a[i] for k, a in text_of.items()},
            lab_units=(ntp_t.unit, crea_t.unit),
            has_labs=has_labs[i],
            drugs=drug_text[facts["meds_start"][i] : facts["meds_end"][i]],
        )
        for i in range(n)
    ]

    truth: dict[str, NDArray[Any]] = {
        "encounter": np.arange(n),
        "kind": np.where(inpatient, "discharge", "visit"),
        "nyha": enc.nyha_in,
        "nyha_discharge": np.where(inpatient & ~enc.died, enc.nyha_out, -1),
        "lvef": np.where(np.isnan(lvef_here), lvef_known, lvef_here),
        "lvef_measured_here": ~np.isnan(lvef_here),
        "dyspnoea": np.where(inpatient | (enc.nyha_in > 1), PRESENT, NEGATED),
        **{f: state[f] for f in FINDINGS},
        "rhythm": np.where(np.isnan(ecg_hr), "", np.where(ecg_af == 1, "af", "sinus")),
    }
    table: Table = {
        "patient": p,
        "encounter": np.arange(n),
        "time": note_time,
        "type": (~inpatient).astype(np.int64),
    }
    return Notes(table=table, text=texts, truth=truth)


def _histories(comorbidity: dict[str, NDArray[np.bool_]], ph: dict[str, Any]) -> list[str]:
    """Each patient's list of comorbidities, in words ("HTA, EPOC y anemia")."""
    n = next(iter(comorbidity.values())).size
    items: list[list[str]] = [[] for _ in range(n)]
    for c in COMORBIDITIES:
        for i in np.flatnonzero(comorbidity[c]).tolist():
            items[i].append(ph["comorbidities"][c])
    out = []
    for it in items:
        if len(it) > 1:
            out.append(ph["list_sep"].join(it[:-1]) + ph["list_and"] + it[-1])
        else:
            out.append(it[0] if it else ph["no_history"])
    return out


def _drug_texts(med: Table, profile: Profile, lower: bool) -> list[str]:
    """Each prescription in words: "furosemide 40 mg 1dd1"."""
    names = [profile.drug_names[k].lower() if lower else profile.drug_names[k] for k in DRUG_KEYS]
    per_day = [profile.codes.frequency[DRUGS[k].per_day] for k in DRUG_KEYS]
    dose = textio.numbers(med["dose"], 3, profile.csv.decimal).to_pylist()
    out = []
    for d, text in zip(med["drug"].tolist(), dose, strict=True):
        out.append(names[d] if text is None else f"{names[d]} {text} mg {per_day[d]}")
    return out


def _compose(
    ph: dict[str, Any],
    pick: _Picker,
    *,
    inpatient: bool,
    died: bool,
    reason: str,
    male: bool,
    age: int,
    phenotype: str,
    history: str,
    nyha_in: int,
    nyha_out: int,
    states: dict[str, int],
    pillows: int,
    ints: dict[str, int],
    texts: dict[str, str | None],
    lab_units: tuple[str, str],
    has_labs: bool,
    drugs: list[str],
) -> str:
    """One note's text from its facts and the phrase book."""
    roman = ("I", "II", "III", "IV")
    values = {
        "sex": ph["sex"]["male" if male else "female"],
        "age": str(age),
        "phenotype": pick(ph["phenotype"][phenotype]),
        "nyha_text": pick(ph["nyha_text"]).format(nyha=roman[nyha_in - 1]),
        "history": history,
    }
    section = ph["discharge"] if inpatient else ph["visit"]
    lines = [pick(section["title"])]
    if inpatient:
        values["reason"] = pick(section["reasons"][reason])
        lines.append(pick(section["reason"]).format(**values))
        lines.append(pick(section["history"]).format(**values))
    values["dyspnoea"] = pick(ph["dyspnoea"][nyha_in])
    story = [pick(section["presentation"]).format(**values)]
    if not inpatient:
        story.append(pick(section["symptoms"][1 if nyha_in == 1 else 2]).format(**values))
    for f in FINDINGS[:-1]:  # crackles belong to the examination
        s = states[f]
        if s != UNMENTIONED:
            options = ph["findings"][f]["present" if s == PRESENT else "absent"]
            story.append(pick(options).format(pillows=pillows))
    lines.append(" ".join(story))
    if ints["sbp"] >= 0:
        exam = pick(section["exam"]).format(
            sbp=ints["sbp"],
            dbp=ints["dbp"],
            hr=ints["hr"],
            spo2=ints["spo2"],
            weight=texts["weight"],
        )
        s = states["crackles"]
        if s != UNMENTIONED:
            exam += " " + pick(ph["findings"]["crackles"]["present" if s == PRESENT else "absent"])
        lines.append(exam)
    if has_labs:
        lines.append(
            pick(section["labs"]).format(
                ntprobnp=texts["ntp"],
                ntprobnp_unit=lab_units[0],
                creatinine=texts["crea"],
                creatinine_unit=lab_units[1],
            )
        )
    lvef = ints["lvef_here"]
    if lvef >= 0:
        band = (
            "severe"
            if lvef <= 30
            else "moderate"
            if lvef <= 40
            else "mild"
            if lvef < 50
            else "normal"
        )
        lines.append(pick(ph["echo"]).format(lvef=lvef, lvef_text=pick(ph["lvef_text"][band])))
    elif ints["lvef_known"] >= 0:
        lines.append(pick(ph["echo_known"]).format(lvef=ints["lvef_known"]))
    if ints["ecg_hr"] >= 0:
        lines.append(
            pick(ph["ecg"]).format(
                rhythm=ph["rhythm"]["af" if ints["ecg_af"] == 1 else "sinus"],
                hr=ints["ecg_hr"],
                qrs=ints["ecg_qrs"],
                lbbb=ph["lbbb"] if ints["ecg_lbbb"] == 1 else "",
            )
        )
    if not inpatient:
        lines.append(pick(section["plan"]))
        return "\n".join(lines)
    if died:
        lines.append(pick(section["death"]).format(death_date=texts["death"]))
    else:
        lines.append(pick(section["course"]).format(weight_loss=texts["loss"]))
    lines.append(pick(section["diagnosis"]).format(**values))
    if not died:
        if drugs:
            lines.append(pick(section["treatment"]).format(drugs=", ".join(drugs)))
        out_text = pick(ph["nyha_text"]).format(nyha=roman[nyha_out - 1])
        lines.append(pick(section["nyha_out"]).format(nyha_text=out_text))
    return "\n".join(lines)

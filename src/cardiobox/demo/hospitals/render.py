"""Render the canonical cohort as one hospital's extract: its columns, codes, units, formats.

Each ``render_*`` function returns the table as text columns (in the hospital's column
order) and, for the tables that carry dirt, what was planted where.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from cardiobox.demo.hospitals import textio
from cardiobox.demo.hospitals.clinical import (
    DIAGNOSES,
    DRUG_KEYS,
    DRUGS,
    DX_KEYS,
    LAB_ANALYTES,
    SNOMED_FALLBACK,
    Table,
)
from cardiobox.demo.hospitals.cohort import (
    INPATIENT,
    MINUTES_PER_DAY,
    Cohort,
    IntArray,
    minutes_in_window,
)
from cardiobox.demo.hospitals.dirt import DirtRates, Planted, record, with_duplicates
from cardiobox.demo.hospitals.notes import Notes
from cardiobox.demo.hospitals.profile import Profile
from cardiobox.demo.hospitals.textio import TextTable

#: How an impossible laboratory value is made from a real one (in any unit): a lost decimal
#: point (x10, x100) or a lost sign. Each lands outside the dictionary's plausible range
#: for every value the generator produces.
IMPOSSIBLE_LAB: dict[str, float] = {
    "nt_probnp": -1.0,
    "creatinine": 100.0,
    "egfr": 100.0,
    "potassium": 10.0,
    "sodium": 10.0,
    "hemoglobin": 10.0,
}


@dataclass
class Rendered:
    """One table of the extract as text, with the dirt planted in it (if any)."""

    columns: TextTable
    dirt: dict[str, dict[str, Any]]
    base_rows: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Ids:
    """Local identifiers of patients and encounters (numbers; printed with the profile)."""

    patient: IntArray
    encounter: IntArray


def make_ids(rng: np.random.Generator, cohort: Cohort, profile: Profile) -> Ids:
    """Random unique patient numbers; encounter numbers that grow with time."""
    n = cohort.patients.n
    pw = profile.ids.patient.width
    low = 10 ** (pw - 1)
    patient = rng.choice(9 * low, size=n, replace=False).astype(np.int64) + low
    enc = cohort.encounters
    order = np.argsort(enc.start, kind="stable")
    gaps = rng.integers(1, 40, size=len(enc))
    ew = profile.ids.encounter.width
    numbers = 10 ** (ew - 1) + int(rng.integers(0, 10 ** (ew - 2))) + np.cumsum(gaps)
    encounter = np.empty(len(enc), dtype=np.int64)
    encounter[order] = numbers
    return Ids(patient=patient, encounter=encounter)


class Renderer:
    """Renders every table of one hospital from the same cohort, ids and random stream."""

    def __init__(
        self,
        rng: np.random.Generator,
        cohort: Cohort,
        profile: Profile,
        ids: Ids,
        rates: DirtRates,
    ):
        self.rng = rng
        self.cohort = cohort
        self.profile = profile
        self.ids = ids
        self.rates = rates

    # -- small helpers -------------------------------------------------------------------
    def pid(self, patient: IntArray) -> pa.Array:
        """Local patient identifiers of patient indexes."""
        s = self.profile.ids.patient
        return textio.identifiers(self.ids.patient[patient], s.prefix, s.width)

    def eid(self, encounter: IntArray) -> pa.Array:
        """Local encounter identifiers of encounter indexes."""
        s = self.profile.ids.encounter
        return textio.identifiers(self.ids.encounter[encounter], s.prefix, s.width)

    def _dt(self, minutes: IntArray, missing: NDArray[np.bool_] | None = None) -> pa.Array:
        return textio.times(minutes, self.profile.formats.datetime, missing)

    def _date(self, minutes: IntArray, missing: NDArray[np.bool_] | None = None) -> pa.Array:
        return textio.times(minutes, self.profile.formats.date, missing)

    def _num(self, values: NDArray[Any], decimals: int) -> pa.Array:
        return textio.numbers(values, decimals, self.profile.csv.decimal)

    def _named(self, table: str, columns: dict[str, pa.Array]) -> TextTable:
        """Columns by role -> columns by the hospital's names, in the profile's order."""
        names = self.profile.tables[table].columns
        return {names[role]: columns[role] for role in names}

    def _broken_datetimes(self, minutes: IntArray) -> list[str]:
        """Date-times that do not exist (30 February, month 13) in the hospital's format."""
        fmt = self.profile.formats.datetime
        out = []
        days = (minutes // MINUTES_PER_DAY).astype("datetime64[D]")
        years = days.astype("datetime64[Y]").astype(np.int64) + 1970
        hours = (minutes % MINUTES_PER_DAY) // 60
        mins = minutes % 60
        for i in range(minutes.size):
            month, day = (2, 30) if i % 2 == 0 else (13, 14)
            text = (
                fmt.replace("%Y", f"{years[i]:04d}")
                .replace("%m", f"{month:02d}")
                .replace("%d", f"{day:02d}")
                .replace("%H", f"{hours[i]:02d}")
                .replace("%M", f"{mins[i]:02d}")
                .replace("%S", "00")
            )
            out.append(text)
        return out

    # -- tables --------------------------------------------------------------------------
    def patients(self) -> Rendered:
        """One row per patient, ordered by the local patient number."""
        pts = self.cohort.patients
        order = np.argsort(self.ids.patient)
        codes = self.profile.codes
        death = pts.death_day[order]
        cols = {
            "patient": self.pid(order),
            "sex": textio.labels(
                [codes.sex["female"], codes.sex["male"]], pts.male[order].astype(np.int64)
            ),
            "birth_date": self._date(pts.birth_day[order] * MINUTES_PER_DAY),
            "death_date": self._date(np.maximum(death, 0) * MINUTES_PER_DAY, death < 0),
        }
        return Rendered(self._named("patients", cols), {}, pts.n)

    def encounters(self) -> Rendered:
        """One row per stay or visit, ordered by the encounter number (by time)."""
        enc = self.cohort.encounters
        order = np.argsort(self.ids.encounter)
        codes = self.profile.codes
        inpatient = enc.kind[order] == INPATIENT
        cols = {
            "encounter": self.eid(order),
            "patient": self.pid(enc.patient[order]),
            "kind": textio.labels(
                [codes.kind["inpatient"], codes.kind["outpatient"]], enc.kind[order]
            ),
            "start": self._dt(enc.start[order]),
            "end": self._dt(enc.end[order]),
            "admit_source": textio.labels(codes.admit_source, enc.admit_source[order]),
            "discharge": textio.labels(codes.discharge, enc.discharge[order]),
            "department": textio.labels(
                [codes.department["inpatient"], codes.department["outpatient"]],
                (~inpatient).astype(np.int64),
            ),
        }
        return Rendered(self._named("encounters", cols), {}, len(enc))

    def diagnoses(self, dx: Table) -> Rendered:
        """Coded diagnoses of the stays, in the hospital's code system."""
        prof = self.profile
        keys = list(DX_KEYS)
        if prof.diagnosis_coding == "snomed":
            keys = [SNOMED_FALLBACK.get(k, k) for k in keys]
            codes = [DIAGNOSES[k][1] for k in keys]
        elif prof.diagnosis_coding == "icd10_no_dots":
            codes = [DIAGNOSES[k][0].replace(".", "") for k in keys]
        else:
            codes = [DIAGNOSES[k][0] for k in keys]
        names = [prof.diagnosis_names[k] for k in keys]
        order = np.lexsort((dx["position"], self.ids.encounter[dx["encounter"]]))
        d = {c: v[order] for c, v in dx.items()}
        if prof.codes.position == "number":
            position = pc.cast(pa.array(d["position"]), pa.string())
        else:
            flag = prof.codes.main_flag or {}
            position = textio.labels(
                [flag["main"], flag["other"]], (d["position"] > 1).astype(np.int64)
            )
        cols = {
            "encounter": self.eid(d["encounter"]),
            "patient": self.pid(d["patient"]),
            "position": position,
            "code": textio.labels(codes, d["dx"]),
            "description": textio.labels(names, d["dx"]),
            "date": self._date(d["time"]),
        }
        return Rendered(self._named("diagnoses", cols), {}, int(order.size))

    def labs(self, labs: Table) -> Rendered:
        """Laboratory results in long format, with all five kinds of dirt."""
        rng, prof, rates = self.rng, self.profile, self.rates
        n = labs["value"].size
        analyte = labs["analyte"]
        tests = [prof.labs[a] for a in LAB_ANALYTES]
        factor = np.array([t.factor for t in tests])[analyte]
        value = labs["value"] * factor
        decimals = np.array([t.decimals for t in tests])[analyte]
        code = analyte.copy()
        time = labs["time"].copy()
        patient = labs["patient"]
        planted = Planted.for_rows(n)

        bad = planted.pick(rng, "impossible_value", rates.impossible_value)
        for a, name in enumerate(LAB_ANALYTES):
            sel = bad[analyte[bad] == a]
            value[sel] = value[sel] * IMPOSSIBLE_LAB[name]

        unknown = planted.pick(rng, "unknown_code", rates.unknown_code)
        which = rng.integers(0, len(prof.unknown_labs), size=unknown.size)
        code[unknown] = len(tests) + which
        for j, t in enumerate(prof.unknown_labs):
            sel = unknown[which == j]
            low, high = float(t.low or 0), float(t.high or 1)
            value[sel] = rng.uniform(low, high, size=sel.size)
            decimals[sel] = t.decimals

        dead = self.cohort.patients.death_day[patient] >= 0
        late = planted.pick(rng, "event_after_death", rates.event_after_death, eligible=dead)
        after = self.cohort.patients.death_day[patient[late]] + rng.integers(7, 121, late.size)
        time[late] = minutes_in_window(rng, after, 8, 11)

        broken = planted.pick(rng, "unparsable_date", rates.unparsable_date)
        dups = planted.pick(rng, "duplicate_row", rates.duplicate_row)

        # Result numbers grow with the (clean) time of the result.
        rs = prof.ids.result
        by_time = np.argsort(labs["time"], kind="stable")
        result = np.empty(n, dtype=np.int64)
        result[by_time] = 10 ** (rs.width - 1) + np.cumsum(rng.integers(1, 6, size=n))

        all_tests = [*tests, *prof.unknown_labs]
        value_text = _scatter(
            n,
            [
                (idx, self._num(value[idx], int(d)))
                for d in np.unique(decimals)
                for idx in [np.flatnonzero(decimals == d)]
            ],
        )
        time_text = self._dt(time)
        if broken.size:
            keep = np.setdiff1d(np.arange(n), broken)
            nonsense = pa.array(self._broken_datetimes(time[broken]), type=pa.string())
            time_text = _scatter(n, [(keep, time_text.take(pa.array(keep))), (broken, nonsense)])
        order, final_position = with_duplicates(n, dups)
        take = pa.array(order)
        cols = {
            "result": textio.identifiers(result, rs.prefix, rs.width).take(take),
            "patient": self.pid(patient).take(take),
            "encounter": self.eid(labs["encounter"]).take(take),
            "time": time_text.take(take),
            "code": textio.labels([t.code for t in all_tests], code).take(take),
            "name": textio.labels([t.name for t in all_tests], code).take(take),
            "value": value_text.take(take),
            "unit": textio.labels([t.unit for t in all_tests], code).take(take),
        }
        return Rendered(self._named("labs", cols), record(planted, final_position), n)

    def vitals(self, vit: Table) -> Rendered:
        """Vital signs, one row per time of measurement; impossible values and duplicates."""
        rng, rates = self.rng, self.rates
        n = vit["sbp"].size
        values = {c: vit[c].astype(np.float64).copy() for c in ("sbp", "spo2")}
        planted = Planted.for_rows(n)
        bad = planted.pick(rng, "impossible_value", rates.impossible_value)
        column = rng.integers(0, 2, size=bad.size)
        values["sbp"][bad[column == 0]] *= 10  # 135 mmHg typed as 1350
        values["spo2"][bad[column == 1]] *= 10  # 96 % typed as 960
        dups = planted.pick(rng, "duplicate_row", rates.duplicate_row)
        order, final_position = with_duplicates(n, dups)
        take = pa.array(order)
        cols = {
            "patient": self.pid(vit["patient"]),
            "encounter": self.eid(vit["encounter"]),
            "time": self._dt(vit["time"]),
            "sbp": self._num(values["sbp"], 0),
            "dbp": self._num(vit["dbp"], 0),
            "hr": self._num(vit["hr"], 0),
            "spo2": self._num(values["spo2"], 0),
            "temp": self._num(vit["temp"], 1),
            "weight": self._num(vit["weight"], 1),
            "height": self._num(vit["height"], 0),
        }
        cols = {k: v.take(take) for k, v in cols.items()}
        return Rendered(self._named("vitals", cols), record(planted, final_position), n)

    def echo(self, ech: Table) -> Rendered:
        """Echocardiograms; LVEF above 100 % as impossible values."""
        n = ech["lvef"].size
        lvef = ech["lvef"].astype(np.float64).copy()
        planted = Planted.for_rows(n)
        bad = planted.pick(self.rng, "impossible_value", self.rates.impossible_value)
        lvef[bad] += 100  # 35 % typed as 135
        lvedd = self.profile.lvedd
        cols = {
            "patient": self.pid(ech["patient"]),
            "encounter": self.eid(ech["encounter"]),
            "time": self._dt(ech["time"]),
            "lvef": self._num(lvef, 0),
            "lvedd": self._num(ech["lvedd"] * lvedd.factor, lvedd.decimals),
            "tapse": self._num(ech["tapse"], 0),
            "lavi": self._num(ech["lavi"], 0),
        }
        return Rendered(self._named("echo", cols), record(planted, np.arange(n)), n)

    def ecg(self, ecg: Table) -> Rendered:
        """Resting ECGs."""
        codes = self.profile.codes
        cols = {
            "patient": self.pid(ecg["patient"]),
            "encounter": self.eid(ecg["encounter"]),
            "time": self._dt(ecg["time"]),
            "rhythm": textio.labels(
                [codes.rhythm["sinus"], codes.rhythm["af"]], ecg["af"].astype(np.int64)
            ),
            "hr": self._num(ecg["hr"], 0),
            "pr": self._num(ecg["pr"], 0),
            "qrs": self._num(ecg["qrs"], 0),
            "qtc": self._num(ecg["qtc"], 0),
            "lbbb": textio.labels(
                [codes.yes_no["no"], codes.yes_no["yes"]], ecg["lbbb"].astype(np.int64)
            ),
        }
        return Rendered(self._named("ecg", cols), {}, int(ecg["hr"].size))

    def nyha(self, ny: Table) -> Rendered:
        """NYHA class assessments."""
        codes = self.profile.codes
        cols = {
            "patient": self.pid(ny["patient"]),
            "encounter": self.eid(ny["encounter"]),
            "time": self._dt(ny["time"]),
            "moment": textio.labels(codes.moment, ny["moment"]),
            "nyha": textio.labels(codes.nyha, ny["nyha"] - 1),
        }
        return Rendered(self._named("nyha", cols), {}, int(ny["nyha"].size))

    def medications(self, med: Table) -> Rendered:
        """Discharge prescriptions (ATC or local product codes)."""
        prof = self.profile
        if prof.medication_coding == "local":
            codes = [prof.drug_codes[k] for k in DRUG_KEYS]
        else:
            codes = [DRUGS[k].atc for k in DRUG_KEYS]
        names = [prof.drug_names[k] for k in DRUG_KEYS]
        per_day = np.array([DRUGS[k].per_day for k in DRUG_KEYS])[med["drug"]]
        freq_labels = [prof.codes.frequency[1], prof.codes.frequency[2]]
        no_dose = np.isnan(med["dose"])
        n = int(med["drug"].size)
        cols = {
            "patient": self.pid(med["patient"]),
            "encounter": self.eid(med["encounter"]),
            "start": self._date(med["time"]),
            "end": pa.nulls(n, type=pa.string()),
            "code": textio.labels(codes, med["drug"]),
            "name": textio.labels(names, med["drug"]),
            "dose": self._num(med["dose"], 3),
            "dose_unit": textio.labels([prof.codes.dose_unit], np.where(no_dose, -1, 0)),
            "frequency": textio.labels(freq_labels, per_day - 1),
        }
        return Rendered(self._named("medications", cols), {}, n)

    def notes(self, notes: Notes) -> Rendered:
        """Clinical notes, one per encounter, ordered by note number (by time)."""
        t = notes.table
        order = np.lexsort((self.ids.encounter[t["encounter"]], t["time"]))
        ns = self.profile.ids.note
        number = 10 ** (ns.width - 1) + np.cumsum(self.rng.integers(1, 4, size=order.size))
        codes = self.profile.codes
        take = pa.array(order)
        cols = {
            "note": textio.identifiers(number, ns.prefix, ns.width),
            "patient": self.pid(t["patient"]).take(take),
            "encounter": self.eid(t["encounter"]).take(take),
            "time": self._dt(t["time"]).take(take),
            "type": textio.labels(
                [codes.note_type["discharge"], codes.note_type["visit"]], t["type"]
            ).take(take),
            "text": pa.array(notes.text, type=pa.string()).take(take),
        }
        numbers = np.empty(order.size, dtype=np.int64)
        numbers[order] = number
        return Rendered(self._named("notes", cols), {}, int(order.size), {"numbers": numbers})


def _scatter(n: int, parts: list[tuple[NDArray[np.int64], pa.Array]]) -> pa.Array:
    """Assemble a string array of length ``n`` from (positions, values) parts."""
    positions = np.concatenate([p for p, _ in parts])
    values = pa.concat_arrays([pc.cast(v, pa.string()) for _, v in parts])
    inverse = np.empty(n, dtype=np.int64)
    inverse[positions] = np.arange(positions.size)
    return values.take(pa.array(inverse))

"""Outcomes at a horizon: the event flag and the time to the event or to censoring.

Follow-up of a row ends at the site's follow-up end (``follow_up_end``, or else the latest
dated record in the store, kept in ``c_extent``). Within the horizon after the origin:

* the event happened → ``1`` and the days to it;
* it did not, and the patient was followed to the horizon, or died of something else first
  (a competing event) → ``0`` and the days to the horizon (or to that death);
* follow-up ended first → ``NULL`` (unknown) and the days followed.

Days count calendar days between the dates (the origin's day is day 0).
"""

from __future__ import annotations

from cardiobox.cohort.definition import Outcome, offset_sql
from cardiobox.duck import sql_str

INPATIENT = "IMP"


def outcome_sql(o: Outcome) -> tuple[str, str, str]:
    """(event SQL, days SQL, description) over the aggregated row ``a``."""
    origin = "a.index_time" if o.origin == "index" else "coalesce(a.stay_end, a.index_time)"
    end = offset_sql(origin, o.horizon)
    censor = (
        f"DATE {sql_str(o.follow_up_end)}"
        if o.follow_up_end
        else "(SELECT max(last_day) FROM c_extent)"
    )
    day0 = f"{origin}::DATE"
    horizon_days = f"date_diff('day', {day0}, {end}::DATE)"
    death_in = f"(a.death_date >= {day0} AND a.death_date <= {end}::DATE)"
    death_days = f"date_diff('day', {day0}, a.death_date)"
    # A death recorded after the censoring date shows the patient alive until then: a death
    # after the horizon makes the event 0, and the days must reach the horizon too (greatest()
    # skips a NULL death date).
    followed = f"greatest(date_diff('day', {day0}, {censor}), {death_days})"
    if o.outcome == "death":
        event = (
            f"CASE WHEN {death_in} THEN 1 WHEN {censor} >= {end}::DATE THEN 0 "
            f"WHEN a.death_date > {end}::DATE THEN 0 END"
        )
        days = f"CASE WHEN {death_in} THEN {death_days} ELSE least({horizon_days}, {followed}) END"
        desc = f"death within {o.horizon} of the {o.origin.replace('_', ' ')}"
    elif o.outcome == "cv_death":
        cv = "a._cv_death"
        event = (
            f"CASE WHEN {death_in} AND {cv} THEN 1 WHEN {death_in} AND NOT {cv} THEN 0 "
            f"WHEN {death_in} THEN NULL WHEN {censor} >= {end}::DATE THEN 0 "
            f"WHEN a.death_date > {end}::DATE THEN 0 END"
        )
        days = f"CASE WHEN {death_in} THEN {death_days} ELSE least({horizon_days}, {followed}) END"
        desc = (
            f"cardiovascular death (underlying cause I00–I99) within {o.horizon} of the "
            f"{o.origin.replace('_', ' ')}"
        )
    else:
        dx = (
            " AND EXISTS (SELECT 1 FROM c_facts d WHERE d.encounter_id = e.encounter_id "
            f"AND d.variable = {sql_str(o.diagnosis)} AND d.is_primary)"
            if o.diagnosis
            else ""
        )
        nxt = (
            f"(SELECT min(e.start) FROM c_encounters e WHERE e.patient_id = a.patient_id "
            f"AND e.class = '{INPATIENT}' AND e.start > {origin} "
            f"AND e.encounter_id IS DISTINCT FROM a.encounter_id{dx})"
        )
        hit = f"({nxt} <= {end})"
        event = (
            f"CASE WHEN {hit} THEN 1 WHEN {death_in} THEN 0 WHEN {censor} >= {end}::DATE THEN 0 "
            f"WHEN a.death_date > {end}::DATE THEN 0 END"
        )
        days = (
            f"CASE WHEN {hit} THEN date_diff('day', {day0}, {nxt}::DATE) WHEN {death_in} "
            f"THEN {death_days} ELSE least({horizon_days}, {followed}) END"
        )
        what = (
            f"readmission with a primary {o.diagnosis} diagnosis"
            if o.diagnosis
            else "inpatient readmission"
        )
        desc = f"{what} within {o.horizon} of the {o.origin.replace('_', ' ')}"
    return event, days, desc

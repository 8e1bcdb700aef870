"""Compile a mapping's blocks into DuckDB SQL that builds FHIR R5 resources from ``_src``.

Each block instance becomes one ``SELECT`` over ``_src`` yielding, per row, the resource's JSON
text, its id, a *shape* key (equal for resources of equal JSON structure), and the list of
problems found in the row's values (an unparsable number or date, a code missing from its
concept map, a unit that cannot be converted). Everything is set-based: look-ups go through
tables of the distinct source values, never through a Python loop per row.

JSON is assembled by string concatenation (:mod:`cardiobox.ingest.jsonsql`), which skips
absent members, so an absent value leaves no key behind (FHIR forbids ``null`` and empty
objects).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import duckdb

from cardiobox.cdm import Variable, load_dictionary
from cardiobox.cdm.codes import PRIMARY_DIAGNOSIS_EXT, canonical_system
from cardiobox.cdm.profile import observation_rule_paths
from cardiobox.duck import temp_table
from cardiobox.errors import InputError
from cardiobox.ingest import jsonsql, units
from cardiobox.ingest.concept_maps import LoadedMap, lookup_key_sql
from cardiobox.ingest.jsonsql import Text, cat, jstr, member, obj, value, when
from cardiobox.ingest.mapping import Block, BlockFields, Mapping, Value
from cardiobox.store.facts import OBSERVATION_PATHS as FACT_PATHS
from cardiobox.store.validate import WHITESPACE

UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
COND_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
COND_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBS_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_JSON_NUMBER = r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?"
_TIME_DIRECTIVES = re.compile(r"%[HIMSpfTRXc]")


def lit(value: Any) -> str:
    """A SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def coding(system_sql: str, code_sql: str, display_sql: str = "NULL") -> Text:
    """A Coding JSON object (NULL when there is no code)."""
    # Inside the test of the code, the code member is always there: it anchors the commas.
    system_present = (
        None if jsonsql.literal_text(system_sql) is not None else f"{system_sql} IS NOT NULL"
    )
    display_present = (
        None if jsonsql.literal_text(display_sql) is not None else f"{display_sql} IS NOT NULL"
    )
    return when(
        obj(
            member("system", jstr(system_sql), system_present),
            member("code", jstr(code_sql, present=True)),
            member("display", jstr(display_sql), display_present),
        ),
        None if jsonsql.literal_text(code_sql) is not None else f"{code_sql} IS NOT NULL",
    )


def concept(system_sql: str, code_sql: str, display_sql: str = "NULL") -> Text:
    """A CodeableConcept JSON object with one coding (NULL when there is no code)."""
    return cat(
        jsonsql.text('{"coding":['), coding(system_sql, code_sql, display_sql), jsonsql.text("]}")
    )


def listed(item: Text) -> Text:
    """A JSON array of one item (NULL when the item is)."""
    return cat(jsonsql.text("["), item, jsonsql.text("]"))


#: The row's patient pseudonym, as the instance queries name it.
PSEUDO = "s.__pid"
#: The id member of a resource whose id is an md5 (``__rid__``): never NULL.
_ID = member("id", jsonsql.always("to_json(__rid__)"))


@dataclass
class Problem:
    """A check on one value: when ``bad_sql`` is true the row is quarantined."""

    bad_sql: str
    rule: str
    column: str
    message_sql: str
    value_sql: str


def code_format_problem(raw: str, column: str) -> Problem:
    """Check that a code taken from the source is a valid FHIR code.

    No whitespace at the ends, single spaces inside; codes from concept maps are checked when
    the map is loaded.
    """
    return Problem(
        f"{raw} IS NOT NULL AND NOT regexp_full_match({raw}, '[^{WHITESPACE}]+( [^{WHITESPACE}]+)*')",
        "invalid-code",
        column,
        f"format('{{}} is not a valid code (no spaces at the ends, single spaces inside)', "
        f"to_json({raw}))",
        raw,
    )


@dataclass
class Compiled:
    """A compiled value."""

    raw: str  # the source text (NULL when absent)
    sql: str  # the typed result
    problems: list[Problem] = field(default_factory=list)
    system: str | None = None  # for codes
    display: str | None = None  # for codes
    variable: str | None = None  # for codes looked up in a concept map
    #: for decimals: the source text when it is already a JSON number (kept as written)
    json_number: str | None = None


@dataclass
class Lookup:
    """A concept-map look-up of the distinct values of one expression (``_lk<n>``)."""

    alias: str
    table: str
    expr: str
    loaded: LoadedMap


class BlockCompiler:
    """Compiles the blocks of one mapping; collects the look-up tables they need."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        mapping: Mapping,
        maps: dict[str, LoadedMap],
        source_columns: list[str],
    ):
        self.con = con
        self.mapping = mapping
        self.maps = maps
        self.columns = source_columns
        self.dictionary = load_dictionary()
        self.lookups: list[Lookup] = []
        self.decimal = mapping.source.decimal
        #: local-encounter expressions whose pseudonyms are needed (``_eid``), by first use
        self.encounter_exprs: dict[str, int] = {}
        # Per instance: the joins its SQL needs, and its (variable, unit) conversions.
        self.joins: list[str] = []
        self.conversions: list[tuple[str, str]] = []
        # Expressions over the source row alone, computed once per row into ``_srcx``
        # (level by level: raw text, then parsed values, then texts built from those).
        self.derived: dict[str, tuple[int, str]] = {}
        #: Per Observation instance: the SQL of each value that the fact tables and the data
        #: model's rules read (:data:`cardiobox.store.facts.OBSERVATION_PATHS`,
        #: :func:`cardiobox.cdm.profile.observation_rule_paths`), as ``json_extract_string``
        #: would find it in the built text ('' for an element the rules only test for
        #: presence); the store then need not parse the text. A path left out is absent.
        self.fact_values: dict[str, str] = {}

    # -- values ----------------------------------------------------------------------------
    def x(self, sql: str, level: int) -> str:
        """Register ``sql`` as a column of ``_srcx``, computed once per row.

        ``sql`` reads the source row and columns of lower levels; the return value is the
        reference to use instead of the expression.
        """
        if sql not in self.derived:
            self.derived[sql] = (level, f"__x{len(self.derived)}")
        return f's."{self.derived[sql][1]}"'

    def materialise(self) -> None:
        """Create ``_srcx``: ``_src`` plus every registered expression, level by level.

        A view of nested projections, not a table: the query building the resources computes
        each expression once per row as it reads it, and the look-ups of distinct values
        compute only the columns they read.
        """
        query = "SELECT * FROM _src"
        for level in sorted({level for level, _ in self.derived.values()}):
            cols = ", ".join(
                f'{sql} AS "{alias}"' for sql, (lv, alias) in self.derived.items() if lv == level
            )
            query = f"SELECT s.*, {cols} FROM ({query}) s"
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW _srcx AS {query}")

    def raw(self, v: Value) -> str:
        """SQL text of a value before typing (NULL when absent)."""
        if v.const is not None:
            return lit(str(v.const).lower() if isinstance(v.const, bool) else str(v.const))
        return self.x(f"NULLIF(trim(CAST(({v.expr}) AS VARCHAR)), '')", 1)

    def dotted(self, text_sql: str) -> str:
        """A number's text with the source's decimal comma turned into a point."""
        return f"replace({text_sql}, ',', '.')" if self.decimal == "," else text_sql

    def label(self, v: Value) -> str:
        """How a value is named in messages (its expression)."""
        return str(v.expr) if v.expr is not None else f"const {v.const!r}"

    def join(self, clause: str) -> None:
        """Add a join to the current instance (once)."""
        if clause not in self.joins:
            self.joins.append(clause)

    def lookup(self, v: Value) -> Lookup:
        """Register (once) the look-up of ``v`` through its concept map, and join it."""
        assert v.map is not None
        found = next(
            (lk for lk in self.lookups if lk.expr == self.raw(v) and lk.loaded.name == v.map), None
        )
        if found is None:
            n = len(self.lookups)
            found = Lookup(f"lk{n}", f"_lk{n}", self.raw(v), self.maps[v.map])
            self.lookups.append(found)
        self.join(f"LEFT JOIN {found.table} {found.alias} ON {found.alias}.val = {found.expr}")
        return found

    def encounter_id(self, raw: str) -> str:
        """SQL of the pseudonym of a local encounter id (joined from ``_eid``)."""
        # Aliases follow first use, so they never change once a join refers to them.
        alias = f"e{self.encounter_exprs.setdefault(raw, len(self.encounter_exprs))}"
        self.join(f"LEFT JOIN _eid {alias} ON {alias}.local = {raw}")
        return f"{alias}.pseudo"

    def build_lookups(self) -> None:
        """Create the look-up tables: distinct source value → mapped code (longest prefix)."""
        for lk in self.lookups:
            key = lookup_key_sql(lk.loaded, "val")
            cond = (
                f"starts_with({key}, m.local_code)"
                if lk.loaded.match == "prefix"
                else f"m.local_code = {key}"
            )
            self.con.execute(
                f"""CREATE OR REPLACE TEMP TABLE {lk.table} AS
                SELECT val, arg_max(m.system, length(m.local_code)) AS system,
                    arg_max(m.code, length(m.local_code)) AS code,
                    arg_max(m.display, length(m.local_code)) AS display,
                    arg_max(m.variable, length(m.local_code)) AS variable
                FROM (SELECT DISTINCT {lk.expr} AS val FROM _srcx s)
                JOIN {lk.loaded.table} m ON {cond}
                WHERE val IS NOT NULL GROUP BY val"""
            )

    def compile(self, v: Value, kind: str = "text") -> Compiled:
        """Compile a value for a use.

        ``kind`` is ``text``, ``code``, ``decimal``, ``integer``, ``boolean``, ``date`` or
        ``datetime``; an explicit ``type`` on the value wins.
        """
        raw = self.raw(v)
        col = self.label(v)
        c = Compiled(raw=raw, sql=raw)
        if v.map:
            lk = self.lookup(v)
            c.sql = f"{lk.alias}.code"
            c.system = f"{lk.alias}.system"
            c.display = f"{lk.alias}.display"
            c.variable = f"{lk.alias}.variable"
            c.problems.append(
                Problem(
                    f"{raw} IS NOT NULL AND {lk.alias}.code IS NULL",
                    "unknown-code",
                    col,
                    f"format('{{}} is not in concept map {v.map}', to_json({raw}))",
                    raw,
                )
            )
            return c
        if v.system:
            c.system = lit(canonical_system(v.system))
            c.problems.append(code_format_problem(raw, col))
            return c
        vtype = v.type or (kind if kind in ("decimal", "integer", "boolean") else None)
        if vtype == "decimal":
            c.sql = self.x(f"try_cast({self.dotted(raw)} AS DOUBLE)", 2)
            dotted = self.dotted(raw)
            c.json_number = self.x(
                f"CASE WHEN regexp_full_match({dotted}, '{_JSON_NUMBER}') THEN {dotted} END", 2
            )
            c.problems.append(
                Problem(
                    f"{raw} IS NOT NULL AND ({c.sql} IS NULL OR NOT isfinite({c.sql}))",
                    "not-a-number",
                    col,
                    f"format('{{}} is not a number', to_json({raw}))",
                    raw,
                )
            )
        elif vtype == "integer":
            # "3" and "3.0" are whole numbers; "3.5" is not.
            as_double = f"try_cast({self.dotted(raw)} AS DOUBLE)"
            c.sql = self.x(
                f"CASE WHEN {as_double} = trunc({as_double}) THEN {as_double}::BIGINT END", 2
            )
            c.problems.append(
                Problem(
                    f"{raw} IS NOT NULL AND {c.sql} IS NULL",
                    "not-an-integer",
                    col,
                    f"format('{{}} is not a whole number', to_json({raw}))",
                    raw,
                )
            )
        elif vtype == "boolean":
            low = f"lower({raw})"
            c.sql = self.x(
                f"CASE WHEN {low} IN ('1', '1.0', 'true', 't', 'yes', 'y', 'si', 'sí', 'ja', 'j') "
                f"THEN true WHEN {low} IN ('0', '0.0', 'false', 'f', 'no', 'n', 'nee', 'nej') "
                "THEN false END",
                2,
            )
            c.problems.append(
                Problem(
                    f"{raw} IS NOT NULL AND ({c.sql}) IS NULL",
                    "not-a-boolean",
                    col,
                    f"format('{{}} is not true/false (1/0, yes/no)', to_json({raw}))",
                    raw,
                )
            )
        elif kind in ("date", "datetime"):
            self._date(v, c, kind)
        return c

    def _date(self, v: Value, c: Compiled, kind: str) -> None:
        fmt = v.format or self.mapping.date_format
        tz = v.timezone or self.mapping.timezone
        raw, col = c.raw, self.label(v)
        if fmt is None:
            ts = self.x(f"try_cast({raw} AS TIMESTAMP)", 2)
            has_time = f"(length({raw}) > 10)"
            shown = "ISO 8601"
        else:
            ts = self.x(f"try_strptime({raw}, {lit(fmt)})", 2)
            has_time = "true" if _TIME_DIRECTIVES.search(fmt) else "false"
            shown = fmt
        # The offset of the local time zone at that moment (summer time included).
        offset = self.x(f"(epoch({ts}) - epoch(timezone({lit(tz)}, {ts})))::BIGINT", 3)
        tz_text = (
            f"CASE WHEN {offset} = 0 THEN 'Z' ELSE "
            f"(CASE WHEN {offset} < 0 THEN '-' ELSE '+' END) || "
            f"lpad((abs({offset}) // 3600)::VARCHAR, 2, '0') || ':' || "
            f"lpad(((abs({offset}) % 3600) // 60)::VARCHAR, 2, '0') END"
        )
        date_text = f"strftime({ts}, '%Y-%m-%d')"
        dt_text = f"strftime({ts}, '%Y-%m-%dT%H:%M:%S') || {tz_text}"
        if kind == "datetime":
            c.sql = self.x(
                f"CASE WHEN {ts} IS NULL THEN NULL WHEN {has_time} THEN {dt_text} ELSE {date_text} END",
                4,
            )
        else:
            c.sql = self.x(f"CASE WHEN {ts} IS NOT NULL THEN {date_text} END", 4)
        c.problems.append(
            Problem(
                f"{raw} IS NOT NULL AND {ts} IS NULL",
                "unparsable-date",
                col,
                f"format('{{}} is not a date in the format {shown}', to_json({raw}))",
                raw,
            )
        )
        self._tz_known(tz)

    def _tz_known(self, tz: str) -> None:
        try:
            self.con.execute(f"SELECT timezone({lit(tz)}, TIMESTAMP '2000-01-01')").fetchall()
        except duckdb.Error as exc:
            raise InputError(
                f"unknown time zone {tz!r} (use an IANA name such as Europe/Madrid)",
                rule="mapping-schema",
            ) from exc

    # -- blocks ----------------------------------------------------------------------------
    def instance_sql(
        self, block: Block, suffix: str, f: BlockFields, patient: Compiled, row_key: str
    ) -> tuple[str, list[tuple[str, str]], list[str]]:
        """The SELECT making one block instance's resources from ``_srcx``.

        Returns the SQL (its joins included), the (variable, unit) pairs whose conversions it
        needs, and its joins (to find those pairs in the data).
        """
        inst = f"{block.id}#{suffix}" if suffix else block.id
        self.joins = []
        self.conversions = []
        self.fact_values = {}
        builder = getattr(self, "_build_" + re.sub(r"(?<!^)(?=[A-Z])", "_", block.type).lower())
        doc, main, problems, rid, shape_bits = builder(f, patient, inst)
        if block.type not in ("Patient", "Encounter"):
            # The patient is part of every id: equal rows of two patients are two resources.
            key = self.raw(f.key) if f.key else row_key
            # Computed once, below the query that uses it twice (id and rid).
            inner_rid = (
                f", md5({lit(self.mapping.name + '|' + inst + '|')} || coalesce(p.pseudo, '') "
                f"|| chr(31) || {key}) AS __rid"
            )
            rid = "s.__rid"
        else:
            inner_rid = ""
        conds = [f"({main}) IS NOT NULL"]
        if f.when:
            conds.append(f"coalesce(({f.when}), false)")
        problems = [*patient.problems, *problems]
        # NULL when the row's values are fine (the common case costs one test).
        errs = (
            f"CASE WHEN {' OR '.join(f'({p.bad_sql})' for p in problems)} THEN list_filter(["
            + ", ".join(
                f"CASE WHEN {p.bad_sql} THEN {{'rule': {lit(p.rule)}, 'column': {lit(p.column)}, "
                f"'message': {p.message_sql}}} END"
                for p in problems
            )
            + "], lambda e: e IS NOT NULL) END"
            if problems
            else 'NULL::STRUCT(rule VARCHAR, "column" VARCHAR, message VARCHAR)[]'
        )
        shape = " || ".join(
            [lit(inst), *(f"CASE WHEN {b} THEN '1' ELSE '0' END" for b in shape_bits)]
        )
        joins = " ".join(self.joins)
        sql = (
            f"SELECT s._row, {lit(inst)} AS inst, {lit(block.type)} AS rt, {rid} AS __rid, "
            f"{str(doc).replace('__rid__', rid)} AS doc, {errs} AS errs, {shape} AS shape, "
            f"{PSEUDO} AS patient, {self._given_x(FACT_PATHS)} AS facts_x, "
            f"{self._given_x(observation_rule_paths())} AS profile_x "
            f"FROM (SELECT s.*, p.pseudo AS __pid{inner_rid} FROM _srcx s "
            f"LEFT JOIN _pid p ON p.local = {patient.raw}) s {joins} "
            f"WHERE {' AND '.join(conds)}"
        )
        return sql, list(self.conversions), list(self.joins)

    def _coding_facts(self, element: str, system_sql: str | None, code_sql: str) -> None:
        """Record the one coding of ``element`` (as :func:`concept` builds it)."""
        # The concept and its coding are there when the code is; the system when that is
        # not NULL too.
        self.fact_values[element] = f"CASE WHEN ({code_sql}) IS NOT NULL THEN '' END"
        self.fact_values[f"{element}.coding[0].code"] = code_sql
        self.fact_values[f"{element}.coding[0].system"] = (
            f"CASE WHEN ({code_sql}) IS NOT NULL THEN {system_sql or 'NULL'} END"
        )

    def _given_x(self, paths: tuple[str, ...]) -> str:
        """The list of an Observation's values at ``paths`` (NULL for other types)."""
        if not self.fact_values:
            return "NULL::VARCHAR[]"
        items = ", ".join(f"CAST({self.fact_values.get(p, 'NULL')} AS VARCHAR)" for p in paths)
        return f"[{items}]"

    def _subject(self) -> Text:
        ref = cat(jsonsql.text('{"reference":"Patient/'), value(PSEUDO, PSEUDO), jsonsql.text('"}'))
        return member("subject", ref, f"{PSEUDO} IS NOT NULL")

    def _encounter_ref(
        self, f: BlockFields, facts: bool = False
    ) -> tuple[Text, list[Problem], list[str]]:
        if f.encounter is None:
            return jsonsql.NULL, [], []
        c = self.compile(f.encounter)
        pseudo = self.encounter_id(c.raw)
        if facts:
            self.fact_values["$.encounter.reference"] = (
                f"CASE WHEN {c.raw} IS NOT NULL THEN 'Encounter/' || {pseudo} END"
            )
        ref = cat(
            jsonsql.text('{"reference":"Encounter/'), value(pseudo, pseudo), jsonsql.text('"}')
        )
        m = member("encounter", ref, f"{c.raw} IS NOT NULL")
        return m, c.problems, [f"{c.raw} IS NOT NULL"]

    def _build_patient(self, f: BlockFields, patient: Compiled, inst: str) -> tuple[Any, ...]:
        members = [
            member("resourceType", "'\"Patient\"'", "true"),
            member("id", value(f"to_json({PSEUDO})", PSEUDO)),
        ]
        problems: list[Problem] = []
        bits: list[str] = []
        if f.gender is not None:
            g = self.compile(f.gender, "code")
            problems += g.problems
            problems.append(
                Problem(
                    f"{g.sql} IS NOT NULL AND {g.sql} NOT IN ('male', 'female', 'other', 'unknown')",
                    "invalid-code",
                    self.label(f.gender),
                    f"format('gender must be male, female, other or unknown, found {{}}', to_json({g.sql}))",
                    g.raw,
                )
            )
            members.append(member("gender", jstr(g.sql)))
            bits.append(f"{g.sql} IS NOT NULL")
        for key, val, kind in (
            ("birthDate", f.birth_date, "date"),
            ("deceasedDateTime", f.deceased, "datetime"),
        ):
            if val is not None:
                d = self.compile(val, kind)
                problems += d.problems
                members.append(member(key, jstr(d.sql)))
                bits.append(f"{d.sql} IS NOT NULL")
        return obj(*members), PSEUDO, problems, PSEUDO, bits

    def _build_encounter(self, f: BlockFields, patient: Compiled, inst: str) -> tuple[Any, ...]:
        if f.encounter is None:
            raise InputError(
                f"block {inst}: an Encounter block needs 'encounter' (its local id)",
                rule="mapping-schema",
            )
        enc = self.compile(f.encounter)
        eid = self.encounter_id(enc.raw)
        problems = list(enc.problems)
        bits: list[str] = []
        period: list[Text] = []
        for key, val in (("start", f.start), ("end", f.end)):
            if val is not None:
                d = self.compile(val, "datetime")
                problems += d.problems
                period.append(member(key, jstr(d.sql)))
                bits.append(f"{d.sql} IS NOT NULL")
        end_sql = self.compile(f.end, "datetime").sql if f.end is not None else "NULL"
        cls: Text = jsonsql.NULL
        if f.class_ is not None:
            c = self.compile(f.class_, "code")
            problems += c.problems
            system = c.system or lit(ACT_CODE)
            cls = when(listed(concept(system, c.sql, c.display or "NULL")), f"{c.sql} IS NOT NULL")
            bits.append(f"{c.sql} IS NOT NULL")
        admission = []
        for key, val in (
            ("admitSource", f.admit_source),
            ("dischargeDisposition", f.discharge_disposition),
        ):
            if val is not None:
                c = self.compile(val, "code")
                problems += c.problems
                admission.append(
                    member(key, concept(c.system or "NULL", c.sql, c.display or "NULL"))
                )
                bits.append(f"{c.sql} IS NOT NULL")
        members = [
            member("resourceType", "'\"Encounter\"'", "true"),
            member("id", value(f"to_json({eid})", eid)),
            member(
                "status",
                jsonsql.always(
                    f"CASE WHEN {end_sql} IS NOT NULL THEN '\"completed\"' ELSE '\"unknown\"' END"
                ),
            ),
            member("class", cls),
            self._subject(),
            member("actualPeriod", obj(*period) if period else "NULL"),
            member("admission", obj(*admission) if admission else "NULL"),
        ]
        return obj(*members), enc.raw, problems, eid, bits

    def _observation_value(
        self,
        f: BlockFields,
        var_sql: str | None,
        v: Variable | None,
        problems: list[Problem],
        bits: list[str],
    ) -> list[Text]:
        """value[x] members of an Observation."""
        if f.value is None:
            return []
        vt = v.value_type if v is not None else "quantity"
        if vt == "quantity" or var_sql is not None:
            val = self.compile(f.value, "decimal")
            problems += val.problems
            if f.unit is None:
                raise InputError(
                    f"an Observation of {v.id if v else 'a mapped code'} is a quantity and needs 'unit'",
                    rule="mapping-schema",
                )
            u = self.compile(f.unit)
            variable = lit(v.id) if v is not None else var_sql
            assert variable is not None
            conv = "cv"
            self.join(
                f"LEFT JOIN _conv cv ON cv.variable IS NOT DISTINCT FROM {variable} "
                f"AND cv.unit IS NOT DISTINCT FROM {u.raw}"
            )
            self.conversions.append((variable, u.raw))
            # Unconverted numbers keep their text (1.50 stays 1.50).
            text = val.json_number or (
                f"CASE WHEN regexp_full_match({self.dotted(val.raw)}, '{_JSON_NUMBER}') "
                f"THEN {self.dotted(val.raw)} END"
            )
            number = (
                f"CASE WHEN {conv}.factor = 1 AND {conv}.offset = 0 "
                f"AND {text} IS NOT NULL THEN {text} "
                f"ELSE CAST(round({val.sql} * {conv}.factor + {conv}.offset, 6) AS VARCHAR) END"
            )
            problems.append(
                Problem(
                    f"{val.raw} IS NOT NULL AND {conv}.error IS NOT NULL",
                    "unit-conversion",
                    self.label(f.unit),
                    f"{conv}.error",
                    u.raw,
                )
            )
            unit_json = jstr(f"{conv}.target")
            # value, then unit, system and code together (all absent without a unit); the
            # number is there when the conversion's factor and offset are (the value is).
            quantity = cat(
                jsonsql.text('{"value":'),
                when(value(number, f"{conv}.factor"), f"{conv}.offset IS NOT NULL"),
                jsonsql.optional(
                    cat(
                        jsonsql.text(',"unit":'),
                        unit_json,
                        jsonsql.text(f',"system":"{UCUM}","code":'),
                        unit_json,
                    )
                ),
                jsonsql.text("}"),
            )
            unit_code = f"{conv}.target"
            bits.append(f"{unit_code} IS NOT NULL")
            # The value is there when the member and the conversion are; the unit and its
            # code when the value and the target unit are.
            present = (
                f"{val.sql} IS NOT NULL AND {conv}.factor IS NOT NULL AND {conv}.offset IS NOT NULL"
            )
            self.fact_values["$.valueQuantity.value"] = f"CASE WHEN {present} THEN {number} END"
            self.fact_values["$.valueQuantity"] = f"CASE WHEN {present} THEN '' END"
            for key in ("$.valueQuantity.unit", "$.valueQuantity.code"):
                self.fact_values[key] = f"CASE WHEN {present} THEN {unit_code} END"
            return [member("valueQuantity", quantity, f"{val.sql} IS NOT NULL")]
        if vt == "code":
            c = self.compile(f.value, "code")
            problems += c.problems
            if c.system is None:
                # No concept map: the value must be an answer's code or ordinal.
                assert v is not None
                cases = " ".join(
                    f"WHEN {c.raw} IN ({lit(a.code)}{', ' + lit(str(a.value)) if a.value is not None else ''}) "
                    f"THEN {lit(a.system + '|' + a.code + '|' + a.display.get('en', a.code))}"
                    for a in v.answers
                )
                picked = f"(CASE {cases} END)" if cases else "NULL"
                problems.append(
                    Problem(
                        f"{c.raw} IS NOT NULL AND {picked} IS NULL",
                        "invalid-code",
                        self.label(f.value),
                        f"format('{{}} is not an answer of {v.id} (use a concept map)', to_json({c.raw}))",
                        c.raw,
                    )
                )
                parts = f"string_split({picked}, '|')"
                self._coding_facts("$.valueCodeableConcept", f"{parts}[1]", f"{parts}[2]")
                return [
                    member(
                        "valueCodeableConcept", concept(f"{parts}[1]", f"{parts}[2]", f"{parts}[3]")
                    )
                ]
            self._coding_facts("$.valueCodeableConcept", c.system, c.sql)
            return [member("valueCodeableConcept", concept(c.system, c.sql, c.display or "NULL"))]
        if vt == "boolean":
            b = self.compile(f.value, "boolean")
            problems += b.problems
            boolean = f"CASE WHEN {b.sql} THEN 'true' WHEN NOT {b.sql} THEN 'false' END"
            self.fact_values["$.valueBoolean"] = boolean
            return [member("valueBoolean", boolean)]
        if vt in ("integer", "decimal"):
            num = self.compile(f.value, vt)
            problems += num.problems
            key = "valueInteger" if vt == "integer" else "valueQuantity"
            text = f"CAST({num.sql} AS VARCHAR)"
            wrapped = text if vt == "integer" else "'{\"value\":' || " + text + " || '}'"
            self.fact_values["$.valueInteger" if vt == "integer" else "$.valueQuantity.value"] = (
                text
            )
            if vt == "decimal":
                self.fact_values["$.valueQuantity"] = f"CASE WHEN {text} IS NOT NULL THEN '' END"
            return [member(key, wrapped)]
        s = self.compile(f.value)
        self.fact_values["$.valueString"] = s.sql
        return [member("valueString", jstr(s.sql))]

    def _build_observation(self, f: BlockFields, patient: Compiled, inst: str) -> tuple[Any, ...]:
        problems: list[Problem] = []
        bits: list[str] = []
        v: Variable | None = None
        var_sql: str | None = None
        if f.variable is not None:
            if f.variable not in self.dictionary:
                raise InputError(
                    f"block {inst}: unknown data-model variable {f.variable!r}",
                    rule="unknown-variable",
                )
            v = self.dictionary[f.variable]
            cs = v.codes[0]
            code_json = concept(lit(cs.system), lit(cs.codes[0]), lit(v.name("en")))
            self._coding_facts("$.code", lit(cs.system), lit(cs.codes[0]))
            category = v.observation_category or "exam"
            cat_json = listed(concept(lit(OBS_CATEGORY), lit(category)))
            main = "true"
        elif f.code is not None:
            c = self.compile(f.code, "code")
            problems += c.problems
            if c.system is None:
                raise InputError(
                    f"block {inst}: 'code' needs a concept map or a system", rule="mapping-schema"
                )
            code_json = concept(c.system, c.sql, c.display or "NULL")
            self._coding_facts("$.code", c.system, c.sql)
            if c.variable is None:
                self.join(
                    f"LEFT JOIN _dictcodes dc ON dc.system = {c.system} AND dc.code = {c.sql}"
                )
                var_sql = "dc.variable"
            else:
                var_sql = c.variable
            self.join(f"LEFT JOIN _vars vr ON vr.variable = {var_sql}")
            cat_json = listed(concept(lit(OBS_CATEGORY), "vr.category"))
            main = c.raw
        else:
            raise InputError(
                f"block {inst}: an Observation needs 'variable' or 'code'", rule="mapping-schema"
            )
        value_members = self._observation_value(f, var_sql, v, problems, bits)
        if f.value is not None:
            main = (
                self.raw(f.value)
                if main == "true"
                else f"CASE WHEN {self.raw(f.value)} IS NOT NULL THEN {main} END"
            )
        eff = "NULL"
        if f.effective is not None:
            d = self.compile(f.effective, "datetime")
            problems += d.problems
            eff = d.sql
            bits.append(f"{d.sql} IS NOT NULL")
            self.fact_values["$.effectiveDateTime"] = eff
        self.fact_values["$.subject"] = f"CASE WHEN {PSEUDO} IS NOT NULL THEN '' END"
        self.fact_values["$.subject.reference"] = f"'Patient/' || {PSEUDO}"
        enc, enc_problems, enc_bits = self._encounter_ref(f, facts=True)
        problems += enc_problems
        bits += enc_bits
        interp: Text = jsonsql.NULL
        if f.interpretation is not None:
            c = self.compile(f.interpretation, "code")
            problems += c.problems
            interp = listed(
                concept(c.system or lit(OBS_INTERPRETATION), c.sql, c.display or "NULL")
            )
            bits.append(f"{c.sql} IS NOT NULL")
        members: list[Text] = [
            member("resourceType", "'\"Observation\"'", "true"),
            _ID,
            member("status", "'\"final\"'", "true"),
            member("category", cat_json),
            member("code", code_json, "true"),
            self._subject(),
            enc,
            member("effectiveDateTime", jstr(eff)),
            *value_members,
            member("interpretation", interp),
        ]
        return obj(*members), main, problems, "NULL", bits

    def _code_block(self, f: BlockFields, value: Value | None, inst: str, what: str) -> Compiled:
        if value is None:
            raise InputError(
                f"block {inst}: a {what} block needs '{'medication' if what.startswith('Medication') else 'code'}'",
                rule="mapping-schema",
            )
        c = self.compile(value, "code")
        if c.system is None:
            raise InputError(
                f"block {inst}: the code needs a concept map ('map') or a 'system'",
                rule="mapping-schema",
            )
        return c

    def _build_condition(self, f: BlockFields, patient: Compiled, inst: str) -> tuple[Any, ...]:
        c = self._code_block(f, f.code, inst, "Condition")
        problems = list(c.problems)
        bits: list[str] = []
        enc, enc_problems, enc_bits = self._encounter_ref(f)
        problems += enc_problems
        bits += enc_bits
        dates = []
        for key, val in (("onsetDateTime", f.onset), ("recordedDate", f.recorded)):
            if val is not None:
                d = self.compile(val, "datetime")
                problems += d.problems
                dates.append(member(key, jstr(d.sql)))
                bits.append(f"{d.sql} IS NOT NULL")
        cat_default = "'encounter-diagnosis'" if f.encounter is not None else "'problem-list-item'"
        cat = self.compile(f.category, "code").sql if f.category is not None else cat_default
        clin = (
            self.compile(f.clinical_status, "code").sql
            if f.clinical_status is not None
            else "'active'"
        )
        ver = (
            self.compile(f.verification_status, "code").sql
            if f.verification_status is not None
            else "'confirmed'"
        )
        ext = "NULL"
        if f.primary is not None:
            pb = self.compile(f.primary, "boolean")
            problems += pb.problems
            ext = (
                f'CASE WHEN {pb.sql} IS NOT NULL THEN \'[{{"url":"{PRIMARY_DIAGNOSIS_EXT}","valueBoolean":\' || '
                f"CASE WHEN {pb.sql} THEN 'true' ELSE 'false' END || '}}]' END"
            )
            bits.append(f"{pb.sql} IS NOT NULL")
        members = [
            member("resourceType", "'\"Condition\"'", "true"),
            _ID,
            member("extension", ext),
            member("clinicalStatus", concept(lit(COND_CLINICAL), clin), "true"),
            member("verificationStatus", concept(lit(COND_VERIFICATION), ver), "true"),
            member("category", listed(concept(lit(COND_CATEGORY), cat)), "true"),
            member("code", concept(c.system or "NULL", c.sql, c.display or "NULL"), "true"),
            self._subject(),
            enc,
            *dates,
        ]
        return obj(*members), c.raw, problems, "NULL", bits

    def _build_medication_statement(
        self, f: BlockFields, patient: Compiled, inst: str
    ) -> tuple[Any, ...]:
        return self._medication(f, inst, "MedicationStatement")

    def _build_medication_request(
        self, f: BlockFields, patient: Compiled, inst: str
    ) -> tuple[Any, ...]:
        return self._medication(f, inst, "MedicationRequest")

    def _medication(self, f: BlockFields, inst: str, rt: str) -> tuple[Any, ...]:
        c = self._code_block(f, f.medication, inst, rt)
        problems = list(c.problems)
        bits: list[str] = []
        enc, enc_problems, enc_bits = self._encounter_ref(f)
        problems += enc_problems
        bits += enc_bits
        period = []
        start_sql = "NULL"
        for key, val in (("start", f.start), ("end", f.end)):
            if val is not None:
                d = self.compile(val, "datetime")
                problems += d.problems
                period.append(member(key, jstr(d.sql)))
                bits.append(f"{d.sql} IS NOT NULL")
                if key == "start":
                    start_sql = d.sql
        dosage = "NULL"
        if f.dose is not None:
            dn = self.compile(f.dose, "decimal")
            problems += dn.problems
            du = self.raw(f.dose_unit) if f.dose_unit is not None else "NULL"
            qty = obj(
                member("value", f"CAST({dn.sql} AS VARCHAR)", "true"),
                member("unit", jstr(du), f"{du} IS NOT NULL"),
            )
            dosage = f"CASE WHEN {dn.sql} IS NOT NULL THEN '[{{\"doseAndRate\":[{{\"doseQuantity\":' || {qty} || '}}]}}]' END"
            bits.append(f"{dn.sql} IS NOT NULL")
        med = cat(
            jsonsql.text('{"concept":'),
            concept(c.system or "NULL", c.sql, c.display or "NULL"),
            jsonsql.text("}"),
        )
        members = [
            member("resourceType", f"'\"{rt}\"'", "true"),
            _ID,
            member(
                "status",
                "'\"recorded\"'" if rt == "MedicationStatement" else "'\"active\"'",
                "true",
            ),
        ]
        if rt == "MedicationRequest":
            members.append(member("intent", "'\"order\"'", "true"))
        members += [member("medication", med, "true"), self._subject(), enc]
        if rt == "MedicationStatement":
            members.append(member("effectivePeriod", obj(*period) if period else "NULL"))
            members.append(member("dosage", dosage))
        else:
            members.append(member("authoredOn", jstr(start_sql)))
            members.append(member("dosageInstruction", dosage))
        return obj(*members), c.raw, problems, "NULL", bits

    def _build_procedure(self, f: BlockFields, patient: Compiled, inst: str) -> tuple[Any, ...]:
        c = self._code_block(f, f.code, inst, "Procedure")
        problems = list(c.problems)
        bits: list[str] = []
        enc, enc_problems, enc_bits = self._encounter_ref(f)
        problems += enc_problems
        bits += enc_bits
        perf = "NULL"
        if f.performed is not None:
            d = self.compile(f.performed, "datetime")
            problems += d.problems
            perf = d.sql
            bits.append(f"{d.sql} IS NOT NULL")
        members = [
            member("resourceType", "'\"Procedure\"'", "true"),
            _ID,
            member("status", "'\"completed\"'", "true"),
            member("code", concept(c.system or "NULL", c.sql, c.display or "NULL"), "true"),
            self._subject(),
            enc,
            member("occurrenceDateTime", jstr(perf)),
        ]
        return obj(*members), c.raw, problems, "NULL", bits

    def _build_document_reference(
        self, f: BlockFields, patient: Compiled, inst: str
    ) -> tuple[Any, ...]:
        if f.text is None:
            raise InputError(
                f"block {inst}: a DocumentReference block needs 'text'", rule="mapping-schema"
            )
        text = self.raw(f.text)
        problems: list[Problem] = []
        bits: list[str] = []
        enc_sql = "NULL"
        if f.encounter is not None:
            ec = self.compile(f.encounter)
            problems += ec.problems
            enc_sql = (
                f'CASE WHEN {ec.raw} IS NOT NULL THEN \'[{{"reference":"Encounter/\' || '
                f"{self.encounter_id(ec.raw)} || '\"}}]' END"
            )
            bits.append(f"{ec.raw} IS NOT NULL")
        date = "NULL"
        if f.date is not None:
            d = self.compile(f.date, "datetime")
            problems += d.problems
            # DocumentReference.date is an instant: a date alone gets midnight UTC.
            date = f"CASE WHEN length({d.sql}) = 10 THEN {d.sql} || 'T00:00:00Z' ELSE {d.sql} END"
            bits.append(f"{d.sql} IS NOT NULL")
        lang = self.raw(f.language) if f.language is not None else "NULL"
        if f.language is not None:
            problems.append(code_format_problem(lang, self.label(f.language)))
        ntype: Text = jsonsql.NULL
        if f.note_type is not None:
            c = self.compile(f.note_type, "code")
            problems += c.problems
            ntype = concept(c.system or lit("http://loinc.org"), c.sql, c.display or "NULL")
            bits.append(f"({ntype}) IS NOT NULL")
        attachment = obj(
            member("contentType", "'\"text/plain; charset=utf-8\"'", "true"),
            member("language", jstr(lang), f"{lang} IS NOT NULL"),
            member("data", f"to_json(to_base64(encode({text})))", "true"),
        )
        bits.append(f"{lang} IS NOT NULL")
        members = [
            member("resourceType", "'\"DocumentReference\"'", "true"),
            _ID,
            member("status", "'\"current\"'", "true"),
            member("type", ntype),
            self._subject(),
            member("context", enc_sql),
            member("date", jstr(date)),
            member(
                "content",
                cat(jsonsql.text('[{"attachment":'), attachment, jsonsql.text("}]")),
                "true",
            ),
        ]
        return obj(*members), text, problems, "NULL", bits


def dictionary_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the dictionary as tables, for rows whose variable is only known per row.

    ``_dictcodes(system, code, variable)`` and ``_vars(variable, value_type, unit, category)``.
    """
    d = load_dictionary()
    codes = [
        (cs.system, code, v.id)
        for v in d
        for cs in v.codes
        if not cs.hierarchical
        for code in cs.codes
    ]
    temp_table(
        con,
        "_dc_rows",
        [("system", "VARCHAR"), ("code", "VARCHAR"), ("variable", "VARCHAR")],
        codes,
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _dictcodes AS
        SELECT DISTINCT ON (system, code) * FROM _dc_rows;
        DROP TABLE _dc_rows"""
    )
    temp_table(
        con,
        "_vars",
        [
            ("variable", "VARCHAR"),
            ("value_type", "VARCHAR"),
            ("unit", "VARCHAR"),
            ("category", "VARCHAR"),
        ],
        [(v.id, v.value_type, v.unit, v.observation_category or "exam") for v in d],
    )


def conversion_table(
    con: duckdb.DuckDBPyConnection, needs: list[tuple[str, str, list[str]]]
) -> None:
    """Create ``_conv(variable, unit, factor, offset, target, error)``.

    One row per (variable, source unit) pair occurring in the data, computed with
    :mod:`cardiobox.ingest.units`.

    ``needs`` holds (variable SQL, unit SQL, joins) per quantity block instance.
    """
    found: set[tuple[str | None, str | None]] = set()
    for variable_sql, unit_sql, joins in needs:
        other = " ".join(j for j in joins if not j.startswith("LEFT JOIN _conv "))
        rows = con.execute(
            f"SELECT DISTINCT {variable_sql}, {unit_sql} FROM _srcx s {other}"
        ).fetchall()
        found.update((v, u) for v, u in rows)
    rows = []
    for variable, unit in sorted(found, key=lambda x: (str(x[0]), str(x[1]))):
        factor, offset, target, error = 1.0, 0.0, None, None
        try:
            if variable is None:
                target = units.normalise_unit(unit) if unit else None
            elif unit is None:
                error = f"a value of {variable} has no unit"
            else:
                conv = units.conversion(variable, unit)
                factor, offset, target = conv.factor, conv.offset, conv.to_unit
        except InputError as exc:
            error = exc.message
        rows.append((variable, unit, factor, offset, target, error))
    columns = [("variable", "VARCHAR"), ("unit", "VARCHAR"), ("factor", "DOUBLE")]
    columns += [("offset", "DOUBLE"), ("target", "VARCHAR"), ("error", "VARCHAR")]
    temp_table(con, "_conv", columns, rows)


__all__ = ["BlockCompiler", "conversion_table", "dictionary_tables"]

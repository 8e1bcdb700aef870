"""Render the data dictionary as a Markdown page.

The page ``docs/data-dictionary.md`` is generated from the YAML files by this module and is
never edited by hand; a test checks that the committed page equals a fresh render.

Usage
-----
``python -m cardiobox.cdm.docs OUTPUT.md`` (``make docs`` writes ``docs/data-dictionary.md``).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from cardiobox.cdm import codes as codesys
from cardiobox.cdm.dictionary import (
    LANGUAGES,
    Answer,
    Category,
    CodeSet,
    DataDictionary,
    Variable,
    load_dictionary,
)

#: Section titles, in the order the sections appear on the page.
SECTION_TITLES: dict[Category, str] = {
    Category.demographics: "Demographics",
    Category.encounter: "Encounters",
    Category.death: "Death",
    Category.phenotype: "Condition phenotypes",
    Category.medication_group: "Medication groups",
    Category.lab: "Laboratory results",
    Category.vital_sign: "Vital signs",
    Category.echo: "Echocardiography",
    Category.ecg: "Electrocardiogram",
    Category.assessment: "Assessments",
    Category.symptom: "Symptoms",
    Category.procedure: "Procedures",
}

#: Short labels of code systems used in the tables.
SYSTEM_LABELS: dict[str, str] = {
    codesys.ICD10: "ICD-10",
    codesys.ICD10_CM: "ICD-10-CM",
    codesys.ICD10_PCS: "ICD-10-PCS",
    codesys.ATC: "ATC",
    codesys.LOINC: "LOINC",
    codesys.SNOMED: "SNOMED CT",
    codesys.RXNORM: "RxNorm",
    codesys.ADMINISTRATIVE_GENDER: "HL7 administrative-gender",
    codesys.V3_ACT_CODE: "HL7 ActCode",
    codesys.ADMIT_SOURCE: "HL7 admit-source",
    codesys.DT4H_ECHO_PARAMETER: "DT4H echo-parameter",
    codesys.DT4H_ECG_PARAMETER: "DT4H ecg-parameter",
    codesys.DT4H_QT_CORRECTION: "DT4H qt-correction-formula",
    codesys.DT4H_MEDICATION_GROUP: "DT4H medication-group",
    codesys.DT4H_ENCOUNTER_CLASS: "DT4H encounter-class",
    codesys.DT4H_ADMIT_SOURCE: "DT4H encounter-admit-source",
}

_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


def system_label(system: str) -> str:
    """Return the short label of a code system (the URI itself when it has none).

    Parameters
    ----------
    system : str
        Canonical code-system URI.

    Returns
    -------
    str
    """
    return SYSTEM_LABELS.get(system, system)


def compress_codes(codes: Sequence[str]) -> list[str]:
    """Write runs of three or more consecutive codes as ranges.

    Two codes are consecutive when they differ only in a trailing number of the same width
    that goes up by one (``I20, I21, I22`` or ``C09AA01, C09AA02, C09AA03``).

    Parameters
    ----------
    codes : sequence of str
        Codes in the order they should be shown.

    Returns
    -------
    list of str
        ``["I20–I25", "C43"]`` for ``["I20", ..., "I25", "C43"]``; runs use an en dash so
        that they cannot be mistaken for a LOINC code.
    """
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if len(run) >= 3:
            out.append(f"{run[0]}–{run[-1]}")
        else:
            out.extend(run)
        run.clear()

    def follows(prev: str, code: str) -> bool:
        a, b = _TRAILING_NUMBER.match(prev), _TRAILING_NUMBER.match(code)
        if a is None or b is None or a.group(1) != b.group(1):
            return False
        if len(a.group(2)) != len(b.group(2)):
            return False
        return int(b.group(2)) == int(a.group(2)) + 1

    for code in codes:
        if run and not follows(run[-1], code):
            flush()
        run.append(code)
    flush()
    return out


def format_codes(code_sets: Iterable[CodeSet]) -> str:
    """Format a variable's code sets as ``LOINC 8806-2, 8807-0; SNOMED CT 1234``.

    Parameters
    ----------
    code_sets : iterable of CodeSet
        The variable's code sets.

    Returns
    -------
    str
        An empty string when there are no codes.
    """
    parts = []
    for cs in code_sets:
        shown = compress_codes(cs.codes) if cs.hierarchical else list(cs.codes)
        parts.append(f"{system_label(cs.system)} {', '.join(shown)}")
    return "; ".join(parts)


def format_number(x: float) -> str:
    """Format a number without a spurious ``.0`` or exponent (``1000000``, ``0.2``)."""
    if float(x).is_integer():
        return str(int(x))
    return repr(float(x))


def format_range(v: Variable) -> str:
    """Format a variable's plausible range as ``[low, high]`` (empty when it has none)."""
    if v.range is None:
        return ""
    low, high = v.range
    return f"[{format_number(low)}, {format_number(high)}]"


def _cell(text: str) -> str:
    """Escape text for a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = [_row(header), "| " + " | ".join("---" for _ in header) + " |"]
    lines.extend(_row(r) for r in rows)
    return lines


def _value_kind(v: Variable) -> str:
    kind: str = v.value_type
    if v.derived:
        kind += " (derived)"
    return kind


def _answer_text(a: Answer) -> str:
    value = "" if a.value is None or str(a.value) == a.code else f" = {a.value}"
    return f"{system_label(a.system)} `{a.code}` {a.display['en']}{value}"


def render_section(category: Category, variables: Sequence[Variable]) -> list[str]:
    """Render one category as Markdown lines.

    Parameters
    ----------
    category : Category
        The category of the section.
    variables : sequence of Variable
        Its variables, in dictionary order.

    Returns
    -------
    list of str
        Markdown lines, without a trailing blank line.
    """
    lines = [f"## {SECTION_TITLES[category]}", ""]
    lines.append(f"{len(variables)} variables.")
    lines.append("")
    lines.extend(
        _table(
            ["id", "name", "codes", "value", "unit", "range", "description"],
            (
                [
                    f"`{v.id}`",
                    v.name("en"),
                    format_codes(v.codes),
                    _value_kind(v),
                    f"`{v.unit}`" if v.unit else "",
                    format_range(v),
                    v.description + (f" Derived: {v.derived}" if v.derived else ""),
                ]
                for v in variables
            ),
        )
    )
    coded = [v for v in variables if v.answers]
    if coded:
        lines.extend(["", "Coded answers:", ""])
        for v in coded:
            answers = "; ".join(_answer_text(a) for a in v.answers)
            lines.append(f"- `{v.id}`: {answers}")
    others = [lang for lang in LANGUAGES if lang != "en"]
    lines.extend(["", "Names in the other languages:", ""])
    lines.extend(
        _table(
            ["id", *others],
            ([f"`{v.id}`", *(v.display.get(lang, "") for lang in others)] for v in variables),
        )
    )
    return lines


def render_markdown(dictionary: DataDictionary | None = None) -> str:
    """Render the whole data dictionary as one Markdown page.

    Parameters
    ----------
    dictionary : DataDictionary, optional
        The dictionary to render; defaults to the packaged one.

    Returns
    -------
    str
        The page, ending with a newline.
    """
    d = dictionary if dictionary is not None else load_dictionary()
    by_category = {cat: d.by_category(cat) for cat in SECTION_TITLES}
    lines = [
        "# Data dictionary",
        "",
        "<!-- Generated by `python -m cardiobox.cdm.docs docs/data-dictionary.md` (`make docs`)"
        " from src/cardiobox/cdm/data/variables/*.yaml. Do not edit by hand. -->",
        "",
        "The cardiology data model of cardiobox: every variable that sites harmonise into, with",
        "the codes that identify it, its canonical UCUM unit, its plausible range and its name",
        "in the seven languages of the project (en, es, it, nl, sv, cs, ro). Codes follow the",
        "DataTools4Heart (DT4H) common data model. A listed ICD-10, ICD-10-PCS or ATC code also",
        "matches every more specific code below it (I50 matches I50.9); a run such as I20–I25",
        "lists consecutive codes. Values outside the range are rejected as implausible. Synonyms",
        "and abbreviations used by search and NLP are in the YAML files.",
        "",
    ]
    lines.extend(
        _table(
            ["section", "variables"],
            (
                [f"[{title}](#{_anchor(title)})", str(len(by_category[cat]))]
                for cat, title in SECTION_TITLES.items()
            ),
        )
    )
    lines.append(_row(["total", str(len(d))]))
    for cat in SECTION_TITLES:
        if by_category[cat]:
            lines.append("")
            lines.extend(render_section(cat, by_category[cat]))
    return "\n".join(lines) + "\n"


def _anchor(title: str) -> str:
    """Return the GitHub-style anchor of a section title."""
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def main(argv: Sequence[str] | None = None) -> int:
    """Write the rendered page to the file named on the command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (defaults to ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status, 0 on success.
    """
    parser = argparse.ArgumentParser(
        prog="python -m cardiobox.cdm.docs",
        description="Render the cardiobox data dictionary as Markdown.",
    )
    parser.add_argument("output", type=Path, help="Markdown file to write")
    args = parser.parse_args(argv)
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_markdown(), encoding="utf-8", newline="\n")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Exports of descriptions: JSON-LD, CSV-W, and an OBiBa Opal/Mica data dictionary.

* **CSV-W**: ``variables.csv`` (one row per site and variable: labels, coding, unit,
  completeness, summary statistics, answer counts) and ``variables.csv-metadata.json``, its
  CSV on the Web table description (W3C ``http://www.w3.org/ns/csvw`` context).
* **Opal/Mica**: the data-dictionary format Opal imports (and Mica harvests from Opal): a
  ``Variables`` sheet (``table``, ``name``, ``valueType``, ``entityType``, ``unit``,
  ``label:<lang>``, ``description:en`` and ``cardiobox::…`` attributes) and a ``Categories``
  sheet (``table``, ``variable``, ``name``, ``missing``, ``label:<lang>``), written as an
  ``.xlsx`` workbook or as two CSV files. One Opal table per site.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from openpyxl import Workbook

from cardiobox.catalogue.model import DatasetDescription, VariableEntry
from cardiobox.catalogue.rdf import new_graph, to_graph, to_jsonld
from cardiobox.catalogue.vocab import system_name
from cardiobox.cdm.dictionary import LANGUAGES

Descriptions = DatasetDescription | Sequence[DatasetDescription]
_STATS = ("n", "mean", "sd", "p05", "p25", "median", "p75", "p95")


def _many(descriptions: Descriptions) -> list[DatasetDescription]:
    return [descriptions] if isinstance(descriptions, DatasetDescription) else list(descriptions)


def write_jsonld(descriptions: Descriptions, out: str | Path) -> Path:
    """Write descriptions as one JSON-LD document.

    Parameters
    ----------
    descriptions : DatasetDescription or sequence of them
        What to write.
    out : str or Path
        The ``.jsonld`` file.
    """
    g = new_graph()
    for d in _many(descriptions):
        to_graph(d, g)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_jsonld(g), encoding="utf-8")
    return path


# -- CSV-W -----------------------------------------------------------------------------------
#: (column, datatype, description) of variables.csv.
CSVW_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("site", "string", "Site identifier"),
    ("variable", "string", "Data-model variable id"),
    *((f"label_{lang}", "string", f"Display name ({lang})") for lang in LANGUAGES),
    ("description", "string", "What the variable means"),
    ("category", "string", "Data-model category"),
    ("value_type", "string", "Data-model value type"),
    ("resource", "string", "FHIR resource type"),
    ("unit", "string", "Canonical UCUM unit"),
    ("coding_systems", "string", "Code systems of the identifying codes (; separated)"),
    ("codes", "string", "Identifying codes, system|code (; separated)"),
    ("patients", "nonNegativeInteger", "Patients with a value (empty: withheld, small cell)"),
    ("completeness_pct", "decimal", "Patients with a value, % of the site's patients"),
    ("years", "string", "Years with values for at least min_cell patients (space separated)"),
    *((s, "nonNegativeInteger" if s == "n" else "decimal", f"Statistic {s}") for s in _STATS),
    ("answers", "string", "Values per answer, code=count (; separated; ? withheld)"),
)  # fmt: skip


def _cell(x: Any) -> str:
    return "" if x is None else str(x)


def _csvw_row(d: DatasetDescription, v: VariableEntry) -> list[str]:
    s = v.summary
    return [
        d.site,
        v.id,
        *(v.labels.get(lang, "") for lang in LANGUAGES),
        v.description,
        v.category,
        v.value_type,
        v.resource,
        _cell(v.unit),
        "; ".join(system_name(c.system) for c in v.coding),
        "; ".join(f"{c.system}|{code}" for c in v.coding for code in c.codes),
        _cell(v.patients),
        _cell(v.completeness),
        " ".join(str(y) for y in v.years),
        *(_cell(getattr(s, name)) if s else "" for name in _STATS),
        "; ".join(f"{c.code}={_cell(c.count) or '?'}" for c in v.categories),
    ]


def write_csvw(descriptions: Descriptions, out_dir: str | Path) -> list[Path]:
    """Write the variable dictionaries as CSV on the Web.

    Parameters
    ----------
    descriptions : DatasetDescription or sequence of them
        One or more sites' descriptions.
    out_dir : str or Path
        Folder (created) for ``variables.csv`` and ``variables.csv-metadata.json``.

    Returns
    -------
    list of Path
        The CSV and its metadata.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "variables.csv"
    many = _many(descriptions)
    with table.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([c for c, _, _ in CSVW_COLUMNS])
        for d in many:
            w.writerows(_csvw_row(d, v) for v in d.variables)
    meta: dict[str, Any] = {
        "@context": ["http://www.w3.org/ns/csvw", {"@language": "en"}],
        "url": table.name,
        "dc:title": "Variable dictionary of " + ", ".join(d.site for d in many),
        "dc:source": [d.iri for d in many],
        "dialect": {"header": True, "encoding": "utf-8"},
        "tableSchema": {
            "columns": [
                {
                    "name": name,
                    "titles": name,
                    "datatype": datatype,
                    "dc:description": text,
                    "null": "",
                    **({"required": True} if name in ("site", "variable") else {}),
                }
                for name, datatype, text in CSVW_COLUMNS
            ],
            "primaryKey": ["site", "variable"],
        },
    }
    if len(many) == 1:  # the variables' IRIs in the description (a template per dataset)
        meta["tableSchema"]["aboutUrl"] = many[0].iri + "/variable/{variable}"
    side = folder / "variables.csv-metadata.json"
    side.write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    return [table, side]


# -- Opal / Mica -------------------------------------------------------------------------------
#: Data-model value type → Opal value type.
OPAL_VALUE_TYPES: dict[str, str] = {
    "quantity": "decimal",
    "decimal": "decimal",
    "integer": "integer",
    "boolean": "boolean",
    "presence": "boolean",
    "code": "text",
    "string": "text",
    "period": "text",
    "date": "date",
    "dateTime": "datetime",
}
VARIABLE_HEADER: tuple[str, ...] = (
    "table", "name", "valueType", "entityType", "unit", "repeatable",
    *(f"label:{lang}" for lang in LANGUAGES),
    "description:en", "cardiobox::category", "cardiobox::resource", "cardiobox::coding",
    "cardiobox::patients", "cardiobox::completeness",
)  # fmt: skip
CATEGORY_HEADER: tuple[str, ...] = (
    "table", "variable", "name", "missing", *(f"label:{lang}" for lang in LANGUAGES),
    "cardiobox::count",
)  # fmt: skip


def mica_rows(descriptions: Descriptions) -> tuple[list[list[Any]], list[list[Any]]]:
    """The rows of the Opal ``Variables`` and ``Categories`` sheets (without headers)."""
    variables: list[list[Any]] = []
    categories: list[list[Any]] = []
    for d in _many(descriptions):
        for v in d.variables:
            repeatable = v.resource not in ("Patient",)
            variables.append(
                [
                    d.site, v.id, OPAL_VALUE_TYPES.get(v.value_type, "text"), "Participant",
                    v.unit or "", str(repeatable).lower(),
                    *(v.labels.get(lang, "") for lang in LANGUAGES),
                    v.description, v.category, v.resource,
                    "; ".join(f"{system_name(c.system)}: {' '.join(c.codes)}" for c in v.coding),
                    "" if v.patients is None else v.patients,
                    "" if v.completeness is None else v.completeness,
                ]
            )  # fmt: skip
            if v.value_type != "code":
                continue
            for c in v.categories:
                categories.append(
                    [
                        d.site, v.id, c.code, "false",
                        *(c.label.get(lang, "") for lang in LANGUAGES),
                        "" if c.count is None else c.count,
                    ]
                )  # fmt: skip
    return variables, categories


def write_mica(descriptions: Descriptions, out: str | Path) -> list[Path]:
    """Write the Opal/Mica data dictionary.

    Parameters
    ----------
    descriptions : DatasetDescription or sequence of them
        One or more sites' descriptions (one Opal table each).
    out : str or Path
        An ``.xlsx`` file (sheets ``Variables`` and ``Categories``), or a folder for
        ``variables.csv`` and ``categories.csv``.

    Returns
    -------
    list of Path
        The files written.
    """
    variables, categories = mica_rows(descriptions)
    path = Path(out)
    if path.suffix.lower() == ".xlsx":
        wb = Workbook()
        sheet = wb.active
        assert sheet is not None
        sheet.title = "Variables"
        sheet.append(list(VARIABLE_HEADER))
        for row in variables:
            sheet.append(row)
        cats = wb.create_sheet("Categories")
        cats.append(list(CATEGORY_HEADER))
        for row in categories:
            cats.append(row)
        path.parent.mkdir(parents=True, exist_ok=True)
        wb.save(path)
        return [path]
    path.mkdir(parents=True, exist_ok=True)
    written = []
    for name, header, rows in (
        ("variables.csv", VARIABLE_HEADER, variables),
        ("categories.csv", CATEGORY_HEADER, categories),
    ):
        with (path / name).open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
        written.append(path / name)
    return written

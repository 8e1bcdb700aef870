"""Build a site's HealthDCAT-AP description from its store, and its search documents.

>>> from cardiobox.catalogue.build import build_description
>>> d = build_description("hospital_es.duckdb", "profile.yaml")      # doctest: +SKIP
>>> d.number_of_unique_individuals, d.variable("lvef").completeness  # doctest: +SKIP
(60, 88.33)

Everything is read by DuckDB from the store opened read-only, through the quality package's
workspace (the completeness and distributions are the quality report's). Only aggregates
leave: every count below the site policy's minimum cell count is withheld (with its
complement, and the next smallest cell of a table with one withheld cell), quantities are
summarised without minimum or maximum, ages are the 5th and 95th percentiles rounded
outwards to five years, and dates are months.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from pydantic import ValidationError

from cardiobox import tableio
from cardiobox.catalogue import vocab
from cardiobox.catalogue.documents import SearchDocument, variable_document
from cardiobox.catalogue.measures import (
    answer_counts,
    ceil_to,
    coarse_histogram,
    floor_to,
    months_covered,
    store_counts,
    systems_in_use,
    typical_age_percentiles,
)
from cardiobox.catalogue.model import (
    Agent,
    CategoryCount,
    Coding,
    ContactPoint,
    DatasetDescription,
    DatePeriod,
    Distribution,
    HistogramBin,
    MonthPeriod,
    QualityAnnotation,
    QuantitySummary,
    TableColumn,
    VariableEntry,
)
from cardiobox.catalogue.profile import SiteProfile, expand_iri, load_profile
from cardiobox.catalogue.suppress import suppress_cells, withhold, withhold_part
from cardiobox.cdm.dictionary import DataDictionary, Variable, load_dictionary
from cardiobox.errors import CardioboxError, InputError, Location
from cardiobox.privacy.policy import SitePolicy, load_policy
from cardiobox.quality.completeness import SiteCompleteness, measure_completeness
from cardiobox.quality.distributions import measure_distributions
from cardiobox.quality.spec import load_checks
from cardiobox.quality.tables import Workspace
from cardiobox.store import SiteStore

#: Ages are published rounded outwards to a multiple of this many years.
AGE_STEP = 5
#: Key columns of an analysis table (never data-model variables).
KEY_COLUMNS = frozenset({"row_id", "patient_id", "encounter_id", "index_time"})


class CatalogueError(CardioboxError):
    """A description that cannot be built (empty store, unknown variables...)."""


def build_description(
    store_path: str | Path,
    profile: SiteProfile | str | Path,
    policy: SitePolicy | str | Path | None = None,
    features: str | Path | None = None,
    *,
    quality_report: str | Path | None = None,
    today: date | None = None,
    dictionary: DataDictionary | None = None,
) -> DatasetDescription:
    """Describe one site's store as a HealthDCAT-AP dataset with its variable dictionary.

    Parameters
    ----------
    store_path : str or Path
        The site store (opened read-only).
    profile : SiteProfile or path
        The site profile (publisher, contact, legal basis...), or its YAML file.
    policy : SitePolicy or path, optional
        The site's policy, whose ``min_cell_count`` applies to every count (default: the
        default policy, 10).
    features : str or Path, optional
        An analysis table (Parquet/CSV) to describe as a distribution, with its
        ``<table>.metadata.json`` when present; without one, its columns must be named after
        data-model variables.
    quality_report : str or Path, optional
        The site's ``quality.json`` (``cardiobox quality report``), summarised in a quality
        annotation.
    today : date, optional
        The day of the build (``dct:modified``; default: today, UTC).
    dictionary : DataDictionary, optional
        Defaults to the packaged data dictionary.

    Returns
    -------
    DatasetDescription

    Raises
    ------
    CatalogueError
        For a store without patients, or a feature table naming unknown variables.
    InputError
        For a missing store or table.
    ProfileError
        For a profile missing a required field.
    """
    site = profile if isinstance(profile, SiteProfile) else load_profile(profile)
    rules = policy if isinstance(policy, SitePolicy) else load_policy(policy)
    k = rules.min_cell_count
    today = today or datetime.now(UTC).date()
    dictionary = dictionary or load_dictionary()
    checks = load_checks()
    with SiteStore(store_path, read_only=True) as store:
        ws = Workspace(store.con, dictionary, checks.dates, today)
        records, patients = store_counts(ws)
        if not patients:
            raise CatalogueError(
                "the store holds no patients: there is nothing to describe (load data first)",
                rule="empty-store",
                location=Location(file=str(store_path)),
            )
        completeness = measure_completeness(ws)
        quantities = {d["variable"]: d for d in measure_distributions(ws, checks.log_bins)}
        answers = answer_counts(ws)
        ages = typical_age_percentiles(ws)
        months = months_covered(ws)
        systems = systems_in_use(ws)
    variables = tuple(
        _variable_entry(
            v, completeness, quantities.get(v.id), answers.get(v.id, []), k, v.id in checks.log_bins
        )
        for v in dictionary
        if completeness.with_value.get(v.id, 0) > 0
    )
    distributions = [_store_distribution(site)]
    if features is not None:
        distributions.append(_feature_distribution(site, Path(features), dictionary, k))
    min_age = max_age = None
    if ages is not None and ages[0] >= k:
        min_age = max(0, floor_to(ages[1], AGE_STEP))
        max_age = ceil_to(ages[2], AGE_STEP)
    fields = dict(
        site=site.site,
        iri=site.base + "dataset",
        title=site.title,
        description=site.description,
        publisher=_agent(site.publisher_iri(), site.publisher),
        contact_point=ContactPoint(**site.contact_point.model_dump()),
        issued=site.issued or today,
        modified=today,
        keywords={lang: tuple(words) for lang, words in site.keywords.items() if words},
        themes=site.iris("themes"),
        temporal=MonthPeriod(start=months[0], end=months[1]) if months else None,
        spatial=(site.country_iri(),),
        languages=site.language_iris(),
        access_rights=site.access_rights_iri(),
        conforms_to=(vocab.DATA_MODEL,),
        applicable_legislation=tuple(site.applicable_legislation),
        distributions=tuple(distributions),
        health_categories=site.iris("health_categories"),
        health_themes=site.iris("health_themes"),
        coding_systems=tuple(sorted({vocab.coding_system_iri(s) for s in systems})),
        number_of_records=withhold(records, k),
        number_of_unique_individuals=withhold(patients, k),
        population_coverage=site.population_coverage,
        min_typical_age=min_age,
        max_typical_age=max_age,
        personal_data=_personal_data(variables),
        legal_basis=site.iris("legal_basis"),
        purpose=site.iris("purpose"),
        retention_period=(
            DatePeriod(**site.retention_period.model_dump()) if site.retention_period else None
        ),
        hdab=_agent(site.hdab.iri or site.hdab.homepage or site.base + "hdab", site.hdab)
        if site.hdab
        else None,
        quality_annotations=_quality(site, quality_report),
        min_cell_count=k,
        variables=variables,
    )
    try:
        return DatasetDescription.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "description"
        raise CatalogueError(
            f"{where}: {str(first['msg']).removeprefix('Value error, ')}",
            rule="invalid-description",
            location=Location(file=str(store_path)),
        ) from None


def _agent(iri: str, a: Any) -> Agent:
    kind = expand_iri(a.type) if a.type else None
    return Agent(iri=iri, name=a.name, homepage=a.homepage, email=a.email, type=kind)


def _variable_entry(
    v: Variable,
    completeness: SiteCompleteness,
    quantity: dict[str, Any] | None,
    answers: list[tuple[str | None, str, int]],
    k: int,
    log_bins: bool,
) -> VariableEntry:
    """One variable's entry, every count suppressed under ``k``."""
    with_value = completeness.with_value.get(v.id, 0)
    shown = withhold(with_value, k)
    summary: QuantitySummary | None = None
    histogram: tuple[HistogramBin, ...] = ()
    if quantity is not None and quantity["n"] >= k and with_value >= k:
        summary = QuantitySummary(**{f: quantity[f] for f in QuantitySummary.model_fields})
        bins = coarse_histogram(v, log_bins, quantity["histogram"])
        cells = suppress_cells([b.count for b in bins], k)
        histogram = tuple(
            HistogramBin(lower=b.lower, upper=b.upper, count=c)
            for b, c in zip(bins, cells, strict=True)
        )
    return VariableEntry(
        id=v.id,
        labels=dict(v.display),
        description=v.description,
        category=v.category.value,
        value_type=v.value_type,
        resource=v.resource,
        unit=v.unit,
        coding=tuple(Coding(system=cs.system, codes=tuple(cs.codes)) for cs in v.codes),
        patients=shown,
        completeness=None if shown is None else round(100.0 * shown / completeness.patients, 2),
        years=tuple(sorted(y for y, n in completeness.by_year.get(v.id, {}).items() if n >= k)),
        summary=summary,
        histogram=histogram,
        categories=_categories(v, answers, k) if with_value >= k else (),
    )


def _categories(
    v: Variable, answers: list[tuple[str | None, str, int]], k: int
) -> tuple[CategoryCount, ...]:
    displays = {(a.system, a.code): a.display for a in v.answers}
    cells = suppress_cells([n for _, _, n in answers], k)
    if all(c is None for c in cells):
        return ()
    return tuple(
        CategoryCount(
            code=code,
            system=system,
            label=dict(displays.get((system, code), {})) if system else {"en": code},
            count=c,
        )
        for (system, code, _), c in zip(answers, cells, strict=True)
    )


def _personal_data(variables: tuple[VariableEntry, ...]) -> tuple[str, ...]:
    found = {
        vocab.PERSONAL_DATA_BY_VARIABLE.get(v.id)
        or vocab.PERSONAL_DATA_BY_CATEGORY.get(v.category)
        or vocab.HEALTH_DATA
        for v in variables
    }
    return tuple(sorted(found))


def _store_distribution(site: SiteProfile) -> Distribution:
    return Distribution(
        iri=site.base + "distribution/store",
        title={"en": "FHIR R5 resources in the site store (federated analysis only)"},
        description={
            "en": "The harmonised data stay at the site; researchers run federated tasks "
            "that the site's policy checks and the site's node answers with aggregates."
        },
        access_url=site.access_url,
        media_type=vocab.IANA + "application/fhir+json",
        format=vocab.FILE_TYPE + "JSON",
    )


def _read_features(path: Path, dictionary: DataDictionary) -> tuple[pa.Table, dict[str, Any]]:
    """An analysis table and its metadata (from the side file, or from its column names)."""
    table = tableio.read_table(path)
    side = path.with_name(path.name + ".metadata.json")
    if side.exists():
        try:
            meta: dict[str, Any] = orjson.loads(side.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise InputError(
                f"not valid JSON: {exc}", rule="metadata-syntax", location=Location(file=str(side))
            ) from None
        unknown = sorted(
            f"{c.get('name')} → {c['variable']}"
            for c in meta.get("columns", [])
            if c.get("variable") and c["variable"] not in dictionary
        )
        where = side
    else:
        meta = {"columns": [{"name": n, "variable": n} for n in table.column_names]}
        for c in meta["columns"]:
            if c["name"] in KEY_COLUMNS:
                c.update(variable=None, kind="key")
        unknown = sorted(
            c["name"] for c in meta["columns"] if c["variable"] and c["variable"] not in dictionary
        )
        where = path
    if unknown:
        raise CatalogueError(
            f"unknown data-model variable(s) in the feature table: {', '.join(unknown)} "
            "(columns must be data-model variable ids, or be described by the table's "
            ".metadata.json)",
            rule="unknown-variable",
            location=Location(file=str(where)),
        )
    return table, meta


def _feature_distribution(
    site: SiteProfile, path: Path, dictionary: DataDictionary, k: int
) -> Distribution:
    """The analysis table as a distribution: its columns, missing shares, row count."""
    table, meta = _read_features(path, dictionary)
    rows = table.num_rows
    columns = []
    for c in meta.get("columns", []):
        name = str(c.get("name", ""))
        if name not in table.column_names:
            continue
        missing = table.column(name).null_count
        shown = withhold_part(missing, rows, k)
        var = c.get("variable")
        columns.append(
            TableColumn(
                name=name,
                description=str(c.get("description") or (dictionary[var].description if var else "")),  # noqa: E501
                variable=var,
                unit=c.get("unit") or (dictionary[var].unit if var else None),
                kind=str(c.get("kind") or "feature"),
                missing_share=round(shown / rows, 4) if rows and shown is not None else None,
            )
        )  # fmt: skip
    parquet = path.suffix.lower() in (".parquet", ".pq")
    about = ", ".join(f"{k_}: {meta[k_]}" for k_ in ("cohort", "feature_set") if meta.get(k_))
    return Distribution(
        iri=f"{site.base}distribution/features/{path.stem}",
        title={"en": f"Analysis table {path.stem}" + (f" ({about})" if about else "")},
        description={"en": "One row per cohort member; requested through the site's node."},
        access_url=site.access_url,
        media_type=vocab.IANA + ("application/vnd.apache.parquet" if parquet else "text/csv"),
        format=vocab.FILE_TYPE + ("PARQUET" if parquet else "CSV"),
        columns=tuple(columns),
        rows=withhold(rows, k),
    )


def _quality(site: SiteProfile, report: str | Path | None) -> tuple[QualityAnnotation, ...]:
    """The quality annotation: the report's summary and where the report is published."""
    link = expand_iri(site.quality_report) if site.quality_report else None
    if report is None:
        if link is None:
            return ()
        return (
            QualityAnnotation(
                text="Data-quality report of the site: conformance, completeness and "
                "plausibility checks (cardiobox quality).",
                report=link,
            ),
        )
    path = Path(report)
    try:
        doc = orjson.loads(path.read_bytes())
        summary = doc["summary"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(
            f"not a cardiobox quality report (quality.json): {exc}",
            rule="quality-report",
            location=Location(file=str(path)),
        ) from None
    by_site: Mapping[str, Any] = summary.get("by_site") or {}
    if len(by_site) > 1 and site.site not in by_site:
        raise InputError(
            f"the quality report covers sites {', '.join(sorted(by_site))}, not {site.site!r}",
            rule="quality-report",
            location=Location(file=str(path)),
        )
    part = by_site.get(site.site) or (next(iter(by_site.values())) if by_site else summary)
    checks = {str(s): int(n) for s, n in part["by_status"].items()}
    text = (
        f"cardiobox data-quality report: {checks.get('pass', 0)} checks passed, "
        f"{checks.get('fail', 0)} failed, {checks.get('not-applicable', 0)} not applicable."
    )
    generated = str(doc.get("generated_at") or "")[:10]
    return (
        QualityAnnotation(
            text=text,
            report=link,
            checks=checks,
            generated=date.fromisoformat(generated) if generated else None,
        ),
    )


# -- search documents ------------------------------------------------------------------------
def _years(period: MonthPeriod | None) -> tuple[str, ...]:
    if period is None or not (period.start or period.end):
        return ()
    first = int((period.start or period.end or "")[:4])
    last = int((period.end or period.start or "")[:4])
    return tuple(str(y) for y in range(first, last + 1))


def _variable_systems(v: VariableEntry) -> tuple[str, ...]:
    systems = {c.system for c in v.coding} | {c.system for c in v.categories if c.system}
    return tuple(sorted(vocab.system_name(s) for s in systems))


def documents_from_description(
    description: DatasetDescription, dictionary: DataDictionary | None = None
) -> list[SearchDocument]:
    """The search documents of a description: its dataset, and each variable present.

    A variable's document is the data model's own (:func:`variable_document`: names and
    synonyms in every language) placed at the site, with the site's facets; the
    description's labels stand in for a variable the dictionary does not know.

    Parameters
    ----------
    description : DatasetDescription
        A site's description.
    dictionary : DataDictionary, optional
        Defaults to the packaged data dictionary.

    Returns
    -------
    list of SearchDocument
        ``dataset:<site>`` first, then ``variable:<site>:<variable_id>`` in the
        description's order.
    """
    dictionary = dictionary or load_dictionary()
    d = description
    years = _years(d.temporal)
    systems = tuple(sorted({vocab.system_name(s) for s in d.coding_systems}))
    langs = sorted({*d.title, *d.description, *d.keywords, *d.population_coverage})
    texts = {
        lang: " ".join(
            part
            for part in (
                d.title.get(lang, ""),
                d.description.get(lang, ""),
                " ".join(d.keywords.get(lang, ())),
                d.population_coverage.get(lang, ""),
                d.publisher.name,
            )
            if part
        )
        for lang in langs
    }
    docs = [
        SearchDocument(
            id=f"dataset:{d.site}",
            kind="dataset",
            labels=dict(d.title),
            texts=texts,
            site=d.site,
            facets={
                "site": (d.site,),
                "coding_system": systems,
                "years": years,
                "variable": tuple(v.id for v in d.variables),
            },
        )
    ]
    for v in d.variables:
        # The data model's own document of the variable (its names and synonyms in every
        # language), placed at the site.
        if v.id in dictionary:
            base = variable_document(dictionary[v.id])
            labels, texts_v = base.labels, base.texts
        else:
            labels, texts_v = dict(v.labels), {"en": " ".join((v.label(), v.description))}
        docs.append(
            SearchDocument(
                id=f"variable:{d.site}:{v.id}",
                kind="variable",
                labels=labels,
                texts=texts_v,
                site=d.site,
                variable_id=v.id,
                facets={
                    "site": (d.site,),
                    "variable": (v.id,),
                    "category": (v.category,),
                    "coding_system": _variable_systems(v),
                    "years": tuple(str(y) for y in v.years),
                },
            )
        )
    return docs

"""The HealthDCAT-AP description of one site's data, and its variable-level dictionary.

A :class:`DatasetDescription` holds the DCAT-AP core of a dataset (title, description,
publisher, contact point, keywords, themes, temporal and spatial coverage, access rights,
distributions), the HealthDCAT-AP extensions (health categories and themes, coding systems,
numbers of records and individuals, population coverage, typical ages, personal-data
categories, legal basis, purpose, retention period, quality annotations) and one
:class:`VariableEntry` per data-model variable present at the site.

Everything here is aggregate and public: a count below the site's minimum cell count is
``None`` (withheld), dates are months at the finest, and no identifier of a person appears.
The model checks these rules itself, so that a description read back from RDF is held to
them too.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

#: An absolute IRI (``https://…``, ``urn:…``, ``mailto:…``), kept exactly as written.
Iri = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+$")]
#: A calendar month, ``YYYY-MM``: the finest date a description may carry.
Month = Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]

_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


def _check_languages(value: dict[str, str], what: str) -> dict[str, str]:
    bad = sorted(k for k in value if not _LANG.match(k))
    if bad:
        raise ValueError(f"{what}: invalid language code(s) {bad} (use ISO 639-1 such as 'en')")
    empty = sorted(k for k, v in value.items() if not v.strip())
    if empty:
        raise ValueError(f"{what}: empty text for language(s) {empty}")
    if "en" not in value:
        raise ValueError(f"{what}: an English ('en') text is required")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Agent(_Model):
    """An organisation (``foaf:Agent``): the publisher, or a health data access body.

    Parameters
    ----------
    iri : str
        The organisation's IRI.
    name : str
        Its name (``foaf:name``).
    homepage : str, optional
        Its web site (``foaf:homepage``).
    email : str, optional
        A contact address (``foaf:mbox``), without ``mailto:``.
    type : str, optional
        Publisher type IRI (``dct:type``, ADMS publisher types).
    """

    iri: Iri
    name: str = Field(min_length=1)
    homepage: Iri | None = None
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+$")
    type: Iri | None = None


class ContactPoint(_Model):
    """A contact point (``vcard:Kind``).

    Parameters
    ----------
    name : str
        Formatted name (``vcard:fn``), e.g. the research office.
    email : str
        E-mail address (``vcard:hasEmail``), without ``mailto:``.
    url : str, optional
        A contact page (``vcard:hasURL``).
    """

    name: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    url: Iri | None = None


class MonthPeriod(_Model):
    """A period of time given in months (``dct:PeriodOfTime``, ``xsd:gYearMonth``).

    Parameters
    ----------
    start, end : str
        First and last month, ``YYYY-MM`` (either may be missing).
    """

    start: Month | None = None
    end: Month | None = None

    @model_validator(mode="after")
    def _ordered(self) -> MonthPeriod:
        if self.start is None and self.end is None:
            raise ValueError("a period needs a start or an end")
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"period start {self.start} is after its end {self.end}")
        return self


class DatePeriod(_Model):
    """A period given in days (``dct:PeriodOfTime``, ``xsd:date``): the retention period.

    Parameters
    ----------
    start, end : date
        First and last day (either may be missing).
    comment : str, optional
        Where the period comes from (``rdfs:comment``).
    """

    start: date | None = None
    end: date | None = None
    comment: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> DatePeriod:
        if self.start is None and self.end is None:
            raise ValueError("a period needs a start or an end")
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"period start {self.start} is after its end {self.end}")
        return self


class TableColumn(_Model):
    """A column of an analysis-table distribution (``csvw:Column``).

    Parameters
    ----------
    name : str
        Column name.
    description : str
        What it holds.
    variable : str, optional
        The data-model variable it reads.
    unit : str, optional
        UCUM unit.
    kind : str
        ``key``, ``feature``, ``demographic``, ``derived`` or ``outcome``.
    missing_share : float, optional
        Share of rows without a value, 0–1 (``None`` when withheld).
    """

    name: str = Field(min_length=1)
    description: str = ""
    variable: str | None = None
    unit: str | None = None
    kind: str = "feature"
    missing_share: float | None = Field(None, ge=0, le=1)


class Distribution(_Model):
    """One way of reaching the data (``dcat:Distribution``).

    Parameters
    ----------
    iri : str
        The distribution's IRI.
    title : dict
        Language code → title.
    access_url : str
        Where access is requested or the service answers (``dcat:accessURL``).
    media_type : str, optional
        IANA media type IRI (``dcat:mediaType``).
    format : str, optional
        EU file-type IRI (``dct:format``).
    description : dict, optional
        Language code → description.
    columns : list of TableColumn
        Columns of a table distribution (an analysis table), when known.
    rows : int, optional
        Rows of a table distribution (``None`` when withheld).
    """

    iri: Iri
    title: dict[str, str]
    access_url: Iri
    media_type: Iri | None = None
    format: Iri | None = None
    description: dict[str, str] = Field(default_factory=dict)
    columns: tuple[TableColumn, ...] = ()
    rows: int | None = Field(None, ge=0)

    @field_validator("title")
    @classmethod
    def _title(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_languages(v, "distribution title")


class QualityAnnotation(_Model):
    """A data-quality annotation linking the site's quality report (``dqv:QualityAnnotation``).

    Parameters
    ----------
    text : str
        What the report found, in one sentence.
    report : str, optional
        IRI of the published quality report (``oa:hasBody``).
    checks : dict
        Number of checks per status (``pass``, ``fail``, ``not-applicable``).
    generated : date, optional
        The day the report was made.
    """

    text: str = Field(min_length=1)
    report: Iri | None = None
    checks: dict[str, int] = Field(default_factory=dict)
    generated: date | None = None


class Coding(_Model):
    """Codes of one system that identify a variable (``system`` + ``codes``).

    Parameters
    ----------
    system : str
        Code-system URI.
    codes : tuple of str
        Codes (a hierarchical code also stands for its descendants).
    """

    system: Iri
    codes: tuple[str, ...] = ()

    @field_validator("codes")
    @classmethod
    def _sorted(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(v)))


class QuantitySummary(_Model):
    """Summary statistics of a quantity's values in its canonical unit.

    Minimum and maximum are never given: each would be one patient's value.

    Parameters
    ----------
    n : int
        Values summarised.
    mean, sd : float
        Mean and sample standard deviation (``sd`` is ``None`` for one value).
    p05, p25, median, p75, p95 : float
        Percentiles.
    """

    n: int = Field(ge=0)
    mean: float
    sd: float | None = None
    p05: float
    p25: float
    median: float
    p75: float
    p95: float


class HistogramBin(_Model):
    """One histogram bin over public edges: ``lower <= value < upper``.

    ``lower`` is ``None`` for the values below the plausible range, ``upper`` ``None`` for
    those above; ``count`` is ``None`` when withheld (small cell).
    """

    lower: float | None = None
    upper: float | None = None
    count: int | None = Field(None, ge=0)


class CategoryCount(_Model):
    """How many values take one coded answer (``count`` ``None`` when withheld).

    Parameters
    ----------
    code : str
        The answer's code (``true``/``false`` for booleans).
    system : str, optional
        Its code system.
    label : dict
        Language code → display name.
    count : int, optional
        Values with this answer.
    """

    code: str = Field(min_length=1)
    system: Iri | None = None
    label: dict[str, str] = Field(default_factory=dict)
    count: int | None = Field(None, ge=0)


class VariableEntry(_Model):
    """One data-model variable present at the site, with its aggregate profile.

    Parameters
    ----------
    id : str
        Data-model variable id (``lvef``).
    labels : dict
        Language code → display name (the dictionary's, in up to seven languages).
    description : str
        What the variable means (English).
    category : str
        Data-model category (``lab``, ``phenotype``...).
    value_type : str
        Data-model value type (``quantity``, ``code``, ``presence``...).
    resource : str
        FHIR resource type that carries it.
    unit : str, optional
        Canonical UCUM unit.
    coding : tuple of Coding
        The codes that identify it, by system.
    patients : int, optional
        Patients with at least one value (``None`` when withheld).
    completeness : float, optional
        ``patients`` as a % of the site's patients (``None`` when withheld).
    years : tuple of int
        Calendar years in which at least ``min_cell_count`` patients have a value.
    summary : QuantitySummary, optional
        Statistics of a quantity's values.
    histogram : tuple of HistogramBin
        Counts of a quantity's values in public bins.
    categories : tuple of CategoryCount
        Counts of a coded or boolean variable's answers.
    """

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    labels: dict[str, str]
    description: str = ""
    category: str
    value_type: str
    resource: str
    unit: str | None = None
    coding: tuple[Coding, ...] = ()
    patients: int | None = Field(None, ge=0)
    completeness: float | None = Field(None, ge=0, le=100)
    years: tuple[int, ...] = ()
    summary: QuantitySummary | None = None
    histogram: tuple[HistogramBin, ...] = ()
    categories: tuple[CategoryCount, ...] = ()

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_languages(v, "variable labels")

    # RDF keeps no order: every list is kept in one canonical order, so a round trip is exact.
    @field_validator("coding")
    @classmethod
    def _coding_order(cls, v: tuple[Coding, ...]) -> tuple[Coding, ...]:
        return tuple(sorted(v, key=lambda c: c.system))

    @field_validator("years")
    @classmethod
    def _year_order(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted(set(v)))

    @field_validator("histogram")
    @classmethod
    def _bin_order(cls, v: tuple[HistogramBin, ...]) -> tuple[HistogramBin, ...]:
        return tuple(sorted(v, key=lambda b: (b.lower is not None, b.lower or 0.0)))

    @field_validator("categories")
    @classmethod
    def _category_order(cls, v: tuple[CategoryCount, ...]) -> tuple[CategoryCount, ...]:
        return tuple(sorted(v, key=lambda c: (c.system or "", c.code)))

    def label(self, lang: str = "en") -> str:
        """Display name in ``lang``, falling back to English."""
        return self.labels.get(lang) or self.labels["en"]


#: The IRI lists of a description (sets: their order carries no meaning).
_IRI_SETS = (
    "themes", "spatial", "languages", "conforms_to", "applicable_legislation",
    "health_categories", "health_themes", "coding_systems", "personal_data", "legal_basis",
    "purpose",
)  # fmt: skip


class DatasetDescription(_Model):
    """The HealthDCAT-AP description of one site's data (``dcat:Dataset``).

    Parameters
    ----------
    site : str
        The site's identifier (``dct:identifier``).
    iri : str
        The dataset's IRI.
    title, description : dict
        Language code → text (``dct:title``, ``dct:description``); English required.
    publisher : Agent
        Who publishes the dataset (``dct:publisher``).
    contact_point : ContactPoint
        Whom to ask (``dcat:contactPoint``).
    issued, modified : date
        First publication and this version's day.
    keywords : dict
        Language code → keywords (``dcat:keyword``).
    themes : tuple of str
        EU data-theme IRIs (``dcat:theme``).
    temporal : MonthPeriod, optional
        Months covered by the data (``dct:temporal``).
    spatial : tuple of str
        Country or place IRIs (``dct:spatial``).
    languages : tuple of str
        EU language IRIs of the data (``dct:language``).
    access_rights : str
        EU access-right IRI (``dct:accessRights``).
    conforms_to : tuple of str
        Standards the data follow (``dct:conformsTo``): the data model.
    applicable_legislation : tuple of str
        ELI IRIs (``dcatap:applicableLegislation``).
    distributions : tuple of Distribution
        How the data are reached (``dcat:distribution``).
    health_categories, health_themes : tuple of str
        ``healthdcatap:healthCategory`` and ``healthdcatap:healthTheme`` IRIs.
    coding_systems : tuple of str
        ``healthdcatap:hasCodingSystem``: code systems used (Wikidata IRIs where known).
    number_of_records : int, optional
        Records (FHIR resources) held (``healthdcatap:numberOfRecords``).
    number_of_unique_individuals : int, optional
        Patients (``healthdcatap:numberOfUniqueIndividuals``).
    population_coverage : dict
        Language code → who is covered (``healthdcatap:populationCoverage``).
    min_typical_age, max_typical_age : int, optional
        Typical age range of the patients (5th and 95th percentiles, rounded outwards to
        five years).
    personal_data : tuple of str
        DPV personal-data category IRIs (``dpv:hasPersonalData``).
    legal_basis : tuple of str
        DPV / GDPR legal basis IRIs (``dpv:hasLegalBasis``).
    purpose : tuple of str
        DPV purpose IRIs (``dpv:hasPurpose``).
    retention_period : DatePeriod, optional
        How long the data are kept (``healthdcatap:retentionPeriod``).
    hdab : Agent, optional
        Health data access body (``healthdcatap:hdab``).
    quality_annotations : tuple of QualityAnnotation
        Links to the data-quality report (``dqv:hasQualityAnnotation``).
    min_cell_count : int
        The site policy's minimum cell count applied to every count here.
    variables : tuple of VariableEntry
        The variable-level dictionary.
    """

    site: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    iri: Iri
    title: dict[str, str]
    description: dict[str, str]
    publisher: Agent
    contact_point: ContactPoint
    issued: date
    modified: date
    keywords: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    themes: tuple[Iri, ...] = ()
    temporal: MonthPeriod | None = None
    spatial: tuple[Iri, ...] = ()
    languages: tuple[Iri, ...] = ()
    access_rights: Iri
    conforms_to: tuple[Iri, ...] = ()
    applicable_legislation: tuple[Iri, ...] = ()
    distributions: tuple[Distribution, ...] = Field(min_length=1)
    health_categories: tuple[Iri, ...] = Field(min_length=1)
    health_themes: tuple[Iri, ...] = ()
    coding_systems: tuple[Iri, ...] = ()
    number_of_records: int | None = Field(None, ge=0)
    number_of_unique_individuals: int | None = Field(None, ge=0)
    population_coverage: dict[str, str] = Field(default_factory=dict)
    min_typical_age: int | None = Field(None, ge=0, le=150)
    max_typical_age: int | None = Field(None, ge=0, le=150)
    personal_data: tuple[Iri, ...] = ()
    legal_basis: tuple[Iri, ...] = Field(min_length=1)
    purpose: tuple[Iri, ...] = Field(min_length=1)
    retention_period: DatePeriod | None = None
    hdab: Agent | None = None
    quality_annotations: tuple[QualityAnnotation, ...] = ()
    min_cell_count: int = Field(ge=1)
    variables: tuple[VariableEntry, ...] = ()

    @field_validator("title", "description")
    @classmethod
    def _texts(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_languages(v, "title/description")

    # RDF keeps no order: every list is kept in one canonical order, so a round trip is exact.
    @field_validator(*_IRI_SETS)
    @classmethod
    def _iri_order(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(v)))

    @field_validator("keywords")
    @classmethod
    def _keyword_order(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        return {lang: tuple(sorted(set(words))) for lang, words in v.items()}

    @field_validator("variables")
    @classmethod
    def _variable_order(cls, v: tuple[VariableEntry, ...]) -> tuple[VariableEntry, ...]:
        return tuple(sorted(v, key=lambda e: e.id))

    @field_validator("distributions")
    @classmethod
    def _distribution_order(cls, v: tuple[Distribution, ...]) -> tuple[Distribution, ...]:
        return tuple(sorted(v, key=lambda d: d.iri))

    @field_validator("population_coverage")
    @classmethod
    def _coverage(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_languages(v, "population_coverage") if v else v

    @model_validator(mode="after")
    def _consistent(self) -> DatasetDescription:
        lo, hi = self.min_typical_age, self.max_typical_age
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_typical_age {lo} is above max_typical_age {hi}")
        if self.issued > self.modified:
            raise ValueError(f"issued {self.issued} is after modified {self.modified}")
        ids = [v.id for v in self.variables]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"variables listed twice: {dup}")
        self._check_small_cells()
        return self

    def _check_small_cells(self) -> None:
        """Refuse a count between 1 and ``min_cell_count - 1``: it must have been withheld."""
        k = self.min_cell_count

        def small(n: int | None) -> bool:
            return n is not None and 0 < n < k

        bad: list[str] = []
        if small(self.number_of_unique_individuals):
            bad.append("number_of_unique_individuals")
        for v in self.variables:
            if small(v.patients):
                bad.append(f"{v.id}.patients")
            if v.summary is not None and v.summary.n < k:
                bad.append(f"{v.id}.summary.n")
            bad += [f"{v.id}.histogram" for b in v.histogram if small(b.count)][:1]
            bad += [f"{v.id}.categories" for c in v.categories if small(c.count)][:1]
        if bad:
            raise ValueError(
                f"counts below the minimum cell count {k} must be withheld: {', '.join(bad)}"
            )

    def variable(self, variable_id: str) -> VariableEntry:
        """The entry of one variable.

        Raises
        ------
        KeyError
            When the variable is not present at the site.
        """
        for v in self.variables:
            if v.id == variable_id:
                return v
        raise KeyError(f"variable {variable_id!r} is not present in {self.site}'s description")

"""The site profile: what a site says about its data that no store can tell.

Publisher, contact point, legal basis, purpose, retention period, access rights... come from
a small YAML file owned by the site, never from guesses. A required field that is missing is
an error naming the file and the field; an optional one that falls back to a default is
listed in :attr:`SiteProfile.defaults_applied`, so that the site sees what it did not say.
Example (the demo hospitals' and the UCI hospitals' profiles are complete examples)::

    cardiobox_catalogue_profile: 1
    site: hospital_es
    title: {en: Heart-failure admissions of Hospital X, es: Ingresos por insuficiencia ...}
    description: {en: Every adult admitted with heart failure since 2018 ...}
    publisher: {name: Hospital X, homepage: "https://hospital-x.example/"}
    contact_point: {name: Research office, email: research@hospital-x.example}
    country: ESP                            # ISO 3166-1 alpha-3
    access_url: "https://hospital-x.example/data-requests"
    health_categories: [EHRS]              # HealthDCAT-AP health-category codes, or IRIs
    legal_basis: ["eu-gdpr:A9-2-j"]         # DPV / GDPR IRIs, or these short forms
    purpose: ["dpv:AcademicResearch"]

Short forms: ``dpv:``, ``dpv-pd:``, ``eu-gdpr:`` and ``wd:`` (Wikidata) prefixes; access
rights ``PUBLIC``, ``RESTRICTED``, ``NON_PUBLIC``; data themes such as ``HEAL``; health
categories such as ``EHRS``; languages as ISO 639-1 codes. See docs/catalogue.md.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cardiobox import yamlio
from cardiobox.errors import CardioboxError, Location

#: Prefixes accepted in short IRIs.
PREFIXES: dict[str, str] = {
    "dpv": "https://w3id.org/dpv#",
    "dpv-pd": "https://w3id.org/dpv/dpv-pd#",
    "eu-gdpr": "https://w3id.org/dpv/legal/eu/gdpr#",
    "wd": "http://www.wikidata.org/entity/",
}
EU_AUTHORITY = "http://publications.europa.eu/resource/authority/"
#: HealthDCAT-AP health categories (Release 6, the 17 categories of EHDS Art. 51).
HEALTH_CATEGORY_BASE = "http://13.81.34.152:1101/resource/authority/healthcategories/"
#: The EHDS regulation, (EU) 2025/327.
EHDS = "http://data.europa.eu/eli/reg/2025/327/oj"
DEFAULT_BASE = "https://cardiobox.org/catalogue/"
#: ISO 639-1 → EU language authority codes, for the languages a profile may list.
LANGUAGE_CODES: dict[str, str] = {
    "en": "ENG", "es": "SPA", "it": "ITA", "nl": "NLD", "sv": "SWE", "cs": "CES", "ro": "RON",
    "de": "DEU", "fr": "FRA", "pt": "POR", "hu": "HUN", "pl": "POL", "da": "DAN", "fi": "FIN",
}  # fmt: skip


class ProfileError(CardioboxError):
    """A site profile that is missing a required field or holds an invalid value."""


def expand_iri(value: str, base: str | None = None) -> str:
    """A full IRI from a short form (``dpv:Consent``) or a code under ``base`` (``EHRS``).

    Parameters
    ----------
    value : str
        An IRI, a prefixed short form, or a bare code.
    base : str, optional
        Namespace of bare codes; without it a bare code is an error.

    Raises
    ------
    ValueError
        For a bare code without a base, or an unknown prefix.
    """
    text = value.strip()
    prefix, sep, rest = text.partition(":")
    if sep and prefix in PREFIXES:
        return PREFIXES[prefix] + rest
    if sep and (rest.startswith("//") or prefix in ("urn", "mailto")):
        return text
    if base is not None and text and not sep and " " not in text:
        return base + text
    raise ValueError(f"{value!r} is neither an IRI nor a known short form")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentProfile(_Strict):
    """Publisher or health data access body: ``name`` and ``homepage`` or ``iri``."""

    name: str = Field(min_length=1)
    iri: str | None = None
    homepage: str | None = None
    email: str | None = None
    type: str | None = None


class ContactProfile(_Strict):
    """Contact point: ``name`` and ``email`` (required), ``url``."""

    name: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    url: str | None = None


class RetentionProfile(_Strict):
    """Retention period: ``start``/``end`` days and where the period comes from."""

    start: date | None = None
    end: date | None = None
    comment: str | None = None


class SiteProfile(_Strict):
    """A site's catalogue profile (see the module docstring for the YAML form).

    Parameters
    ----------
    site : str
        The site's identifier.
    title, description : dict
        Language code → text; English required.
    publisher : AgentProfile
        The publisher (``name``, and ``homepage`` or ``iri``).
    contact_point : ContactProfile
        Whom researchers ask.
    country : str
        ISO 3166-1 alpha-3 code of the country the data come from.
    access_url : str
        Where access to the data is requested (the distributions' ``dcat:accessURL``).
    health_categories : list of str
        HealthDCAT-AP health-category codes or IRIs.
    legal_basis, purpose : list of str
        DPV / GDPR IRIs or short forms.
    base_iri : str, optional
        Namespace of the site's catalogue IRIs (default
        ``https://cardiobox.org/catalogue/<site>/``).
    keywords : dict
        Language code → keywords.
    themes : list of str
        EU data themes (default ``HEAL``).
    health_themes : list of str
        Health-theme IRIs (Wikidata items such as ``wd:Q181754``, heart failure).
    languages : list of str
        ISO 639-1 codes of the languages in the data (clinical notes).
    access_rights : str
        ``PUBLIC``, ``RESTRICTED`` or ``NON_PUBLIC`` or an IRI (default ``NON_PUBLIC``).
    applicable_legislation : list of str
        ELI IRIs (default: the EHDS regulation).
    population_coverage : dict
        Language code → who is covered.
    retention_period : RetentionProfile, optional
        How long the data are kept.
    hdab : AgentProfile, optional
        Health data access body.
    quality_report : str, optional
        IRI where the site's data-quality report is published.
    issued : date, optional
        First publication day (default: the day of the build).
    defaults_applied : list of str
        Filled on loading: the optional fields that took their default.
    """

    cardiobox_catalogue_profile: Literal[1] = 1
    site: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    title: dict[str, str]
    description: dict[str, str]
    publisher: AgentProfile
    contact_point: ContactProfile
    country: str = Field(pattern=r"^[A-Z]{3}$")
    access_url: str
    health_categories: list[str] = Field(min_length=1)
    legal_basis: list[str] = Field(min_length=1)
    purpose: list[str] = Field(min_length=1)
    base_iri: str | None = None
    keywords: dict[str, list[str]] = Field(default_factory=dict)
    themes: list[str] = Field(default_factory=lambda: ["HEAL"])
    health_themes: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    access_rights: str = "NON_PUBLIC"
    applicable_legislation: list[str] = Field(default_factory=lambda: [EHDS])
    population_coverage: dict[str, str] = Field(default_factory=dict)
    retention_period: RetentionProfile | None = None
    hdab: AgentProfile | None = None
    quality_report: str | None = None
    issued: date | None = None
    defaults_applied: list[str] = Field(default_factory=list, exclude=True)

    @field_validator("title", "description")
    @classmethod
    def _english(cls, v: dict[str, str]) -> dict[str, str]:
        if not (v.get("en") or "").strip():
            raise ValueError("an English ('en') text is required")
        return v

    @field_validator("languages")
    @classmethod
    def _languages(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(LANGUAGE_CODES))
        if unknown:
            raise ValueError(
                f"unknown language code(s) {unknown} (known: {sorted(LANGUAGE_CODES)})"
            )
        return v

    # -- IRIs ------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        """The namespace of the site's IRIs (ends with ``/`` or ``#``)."""
        base = self.base_iri or f"{DEFAULT_BASE}{self.site}/"
        return base if base.endswith(("/", "#")) else base + "/"

    def publisher_iri(self) -> str:
        """The publisher's IRI: its ``iri``, else its homepage."""
        iri = self.publisher.iri or self.publisher.homepage
        assert iri is not None  # checked on loading
        return iri

    def iris(self, field: str) -> tuple[str, ...]:
        """A list field's values as full IRIs (short forms and codes expanded)."""
        bases = {
            "themes": EU_AUTHORITY + "data-theme/",
            "health_categories": HEALTH_CATEGORY_BASE,
        }
        values: list[str] = getattr(self, field)
        return tuple(expand_iri(v, bases.get(field)) for v in values)

    def access_rights_iri(self) -> str:
        """The access rights as an EU access-right IRI."""
        return expand_iri(self.access_rights, EU_AUTHORITY + "access-right/")

    def country_iri(self) -> str:
        """The country as an EU country-authority IRI."""
        return f"{EU_AUTHORITY}country/{self.country}"

    def language_iris(self) -> tuple[str, ...]:
        """The data's languages as EU language-authority IRIs."""
        return tuple(f"{EU_AUTHORITY}language/{LANGUAGE_CODES[c]}" for c in self.languages)


#: Optional fields whose default the site should know it took.
_MARKED_DEFAULTS = ("base_iri", "access_rights", "themes", "applicable_legislation")


def _check_iris(profile: SiteProfile) -> None:
    """Expand every IRI field once, so that a bad value fails on loading, naming its field."""
    if not (profile.publisher.iri or profile.publisher.homepage):
        raise ValueError("publisher: give its homepage or its iri")
    for name in ("themes", "health_categories", "health_themes", "legal_basis", "purpose"):
        try:
            profile.iris(name)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    for name, value in (
        ("access_rights", profile.access_rights),
        ("access_url", profile.access_url),
        *(("applicable_legislation", v) for v in profile.applicable_legislation),
        *((("quality_report", profile.quality_report),) if profile.quality_report else ()),
    ):
        try:
            expand_iri(value, EU_AUTHORITY if name == "access_rights" else None)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None


def profile_from_dict(raw: Any, source: str = "<profile>") -> SiteProfile:
    """Validate a profile given as a mapping.

    Parameters
    ----------
    raw : Any
        The parsed YAML.
    source : str
        File name for messages.

    Raises
    ------
    ProfileError
        Naming the missing or invalid field.
    """
    where = Location(file=source)
    if not isinstance(raw, dict) or "cardiobox_catalogue_profile" not in raw:
        raise ProfileError(
            "expected a site profile (a mapping with cardiobox_catalogue_profile: 1)",
            rule="profile-schema",
            location=where,
        )
    try:
        profile = SiteProfile.model_validate(raw)
        _check_iris(profile)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(x) for x in first["loc"]) or "profile"
        if first["type"] == "missing":
            raise ProfileError(
                f"missing required field {field!r}", rule="profile-missing-field", location=where
            ) from None
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise ProfileError(f"{field}: {msg}", rule="profile-schema", location=where) from None
    except ValueError as exc:
        raise ProfileError(str(exc), rule="profile-schema", location=where) from None
    profile.defaults_applied = [f for f in _MARKED_DEFAULTS if f not in raw]
    return profile


def load_profile(path: str | Path) -> SiteProfile:
    """Read a site profile YAML file.

    Parameters
    ----------
    path : str or Path
        The profile.

    Returns
    -------
    SiteProfile
        With ``defaults_applied`` listing the optional fields that took their default.

    Raises
    ------
    ProfileError
        For a missing file, a syntax error, or a missing or invalid field.
    """
    p = Path(path)
    raw = yamlio.load_file(p, "profile-syntax", error=ProfileError)
    return profile_from_dict(raw, str(p))

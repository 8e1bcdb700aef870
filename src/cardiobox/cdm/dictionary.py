"""The data dictionary: the single source of truth for every data-model variable.

The dictionary lives in YAML files under ``cardiobox/cdm/data/variables/``. Each file holds
one category of variables (phenotypes, labs, vitals, ...). Everything else in cardiobox
(validation rules, standard views, NLP normalisation, the catalogue, the assistant) reads
the variables from here through :func:`load_dictionary`.

Example
-------
>>> from cardiobox.cdm import load_dictionary
>>> d = load_dictionary()
>>> d["nt_probnp"].unit
'pg/mL'
>>> d.find_code("http://loinc.org", "33762-6").id
'nt_probnp'
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cardiobox import yamlio
from cardiobox.cdm import codes as codesys
from cardiobox.errors import describe_validation

#: The seven languages of cardiobox, in the order used throughout the project.
LANGUAGES: tuple[str, ...] = ("en", "es", "it", "nl", "sv", "cs", "ro")


class Category(StrEnum):
    """Kinds of variables in the data model."""

    demographics = "demographics"
    encounter = "encounter"
    death = "death"
    phenotype = "phenotype"
    medication_group = "medication_group"
    lab = "lab"
    vital_sign = "vital_sign"
    echo = "echo"
    ecg = "ecg"
    assessment = "assessment"
    symptom = "symptom"
    procedure = "procedure"


#: Categories whose display names must exist in all seven languages.
MULTILINGUAL_CATEGORIES = frozenset(
    {
        Category.phenotype,
        Category.medication_group,
        Category.lab,
        Category.vital_sign,
        Category.echo,
        Category.ecg,
        Category.symptom,
        Category.assessment,
        Category.procedure,
    }
)

ValueType = Literal[
    "quantity",  # Quantity with a UCUM unit
    "code",  # a coded value (CodeableConcept / code); see ``answers``
    "boolean",
    "integer",
    "decimal",
    "string",
    "date",
    "dateTime",
    "period",  # a start/end period (encounter)
    "presence",  # the variable is present when a resource with a matching code exists
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodeSet(_Strict):
    """Codes that identify a variable, from one code system.

    Parameters
    ----------
    system : str
        Code-system URI (aliases such as ``loinc`` or ``icd-10`` are accepted).
    codes : list of str
        Codes or ICD-10 style ranges (``"I10-I13"``); expanded at load time.
    """

    system: str
    codes: list[str] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, data: object) -> object:
        # Ranges ("I10-I13") only exist in hierarchical systems; LOINC codes contain '-'.
        if isinstance(data, dict) and isinstance(data.get("system"), str):
            system = codesys.canonical_system(data["system"])
            raw = data.get("codes")
            if isinstance(raw, list):
                if system in codesys.HIERARCHICAL_SYSTEMS:
                    raw = codesys.expand_codes(str(x) for x in raw)
                else:
                    raw = [str(x).strip() for x in raw]
            data = {**data, "system": system, "codes": raw}
        return data

    @property
    def hierarchical(self) -> bool:
        """Whether a listed code also matches its descendants (ICD-10, ATC)."""
        return self.system in codesys.HIERARCHICAL_SYSTEMS

    def matches(self, system: str, code: str) -> bool:
        """Tell whether ``system|code`` belongs to this set."""
        same = codesys.EQUIVALENT_SYSTEMS.get(self.system, frozenset({self.system}))
        if codesys.canonical_system(system) not in same:
            return False
        return codesys.code_matches(code, self.codes, self.hierarchical)


class Answer(_Strict):
    """One allowed coded answer (e.g. NYHA class II = LOINC LA28405-1)."""

    code: str
    system: str
    display: dict[str, str]
    value: int | float | str | None = None  # ordinal or short label used in analysis tables

    @field_validator("system")
    @classmethod
    def _canonical(cls, v: str) -> str:
        return codesys.canonical_system(v)

    @model_validator(mode="after")
    def _languages(self) -> Answer:
        if not self.display.get("en"):
            raise ValueError(f"answer {self.code!r}: display needs at least 'en'")
        unknown = set(self.display) - set(LANGUAGES)
        if unknown:
            raise ValueError(f"answer {self.code!r}: unknown display languages {sorted(unknown)}")
        return self


class Variable(_Strict):
    """One variable of the cardiology data model.

    Parameters
    ----------
    id : str
        Stable snake_case identifier (``nt_probnp``, ``heart_failure``).
    category : Category
        Kind of variable.
    resource : str
        FHIR R5 resource type that carries it (``Observation``, ``Condition``, ...).
    element : str
        FHIRPath of the element that holds the value, from the resource
        (``Observation.value.ofType(Quantity)``, ``Condition.code``, ``Patient.gender``).
    profile : str, optional
        DataTools4Heart profile name (``HFR-LabResult``) the variable belongs to.
    codes : list of CodeSet
        Codes identifying the variable (an Observation's ``code``, a phenotype's ICD-10
        set, a medication group's ATC set). Empty for plain elements (``Patient.gender``).
    value_type : str
        Type of the value; see :data:`ValueType`.
    unit : str, optional
        Canonical UCUM unit for quantities.
    range : tuple of float, optional
        Plausible ``[low, high]`` interval in the canonical unit; values outside it are
        rejected as implausible.
    answers : list of Answer
        Allowed coded answers for ``value_type: code``.
    display : dict
        Display names by language code.
    synonyms : dict
        Extra names and abbreviations by language (used by NLP and search).
    description : str
        One or two sentences, in English, of what the variable means.
    observation_category : str, optional
        FHIR observation-category code (``laboratory``, ``vital-signs``, ``exam``, ...).
    acronym : str, optional
        Short name used in the DataTools4Heart specification (``HF``, ``NTproBNP``).
    derived : str, optional
        How the value is derived from other variables, when it is not recorded directly.
    """

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    category: Category
    resource: str
    element: str
    profile: str | None = None
    codes: list[CodeSet] = Field(default_factory=list)
    value_type: ValueType
    unit: str | None = None
    range: tuple[float, float] | None = None
    answers: list[Answer] = Field(default_factory=list)
    display: dict[str, str]
    synonyms: dict[str, list[str]] = Field(default_factory=dict)
    description: str
    observation_category: str | None = None
    acronym: str | None = None
    derived: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Variable:
        if not self.display.get("en"):
            raise ValueError(f"variable {self.id!r}: display needs at least 'en'")
        unknown = set(self.display) - set(LANGUAGES)
        if unknown:
            raise ValueError(f"variable {self.id!r}: unknown display languages {sorted(unknown)}")
        unknown = set(self.synonyms) - set(LANGUAGES)
        if unknown:
            raise ValueError(f"variable {self.id!r}: unknown synonym languages {sorted(unknown)}")
        for lang, names in self.synonyms.items():
            if any(not name.strip() for name in names):
                raise ValueError(f"variable {self.id!r}: empty synonym for {lang!r}")
        if not self.description.strip():
            raise ValueError(f"variable {self.id!r}: description must not be empty")
        if self.category in MULTILINGUAL_CATEGORIES:
            missing = [lang for lang in LANGUAGES if not self.display.get(lang)]
            if missing:
                raise ValueError(f"variable {self.id!r}: display names missing for {missing}")
        if self.value_type == "quantity" and not self.unit:
            raise ValueError(f"variable {self.id!r}: a quantity needs a canonical UCUM unit")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"variable {self.id!r}: range low > high")
        if self.value_type == "code" and self.category == Category.assessment and not self.answers:
            raise ValueError(f"variable {self.id!r}: coded assessment needs answers")
        return self

    def name(self, lang: str = "en") -> str:
        """Display name in ``lang``, falling back to English."""
        return self.display.get(lang) or self.display["en"]

    def all_names(self, lang: str | None = None) -> list[str]:
        """Display names and synonyms, for one language or all of them."""
        langs = [lang] if lang else list(LANGUAGES)
        out: list[str] = []
        for lg in langs:
            if self.display.get(lg):
                out.append(self.display[lg])
            out.extend(self.synonyms.get(lg, []))
        return out

    def matches(self, system: str, code: str) -> bool:
        """Tell whether ``system|code`` identifies this variable."""
        return any(cs.matches(system, code) for cs in self.codes)


class DataDictionary:
    """All variables of the data model, indexed by id and by code.

    Use :func:`load_dictionary` to get the packaged dictionary.
    """

    def __init__(self, variables: list[Variable]):
        self._by_id: dict[str, Variable] = {}
        for v in variables:
            if v.id in self._by_id:
                raise ValueError(f"duplicate variable id {v.id!r} in the data dictionary")
            self._by_id[v.id] = v
        # Exact (non-hierarchical) codes index: LOINC and SNOMED identify one variable.
        self._exact: dict[tuple[str, str], list[Variable]] = {}
        for v in variables:
            for cs in v.codes:
                if not cs.hierarchical:
                    for c in cs.codes:
                        self._exact.setdefault((cs.system, c), []).append(v)

    def __getitem__(self, variable_id: str) -> Variable:
        try:
            return self._by_id[variable_id]
        except KeyError:
            raise KeyError(f"unknown data-model variable {variable_id!r}") from None

    def __contains__(self, variable_id: object) -> bool:
        return variable_id in self._by_id

    def __iter__(self) -> Iterator[Variable]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def by_category(self, category: Category | str) -> list[Variable]:
        """Variables of one category, in file order."""
        cat = Category(category)
        return [v for v in self if v.category == cat]

    def find_code(self, system: str, code: str) -> Variable | None:
        """Return the first variable identified by ``system|code`` (exact codes first)."""
        hits = self.find_all(system, code)
        return hits[0] if hits else None

    def code_members(self) -> list[tuple[str, str, str, str, bool]]:
        """Every code identifying a variable, for joins in SQL.

        Rows ``(variable, resource, system, member, hierarchical)``, one per equivalent
        system; hierarchical members (ICD-10, ATC) are written without dots and upper-case,
        to be matched as prefixes.
        """
        rows: list[tuple[str, str, str, str, bool]] = []
        for v in self:
            for cs in v.codes:
                systems = codesys.EQUIVALENT_SYSTEMS.get(cs.system, frozenset({cs.system}))
                for system in sorted(systems):
                    for code in cs.codes:
                        member = code.replace(".", "").upper() if cs.hierarchical else code
                        rows.append((v.id, v.resource, system, member, cs.hierarchical))
        return rows

    def find_all(self, system: str, code: str) -> list[Variable]:
        """All variables identified by ``system|code`` (a code can be in several sets)."""
        sys_uri = codesys.canonical_system(system)
        exact = self._exact.get((sys_uri, code.strip()), [])
        rest = [v for v in self if v not in exact and v.matches(sys_uri, code)]
        return [*exact, *rest]


def _data_dir() -> Path:
    return Path(str(resources.files("cardiobox.cdm") / "data" / "variables"))


def load_variables_file(path: Path) -> list[Variable]:
    """Load and validate one dictionary YAML file.

    Raises
    ------
    ValueError
        Naming the file and the variable when an entry is invalid.
    """
    try:
        with path.open(encoding="utf-8") as fh:
            doc = yamlio.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"{path.name}: expected a mapping with 'defaults' and 'variables'")
    entries = doc.get("variables") or []
    defaults = doc.get("defaults") or {}
    if not isinstance(entries, list) or not isinstance(defaults, dict):
        raise ValueError(f"{path.name}: 'variables' must be a list and 'defaults' a mapping")
    out: list[Variable] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"{path.name}: entry {i} is not a mapping")
        merged = {**defaults, **entry}
        try:
            out.append(Variable.model_validate(merged))
        except ValidationError as exc:
            ident = entry.get("id", f"entry {i}")
            raise ValueError(f"{path.name}: variable {ident}: {describe_validation(exc)}") from exc
    return out


@cache
def load_dictionary(directory: str | None = None) -> DataDictionary:
    """Load the data dictionary (cached).

    Parameters
    ----------
    directory : str, optional
        Folder of YAML files; defaults to the one shipped in the package.

    Returns
    -------
    DataDictionary
    """
    folder = Path(directory) if directory else _data_dir()
    variables: list[Variable] = []
    seen: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        for v in load_variables_file(path):
            if v.id in seen:
                where = path.name if seen[v.id] == path.name else f"{seen[v.id]} and {path.name}"
                raise ValueError(f"duplicate variable id {v.id!r} in {where}")
            seen[v.id] = path.name
            variables.append(v)
    return DataDictionary(variables)

"""Code systems and code sets of the cardiology data model.

Code sets in the dictionary are written as a person would write them in a protocol:
``I50``, ``I10-I13``, ``Q23.0-Q23.3``, ``C09DX04``. A listed code matches itself and every
more specific code below it (``I50`` matches ``I50.9``; ``C09A`` matches ``C09AA05``), which
is how ICD-10 and ATC hierarchies work. Ranges are expanded to the codes they span.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10_CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10_PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
ATC = "http://www.whocc.no/atc"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
#: The URI DataTools4Heart profiles use for ICD-10-PCS; treated as an alias of :data:`ICD10_PCS`.
ICD10_PCS_HL7 = "http://hl7.org/fhir/sid/icd-10-pcs"

ADMINISTRATIVE_GENDER = "http://hl7.org/fhir/administrative-gender"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ADMIT_SOURCE = "http://terminology.hl7.org/CodeSystem/admit-source"
#: cardiobox extension marking a Condition as the encounter's primary diagnosis (valueBoolean)
PRIMARY_DIAGNOSIS_EXT = "https://cardiobox.org/fhir/StructureDefinition/primary-diagnosis"

#: Code systems defined by the DataTools4Heart (DT4H) common data model.
DT4H_ECHO_PARAMETER = "https://datatools4heart.eu/fhir/CodeSystem/echo-parameter"
DT4H_ECG_PARAMETER = "https://datatools4heart.eu/fhir/CodeSystem/ecg-parameter"
DT4H_QT_CORRECTION = "https://datatools4heart.eu/fhir/CodeSystem/qt-correction-formula"
DT4H_MEDICATION_GROUP = "https://datatools4heart.eu/fhir/CodeSystem/medication-group"
DT4H_ENCOUNTER_CLASS = "https://datatools4heart.eu/fhir/CodeSystem/encounter-class"
DT4H_ADMIT_SOURCE = "https://datatools4heart.eu/fhir/CodeSystem/encounter-admit-source"

#: Short names accepted in the dictionary files, mapped to canonical system URIs.
SYSTEM_ALIASES: dict[str, str] = {
    "icd-10": ICD10,
    "icd-10-cm": ICD10_CM,
    "icd-10-pcs": ICD10_PCS,
    "atc": ATC,
    "loinc": LOINC,
    "snomed": SNOMED,
    "ucum": UCUM,
    "rxnorm": RXNORM,
    ICD10_PCS_HL7: ICD10_PCS,
    "administrative-gender": ADMINISTRATIVE_GENDER,
    "v3-actcode": V3_ACT_CODE,
    "admit-source": ADMIT_SOURCE,
    "dt4h-echo-parameter": DT4H_ECHO_PARAMETER,
    "dt4h-ecg-parameter": DT4H_ECG_PARAMETER,
    "dt4h-qt-correction-formula": DT4H_QT_CORRECTION,
    "dt4h-medication-group": DT4H_MEDICATION_GROUP,
    "dt4h-encounter-class": DT4H_ENCOUNTER_CLASS,
    "dt4h-encounter-admit-source": DT4H_ADMIT_SOURCE,
}

#: Systems whose codes are hierarchical by prefix (a code matches its descendants).
HIERARCHICAL_SYSTEMS = frozenset({ICD10, ICD10_CM, ICD10_PCS, ATC})

#: Systems treated as equivalent when matching ICD-10 code sets (ICD-10-CM extends ICD-10).
EQUIVALENT_SYSTEMS: dict[str, frozenset[str]] = {
    ICD10: frozenset({ICD10, ICD10_CM}),
    ICD10_CM: frozenset({ICD10, ICD10_CM}),
}

_RANGE = re.compile(r"^([A-Z])(\d{2})(?:\.(\d+))?-([A-Z])(\d{2})(?:\.(\d+))?$")
# ATC chemical-substance range within one chemical subgroup: C09AA01-C09AA16.
_ATC_RANGE = re.compile(r"^([A-Z]\d{2}[A-Z]{2})(\d{2})-([A-Z]\d{2}[A-Z]{2})(\d{2})$")


def canonical_system(system: str) -> str:
    """Return the canonical URI for a code-system alias or URI.

    Parameters
    ----------
    system : str
        A short alias such as ``"loinc"`` or a full URI.

    Returns
    -------
    str
        The canonical URI; unknown values are returned unchanged.
    """
    return SYSTEM_ALIASES.get(system.strip().lower(), system.strip())


def normalise_code(code: str) -> str:
    """Normalise an ICD-10 / ATC code for matching: upper case, no spaces."""
    return code.strip().upper().replace(" ", "")


def expand_range(spec: str) -> list[str]:
    """Expand an ICD-10 style range into the codes it spans.

    Parameters
    ----------
    spec : str
        ``"I10-I13"`` (ICD-10 categories), ``"Q23.0-Q23.3"`` (ICD-10 subcategories),
        ``"C09AA01-C09AA16"`` (ATC substances of one chemical subgroup) or a single code.

    Returns
    -------
    list of str
        ``["I10", "I11", "I12", "I13"]`` for ``"I10-I13"``; ``[spec]`` when it is no range.

    Raises
    ------
    ValueError
        If the range is malformed (different letters or ATC subgroups, reversed bounds,
        mixed precision).
    """
    spec = normalise_code(spec).replace("–", "-")
    atc = _ATC_RANGE.match(spec)
    if atc:
        g1, a, g2, b = atc.groups()
        if g1 != g2:
            raise ValueError(f"ATC range {spec!r} spans two chemical subgroups ({g1}, {g2})")
        if int(a) > int(b):
            raise ValueError(f"code range {spec!r} is reversed")
        return [f"{g1}{i:02d}" for i in range(int(a), int(b) + 1)]
    m = _RANGE.match(spec)
    if not m:
        if "-" in spec:
            raise ValueError(
                f"malformed code range {spec!r}; expected e.g. 'I10-I13', 'Q23.0-Q23.3' "
                "or 'C09AA01-C09AA16'"
            )
        return [spec]
    l1, n1, d1, l2, n2, d2 = m.groups()
    if l1 != l2:
        raise ValueError(f"code range {spec!r} spans two chapters ({l1}, {l2})")
    if (d1 is None) != (d2 is None):
        raise ValueError(f"code range {spec!r} mixes categories and subcategories")
    if d1 is None or d2 is None:
        lo, hi = int(n1), int(n2)
        if lo > hi:
            raise ValueError(f"code range {spec!r} is reversed")
        return [f"{l1}{i:02d}" for i in range(lo, hi + 1)]
    if n1 != n2 or len(d1) != len(d2):
        raise ValueError(f"subcategory range {spec!r} must stay within one category")
    lo, hi = int(d1), int(d2)
    if lo > hi:
        raise ValueError(f"code range {spec!r} is reversed")
    return [f"{l1}{n1}.{i:0{len(d1)}d}" for i in range(lo, hi + 1)]


def expand_codes(specs: Iterable[str]) -> list[str]:
    """Expand a list of codes and ranges, keeping order and dropping duplicates."""
    seen: dict[str, None] = {}
    for spec in specs:
        for part in str(spec).split(","):
            if part.strip():
                for code in expand_range(part):
                    seen.setdefault(code, None)
    return list(seen)


def code_matches(code: str, members: Iterable[str], hierarchical: bool) -> bool:
    """Tell whether ``code`` belongs to a code set.

    Parameters
    ----------
    code : str
        The code to test (``"I50.9"``, ``"I5091"`` without the dot is accepted too).
    members : iterable of str
        Expanded code-set members.
    hierarchical : bool
        When true, a member matches all its descendants (prefix match ignoring dots).

    Returns
    -------
    bool
    """
    c = normalise_code(code)
    if not hierarchical:
        return c in set(members)
    flat = c.replace(".", "")
    return any(flat.startswith(m.replace(".", "")) for m in members)

"""The RDF vocabularies of the catalogue, and the IRIs the builder picks from them.

=============  ======================================  ====================================
prefix         namespace                               used for
=============  ======================================  ====================================
dcat           http://www.w3.org/ns/dcat#              Dataset, Distribution, Catalog
dct            http://purl.org/dc/terms/               title, publisher, temporal...
dcatap         http://data.europa.eu/r5r/              applicableLegislation
foaf           http://xmlns.com/foaf/0.1/              Agent, name, homepage
vcard          http://www.w3.org/2006/vcard/ns#        contact point
adms           http://www.w3.org/ns/adms#              identifiers
dqv            http://www.w3.org/ns/dqv#               quality annotations, measurements
oa             http://www.w3.org/ns/oa#                annotation body and target
dpv            https://w3id.org/dpv#                   personal data, legal basis, purpose
healthdcatap   http://healthdataportal.eu/ns/health#   the HealthDCAT-AP properties
csvw           http://www.w3.org/ns/csvw#              analysis-table columns
cbx            https://cardiobox.org/ns/catalogue#     the variable-level dictionary
=============  ======================================  ====================================
"""

from __future__ import annotations

from rdflib import Namespace
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDFS, SKOS, XSD

from cardiobox.cdm import codes as codesys

HEALTHDCATAP = Namespace("http://healthdataportal.eu/ns/health#")
DCATAP = Namespace("http://data.europa.eu/r5r/")
DQV = Namespace("http://www.w3.org/ns/dqv#")
OA = Namespace("http://www.w3.org/ns/oa#")
ADMS = Namespace("http://www.w3.org/ns/adms#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
DPV = Namespace("https://w3id.org/dpv#")
DPV_PD = Namespace("https://w3id.org/dpv/dpv-pd#")
CSVW = Namespace("http://www.w3.org/ns/csvw#")
#: cardiobox's own terms: the variable-level dictionary and its aggregates.
CBX = Namespace("https://cardiobox.org/ns/catalogue#")
#: The data model's variables (``dct:conformsTo`` of a variable entry).
CDM = Namespace("https://cardiobox.org/cdm/variable/")
#: The cardiobox cardiology data model (``dct:conformsTo`` of every site dataset).
DATA_MODEL = "https://cardiobox.org/cdm"

#: Prefix → namespace, bound in every graph and used as the JSON-LD context.
PREFIXES: dict[str, str] = {
    "dcat": str(DCAT),
    "dct": str(DCTERMS),
    "dcatap": str(DCATAP),
    "foaf": str(FOAF),
    "vcard": str(VCARD),
    "adms": str(ADMS),
    "dqv": str(DQV),
    "oa": str(OA),
    "dpv": str(DPV),
    "dpv-pd": str(DPV_PD),
    "healthdcatap": str(HEALTHDCATAP),
    "csvw": str(CSVW),
    "skos": str(SKOS),
    "rdfs": str(RDFS),
    "xsd": str(XSD),
    "cbx": str(CBX),
}

WIKIDATA = "http://www.wikidata.org/entity/"
#: Code-system URI → Wikidata property of its identifiers (HealthDCAT-AP asks for these in
#: ``hasCodingSystem``); systems without one are given by their own URI.
WIKIDATA_SYSTEMS: dict[str, str] = {
    codesys.ICD10: WIKIDATA + "P494",
    codesys.ICD10_CM: WIKIDATA + "P4229",
    codesys.ICD10_PCS: WIKIDATA + "P1690",
    codesys.LOINC: WIKIDATA + "P4338",
    codesys.SNOMED: WIKIDATA + "P5806",
    codesys.ATC: WIKIDATA + "P267",
}

#: Code-system URI → short name (search facets, exports).
SYSTEM_NAMES: dict[str, str] = {
    codesys.ICD10: "ICD-10",
    codesys.ICD10_CM: "ICD-10-CM",
    codesys.ICD10_PCS: "ICD-10-PCS",
    codesys.LOINC: "LOINC",
    codesys.SNOMED: "SNOMED CT",
    codesys.ATC: "ATC",
    codesys.UCUM: "UCUM",
    codesys.RXNORM: "RxNorm",
    codesys.ADMINISTRATIVE_GENDER: "FHIR administrative gender",
    codesys.V3_ACT_CODE: "HL7 v3 ActCode",
    codesys.ADMIT_SOURCE: "HL7 admit source",
    codesys.DT4H_ECHO_PARAMETER: "DT4H echo parameter",
    codesys.DT4H_ECG_PARAMETER: "DT4H ECG parameter",
    codesys.DT4H_QT_CORRECTION: "DT4H QT correction formula",
    codesys.DT4H_MEDICATION_GROUP: "DT4H medication group",
    codesys.DT4H_ENCOUNTER_CLASS: "DT4H encounter class",
    codesys.DT4H_ADMIT_SOURCE: "DT4H admit source",
    "https://cardiobox.org/fhir/CodeSystem/cardiobox": "cardiobox",
}
#: The reverse of :data:`WIKIDATA_SYSTEMS`, for names of Wikidata coding systems.
_WIKIDATA_NAMES = {iri: SYSTEM_NAMES[s] for s, iri in WIKIDATA_SYSTEMS.items()}


def coding_system_iri(system: str) -> str:
    """The ``hasCodingSystem`` IRI of a code system (its Wikidata property where known)."""
    return WIKIDATA_SYSTEMS.get(system, system)


def system_name(system: str) -> str:
    """A short name for a code-system URI or its Wikidata IRI (the URI when unknown)."""
    return SYSTEM_NAMES.get(system) or _WIKIDATA_NAMES.get(system) or system


#: Data-model variables → DPV personal-data categories; every other variable is health data.
PERSONAL_DATA_BY_VARIABLE: dict[str, str] = {
    "sex": str(DPV_PD.Gender),
    "birth_date": str(DPV_PD.Age),
    "age_at_index": str(DPV_PD.Age),
    "recorded_age": str(DPV_PD.Age),
    "ethnicity": str(DPV_PD.Ethnicity),
}
#: Data-model categories → DPV personal-data categories.
PERSONAL_DATA_BY_CATEGORY: dict[str, str] = {
    "medication_group": str(DPV_PD.Prescription),
    "death": str(DPV_PD.HealthRecord),
}
#: Personal-data category of every other variable.
HEALTH_DATA = str(DPV_PD.HealthRecord)

#: IANA media types and EU file types used by the distributions.
IANA = "http://www.iana.org/assignments/media-types/"
FILE_TYPE = "http://publications.europa.eu/resource/authority/file-type/"

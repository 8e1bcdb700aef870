"""The cardiology data model: data dictionary, code sets, FHIR versions and validation."""

from cardiobox.cdm.dictionary import (
    LANGUAGES,
    Category,
    CodeSet,
    DataDictionary,
    Variable,
    load_dictionary,
)

__all__ = ["LANGUAGES", "Category", "CodeSet", "DataDictionary", "Variable", "load_dictionary"]

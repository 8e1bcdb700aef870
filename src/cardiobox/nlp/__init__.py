"""Multilingual clinical NLP for cardiology notes.

Notes in Spanish, English, Italian, Dutch, Swedish, Czech and Romanian become spaCy
``Doc`` objects whose span groups hold what was found: entities (DISEASE, SYMPTOM,
PROCEDURE, MEDICATION) with their context (negated, uncertain, historical, family) and codes,
measurements (LVEF, blood pressure, NYHA class, labs) with values in canonical units, and
identifiers to remove. Every component is language-agnostic code; a language's data lives
only under ``nlp/lang/<code>/``, with the same files for every language.
"""

from cardiobox.nlp.languages import LANGUAGES

__all__ = ["LANGUAGES"]

"""Clinical tokenisation and sentences in every language."""

from __future__ import annotations

import random
from unittest import mock

import pytest

from cardiobox.nlp import doc as doc_module
from cardiobox.nlp.doc import make_doc, register_span_extensions, set_span_attributes
from cardiobox.nlp.languages import LANGUAGES, LanguageError, check_language


def _tokens(text: str, lang: str = "es") -> list[str]:
    return [t.text for t in make_doc(text, lang) if not t.is_space]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_units_numbers_and_pressures_stay_whole(lang: str) -> None:
    tokens = _tokens("TA 120/70 mmHg, creat 1,2 mg/dL, furosemida 40 mg/24h, 20 mg/zi.", lang)
    for whole in ("120/70", "1,2", "mg/dL", "mg/24h", "mg/zi"):
        assert whole in tokens


def test_punctuation_inside_words_is_split_for_entity_edges() -> None:
    assert _tokens("bloqueo aurículo-ventricular (BAV)") == [
        "bloqueo",
        "aurículo",
        "-",
        "ventricular",
        "(",
        "BAV",
        ")",
    ]


def test_abbreviations_end_no_sentence() -> None:
    doc = make_doc("Dosis aprox. 3 mg al día. Sin disnea.\nEcocardiograma normal", "es")
    sentences = [s.text.strip() for s in doc.sents]
    assert sentences == ["Dosis aprox. 3 mg al día.", "Sin disnea.", "Ecocardiograma normal"]


def test_unsupported_language_lists_the_supported_ones() -> None:
    with pytest.raises(LanguageError, match="ro \\(Romanian\\)"):
        check_language("de")


NOTES_WITH_SPECIAL_CASES = [
    "Dosis aprox. 3 mg al día (furosemida 40 mg/24h). Dr. Pérez: TA 120/70, FEVI 35 %.",
    "Tto. con bisoprolol 2,5 mg; etc. Sin disnea.\n\n  Control en 3 h. aprox.",
    "Paciente (aprox. 72 años) con IC-FEr, Dra. López; p.ej. edemas.",
]


@pytest.mark.parametrize("lang", ["es", "en", "nl"])
def test_warm_cache_gives_the_tokenizer_own_tokens(lang: str) -> None:
    import spacy
    from spacy.attrs import IS_SPACE, LEMMA, NORM, ORTH, SPACY

    from cardiobox.nlp.doc import configure_tokenizer, note_text

    never_warmed = spacy.blank(lang)
    configure_tokenizer(never_warmed, lang)
    plain = never_warmed.tokenizer
    columns = [ORTH, NORM, LEMMA, SPACY, IS_SPACE]
    for _ in range(2):  # the first pass fills the cache, the second reads it
        for text in NOTES_WITH_SPECIAL_CASES:
            doc = make_doc(text, lang)
            assert (doc.to_array(columns) == plain(text).to_array(columns)).all()
            assert note_text(doc) == text == doc.text


def test_note_text_of_a_part_is_the_part() -> None:
    from cardiobox.nlp.doc import note_text

    doc = make_doc("Paciente con disnea. Dr. Pérez.", "es")
    part = doc[4:].as_doc(copy_user_data=True)
    assert note_text(part) == part.text == "Dr. Pérez."
    assert note_text(make_doc("", "es")) == ""


@pytest.mark.parametrize("direct", [True, False])
def test_span_attributes_set_in_bulk_read_back_through_span_underscore(direct: bool) -> None:
    register_span_extensions()
    doc = make_doc("Sin disnea ni dolor torácico.", "es")
    spans = [doc[1:2], doc[3:5]]
    with mock.patch.object(doc_module, "_values_in_user_data", lambda: direct):
        set_span_attributes(doc, spans, ["negated", "code"], [[True, "a|1"], [False, None]])
    assert (spans[0]._.negated, spans[0]._.code) == (True, "a|1")
    assert (spans[1]._.negated, spans[1]._.code) == (False, None)
    assert doc[1:2]._.negated is True  # the same span made anew
    assert doc_module._values_in_user_data()  # spaCy stores them where assumed


SENTENCE_PIECES = ["a", ".", "..", "!", "?", ";", "\n", "\n\n", "(", ")", ",", "-", "Dolor"]
SENTENCE_PIECES += ["3.5", "Dr.", "  ", "¿", "'", '"', "...", "x", "mg/dL", "FEVI"]


@pytest.mark.parametrize("lang", ["es", "sv"])
def test_sentence_marks_are_spacys_sentencizers(lang: str) -> None:
    rng = random.Random(lang)
    texts = ["", ".", "Sin dolor. Disnea;\n- FEVI 35 %.\n\nTratamiento: furosemida!"]
    texts += [
        "".join(rng.choice(SENTENCE_PIECES) + rng.choice(["", " "]) for _ in range(n))
        for n in (rng.randint(1, 80) for _ in range(300))
    ]
    sentencizer = doc_module.blank_pipeline(lang).get_pipe("sentencizer")
    for i, text in enumerate(texts):
        mine, theirs = make_doc(text, lang, sentences=False), make_doc(text, lang, sentences=False)
        if len(mine) > 3 and i % 3 == 0:  # marks set before are kept, as spaCy keeps them
            for doc in (mine, theirs):
                doc[2].is_sent_start = False
                doc[-1].is_sent_start = True
        doc_module.split_sentences(mine)
        sentencizer(theirs)
        assert [t.is_sent_start for t in mine] == [t.is_sent_start for t in theirs], text

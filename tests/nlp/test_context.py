"""ConText attributes (negated, uncertain, historical, family) in the seven languages."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from pydantic import ValidationError
from spacy.tokens import Doc, Span

import cardiobox.nlp.languages as languages_module
from cardiobox.nlp.context import (
    CATEGORIES,
    ConText,
    ContextRules,
    apply_context,
    find_context_terms,
    load_context_rules,
    register_extensions,
)
from cardiobox.nlp.doc import make_doc
from cardiobox.nlp.languages import LanguageError
from cardiobox.nlp.sections import split_sections

NONE: frozenset[str] = frozenset()
NEG = frozenset({"negated"})
UNC = frozenset({"uncertain"})
HIST = frozenset({"historical"})
FAM = frozenset({"family"})

# (language, sentence, finding, the attributes it must have). Per language: negation forward
# and backward, a pseudo-trigger, a termination (both sides of it), uncertainty, history, family.
CASES: list[tuple[str, str, str, frozenset[str]]] = [
    ("es", "Niega dolor torácico.", "dolor torácico", NEG),
    ("es", "TEP descartado tras angio-TC.", "TEP", NEG),
    ("es", "Hemocultivos negativos.", "Hemocultivos", NEG),
    ("es", "Sin cambios en la insuficiencia mitral.", "insuficiencia mitral", NONE),
    ("es", "No solo disnea sino también edemas.", "disnea", NONE),
    ("es", "Miocardiopatía no isquémica y disnea.", "disnea", NONE),
    ("es", "No presenta fiebre pero sí disnea.", "fiebre", NEG),
    ("es", "No presenta fiebre pero sí disnea.", "disnea", NONE),
    ("es", "Posible endocarditis infecciosa.", "endocarditis infecciosa", UNC),
    ("es", "No se descarta TEP.", "TEP", UNC),
    ("es", "Antecedentes de infarto de miocardio.", "infarto de miocardio", HIST),
    ("es", "IAM hace 3 años.", "IAM", HIST),
    ("es", "Padre con miocardiopatía hipertrófica.", "miocardiopatía hipertrófica", FAM),
    ("en", "The patient denies chest pain.", "chest pain", NEG),
    ("en", "Pulmonary embolism was ruled out.", "Pulmonary embolism", NEG),
    ("en", "He doesn't have angina.", "angina", NEG),
    ("en", "No change in the mitral regurgitation.", "mitral regurgitation", NONE),
    ("en", "Not only dyspnoea.", "dyspnoea", NONE),
    ("en", "No fever but dyspnoea on exertion.", "fever", NEG),
    ("en", "No fever but dyspnoea on exertion.", "dyspnoea", NONE),
    ("en", "Possible pericarditis.", "pericarditis", UNC),
    ("en", "Myocardial ischaemia cannot be excluded.", "Myocardial ischaemia", UNC),
    ("en", "History of myocardial infarction.", "myocardial infarction", HIST),
    ("en", "A 75-year-old man with chest pain.", "chest pain", NONE),
    ("en", "His father had dilated cardiomyopathy.", "dilated cardiomyopathy", FAM),
    ("it", "Nega dolore toracico.", "dolore toracico", NEG),
    ("it", "Embolia polmonare esclusa.", "Embolia polmonare", NEG),
    ("it", "Non solo dispnea.", "dispnea", NONE),
    ("it", "Senza variazioni dell'insufficienza mitrale.", "insufficienza mitrale", NONE),
    ("it", "Non febbre ma dispnea.", "febbre", NEG),
    ("it", "Non febbre ma dispnea.", "dispnea", NONE),
    ("it", "Sospetta endocardite.", "endocardite", UNC),
    ("it", "Pregresso infarto miocardico.", "infarto miocardico", HIST),
    ("it", "Madre con cardiomiopatia dilatata.", "cardiomiopatia dilatata", FAM),
    ("nl", "Geen pijn op de borst.", "pijn op de borst", NEG),
    ("nl", "Longembolie werd uitgesloten.", "Longembolie", NEG),
    ("nl", "Geen verandering van de mitralisinsufficiëntie.", "mitralisinsufficiëntie", NONE),
    ("nl", "Niet-ischemische cardiomyopathie en dyspneu.", "dyspneu", NONE),
    ("nl", "Geen koorts, wel dyspneu.", "koorts", NEG),
    ("nl", "Geen koorts, wel dyspneu.", "dyspneu", NONE),
    ("nl", "Waarschijnlijk pericarditis.", "pericarditis", UNC),
    ("nl", "Voorgeschiedenis van myocardinfarct.", "myocardinfarct", HIST),
    ("nl", "Vader met hypertrofische cardiomyopathie.", "hypertrofische cardiomyopathie", FAM),
    ("sv", "Patienten nekar bröstsmärta.", "bröstsmärta", NEG),
    ("sv", "Perikardvätska ses ej.", "Perikardvätska", NEG),
    ("sv", "Ingen förändring av mitralisinsufficiensen.", "mitralisinsufficiensen", NONE),
    ("sv", "Ingen feber men dyspné.", "feber", NEG),
    ("sv", "Ingen feber men dyspné.", "dyspné", NONE),
    ("sv", "Misstänkt endokardit.", "endokardit", UNC),
    ("sv", "Tidigare hjärtinfarkt.", "hjärtinfarkt", HIST),
    ("sv", "Far med hypertrof kardiomyopati.", "hypertrof kardiomyopati", FAM),
    ("cs", "Pacient neguje bolesti na hrudi.", "bolesti na hrudi", NEG),
    ("cs", "Plicní embolie vyloučena.", "Plicní embolie", NEG),
    ("cs", "Trombus nebyl zjištěn.", "Trombus", NEG),
    ("cs", "Nebyla zjištěna trombóza.", "trombóza", NEG),
    ("cs", "Bez změny mitrální regurgitace.", "mitrální regurgitace", NONE),
    ("cs", "Bez horečky, ale dušnost.", "horečky", NEG),
    ("cs", "Bez horečky, ale dušnost.", "dušnost", NONE),
    ("cs", "Podezření na endokarditidu.", "endokarditidu", UNC),
    ("cs", "Stav po infarktu myokardu.", "infarktu myokardu", HIST),
    ("cs", "Otec s dilatační kardiomyopatií.", "dilatační kardiomyopatií", FAM),
    ("ro", "Pacientul neagă durerea toracică.", "durerea toracică", NEG),
    ("ro", "Embolia pulmonară a fost exclusă.", "Embolia pulmonară", NEG),
    ("ro", "Fără modificări ale insuficienței mitrale.", "insuficienței mitrale", NONE),
    ("ro", "Fără febră, dar cu dispnee.", "febră", NEG),
    ("ro", "Fără febră, dar cu dispnee.", "dispnee", NONE),
    ("ro", "Suspiciune de endocardită.", "endocardită", UNC),
    ("ro", "Antecedente de infarct miocardic.", "infarct miocardic", HIST),
    ("ro", "Tatăl cu cardiomiopatie dilatată.", "cardiomiopatie dilatată", FAM),
]


def with_finding(text: str, lang: str, finding: str, label: str = "DISEASE") -> Doc:
    """A document whose only entity is the first occurrence of ``finding``."""
    doc = make_doc(text, lang)
    start = text.index(finding)
    span = doc.char_span(start, start + len(finding), label=label)
    assert span is not None, f"{finding!r} does not fall on token edges in {text!r}"
    doc.spans["entities"] = [span]
    return doc


def attributes(span: Span) -> frozenset[str]:
    return frozenset(c for c in CATEGORIES if getattr(span._, c))


@pytest.mark.parametrize(("lang", "text", "finding", "expected"), CASES)
def test_context_attributes(lang: str, text: str, finding: str, expected: frozenset[str]) -> None:
    doc = ConText()(with_finding(text, lang, finding))
    assert attributes(doc.spans["entities"][0]) == expected


def test_every_language_is_covered() -> None:
    from cardiobox.nlp.languages import LANGUAGES

    per_language = {lang: {e for lg, _, _, e in CASES if lg == lang} for lang in LANGUAGES}
    for lang, kinds in per_language.items():
        assert {NEG, UNC, HIST, FAM, NONE} <= kinds, lang


@pytest.mark.parametrize(
    ("lang", "text", "finding"),
    [
        ("es", "SIN FIEBRE.", "FIEBRE"),  # case
        ("es", "Se descarto TEP.", "TEP"),  # accent missing in the note
        ("ro", "Fara febra.", "febra"),  # Romanian typed without diacritics
        ("cs", "Trombus nebyl zjisten.", "Trombus"),  # wildcard, no diacritics
    ],
)
def test_matching_ignores_case_and_accents(lang: str, text: str, finding: str) -> None:
    doc = apply_context(with_finding(text, lang, finding))
    assert doc.spans["entities"][0]._.negated


def test_accents_kept_where_the_language_says_so() -> None:
    # Italian keeps accents: "né" negates, "ne" (a pronoun) does not.
    assert load_context_rules("it").fold_accents is False
    negated = apply_context(with_finding("Né dispnea.", "it", "dispnea"))
    plain = apply_context(with_finding("Ne dispnea.", "it", "dispnea"))
    assert negated.spans["entities"][0]._.negated
    assert not plain.spans["entities"][0]._.negated


def test_longest_term_wins() -> None:
    doc = make_doc("No se descarta TEP.", "es")
    matches = find_context_terms(doc)
    assert [(doc[m.start : m.end].text, m.triggers) for m in matches] == [
        ("No se descarta", (("uncertain", "forward"),))
    ]


def test_scope_ends_at_the_sentence() -> None:
    doc = make_doc("No fiebre. Disnea de esfuerzo.", "es")
    doc.spans["entities"] = [doc[1:2], doc[3:4]]
    ConText()(doc)
    fever, dyspnoea = doc.spans["entities"]
    assert fever._.negated and not dyspnoea._.negated


def test_scope_ends_at_a_trigger_of_a_rival_category() -> None:
    text = "Se descarta neumonía, probable bronquitis."
    doc = with_finding(text, "es", "neumonía")
    start = text.index("bronquitis")
    doc.spans["entities"] = [
        *doc.spans["entities"],
        doc.char_span(start, start + len("bronquitis"), label="DISEASE"),
    ]
    ConText()(doc)
    pneumonia, bronchitis = doc.spans["entities"]
    assert attributes(pneumonia) == NEG
    assert attributes(bronchitis) == UNC


def test_max_scope_counts_words() -> None:
    text = "Niega disnea ortopnea palpitaciones síncope mareo edemas tos fiebre."
    doc = with_finding(text, "es", "fiebre")
    assert not ConText(max_scope=5)(doc).spans["entities"][0]._.negated
    assert ConText(max_scope=8)(doc).spans["entities"][0]._.negated


def test_backward_scope_is_shorter() -> None:
    text = "Dolor torácico atípico de varias semanas de evolución descartado."
    doc = with_finding(text, "es", "Dolor torácico")
    assert not ConText()(doc).spans["entities"][0]._.negated
    assert ConText(max_backward_scope=10)(doc).spans["entities"][0]._.negated


def test_trigger_inside_a_finding_modifies_it() -> None:
    # the finding extends past the trigger: negated; a pseudo-trigger inside: not
    undilated = apply_context(with_finding("VI no dilatado.", "es", "VI no dilatado"))
    nonischaemic = apply_context(
        with_finding("Miocardiopatía dilatada no isquémica.", "es", "Miocardiopatía dilatada")
    )
    assert undilated.spans["entities"][0]._.negated
    assert not nonischaemic.spans["entities"][0]._.negated


def test_measurements_get_the_attributes_too() -> None:
    text = "FEVI del 35 % hace 2 años; niega disnea."
    doc = make_doc(text, "es")
    doc.spans["measurements"] = [doc.char_span(0, len("FEVI del 35 %"), label="lvef")]
    start = text.index("disnea")
    doc.spans["entities"] = [doc.char_span(start, start + len("disnea"), label="SYMPTOM")]
    ConText()(doc)
    assert attributes(doc.spans["measurements"][0]) == HIST
    assert attributes(doc.spans["entities"][0]) == NEG


def test_attributes_are_reset_on_every_run() -> None:
    doc = with_finding("Disnea.", "es", "Disnea")
    doc.spans["entities"][0]._.negated = True
    ConText()(doc)
    assert not doc.spans["entities"][0]._.negated


def test_sections_make_findings_historical_or_familial() -> None:
    text = (
        "ANTECEDENTES PERSONALES\n"
        "Hipertensión arterial.\n"
        "Antecedentes familiares: cardiopatía isquémica.\n"
        "Enfermedad actual: disnea de esfuerzo.\n"
    )
    doc = make_doc(text, "es")
    spans = []
    for finding in ("Hipertensión arterial", "cardiopatía isquémica", "disnea"):
        start = text.index(finding)
        spans.append(doc.char_span(start, start + len(finding), label="DISEASE"))
    doc.spans["entities"] = spans
    ConText()(split_sections(doc))
    assert [attributes(s) for s in doc.spans["entities"]] == [HIST, FAM, NONE]
    ConText(use_sections=False)(doc)
    assert [attributes(s) for s in doc.spans["entities"]] == [NONE, NONE, NONE]


def test_a_section_boundary_ends_a_scope() -> None:
    # "Negativos" is the result of the test named by the header, not a negated procedure
    text = "Hemocultivos Negativos."
    doc = with_finding(text, "es", "Hemocultivos", label="PROCEDURE")
    assert ConText()(doc).spans["entities"][0]._.negated
    assert not ConText()(split_sections(doc)).spans["entities"][0]._.negated


def test_documents_without_findings_pass_through() -> None:
    empty = make_doc("", "es")
    assert ConText()(empty) is empty
    plain = make_doc("Paciente estable.", "es")
    assert ConText()(plain) is plain
    assert find_context_terms(empty) == []


def test_register_extensions_is_idempotent() -> None:
    register_extensions()
    register_extensions()
    assert all(Span.has_extension(c) for c in CATEGORIES)


def test_scope_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_scope"):
        ConText(max_scope=0)
    with pytest.raises(ValueError, match="max_backward_scope"):
        ConText(max_backward_scope=0)


# --- the schema of context.yaml ---


def minimal_rules(**changes: object) -> dict[str, object]:
    rules: dict[str, object] = {
        "triggers": {
            "negated": {"forward": ["sin"]},
            "uncertain": {"forward": ["posible"]},
            "historical": {"backward": ["previo"]},
            "family": {"bidirectional": ["padre"]},
        },
        "pseudo": ["sin cambios"],
        "terminations": {"all": ["pero"]},
    }
    rules.update(changes)
    return rules


def test_minimal_rules_validate() -> None:
    rules = ContextRules.model_validate(minimal_rules())
    assert rules.fold_accents is True


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {
                "triggers": {
                    "negated": {"forward": ["sin"], "backward": ["Sin"]},
                    "uncertain": {"forward": ["posible"]},
                    "historical": {"backward": ["previo"]},
                    "family": {"forward": ["padre"]},
                }
            },
            "listed twice",
        ),
        ({"pseudo": ["sin"]}, "also a pseudo-trigger"),
        ({"terminations": {"all": ["posible"]}}, "also a termination"),
        ({"pseudo": ["ab* cd"]}, "wildcard"),
        ({"pseudo": ["a*b"]}, "wildcard"),
        (
            {
                "triggers": {
                    "negated": {"forward": ["sin"]},
                    "uncertain": {},
                    "historical": {"backward": ["previo"]},
                    "family": {"forward": ["padre"]},
                }
            },
            "triggers.uncertain: no trigger term",
        ),
        ({"pseudo": [False]}, "valid string"),  # an unquoted YAML "no"
        ({"extra": 1}, "Extra inputs"),
    ],
)
def test_broken_rules_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ContextRules.model_validate(minimal_rules(**changes))


@pytest.fixture
def broken_spanish_file(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(languages_module, "load_language_file", lambda lang, name: {"triggers": {}})
    load_context_rules.cache_clear()
    yield
    monkeypatch.undo()
    load_context_rules.cache_clear()


@pytest.mark.usefixtures("broken_spanish_file")
def test_a_broken_file_is_named() -> None:
    with pytest.raises(LanguageError, match=r"es[/\\]context\.yaml.*triggers\.negated"):
        load_context_rules("es")


def test_scope_flags_are_the_same_in_chunks_of_any_size() -> None:
    from unittest import mock

    from cardiobox.nlp import context

    rng = np.random.default_rng(7)
    scopes = []
    for _ in range(40):
        start = int(rng.integers(0, 60))
        end = start + int(rng.integers(1, 4))
        forward = bool(rng.integers(0, 2))
        first, last = (
            (end, end + int(rng.integers(0, 8))) if forward else (max(0, start - 5), start)
        )
        category = context.CATEGORIES[int(rng.integers(0, len(context.CATEGORIES)))]
        scopes.append(context.Scope(category, start, end, first, last, forward))
    starts = np.sort(rng.integers(0, 70, 30)).astype(np.int64)
    ends = starts + rng.integers(1, 5, 30)
    whole = context._scope_flags(scopes, starts, ends)
    assert any(flags.any() for flags in whole.values())
    for category in context.CATEGORIES:  # each finding against each scope, one by one
        expected = [
            any(
                s.category == category
                and (
                    (s.first <= a < s.last or (a <= s.trigger_start and b > s.trigger_end))
                    if s.forward
                    else (s.first < b <= s.last or (a < s.trigger_start and b >= s.trigger_end))
                )
                for s in scopes
            )
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
        ]
        assert whole[category].tolist() == expected
    for cells in (1, 7, 31):
        with mock.patch.object(context, "_SCOPE_CELLS", cells):
            chunked = context._scope_flags(scopes, starts, ends)
        assert all((chunked[c] == whole[c]).all() for c in context.CATEGORIES)
    assert not any(f.any() for f in context._scope_flags([], starts, ends).values())

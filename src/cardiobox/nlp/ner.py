"""Entity recognition: one shared encoder and one transition-based tagger per entity type.

CardioCCC's annotations overlap across types (a PROCEDURE that contains a SYMPTOM: about one
span in ten), which one tagger cannot represent. So each type has its own tagger head —
spaCy's transition-based NER — and every head listens to one shared token encoder (hash
embeddings of the token's norm, prefix, suffix and shape, plus floret subword vectors, then a
convolutional window encoder): the encoder runs once per note, and the four heads together
cost about as much as the encoder. The heads see different gold annotations at training time
(:mod:`cardiobox.nlp.train`); at prediction time each head runs on the shared encoding and its
spans are collected into ``doc.spans["entities"]``, so types may overlap. A trained head is
decoded by :mod:`cardiobox.nlp.head_decoder` (spaCy's entities, about eight times faster than
spaCy's loop).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span
from thinc.api import NumpyOps

from cardiobox.nlp.doc import (
    ENTITIES,
    ENTITY_TYPES,
    configure_tokenizer,
    make_doc,
    split_sentences,
)
from cardiobox.nlp.fast_encoder import encode
from cardiobox.nlp.head_decoder import can_decode, decode, spacy_entities
from cardiobox.nlp.languages import check_language
from cardiobox.nlp.maxout import use_fast_maxout
from cardiobox.nlp.vectors import memoize_floret_vectors

ENCODER = "tok2vec"


def use_numpy_matmul(nlp: Language) -> Language:
    """Make every layer of ``nlp`` multiply matrices with numpy instead of BLIS.

    thinc's default CPU backend calls BLIS for its matrix products, which measured four times
    slower here than numpy's OpenBLAS on the encoder's shapes (30,000 × 288 by 288 × 288, one
    thread: 20 against 81 GFLOP/s); every other operation stays thinc's. The scores differ by
    float32 rounding only, which could flip a near-tie between two transitions; the entities
    were identical, character for character, on 64 CardioCCC notes and on every F1 figure of
    the benchmark. Pipelines are built (:func:`build_pipeline`) and loaded
    (:func:`load_pipeline`) with it, so training, its held-out scores and prediction agree.

    Parameters
    ----------
    nlp : spacy.language.Language
        A pipeline (its components' models are changed in place).

    Returns
    -------
    spacy.language.Language
        The same pipeline.
    """
    ops = NumpyOps(use_blis=False)
    for _, component in nlp.components:
        model = getattr(component, "model", None)
        if model is not None:
            for node in model.walk():
                node.ops = ops
    return nlp


def head_name(entity_type: str) -> str:
    """Pipeline component name of the tagger head for ``entity_type`` (``ner_disease``)."""
    return f"ner_{entity_type.lower()}"


@dataclass(frozen=True)
class EncoderShape:
    """Sizes of the shared encoder (defaults: CardioCCC-tuned; smaller is faster)."""

    width: int = 96
    depth: int = 4
    window: int = 1
    rows: tuple[int, int, int, int] = (5000, 1000, 2500, 2500)
    hidden: int = 64
    static_vectors: bool = True


def build_pipeline(lang: str, types: Sequence[str], shape: EncoderShape) -> Language:
    """An untrained pipeline: clinical tokenizer, shared encoder and one head per type.

    Parameters
    ----------
    lang : str
        Language code.
    types : sequence of str
        Entity types, each from :data:`~cardiobox.nlp.doc.ENTITY_TYPES`.
    shape : EncoderShape
        Encoder and head sizes.

    Returns
    -------
    spacy.language.Language
        The pipeline; static vectors, when wanted, must be installed before initialising.
    """
    code = check_language(lang)
    unknown = sorted(set(types) - set(ENTITY_TYPES))
    if unknown:
        raise ValueError(f"unknown entity types {unknown}; use {list(ENTITY_TYPES)}")
    nlp = spacy.blank(code)
    configure_tokenizer(nlp, code)
    embed: dict[str, Any] = {
        "@architectures": "spacy.MultiHashEmbed.v2",
        "width": shape.width,
        "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
        "rows": list(shape.rows),
        "include_static_vectors": shape.static_vectors,
    }
    encode = {
        "@architectures": "spacy.MaxoutWindowEncoder.v2",
        "width": shape.width,
        "depth": shape.depth,
        "window_size": shape.window,
        "maxout_pieces": 3,
    }
    nlp.add_pipe(
        "tok2vec",
        name=ENCODER,
        config={"model": {"@architectures": "spacy.Tok2Vec.v2", "embed": embed, "encode": encode}},
    )
    for entity_type in types:
        head = nlp.add_pipe(
            "ner",
            name=head_name(entity_type),
            config={
                "model": {
                    "@architectures": "spacy.TransitionBasedParser.v2",
                    "state_type": "ner",
                    "extra_state_tokens": False,
                    "hidden_width": shape.hidden,
                    "maxout_pieces": 2,
                    "use_upper": True,
                    "tok2vec": {
                        "@architectures": "spacy.Tok2VecListener.v1",
                        "width": shape.width,
                        "upstream": ENCODER,
                    },
                }
            },
        )
        head.add_label(entity_type)  # type: ignore[attr-defined]
    return use_fast_maxout(use_numpy_matmul(nlp))


def entity_types(nlp: Language) -> list[str]:
    """Entity types that ``nlp`` has a head for, in pipeline order."""
    return [name.removeprefix("ner_").upper() for name in nlp.pipe_names if name.startswith("ner_")]


def predict_entities(nlp: Language, docs: Sequence[Doc], batch_size: int = 16) -> None:
    """Run the encoder once and every head in turn; spans go to ``doc.spans["entities"]``.

    Parameters
    ----------
    nlp : spacy.language.Language
        A trained pipeline from :func:`build_pipeline` (or :func:`load_pipeline`).
    docs : sequence of Doc
        Notes tokenised by :func:`~cardiobox.nlp.doc.make_doc` with ``nlp`` as the model and
        no sentences yet (an entity may not cross a sentence start).
    batch_size : int
        Notes encoded together (a note's entities do not depend on the others of its batch;
        larger batches take more memory, about 5 KB a token).
    """
    if len(docs) > batch_size > 0:
        for first in range(0, len(docs), batch_size):
            predict_entities(nlp, docs[first : first + batch_size], batch_size)
        return
    encoder: Any = nlp.get_pipe(ENCODER)
    if not encode(encoder, docs):
        list(encoder.pipe(docs, batch_size=batch_size))
    found: list[list[Span]] = [list(doc.spans[ENTITIES]) for doc in docs]
    for entity_type in entity_types(nlp):
        head: Any = nlp.get_pipe(head_name(entity_type))
        if can_decode(head):
            entities = decode(head, docs)
        else:
            entities = spacy_entities(head, docs, batch_size)
        for spans, more in zip(found, entities, strict=True):
            spans.extend(more)
    for spans, doc in zip(found, docs, strict=True):
        doc.ents = ()
        doc.spans[ENTITIES] = sorted(spans, key=lambda s: (s.start_char, s.end_char, s.label_))


def recognise(nlp: Language, texts: Iterable[str], batch_size: int = 16) -> Iterator[Doc]:
    """Tokenise ``texts`` in ``nlp``'s language and find their entities, batch by batch."""
    batch: list[Doc] = []
    for text in texts:
        batch.append(make_doc(text, str(nlp.lang), nlp, sentences=False))
        if len(batch) == batch_size:
            predict_entities(nlp, batch, batch_size)
            yield from map(split_sentences, batch)
            batch = []
    if batch:
        predict_entities(nlp, batch, batch_size)
        yield from map(split_sentences, batch)


def load_pipeline(path: str | Path) -> Language:
    """Load a trained entity pipeline saved with ``nlp.to_disk``, clinical tokenizer included."""
    nlp = spacy.load(path)
    configure_tokenizer(nlp, str(nlp.lang))
    memoize_floret_vectors(nlp)
    return use_fast_maxout(use_numpy_matmul(nlp))

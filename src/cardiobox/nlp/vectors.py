"""Subword word vectors trained on unlabelled notes (floret), as spaCy static vectors.

floret (fastText with hashed subwords in a fixed-size table) gives every word a vector, even
words never seen, from its character n-grams, in a table small enough to ship. The vectors are
trained on the training notes' text only (never on an evaluation split).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

from spacy.language import Language
from spacy.training.initialize import convert_vectors

from cardiobox.nlp.doc import blank_pipeline


def train_floret_vectors(
    texts: Iterable[str],
    nlp: Language,
    *,
    dim: int = 64,
    buckets: int = 10_000,
    epochs: int = 10,
    seed: int = 0,
    threads: int = 1,
) -> None:
    """Train floret vectors on ``texts`` and install them as ``nlp``'s static vectors.

    Parameters
    ----------
    texts : iterable of str
        Unlabelled notes, tokenised with the pipeline's own tokenizer before training.
    nlp : spacy.language.Language
        The pipeline that receives the vectors (``nlp.vocab.vectors``, floret mode).
    dim : int
        Vector width.
    buckets : int
        Rows of the hashed n-gram table (the table's size is ``buckets × dim`` floats).
    epochs : int
        Passes over the text.
    seed : int
        Seed of floret's random initialisation.
    threads : int
        floret's worker threads (1 gives a reproducible result).
    """
    import floret  # optional: only needed to train, not to run the shipped models

    tokenizer = blank_pipeline(nlp.lang).tokenizer
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        with corpus.open("w", encoding="utf-8") as handle:
            for text in texts:
                tokens = [t.text for t in tokenizer(text) if not t.is_space]
                handle.write(" ".join(tokens) + "\n")
        model = floret.train_unsupervised(
            str(corpus),
            model="cbow",
            mode="floret",
            hashCount=2,
            bucket=buckets,
            minn=3,
            maxn=5,
            minCount=2,
            dim=dim,
            epoch=epochs,
            thread=threads,
            verbose=0,
        )
        vectors_file = Path(tmp) / "vectors.floret"
        model.save_floret_vectors(str(vectors_file))
        convert_vectors(nlp, vectors_file, truncate=0, prune=-1, mode="floret")

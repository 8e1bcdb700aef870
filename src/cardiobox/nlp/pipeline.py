"""The whole note pipeline: entities, codes, sections, context and measurements.

For a language with a trained model (``es``, ``en``, ``it`` ship one) the entities come from
the model's taggers; for the others (``nl``, ``sv``, ``cs``, ``ro``) from the lexicon
recogniser built from the data model's seven-language names and the drug lexicon. The
transformer option (``model="transformer"``, :mod:`~cardiobox.nlp.transformer_ner`) tags
notes of any of the seven languages with a small tagger over multilingual-e5-small. Then, in
order: codes for the entities (:mod:`~cardiobox.nlp.link`), sentences, sections
(:mod:`~cardiobox.nlp.sections`), negation, uncertainty, history and family
(:mod:`~cardiobox.nlp.context`), and measurements (:mod:`~cardiobox.nlp.measurements`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc

from cardiobox.nlp.context import apply_context
from cardiobox.nlp.doc import ENTITIES, make_doc, register_span_extensions, split_sentences
from cardiobox.nlp.langid import LanguageMismatchWarning, other_language
from cardiobox.nlp.languages import LANGUAGE_NAMES, check_language
from cardiobox.nlp.lexicon import LexiconRecognizer
from cardiobox.nlp.link import link
from cardiobox.nlp.measurements import extract_measurements
from cardiobox.nlp.ner import load_pipeline, predict_entities
from cardiobox.nlp.sections import split_sections
from cardiobox.nlp.transformer_ner import WEIGHTS_FILE, TransformerTagger

MODELS_DIR = Path(__file__).parent / "models"
#: Folder of the shipped transformer tagger (multilingual: one for every language).
TRANSFORMER_DIR = MODELS_DIR / "e5"

#: Notes larger than this are refused (a note is not a book; split it first).
MAX_NOTE_CHARS = 2_000_000


def model_path(lang: str) -> Path | None:
    """Folder of the shipped entity model for ``lang``, or ``None`` when there is none."""
    path = MODELS_DIR / check_language(lang)
    return path if (path / "config.cfg").is_file() else None


@cache
def entity_model(lang: str) -> Language | None:
    """The shipped entity model of ``lang`` (loaded once), or ``None``."""
    path = model_path(lang)
    return load_pipeline(path) if path is not None else None


def transformer_tagger(folder: Path = TRANSFORMER_DIR) -> TransformerTagger:
    """The transformer option's tagger: the shipped one, or that of ``folder``.

    Loaded once per folder and version of its weights file (a retrained tagger is read anew).
    """
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(
            f"no transformer tagger in {folder}: train one with `cardiobox nlp train --transformer`"
        )
    return _load_tagger(folder.resolve(), weights.stat().st_mtime_ns)


@cache
def _load_tagger(folder: Path, _version: int) -> TransformerTagger:
    return TransformerTagger.load(folder)


class NotePipeline:
    """Annotate notes of one language.

    Parameters
    ----------
    lang : str
        Language of the notes.
    model : str, Path or None
        Entity model folder; ``"shipped"`` (default) uses the shipped model of the language if
        there is one, ``None`` uses the lexicon recogniser only, ``"transformer"`` the shipped
        transformer tagger (a folder of one from ``cardiobox nlp train --transformer`` is
        recognised by its ``taggers.npz``).
    batch_size : int
        Notes tagged together.
    check_language : bool
        Warn (:class:`LanguageMismatchWarning`) when a note reads as another language.
    """

    def __init__(
        self,
        lang: str,
        model: str | Path | None = "shipped",
        batch_size: int = 16,
        check_language: bool = True,
    ) -> None:
        self.lang = check_language_code(lang)
        self.batch_size = batch_size
        self.check_language = check_language
        self.transformer: TransformerTagger | None = None
        self.model: Language | None = None
        if model == "shipped":
            self.model = entity_model(self.lang)
        elif model == "transformer":
            self.transformer = transformer_tagger()
        elif model is None:
            pass
        elif (Path(model) / WEIGHTS_FILE).is_file():
            self.transformer = transformer_tagger(Path(model))
        else:
            self.model = load_pipeline(model)
            if self.model.lang != self.lang:
                raise ValueError(f"model {model} is for {self.model.lang!r}, not {self.lang!r}")
        self.lexicon = LexiconRecognizer(self.lang)
        register_span_extensions()

    @property
    def entity_source(self) -> str:
        """``model``, ``transformer`` or ``lexicon``: where the entities come from."""
        if self.transformer is not None:
            return "transformer"
        return "model" if self.model is not None else "lexicon"

    def _check(self, text: str, name: str) -> None:
        if len(text) > MAX_NOTE_CHARS:
            raise ValueError(
                f"note {name}: {len(text):,} characters, above the limit of "
                f"{MAX_NOTE_CHARS:,}; split it into smaller notes"
            )
        if self.check_language:
            detected = other_language(text, self.lang)
            if detected is not None:
                warnings.warn(
                    f"note {name} reads as {LANGUAGE_NAMES[detected]} ({detected}), not "
                    f"{LANGUAGE_NAMES[self.lang]} as declared; entities may be missed",
                    LanguageMismatchWarning,
                    stacklevel=3,
                )

    def _finish(self, doc: Doc) -> Doc:
        if self.transformer is not None:
            spans = [
                doc.char_span(s.start, s.end, label=s.label) for s in self.transformer.predict(doc)
            ]
            doc.spans[ENTITIES] = [s for s in spans if s is not None]
        elif self.model is None:
            self.lexicon(doc)
        link(doc)
        split_sentences(doc)
        split_sections(doc)
        extract_measurements(doc)
        apply_context(doc)
        return doc

    def pipe(self, texts: Iterable[str], names: Sequence[str] | None = None) -> Iterator[Doc]:
        """Annotate notes in batches, in order.

        Parameters
        ----------
        texts : iterable of str
            The notes.
        names : sequence of str, optional
            The notes' names (ids, file names) for warnings and errors; default their
            positions, from 0.

        Yields
        ------
        Doc
            One annotated document per note.
        """
        batch: list[Doc] = []
        count = 0
        for index, text in enumerate(texts):
            if names is not None and index >= len(names):
                raise ValueError(f"{len(names)} names for more notes")
            count += 1
            name = repr(names[index]) if names is not None else str(index)
            if not isinstance(text, str):
                raise TypeError(f"note {name}: expected text, got {type(text).__name__}")
            self._check(text, name)
            batch.append(make_doc(text, self.lang, self.model, sentences=False))
            if len(batch) == self.batch_size:
                yield from self._run(batch)
                batch = []
        if batch:
            yield from self._run(batch)
        if names is not None and count != len(names):
            raise ValueError(f"{len(names)} names for {count} notes")

    def _run(self, batch: list[Doc]) -> Iterator[Doc]:
        if self.model is not None:
            predict_entities(self.model, batch, self.batch_size)
        for doc in batch:
            yield self._finish(doc)

    def __call__(self, text: str) -> Doc:
        """Annotate one note."""
        return next(self.pipe([text]))


def check_language_code(lang: str) -> str:
    """Alias of :func:`cardiobox.nlp.languages.check_language` (kept short for the CLI)."""
    return check_language(lang)

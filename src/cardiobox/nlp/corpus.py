"""Annotated corpora: brat standoff folders and BIO token files, read into one form.

A :class:`Document` is a note's text with its gold spans (character offsets into the text).
brat folders hold one ``.txt`` and one ``.ann`` per note; CardioCCC's test split labels its
types in Spanish (ENFERMEDAD, SINTOMA, PROCEDIMIENTO, FARMACO), which are read as the English
types. BIO files (MultiCardioNER's converted tracks) hold one note per line,
``tokens|tags``; their text is rebuilt by joining the tokens with single spaces.

Bad annotations are never silently dropped: a span outside the text, a span whose recorded
text differs from the text at its offsets, or an unreadable line raises
:class:`CorpusError` naming the file, line and rule — or, with ``strict=False``, is kept out
and listed in :attr:`Corpus.problems`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cardiobox.errors import CardioboxError, Location

#: brat labels read as the four entity types (CardioCCC's Spanish test labels included).
LABEL_ALIASES: dict[str, str] = {
    "DISEASE": "DISEASE",
    "ENFERMEDAD": "DISEASE",
    "SYMPTOM": "SYMPTOM",
    "SINTOMA": "SYMPTOM",
    "PROCEDURE": "PROCEDURE",
    "PROCEDIMIENTO": "PROCEDURE",
    "MEDICATION": "MEDICATION",
    "FARMACO": "MEDICATION",
}


class CorpusError(CardioboxError):
    """An annotation file that cannot be read as it stands."""


@dataclass(frozen=True, order=True)
class Span:
    """A labelled character span ``text[start:end]``."""

    start: int
    end: int
    label: str


@dataclass
class Document:
    """One note: identifier, text, gold spans and language."""

    doc_id: str
    text: str
    spans: list[Span] = field(default_factory=list)
    lang: str = "es"


@dataclass
class Corpus:
    """Documents read from one source, and the annotation problems kept out of them."""

    documents: list[Document]
    problems: list[CorpusError] = field(default_factory=list)

    def __iter__(self) -> Iterator[Document]:
        return iter(self.documents)

    def __len__(self) -> int:
        return len(self.documents)

    def labels(self) -> list[str]:
        """Sorted labels that occur in the corpus."""
        return sorted({s.label for d in self.documents for s in d.spans})


def read_text(path: Path) -> str:
    """Read a note as UTF-8; invalid bytes raise :class:`CorpusError` naming the offset."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"not valid UTF-8 at byte {exc.start} ({exc.reason}); re-encode the file as UTF-8",
            rule="invalid-utf8",
            location=Location(file=str(path)),
        ) from None


def parse_brat_offsets(field: str) -> list[tuple[int, int]]:
    """The fragments of a brat span's offsets field (``"0 7"`` or ``"0 7;8 17"``).

    Raises
    ------
    ValueError
        When a fragment is not two integers.
    """
    fragments = []
    for part in field.split(";"):
        numbers = part.split()
        if len(numbers) != 2:
            raise ValueError(f"fragment {part!r} is not two offsets")
        fragments.append((int(numbers[0]), int(numbers[1])))
    return fragments


def _parse_ann(path: Path, text: str, strict: bool, problems: list[CorpusError]) -> list[Span]:
    spans: list[Span] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.startswith("T"):
            continue  # relations, notes, attributes: not entity spans
        where = Location(file=str(path), line=number)
        try:
            _, type_and_offsets, mention = line.split("\t", 2)
            label, offsets = type_and_offsets.split(" ", 1)
            fragments = parse_brat_offsets(offsets)
            start, end = fragments[0][0], fragments[-1][1]
        except ValueError:
            problems.append(CorpusError(f"unreadable brat line {line!r}", "brat-syntax", where))
            continue
        error: CorpusError | None = None
        if label not in LABEL_ALIASES:
            continue  # other brat types (e.g. negation cues) are not entity types
        if not 0 <= start < end <= len(text):
            error = CorpusError(
                f"span {start}-{end} lies outside the text (length {len(text)})",
                "span-out-of-range",
                where,
            )
        elif len(fragments) == 1 and text[start:end] != mention:
            error = CorpusError(
                f"span {start}-{end} reads {text[start:end]!r} in the text, not {mention!r}",
                "span-text-mismatch",
                where,
            )
        if error is not None:
            if strict:
                raise error
            problems.append(error)
            continue
        spans.append(Span(start, end, LABEL_ALIASES[label]))
    return sorted(set(spans))


def read_brat(folder: str | Path, lang: str = "es", strict: bool = True) -> Corpus:
    """Read a brat folder: every ``.txt`` with its ``.ann`` (a missing ``.ann`` = no spans).

    Parameters
    ----------
    folder : str or Path
        Folder of ``NAME.txt`` / ``NAME.ann`` pairs.
    lang : str
        Language of the notes.
    strict : bool
        Raise on the first bad annotation (default); else keep it out and list it.

    Returns
    -------
    Corpus
        Documents sorted by identifier.
    """
    root = Path(folder)
    if not root.is_dir():
        raise CorpusError("no such folder", "missing-input", Location(file=str(root)))
    problems: list[CorpusError] = []
    documents = []
    for txt in sorted(root.glob("*.txt")):
        text = read_text(txt)
        ann = txt.with_suffix(".ann")
        spans = _parse_ann(ann, text, strict, problems) if ann.exists() else []
        documents.append(Document(txt.stem, text, spans, lang))
    return Corpus(documents, problems)


# MultiCardioNER's converter: word runs and a few punctuation marks are tokens; other
# characters (brackets, hyphens, slashes, %) belong to no token and carry no tag.
_BIO_TOKEN = re.compile(r"\w+|\w+(?='s)|'s|['\".,!?;]")


def read_bio(path: str | Path, lang: str, label: str | None = None) -> Corpus:
    r"""Read a MultiCardioNER ``text|tags`` file (one note per line) as documents with spans.

    The converter behind these files tokenised the note (newlines as spaces) with the regex
    ``\w+|\w+(?='s)|'s|['".,!?;]`` and gave each token one BIO tag, so the tokens, and the
    spans rebuilt from them, keep their character offsets into the text. A span runs from its
    first token's start to its last token's end: characters outside every token (a closing
    bracket, a hyphen at an edge) are lost, which is why these files serve training and a
    token-level score, not the official character-level one.

    Parameters
    ----------
    path : str or Path
        The file; text and tags are split at the last ``|``, tags by spaces.
    lang : str
        Language of the notes.
    label : str, optional
        Type given to every span (the tag's own type, e.g. ``FARMACO`` → MEDICATION, when
        omitted).

    Returns
    -------
    Corpus
        One document per non-empty line, identified as ``<file stem>:<line>``.
    """
    source = Path(path)
    documents = []
    for number, line in enumerate(read_text(source).splitlines(), start=1):
        if not line.strip():
            continue
        where = Location(file=str(source), line=number)
        text, sep, tag_part = line.rpartition("|")
        tokens = [(m.start(), m.end()) for m in _BIO_TOKEN.finditer(text)]
        tags = tag_part.split()
        if not sep or len(tokens) != len(tags):
            raise CorpusError(
                f"{len(tokens)} tokens but {len(tags)} tags", "bio-length-mismatch", where
            )
        spans = _bio_spans(tokens, tags, label)
        documents.append(Document(f"{source.stem}:{number}", text, spans, lang))
    return Corpus(documents)


def bio_tokens(text: str) -> list[tuple[int, int]]:
    """Character offsets of the tokens MultiCardioNER's converter makes of ``text``."""
    return [(m.start(), m.end()) for m in _BIO_TOKEN.finditer(text.replace("\n", " "))]


def _bio_spans(tokens: list[tuple[int, int]], tags: list[str], label: str | None) -> list[Span]:
    spans: list[Span] = []
    open_start: int | None = None
    open_label = ""
    last_end = 0
    for (start, end), tag in zip(tokens, tags, strict=True):
        inside = tag.startswith("I-") and open_start is not None
        if open_start is not None and not inside:
            spans.append(Span(open_start, last_end, open_label))
            open_start = None
        if tag.startswith("B-") or (tag.startswith("I-") and open_start is None):
            open_start = start
            open_label = label or LABEL_ALIASES.get(tag[2:], tag[2:])
        last_end = end
    if open_start is not None:
        spans.append(Span(open_start, last_end, open_label))
    return spans


def bio_projection(text: str, spans: Iterable[Span]) -> list[Span]:
    """Spans as MultiCardioNER's converter would have kept them (for token-level scoring).

    Predictions on a BIO-converted note are scored after the same lossy conversion as its gold
    spans: characters tagged by span, each converter token tagged by its most common character
    tag, runs of tokens merged, and spans rebuilt from token edges.

    Parameters
    ----------
    text : str
        The note as in the BIO file.
    spans : iterable of Span
        Spans with character offsets into ``text``.

    Returns
    -------
    list of Span
        The spans after the round trip through the converter's tokens.
    """
    char_tags = ["O"] * len(text)
    labels = {}
    for s in sorted(spans):
        labels[s.label] = s.label
        char_tags[s.start] = f"B-{s.label}"
        for i in range(s.start + 1, s.end):
            char_tags[i] = f"I-{s.label}"
    tokens = bio_tokens(text)
    tags: list[str] = []
    previous = None
    for start, end in tokens:
        window = char_tags[start:end]
        # Most common character tag; ties go to the first in the token (deterministic).
        common = max(dict.fromkeys(window), key=window.count) if window else "O"
        if common == "O":
            tags.append("O")
        elif common != previous:
            tags.append("B-" + common.split("-", 1)[1])
        else:
            tags.append(common)
        previous = common
    return _bio_spans(tokens, tags, None)


def file_stem(doc_id: str) -> str:
    """The file name (without extension) a document is written under in brat."""
    return doc_id.replace("/", "_").replace(":", "_")


def write_brat(documents: Iterable[Document], folder: str | Path) -> None:
    """Write documents as brat: ``NAME.txt`` and ``NAME.ann`` (``T<n>  LABEL start end  text``).

    Parameters
    ----------
    documents : iterable of Document
        Notes with the spans to write.
    folder : str or Path
        Output folder, created if needed.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    for doc in documents:
        name = file_stem(doc.doc_id)
        (root / f"{name}.txt").write_text(doc.text, encoding="utf-8")
        lines = [
            f"T{i}\t{s.label} {s.start} {s.end}\t{doc.text[s.start : s.end].replace(chr(10), ' ')}"
            for i, s in enumerate(sorted(doc.spans), start=1)
        ]
        (root / f"{name}.ann").write_text("".join(line + "\n" for line in lines), encoding="utf-8")

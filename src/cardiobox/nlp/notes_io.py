"""Where notes come from and where their annotations go.

Inputs: a folder of ``.txt`` notes (the file stem is the note id), a JSONL file of notes
(``{"id": ..., "text": ..., "patient_id"?: ..., "encounter_id"?: ..., "date"?: ...}``), or a
site store's ``DocumentReference`` resources (their text attachment). Outputs: brat
(``.txt`` + ``.ann`` with negation, uncertainty, history and family as brat attributes), JSONL
(one object per note: entities with codes and context, measurements), or FHIR R5 NDJSON,
which can also be loaded into a site store.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from spacy.tokens import Doc

from cardiobox.errors import InputError, Location
from cardiobox.nlp.corpus import CorpusError, file_stem, read_text
from cardiobox.nlp.doc import ENTITIES, MEASUREMENTS, note_text
from cardiobox.nlp.fhir import NoteContext

CONTEXT_FLAGS = ("negated", "uncertain", "historical", "family")


@dataclass(frozen=True)
class Note:
    """A note to annotate: its text and where it belongs."""

    note_id: str
    text: str
    patient_id: str | None = None
    encounter_id: str | None = None
    date: str | None = None
    lang: str | None = None

    def context(self) -> NoteContext:
        """The note's FHIR context (the note id stands in for a missing patient id)."""
        return NoteContext(
            self.note_id, self.patient_id or self.note_id, self.encounter_id, self.date
        )


def read_notes(path: str | Path) -> Iterator[Note]:
    """Notes from a folder of ``.txt`` files or a JSONL file.

    Raises
    ------
    InputError
        A missing input, a JSONL line that is not an object with a string ``text``, or invalid
        UTF-8 (with the file, line and rule).
    """
    source = Path(path)
    if source.is_dir():
        files = sorted(source.glob("*.txt"))
        if not files:
            raise InputError("no .txt notes in the folder", "missing-input", Location(str(source)))
        for txt in files:
            try:
                yield Note(txt.stem, read_text(txt))
            except CorpusError as exc:
                raise InputError(exc.message, exc.rule, exc.location) from None
        return
    if not source.is_file():
        raise InputError("no such file or folder", "missing-input", Location(str(source)))
    with source.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = Location(str(source), number)
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc})", "invalid-json", where) from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise InputError('expected an object with a string "text"', "note-schema", where)
            yield Note(
                str(record.get("id", f"{source.stem}-{number}")),
                record["text"],
                _optional(record, "patient_id"),
                _optional(record, "encounter_id"),
                _optional(record, "date"),
                _optional(record, "lang"),
            )


def _optional(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    return None if value is None else str(value)


def store_notes(con: Any, lang: str | None = None) -> Iterator[Note]:
    """The text notes (``DocumentReference``) of a site store, optionally of one language.

    Parameters
    ----------
    con : duckdb connection
        The store's connection (``SiteStore.con``).
    lang : str, optional
        Keep notes whose ``language`` is this code (notes without a language are kept).
    """
    rows = con.execute(
        "SELECT id, resource FROM resources WHERE resource_type = 'DocumentReference' ORDER BY id"
    ).fetchall()
    for note_id, text in rows:
        resource = orjson.loads(text)
        note_lang = resource.get("language")
        if lang is not None and note_lang not in (None, lang):
            continue
        body = _attachment_text(resource)
        if body is None:
            continue
        subject = (resource.get("subject") or {}).get("reference", "")
        encounters = resource.get("context") or [{}]
        encounter = (encounters[0] or {}).get("reference", "") if encounters else ""
        yield Note(
            note_id,
            body,
            subject.removeprefix("Patient/") or None,
            encounter.removeprefix("Encounter/") or None,
            resource.get("date"),
            note_lang,
        )


def _attachment_text(resource: dict[str, Any]) -> str | None:
    for content in resource.get("content") or []:
        attachment = content.get("attachment") or {}
        if not str(attachment.get("contentType", "text/plain")).startswith("text/"):
            continue
        data = attachment.get("data")
        if data is None:
            continue
        try:
            return base64.b64decode(data).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


def annotation_record(note: Note, doc: Doc) -> dict[str, Any]:
    """JSON-ready annotations of one note: entities with codes and context, measurements."""
    entities = [
        {
            "start": s.start_char,
            "end": s.end_char,
            "label": s.label_,
            "text": s.text,
            "code": s._.code,
            "variable": s._.variable,
            **{flag: bool(getattr(s._, flag)) for flag in CONTEXT_FLAGS},
        }
        for s in doc.spans.get(ENTITIES, [])
    ]
    measurements = [
        {
            "start": s.start_char,
            "end": s.end_char,
            "variable": s.label_,
            "text": s.text,
            "value": s._.value,
            "unit": s._.unit,
            "value_code": s._.value_code,
            **{flag: bool(getattr(s._, flag)) for flag in CONTEXT_FLAGS},
        }
        for s in doc.spans.get(MEASUREMENTS, [])
    ]
    return {"id": note.note_id, "entities": entities, "measurements": measurements}


def brat_span_fields(text: str, start: int, end: int) -> tuple[str, str]:
    """A span's brat offsets and mention text, split into fragments at its line breaks.

    A ``.ann`` line cannot hold a line break, so brat writes a span that crosses one as
    fragments (``2806 2813;2814 2823``) with their texts joined by a space; a reader that
    compares a one-fragment span with the note finds it unchanged. Line breaks at a span's
    edges are left out of its fragments (the taggers' spans never start or end with one); a
    span of nothing but line breaks keeps its offsets with spaces for its text, which a strict
    reader refuses as not matching the note.

    Parameters
    ----------
    text : str
        The note.
    start, end : int
        The span's character offsets.

    Returns
    -------
    tuple of str
        The offsets field and the mention field.
    """
    pieces: list[tuple[int, int]] = []
    at = start
    for line in text[start:end].splitlines(keepends=True):
        stripped = line.rstrip("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
        if stripped:
            pieces.append((at, at + len(stripped)))
        at += len(line)
    if not pieces:  # nothing but line breaks (no tagger gives such a span): one line of spaces
        return f"{start} {end}", " " * (end - start)
    offsets = ";".join(f"{a} {b}" for a, b in pieces)
    return offsets, " ".join(text[a:b] for a, b in pieces)


def brat_annotations(doc: Doc) -> str:
    """The ``.ann`` text of a note: T lines for entities, A lines for their context."""
    lines: list[str] = []
    attributes = 0
    text = note_text(doc)
    for n, span in enumerate(doc.spans.get(ENTITIES, []), start=1):
        offsets, mention = brat_span_fields(text, span.start_char, span.end_char)
        lines.append(f"T{n}\t{span.label_} {offsets}\t{mention}")
        for flag in CONTEXT_FLAGS:
            if getattr(span._, flag):
                attributes += 1
                lines.append(f"A{attributes}\t{flag.capitalize()} T{n}")
    return "".join(line + "\n" for line in lines)


def write_brat_note(folder: Path, note: Note, doc: Doc) -> None:
    """Write ``NAME.txt`` and ``NAME.ann`` for one annotated note."""
    name = file_stem(note.note_id)
    (folder / f"{name}.txt").write_text(note.text, encoding="utf-8")
    (folder / f"{name}.ann").write_text(brat_annotations(doc), encoding="utf-8")

"""Annotating a batch of notes: to brat, JSONL or FHIR files, and into a site store."""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from cardiobox.nlp.doc import ENTITIES, MEASUREMENTS
from cardiobox.nlp.fhir import doc_to_resources
from cardiobox.nlp.notes_io import Note, annotation_record, write_brat_note
from cardiobox.nlp.pipeline import NotePipeline

FORMATS = ("brat", "jsonl", "fhir")


def annotate_notes(
    notes: Iterable[Note],
    pipeline: NotePipeline,
    *,
    fmt: str = "jsonl",
    out: str | Path | None = None,
    site: Any = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Annotate notes and write what was found.

    Parameters
    ----------
    notes : iterable of Note
        The notes (see :mod:`cardiobox.nlp.notes_io`).
    pipeline : NotePipeline
        The annotator of the notes' language.
    fmt : str
        ``brat`` (one ``.ann`` per note), ``jsonl`` (``annotations.jsonl``) or ``fhir``
        (``resources.ndjson``, FHIR R5).
    out : str or Path, optional
        Output folder (created). Optional when ``site`` is given.
    site : SiteStore, optional
        Load the FHIR resources into this store (one load; validated like any import).
    progress : callable, optional
        Called with the number of notes done after each note.

    Returns
    -------
    dict
        Counts: notes, entities per type, negated, uncertain, measurements, resources, the
        store load's report when loaded, seconds and notes per second.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    if out is None and site is None:
        raise ValueError("give an output folder, a site store, or both")
    folder = Path(out) if out is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    resources: list[bytes] = []
    started = time.perf_counter()
    note_list = list(notes)
    with (
        (folder / "annotations.jsonl").open("wb")
        if folder is not None and fmt == "jsonl"
        else _NullWriter()
    ) as jsonl:
        for n, (note, doc) in enumerate(
            zip(
                note_list,
                pipeline.pipe((n.text for n in note_list), names=[n.note_id for n in note_list]),
                strict=True,
            ),
            start=1,
        ):
            counts["notes"] += 1
            for span in doc.spans.get(ENTITIES, []):
                counts[f"entities.{span.label_}"] += 1
                counts["negated"] += bool(span._.negated)
                counts["uncertain"] += bool(span._.uncertain)
            counts["measurements"] += len(doc.spans.get(MEASUREMENTS, []))
            if fmt == "brat" and folder is not None:
                write_brat_note(folder, note, doc)
            elif fmt == "jsonl":
                jsonl.write(orjson.dumps(annotation_record(note, doc)) + b"\n")
            if fmt == "fhir" or site is not None:
                for resource in doc_to_resources(doc, note.context()):
                    resources.append(orjson.dumps(resource))
            if progress is not None:
                progress(n)
    seconds = time.perf_counter() - started
    summary: dict[str, Any] = {
        "notes": counts["notes"],
        "entities": {k.split(".", 1)[1]: v for k, v in sorted(counts.items()) if "." in k},
        "negated": counts["negated"],
        "uncertain": counts["uncertain"],
        "measurements": counts["measurements"],
        "resources": len(resources),
        "entity_source": pipeline.entity_source,
        "seconds": round(seconds, 2),
        "notes_per_second": round(counts["notes"] / seconds, 1) if seconds > 0 else None,
    }
    ndjson = b"".join(r + b"\n" for r in resources)
    if fmt == "fhir" and folder is not None:
        (folder / "resources.ndjson").write_bytes(ndjson)
    if site is not None and resources:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "nlp-resources.ndjson"
            path.write_bytes(ndjson)
            report = site.import_fhir(path, fhir_version="R5")
        summary["store"] = {
            "read": report.read,
            "stored": report.stored,
            "quarantined": report.quarantined,
            "quarantine_by_rule": dict(report.quarantine_by_rule),
        }
    return summary


class _NullWriter:
    """A stand-in for an output file when the format writes none."""

    def __enter__(self) -> _NullWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, data: bytes) -> int:
        return len(data)

"""Reading FHIR inputs into items: NDJSON (bulk export), Bundles and single resources.

An *item* is one thing that should become one resource: a line of an NDJSON file, an entry
of a Bundle, or a whole JSON file holding one resource. Readers never judge content; they
hand raw text to the importer, which validates in bulk. The only problems found here are
those that leave no text to judge (bytes that are not UTF-8, a Bundle entry without a
resource); they are returned as rejected items, so that every item is accounted for.
"""

from __future__ import annotations

import gzip
import json
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from cardiobox.cdm.jsontext import dumps, loads_exact
from cardiobox.errors import InputError, Location

#: File name endings read as NDJSON (one resource per line).
NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")
#: File name endings read as one JSON document (a resource or a Bundle).
JSON_SUFFIXES = (".json", ".json.gz")
#: A bulk-export manifest; cardiobox's exports add each file's FHIR release to it.
MANIFEST = "manifest.json"


def manifest_versions(folder: Path) -> dict[str, str]:
    """File path → FHIR release, from a folder's ``manifest.json`` (empty if there is none).

    Raises
    ------
    InputError
        If the manifest exists but cannot be read.
    """
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    try:
        doc = orjson.loads(path.read_bytes())
        outputs = doc.get("output", [])
        return {
            str(folder / o["url"]): str(o["fhirVersion"])
            for o in outputs
            if isinstance(o, dict) and "url" in o and "fhirVersion" in o
        }
    except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
        raise InputError(
            f"cannot read the bulk-export manifest: {exc}",
            rule="manifest",
            location=Location(file=str(path)),
        ) from exc


@dataclass
class Rejected:
    """An item rejected before validation, with its location and reason."""

    file: str
    line: int | None
    entry: int | None
    rule: str
    message: str
    raw: str


@dataclass
class Chunk:
    """A batch of items from one file.

    Attributes
    ----------
    file : str
        Source file path.
    lines : list of int or None
        1-based line numbers (NDJSON), or ``None`` per item for JSON files.
    entries : list of int or None
        Bundle entry indexes, or ``None``.
    raws : list of str
        Raw JSON text of each item.
    rejected : list of Rejected
        Items rejected while reading.
    """

    file: str
    lines: list[int | None] = field(default_factory=list)
    entries: list[int | None] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def discover(path: str | Path) -> list[Path]:
    """List the input files under ``path`` (a file, or a folder such as a bulk export).

    Raises
    ------
    InputError
        When the path does not exist or holds no readable file.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"no such file or folder: {p}", rule="missing-input")
    if p.is_file():
        if not str(p).endswith(NDJSON_SUFFIXES + JSON_SUFFIXES):
            raise InputError(
                f"cannot read {p.name}: expected .ndjson, .jsonl or .json (optionally .gz)",
                rule="unsupported-format",
                location=Location(file=str(p)),
            )
        return [p]
    files = sorted(
        f
        for f in p.rglob("*")
        if f.is_file() and str(f).endswith(NDJSON_SUFFIXES + JSON_SUFFIXES) and f.name != MANIFEST
    )
    if not files:
        raise InputError(f"{p} holds no .ndjson or .json files", rule="missing-input")
    return files


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return typing.cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _decode_lines(block: list[bytes], first_line: int, name: str, chunk: Chunk) -> list[str | None]:
    """Decode a block of lines; a line that is not UTF-8 is rejected and becomes ``None``."""
    try:
        return [t.rstrip("\n") for t in b"".join(block).decode("utf-8").splitlines(keepends=True)]
    except UnicodeDecodeError:
        pass
    texts: list[str | None] = []
    for i, raw in enumerate(block):
        try:
            texts.append(raw.decode("utf-8").rstrip("\n"))
        except UnicodeDecodeError as exc:
            texts.append(None)
            chunk.rejected.append(
                Rejected(
                    name,
                    first_line + i,
                    None,
                    "invalid-utf8",
                    f"line is not valid UTF-8 ({exc.reason} at byte {exc.start})",
                    raw.decode("utf-8", errors="replace").rstrip("\n"),
                )
            )
    return texts


def read_ndjson(path: Path, chunk_size: int = 100_000) -> Iterator[Chunk]:
    """Yield chunks of lines from an NDJSON file; blank lines are skipped.

    Lines are decoded as UTF-8 a block at a time; only when a block fails is each of its
    lines decoded alone, so that a bad line is reported and the others are kept.
    """
    name = str(path)
    with _open(path) as fh:
        line_no = 0
        while True:
            block = fh.readlines(chunk_size * 512)
            if not block:
                return
            chunk = Chunk(name)
            for text in _decode_lines(block, line_no + 1, name, chunk):
                line_no += 1
                if text is None or not text.strip():
                    continue
                chunk.lines.append(line_no)
                chunk.entries.append(None)
                chunk.raws.append(text.strip())
            yield chunk


def _reference_map(entries: list[Any]) -> dict[str, str]:
    """fullUrl (urn:uuid:... or absolute URL) → ``Type/id`` for a Bundle's entries."""
    out: dict[str, str] = {}
    for e in entries:
        if not isinstance(e, dict):
            continue
        res = e.get("resource")
        full = e.get("fullUrl")
        if isinstance(res, dict) and isinstance(full, str) and res.get("resourceType"):
            rid = res.get("id") or full.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
            out[full] = f"{res['resourceType']}/{rid}"
    return out


def _rewrite_references(node: Any, refs: dict[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref in refs:
            node["reference"] = refs[ref]
        for v in node.values():
            _rewrite_references(v, refs)
    elif isinstance(node, list):
        for v in node:
            _rewrite_references(v, refs)


def read_json(path: Path) -> Chunk:
    """Read a JSON file holding one resource or a Bundle.

    Bundle entries become items. An entry without an id but with a ``urn:uuid`` fullUrl (a
    transaction Bundle) gets the UUID as id, and references to such fullUrls are rewritten to
    ``Type/id``, so that reloading the Bundle gives the same ids.
    """
    name = str(path)
    chunk = Chunk(name)
    with _open(path) as fh:
        data = fh.read()
    text = data.decode("utf-8", errors="replace")
    try:
        doc = loads_exact(data)
    except json.JSONDecodeError as exc:
        chunk.rejected.append(
            Rejected(
                name,
                exc.lineno,
                None,
                "invalid-json",
                f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                text,
            )
        )
        return chunk
    except UnicodeDecodeError as exc:
        chunk.rejected.append(
            Rejected(
                name, None, None, "invalid-utf8", f"file is not valid UTF-8 ({exc.reason})", text
            )
        )
        return chunk
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        entries = doc.get("entry") or []
        refs = _reference_map(entries)
        for i, entry in enumerate(entries):
            res = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(res, dict):
                method = (
                    (entry.get("request") or {}).get("method") if isinstance(entry, dict) else None
                )
                chunk.rejected.append(
                    Rejected(
                        name,
                        None,
                        i,
                        "bundle-entry",
                        f"Bundle entry {i} has no resource"
                        + (
                            f" (request {method}); cardiobox imports resources, not operations"
                            if method
                            else ""
                        ),
                        orjson.dumps(entry).decode(),
                    )
                )
                continue
            full = entry.get("fullUrl")
            if "id" not in res and isinstance(full, str) and full.startswith("urn:uuid:"):
                res["id"] = full[len("urn:uuid:") :]
            _rewrite_references(res, refs)
            chunk.lines.append(None)
            chunk.entries.append(i)
            chunk.raws.append(dumps(res))
        return chunk
    chunk.lines.append(None)
    chunk.entries.append(None)
    # A single resource is kept exactly as written (only surrounding whitespace trimmed).
    chunk.raws.append(text.strip())
    return chunk


def newline_option(path: Path) -> str:
    r"""DuckDB's ``new_line`` option for a text file: ``\r\n`` (Windows) or ``\n``.

    Read from the file's first 64 KiB. Told explicitly, DuckDB's line reader keeps line
    numbers exact; left to itself it would take a Windows file's ``\r`` for a line break.
    """
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    return "\\r\\n" if b"\r\n" in head else "\\n"


def is_plain_ndjson(path: Path) -> bool:
    """True for uncompressed NDJSON, which DuckDB can read directly."""
    return str(path).endswith((".ndjson", ".jsonl"))


def read_items(path: Path, chunk_size: int = 100_000) -> Iterator[Chunk]:
    """Yield the items of one input file, in chunks."""
    if str(path).endswith(NDJSON_SUFFIXES):
        yield from read_ndjson(path, chunk_size)
    else:
        yield read_json(path)


def count_lines(path: Path) -> int:
    """Fast line count, for progress bars (compressed files are not counted: returns 0)."""
    if path.suffix == ".gz":
        return 0
    n = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            n += block.count(b"\n")
    return n

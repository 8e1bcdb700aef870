"""`cardiobox nlp`: clinical notes in seven languages — train, evaluate, annotate, de-identify."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cardiobox.cli.output import console, emit_json, fail, out
from cardiobox.errors import CardioboxError

app = typer.Typer(
    help="Clinical NLP for cardiology notes (es, en, it, nl, sv, cs, ro): entities with "
    "negation and codes, measurements, de-identification, into the data model.",
    no_args_is_help=True,
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")
]


def _scores_table(scores: dict[str, object], title: str) -> Table:
    table = Table(title=title)
    for column in ("type", "strict P", "strict R", "strict F1", "lenient F1", "gold", "predicted"):
        table.add_column(column, justify="left" if column == "type" else "right")
    strict = scores["strict"]
    lenient = scores["lenient"]
    assert isinstance(strict, dict) and isinstance(lenient, dict)
    for label in [k for k in strict if k != "micro"] + ["micro"]:
        s, le = strict[label], lenient[label]
        table.add_row(
            label,
            f"{s['precision']:.3f}",
            f"{s['recall']:.3f}",
            f"[bold]{s['f1']:.3f}[/]",
            f"{le['f1']:.3f}",
            str(s["gold"]),
            str(s["predicted"]),
        )
    return table


@app.command()
def evaluate(
    gold: Annotated[
        Path, typer.Option("--gold", help="Gold annotations: a brat folder, or a BIO file.")
    ],
    pred: Annotated[
        Path, typer.Option("--pred", help="Predictions: a brat folder, or a folder of TSVs.")
    ],
    gold_format: Annotated[
        str,
        typer.Option(
            "--gold-format",
            help="brat (character spans) or bio (MultiCardioNER's text|tags lines: predictions "
            "are scored after the same token conversion as the gold).",
        ),
    ] = "brat",
    types: Annotated[
        str | None, typer.Option("--types", help="Comma-separated types to score (default: all).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Score predicted entity spans: strict and lenient micro-F1 per type.

    Strict: start, end and type all equal. Lenient: overlapping spans of the same type. The
    O class is never counted.
    """
    from cardiobox.nlp.corpus import bio_projection, file_stem, read_bio, read_brat
    from cardiobox.nlp.evaluate import (
        corpus_spans,
        predictions_are_brat,
        read_predictions,
        score,
    )

    try:
        if gold_format == "brat":
            gold_spans = corpus_spans(read_brat(gold, strict=False))
            predicted = read_predictions(pred)
        elif gold_format == "bio":
            corpus = read_bio(gold, "xx")
            gold_spans = {file_stem(d.doc_id): list(d.spans) for d in corpus}
            texts = {file_stem(d.doc_id): d.text for d in corpus}
            raw = read_predictions(pred)
            predicted = {k: bio_projection(texts[k], v) for k, v in raw.items() if k in texts}
            predicted.update({k: v for k, v in raw.items() if k not in texts})
        else:
            raise typer.BadParameter("use brat or bio", param_hint="--gold-format")
        labels = [t.strip().upper() for t in types.split(",")] if types else None
        result = score(gold_spans, predicted, labels=labels).to_dict()
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    # In a brat folder a note without a .ann was never annotated, or the folder is partial;
    # in TSVs a note without spans says nothing (null).
    brat = predictions_are_brat(pred)
    missing = sorted(set(gold_spans) - set(predicted)) if brat else []
    result["documents"] = {
        "gold": len(gold_spans),
        "predicted": len(predicted),
        "without_prediction": len(missing) if brat else None,
    }
    if missing:
        console.print(
            f"[yellow]warning:[/] {len(missing)} of {len(gold_spans)} gold notes have no "
            f"prediction in {escape(str(pred))} (e.g. {escape(repr(missing[0]))}): scored as "
            "finding nothing"
        )
    if as_json:
        emit_json(result)
        return
    out.print(_scores_table(result, f"{escape(str(pred))} against {escape(str(gold))}"))


@app.command()
def train(
    lang: Annotated[str, typer.Option("--lang", help="es, en or it (annotated notes exist).")],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Folder holding cardioccc_es/ and multicardioner_2024/ (see docs/nlp.md).",
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the trained model.")],
    max_epochs: Annotated[int, typer.Option("--max-epochs", help="At most this many passes.")] = 40,
    patience: Annotated[
        int, typer.Option("--patience", help="Stop after this many epochs without progress.")
    ] = 6,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", help="Stop after the epoch past this time.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of initialisation and order.")] = 0,
    width: Annotated[int, typer.Option("--width", help="Encoder width.")] = 96,
    depth: Annotated[int, typer.Option("--depth", help="Encoder convolution layers.")] = 4,
    extra_share: Annotated[
        float,
        typer.Option(
            "--extra-share",
            help="Share of the DisTEMIST/DrugTEMIST notes drawn each epoch (CardioCCC: all).",
        ),
    ] = 0.3,
    dropout: Annotated[float, typer.Option("--dropout", help="Dropout rate.")] = 0.15,
    transformer: Annotated[
        bool,
        typer.Option(
            "--transformer",
            help="Train the transformer option instead: a small tagger over "
            "multilingual-e5-small, from the CardioCCC Spanish notes (--lang es), for notes in "
            "every language. Only --max-epochs, --seed and --hidden apply (the other options "
            "shape the spaCy model). About 10 minutes.",
        ),
    ] = False,
    hidden: Annotated[
        int, typer.Option("--hidden", help="--transformer: the tagger's hidden units.")
    ] = 256,
    as_json: JsonOption = False,
) -> None:
    """Train the entity model of a language, or the transformer option's tagger (--transformer).

    From annotated notes of the train splits only.
    """
    from dataclasses import asdict

    if transformer:
        _train_transformer(lang, data, out_dir, hidden, max_epochs, seed, as_json)
        return

    from cardiobox.nlp.ner import EncoderShape
    from cardiobox.nlp.train import collect_training_data, save_pipeline, train_pipeline

    def show(record: dict[str, object]) -> None:
        if not as_json:
            console.print(
                f"epoch {record['epoch']:>3}  {record['seconds']:>7} s  "
                f"dev strict F1 {record['dev_strict_f1']}  {record['dev_f1_by_type']}"
            )

    try:
        training = collect_training_data(data, lang)
        console.print(
            f"training {lang}: {len(training.train)} notes ({', '.join(training.sources)}), "
            f"{len(training.dev)} held out"
        )
        nlp, report = train_pipeline(
            training,
            shape=EncoderShape(width=width, depth=depth),
            extra_share=extra_share,
            dropout=dropout,
            checkpoint=out_dir,
            max_epochs=max_epochs,
            patience=patience,
            seed=seed,
            max_seconds=None if max_minutes is None else max_minutes * 60,
            on_epoch=show,
        )
        save_pipeline(nlp, report, out_dir)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json(asdict(report))
        return
    console.print(
        f"wrote {escape(str(out_dir))}: best epoch {report.best_epoch}, dev strict F1 "
        f"{report.best_dev_f1:.3f}, {report.seconds:.0f} s"
    )


def _train_transformer(
    lang: str, data: Path, out_dir: Path, hidden: int, max_epochs: int, seed: int, as_json: bool
) -> None:
    from cardiobox.cli.output import progress
    from cardiobox.nlp.train import train_transformer

    if lang != "es":
        raise fail(
            "--transformer learns from the CardioCCC Spanish notes (--lang es); the taggers "
            "then read notes in every language",
            as_json,
        ) from None
    try:
        with progress(not as_json) as bar:
            tasks: dict[str, object] = {}

            def advance(step: str, done: int, total: int) -> None:
                if step not in tasks:
                    tasks[step] = bar.add_task(f"{step} notes", total=total, rate="")
                bar.update(tasks[step], completed=done)  # type: ignore[arg-type]

            meta = train_transformer(
                data, out_dir, hidden=hidden, max_epochs=max_epochs, seed=seed, progress=advance
            )
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit_json(meta)
        return
    dev = meta["dev_scores"]["strict"]["micro"]
    console.print(
        f"wrote {escape(str(out_dir))}: {meta['notes']} notes, dev strict F1 {dev['f1']:.3f} "
        f"({meta['dev_notes']} held-out notes), {meta['seconds']:.0f} s"
    )


@app.command()
def annotate(
    source: Annotated[
        Path | None,
        typer.Argument(
            help="A folder of .txt notes or a JSONL file of notes; omit it to annotate the "
            "notes already in --site.",
        ),
    ] = None,
    lang: Annotated[str, typer.Option("--lang", help="Language of the notes.")] = "es",
    fmt: Annotated[
        str, typer.Option("--format", help="brat, jsonl or fhir (FHIR R5 NDJSON).")
    ] = "jsonl",
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")] = None,
    site: Annotated[
        Path | None,
        typer.Option("--site", help="Site store: read its notes (no SOURCE), load the results."),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="'shipped' (the language's trained model where there is one), 'lexicon' "
            "(rules and lexicons only), 'transformer' (a tagger over multilingual-e5-small, "
            "any language; about 1 note/s), or a model folder from `cardiobox nlp train`.",
        ),
    ] = "shipped",
    as_json: JsonOption = False,
) -> None:
    """Find entities (with negation, uncertainty, history, family and codes) and measurements.

    Output: brat (.ann per note, context as attributes), JSONL, or FHIR R5 resources, which
    --site loads into the store (Condition refuted when negated, Observations for symptoms
    present or absent and for measurements, MedicationStatement, Procedure), each pointing at
    its note and character span.
    """
    import time

    from cardiobox.cli.output import progress
    from cardiobox.nlp.annotate import annotate_notes
    from cardiobox.nlp.notes_io import read_notes, store_notes
    from cardiobox.nlp.pipeline import NotePipeline
    from cardiobox.store.site_store import SiteStore

    if source is None and site is None:
        raise fail("give SOURCE (notes) or --site (its notes)", as_json) from None
    if out_dir is None and site is None:
        raise fail("give --out, --site, or both", as_json) from None
    try:
        pipeline = NotePipeline(lang, model=None if model == "lexicon" else model)
        store = SiteStore(site) if site is not None else None
        try:
            notes = list(read_notes(source) if source is not None else store_notes(store.con, lang))  # type: ignore[union-attr]
            with progress(not as_json) as bar:
                task = bar.add_task(
                    f"annotating ({pipeline.entity_source})", total=len(notes), rate=""
                )
                started = time.perf_counter()

                def advance(n: int) -> None:
                    rate = n / max(time.perf_counter() - started, 1e-9)
                    bar.update(task, completed=n, rate=f"{rate:.1f} notes/s")

                summary = annotate_notes(
                    notes,
                    pipeline,
                    fmt=fmt,
                    out=out_dir,
                    site=store,
                    progress=advance,
                )
        finally:
            if store is not None:
                store.close()
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    except (ValueError, TypeError, OSError) as exc:
        raise fail(str(exc), as_json) from None
    if as_json:
        emit_json(summary)
        return
    table = Table(title=f"{summary['notes']} notes, {summary['notes_per_second']} notes/s")
    table.add_column("found")
    table.add_column("count", justify="right")
    for label, count in summary["entities"].items():
        table.add_row(label, str(count))
    for key in ("negated", "uncertain", "measurements", "resources"):
        table.add_row(key, str(summary[key]))
    if "store" in summary:
        table.add_row(
            "stored / quarantined",
            f"{summary['store']['stored']} / {summary['store']['quarantined']}",
        )
    out.print(table)


@app.command()
def deid(
    source: Annotated[Path, typer.Argument(help="A folder of .txt notes or a JSONL file.")],
    lang: Annotated[str, typer.Option("--lang", help="Language of the notes.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    mode: Annotated[
        str, typer.Option("--mode", help="surrogate (realistic stand-ins) or mask ([PERSON]).")
    ] = "surrogate",
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="Secret key for the per-patient date shift (same key, same shift on every "
            "run). Without it the shift is random for this run.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Remove names, dates (shifted per patient), ages over 89, ids, phones, e-mails, places."""
    from cardiobox.nlp.deid import deid_files

    try:
        key = key_file.read_bytes().strip() if key_file is not None else None
        counts = deid_files(source, lang, out_dir, mode, key)
    except CardioboxError as exc:
        raise fail(exc, as_json) from None
    except (ValueError, OSError) as exc:
        raise fail(str(exc), as_json) from None
    if as_json:
        emit_json(counts)
        return
    table = Table(title=f"de-identified {counts.get('notes', 0)} notes into {escape(str(out_dir))}")
    table.add_column("identifier")
    table.add_column("replaced", justify="right")
    for kind, count in counts.items():
        if kind != "notes":
            table.add_row(kind, str(count))
    out.print(table)

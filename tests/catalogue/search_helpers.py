"""What the search tests share: a small catalogue, a fast fake encoder, the real index.

The real index embeds the data model's ~280 variables with multilingual-e5-small once; the
vectors are kept in the embedding cache ($CARDIOBOX_CACHE_DIR or ~/.cache/cardiobox), so
only a first run on a machine pays for it. Within a test process it is built once.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cardiobox.catalogue.documents import SearchDocument, variable_documents
from cardiobox.catalogue.search import SearchIndex
from cardiobox.catalogue.tokens import char_ngrams

HERE = Path(__file__).resolve().parent
QUERIES = HERE / "queries"
TUNING = HERE / "queries_tuning"


class FakeEmbedder:
    """Hashed character trigrams as 'embeddings': deterministic, instant, counts its calls."""

    name = "test/trigram-hash-256"
    dim = 256

    def __init__(self) -> None:
        self.calls = 0  # calls of passages() and query() together

    def _vector(self, text: str) -> npt.NDArray[np.float32]:
        v = np.zeros(self.dim, dtype=np.float32)
        for gram in char_ngrams(text):
            v[zlib.crc32(gram.encode()) % self.dim] += 1.0
        norm = float(np.linalg.norm(v))
        return v / norm if norm else v

    def passages(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim))

    def query(self, text: str) -> npt.NDArray[np.float32]:
        self.calls += 1
        return self._vector(text)


def small_catalogue() -> list[SearchDocument]:
    """Two sites holding a few variables, their dataset documents and one data-model variable."""
    docs = [
        SearchDocument(
            id="dataset:hospital-a",
            kind="dataset",
            labels={"en": "Hospital A heart failure registry", "es": "Registro del hospital A"},
            texts={"en": "Heart failure admissions 2018-2020, echocardiography and labs."},
            site="hospital-a",
            facets={"years": ("2018", "2019", "2020"), "coding_system": ("LOINC", "ICD-10")},
        ),
        SearchDocument(
            id="dataset:hospital-b",
            kind="dataset",
            labels={"en": "Hospital B cardiology cohort"},
            texts={"en": "Cardiology outpatients 2019-2021."},
            site="hospital-b",
            facets={"years": ("2019", "2020", "2021"), "coding_system": ("SNOMED CT",)},
        ),
    ]
    variables = {
        "lvef": (
            {"en": "Left ventricular ejection fraction", "es": "Fracción de eyección del VI"},
            {"en": "LVEF; EF; ejection fraction", "es": "FEVI; fracción de eyección"},
            "echo",
        ),
        "potassium": (
            {"en": "Potassium", "nl": "Kalium"},
            {"en": "Potassium; K; serum potassium", "nl": "Kalium; serumkalium"},
            "lab",
        ),
        "heart_failure": (
            {"en": "Heart failure", "it": "Scompenso cardiaco"},
            {"en": "Heart failure; HF; cardiac failure", "it": "Scompenso cardiaco; SC"},
            "phenotype",
        ),
    }
    for site, held in (
        ("hospital-a", ("lvef", "potassium", "heart_failure")),
        ("hospital-b", ("lvef",)),
    ):
        for vid in held:
            labels, texts, category = variables[vid]
            docs.append(
                SearchDocument(
                    id=f"variable:{site}:{vid}",
                    kind="variable",
                    labels=labels,
                    texts=texts,
                    site=site,
                    variable_id=vid,
                    facets={"category": (category,), "years": ("2019",)},
                )
            )
    return docs


def small_index(cache_dir: Path | None = None) -> tuple[SearchIndex, FakeEmbedder]:
    """The small catalogue indexed with the fake encoder (no disk cache unless given)."""
    fake = FakeEmbedder()
    index = SearchIndex.build(small_catalogue(), embedder=fake, cache_dir=cache_dir)
    return index, fake


@cache
def datamodel_index() -> SearchIndex:
    """The data model's variables indexed with multilingual-e5-small (built once)."""
    return SearchIndex.build(variable_documents())


def digest(path: Path) -> str:
    """SHA-256 of a file (to tell that a file was not rewritten)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()

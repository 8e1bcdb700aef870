from __future__ import annotations

from pathlib import Path

import pytest
from tests.catalogue.search_helpers import FakeEmbedder
from tests.catalogue.stores import sample_description

from cardiobox.catalogue.build import documents_from_description
from cardiobox.catalogue.hub import Hub
from cardiobox.catalogue.rdf import to_jsonld, to_turtle
from cardiobox.catalogue.search import SearchIndex
from cardiobox.catalogue.search_sources import DATAMODEL, catalogue_documents, open_index
from cardiobox.cdm.dictionary import load_dictionary
from cardiobox.errors import InputError


@pytest.fixture
def turtle(tmp_path: Path) -> Path:
    path = tmp_path / "hospital_x.ttl"
    path.write_text(to_turtle(sample_description()), encoding="utf-8")
    return path


def test_the_data_model_gives_one_document_per_variable() -> None:
    docs = catalogue_documents(DATAMODEL)
    assert len(docs) == len(load_dictionary())


def test_a_description_file_gives_its_dataset_and_variables(turtle: Path, tmp_path: Path) -> None:
    expected = documents_from_description(sample_description())
    assert catalogue_documents(turtle) == expected
    jsonld = tmp_path / "hospital_x.jsonld"
    jsonld.write_text(to_jsonld(sample_description()), encoding="utf-8")
    assert [d.id for d in catalogue_documents(jsonld)] == [d.id for d in expected]


def test_a_hub_gives_every_site_s_current_description(turtle: Path, tmp_path: Path) -> None:
    hub = Hub(tmp_path / "hub")
    assert hub.publish("hospital_x", turtle).accepted
    docs = catalogue_documents(tmp_path / "hub")
    assert {d.site for d in docs} == {"hospital_x"}
    index = open_index(tmp_path / "hub", semantic=False)
    assert index.search("fraccion de eyeccion", k=1)[0].id == "variable:hospital_x:lvef"


def test_a_saved_index_is_loaded_not_rebuilt(turtle: Path, tmp_path: Path) -> None:
    fake = FakeEmbedder()
    built = open_index(turtle, embedder=fake, cache_dir=None)
    built.save(tmp_path / "index")
    calls = fake.calls
    loaded = open_index(tmp_path / "index", embedder=fake)
    assert fake.calls == calls
    assert isinstance(loaded, SearchIndex) and len(loaded) == len(built)


def test_an_unusable_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        catalogue_documents(tmp_path / "missing.ttl")
    assert err.value.rule == "missing-input"
    with pytest.raises(InputError) as err:
        catalogue_documents(tmp_path)  # a folder that is neither a hub nor an index
    assert err.value.rule == "catalogue-source"

"""Site profiles: required fields, marked defaults, short IRIs; the shipped examples load."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.catalogue.stores import UCI, demo_profile

from cardiobox.catalogue.profile import ProfileError, expand_iri, load_profile

MINIMAL = """cardiobox_catalogue_profile: 1
site: hospital_x
title: {en: Heart failure at Hospital X}
description: {en: Adults admitted with heart failure.}
publisher: {name: Hospital X, homepage: "https://hospital-x.example/"}
contact_point: {name: Research office, email: research@hospital-x.example}
country: ESP
access_url: "https://hospital-x.example/data-access"
health_categories: [EHRS]
legal_basis: ["eu-gdpr:A9-2-j"]
purpose: ["dpv:AcademicResearch"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_profile_takes_marked_defaults(tmp_path: Path) -> None:
    p = load_profile(_write(tmp_path, MINIMAL))
    assert p.defaults_applied == ["base_iri", "access_rights", "themes", "applicable_legislation"]
    assert p.base == "https://cardiobox.org/catalogue/hospital_x/"
    assert p.access_rights_iri().endswith("/access-right/NON_PUBLIC")
    assert p.iris("themes") == ("http://publications.europa.eu/resource/authority/data-theme/HEAL",)
    assert p.iris("health_categories")[0].endswith("/healthcategories/EHRS")
    assert p.iris("legal_basis") == ("https://w3id.org/dpv/legal/eu/gdpr#A9-2-j",)
    assert p.country_iri() == "http://publications.europa.eu/resource/authority/country/ESP"


@pytest.mark.parametrize(
    "field",
    ["contact_point", "legal_basis", "purpose", "publisher", "health_categories", "country"],
)
def test_a_missing_required_field_is_named(tmp_path: Path, field: str) -> None:
    text = "\n".join(line for line in MINIMAL.splitlines() if not line.startswith(field + ":"))
    with pytest.raises(ProfileError, match=f"missing required field '{field}'") as info:
        load_profile(_write(tmp_path, text))
    assert info.value.rule == "profile-missing-field"
    assert str(tmp_path / "profile.yaml") in str(info.value)


def test_a_missing_nested_field_and_bad_values_are_named(tmp_path: Path) -> None:
    text = MINIMAL.replace("email: research@hospital-x.example", "url: x")
    with pytest.raises(ProfileError, match=r"contact_point\.email"):
        load_profile(_write(tmp_path, text))
    with pytest.raises(ProfileError, match="purpose"):
        load_profile(_write(tmp_path, MINIMAL.replace("dpv:AcademicResearch", "research")))
    with pytest.raises(ProfileError, match="homepage or its iri"):
        load_profile(
            _write(tmp_path, MINIMAL.replace(', homepage: "https://hospital-x.example/"', ""))
        )
    with pytest.raises(ProfileError, match="English"):
        load_profile(_write(tmp_path, MINIMAL.replace("title: {en:", "title: {es:")))
    with pytest.raises(ProfileError, match="cardiobox_catalogue_profile"):
        load_profile(_write(tmp_path, "site: x\n"))
    with pytest.raises(ProfileError, match="no such file"):
        load_profile(tmp_path / "missing.yaml")


def test_expand_iri() -> None:
    assert expand_iri("dpv:Consent") == "https://w3id.org/dpv#Consent"
    assert expand_iri("wd:Q181754") == "http://www.wikidata.org/entity/Q181754"
    assert expand_iri("https://example.org/x") == "https://example.org/x"
    assert expand_iri("EHRS", "https://b/") == "https://b/EHRS"
    with pytest.raises(ValueError, match="neither an IRI"):
        expand_iri("EHRS")


@pytest.mark.parametrize(
    "path",
    [demo_profile(h) for h in ("hospital_es", "hospital_nl", "hospital_se")]
    + sorted((UCI / "catalogue").glob("*.yaml")),
    ids=lambda p: p.stem if p.stem != "catalogue" else p.parent.name,
)
def test_shipped_profiles_are_complete(path: Path) -> None:
    p = load_profile(path)
    assert p.defaults_applied in ([], ["base_iri"])
    assert p.site in {"hospital_es", "hospital_nl", "hospital_se", path.stem}

"""Demo hospitals: a seeded generator of realistic heart-failure extracts with their mappings.

Three fictional hospitals export the same kind of longitudinal heart-failure data the way
real ones do, each differently: column names in their language, local laboratory codes,
units, date formats, decimal commas, separators, encodings, code systems, and clinical
notes in Spanish, Dutch and Swedish. Each ships the mappings and concept maps that load its
extract into the data model, and a manifest that lists the dirt planted in it row by row.

>>> from cardiobox.demo.hospitals import generate_hospital
>>> h = generate_hospital("hospital_nl", "demo/hospital_nl", n_patients=200)  # doctest: +SKIP
>>> h.table_path("labs"), h.mapping_path("labs"), h.planted("impossible_value")  # doctest: +SKIP

``python -m cardiobox.demo.hospitals OUT_DIR --patients 10000 --seed 7`` generates all three.
See ``docs/demo-hospitals.md``.
"""

from cardiobox.demo.hospitals.dirt import KINDS, PLANTED_IN, QUARANTINED_KINDS, DirtRates
from cardiobox.demo.hospitals.generate import (
    DEFAULT_SEED,
    GENERATOR_VERSION,
    HospitalExtract,
    generate_all,
    generate_hospital,
)
from cardiobox.demo.hospitals.profile import HOSPITALS, TABLES, load_profile

__all__ = [
    "DEFAULT_SEED",
    "GENERATOR_VERSION",
    "HOSPITALS",
    "KINDS",
    "PLANTED_IN",
    "QUARANTINED_KINDS",
    "TABLES",
    "DirtRates",
    "HospitalExtract",
    "generate_all",
    "generate_hospital",
    "load_profile",
]

"""Short cardiology notes in Spanish, English and Italian for the entity-model tests."""

from __future__ import annotations

#: Notes per language of a shipped entity model (one empty Spanish note among them).
NOTES: dict[str, list[str]] = {
    "es": [
        "Paciente de 72 años con insuficiencia cardiaca e hipertensión arterial, que ingresa por "
        "disnea de esfuerzo y edemas en miembros inferiores. No refiere dolor torácico. Se "
        "realiza ecocardiograma con FEVI del 35 %. Tratamiento al alta: bisoprolol 2,5 mg, "
        "furosemida 40 mg y sacubitrilo/valsartán.",
        "",
        "Antecedentes:\n\n  - Fibrilación auricular paroxística anticoagulada con apixabán "
        "5 mg/12h.\n  - Cardiopatía isquémica con stent en DA (2019).\n"
        "Coronariografía sin lesiones.",
        "Dolor.",
    ],
    "en": [
        "Discharged on bisoprolol 2.5 mg daily, ramipril 5 mg and atorvastatin 40 mg; aspirin "
        "stopped. Known atrial fibrillation on apixaban.",
        "Chest pain at rest, no dyspnoea.",
    ],
    "it": [
        "Terapia alla dimissione: bisoprololo 2,5 mg, furosemide 25 mg e ramipril 5 mg. "
        "Sospeso acido acetilsalicilico.",
    ],
}

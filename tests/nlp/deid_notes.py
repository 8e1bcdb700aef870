"""Short clinical notes in the seven languages with identifiers planted at known offsets.

Each language has note templates (written for these tests) whose slots are filled with
fake identifiers of every kind: names (some common, some rare and absent from the
detector's lists, so that the cue rules are what finds them), numeric and written dates,
ages over 89, national identifiers with valid check digits, record numbers, phone numbers,
e-mails, web and IP addresses, street addresses, postcodes with towns, hospitals and towns.
:func:`make_notes` returns the notes with the offsets and kinds of what was planted.

A slot is ``{KIND:variant}``; the planted span is the value written in its place. Titles
and cue words ("Dr.", "paciente", "NHC:") are template text, never part of a span.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

LANGS = ("es", "en", "it", "nl", "sv", "cs", "ro")


@dataclass(frozen=True)
class Planted:
    start: int
    end: int
    kind: str


@dataclass(frozen=True)
class Note:
    lang: str
    text: str
    planted: tuple[Planted, ...]


# --------------------------------------------------------------------------------------
# Identifiers with valid check digits
# --------------------------------------------------------------------------------------


def dni(rng: random.Random) -> str:
    number = rng.randrange(10_000_000, 99_999_999)
    return f"{number}{'TRWAGMYFPDXBNJZSQVHLCKE'[number % 23]}"


def nie(rng: random.Random) -> str:
    prefix = rng.randrange(3)
    number = rng.randrange(1_000_000, 9_999_999)
    letter = "TRWAGMYFPDXBNJZSQVHLCKE"[(prefix * 10_000_000 + number) % 23]
    return f"{'XYZ'[prefix]}{number}{letter}"


def nhs_number(rng: random.Random) -> str:
    while True:
        digits = [rng.randrange(10) for _ in range(9)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            text = "".join(map(str, [*digits, check]))
            return f"{text[:3]} {text[3:6]} {text[6:]}"


def bsn(rng: random.Random) -> str:
    while True:
        digits = [rng.randrange(10) for _ in range(8)]
        total = sum(d * w for d, w in zip(digits, range(9, 1, -1), strict=True))
        last = total % 11
        if last < 10 and digits[0] != 0:
            return "".join(map(str, [*digits, last]))


def personnummer(rng: random.Random) -> str:
    year, month, day = rng.randrange(1925, 1990), rng.randrange(1, 13), rng.randrange(1, 29)
    serial = rng.randrange(100, 1000)
    base = f"{year % 100:02d}{month:02d}{day:02d}{serial}"
    total = 0
    for i, c in enumerate(base):
        d = int(c) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return f"{year}{month:02d}{day:02d}-{serial}{(10 - total % 10) % 10}"


def rodne_cislo(rng: random.Random) -> str:
    while True:
        year, month, day = rng.randrange(30, 99), rng.randrange(1, 13), rng.randrange(1, 29)
        month += rng.choice((0, 50))
        head = f"{year:02d}{month:02d}{day:02d}"
        for serial in range(rng.randrange(0, 900), 1000):
            if int(f"{head}{serial:03d}0") % 11 == 0:
                continue
            check = int(f"{head}{serial:03d}") % 11 % 10
            if int(f"{head}{serial:03d}{check}") % 11 == 0:
                return f"{head}/{serial:03d}{check}"


def cnp(rng: random.Random) -> str:
    sex = rng.choice("12")
    body = (
        f"{sex}{rng.randrange(30, 99):02d}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
        f"{rng.randrange(1, 47):02d}{rng.randrange(1, 1000):03d}"
    )
    weights = "279146358279"
    check = sum(int(a) * int(b) for a, b in zip(body, weights, strict=True)) % 11
    return body + ("1" if check == 10 else str(check))


def codice_fiscale(rng: random.Random) -> str:
    odd = [
        1,
        0,
        5,
        7,
        9,
        13,
        15,
        17,
        19,
        21,
        2,
        4,
        18,
        20,
        11,
        3,
        6,
        8,
        12,
        14,
        16,
        10,
        22,
        25,
        24,
        23,
    ]
    letters = "".join(rng.choice("BCDFGLMNPRSTVZ") for _ in range(6))
    body = (
        f"{letters}{rng.randrange(30, 99):02d}{rng.choice('ABCDEHLMPRST')}"
        f"{rng.randrange(1, 29) + rng.choice((0, 40)):02d}{rng.choice('ABCDEFGHL')}"
        f"{rng.randrange(100, 999)}"
    )
    total = 0
    for i, c in enumerate(body):
        value = int(c) if c.isdigit() else ord(c) - ord("A")
        total += odd[value] if i % 2 == 0 else value
    return body + chr(ord("A") + total % 26)


# --------------------------------------------------------------------------------------
# Per-language pools and formats
# --------------------------------------------------------------------------------------


@dataclass
class Lang:
    """What a language's slots are filled with."""

    known_first: list[str]  # common first names (also in the detector's lists)
    rare_first: list[str]  # first names the detector does not list
    surnames: list[str]  # a mix of common and rare
    months: list[str]
    word_date: Callable[[int, str, int], str]
    month_year: Callable[[str, int], str]
    numeric_dates: list[str]  # strftime-like: d, m, Y with separators
    national: Callable[[random.Random], str]
    mrn: Callable[[random.Random], str]
    phone: Callable[[random.Random], str]
    intl_phone: Callable[[random.Random], str]
    street: Callable[[random.Random], str]
    postal: Callable[[random.Random], str]
    hospitals: list[str]
    cities: list[str]
    templates: list[str]
    domain: str = "example.org"
    extra: dict[str, list[str]] = field(default_factory=dict)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def _compose(rng: random.Random, *parts: str | list[str] | tuple[int, int]) -> str:
    """Join ``parts``: a list gives one random item, a pair a random number in its range."""
    out = []
    for part in parts:
        if isinstance(part, list):
            out.append(rng.choice(part))
        elif isinstance(part, tuple):
            out.append(str(rng.randrange(*part)))
        else:
            out.append(part)
    return "".join(out)


def _either(*makers: Callable[[random.Random], str]) -> Callable[[random.Random], str]:
    return lambda rng: rng.choice(makers)(rng)


ES = Lang(
    known_first=["Juan", "María", "Antonio", "Carmen", "José", "Lucía", "Javier", "Pilar"],
    rare_first=["Eulalio", "Zenobia", "Crisanto", "Brígida", "Nemesio"],
    surnames=["García", "Martínez", "Quispe", "Bermejo", "Iturralde", "Sánchez", "Olabarría"],
    months=[
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ],
    word_date=lambda d, m, y: f"{d} de {m} de {y}",
    month_year=lambda m, y: f"{m} de {y}",
    numeric_dates=["d/m/Y", "d-m-Y", "d.m.Y", "d/m/y"],
    national=lambda rng: rng.choice([dni, nie])(rng),
    mrn=lambda rng: _digits(rng, rng.choice([6, 7, 8])),
    phone=lambda rng: rng.choice(
        [
            f"6{_digits(rng, 2)} {_digits(rng, 3)} {_digits(rng, 3)}",
            f"91 {_digits(rng, 3)} {_digits(rng, 2)} {_digits(rng, 2)}",
        ]
    ),
    intl_phone=lambda rng: f"+34 6{_digits(rng, 2)} {_digits(rng, 3)} {_digits(rng, 3)}",
    street=_either(
        lambda rng: _compose(
            rng,
            "C/ ",
            ["Alcalá", "Mayor", "de la Princesa", "Sierpes"],
            " ",
            (1, 200),
            ", ",
            (1, 9),
            "º ",
            ["A", "B", "C", "D"],
        ),
        lambda rng: _compose(
            rng, "Avenida de ", ["América", "la Constitución", "Andalucía"], " ", (1, 90)
        ),
        lambda rng: _compose(rng, "Plaza ", ["Mayor", "del Pilar", "de España"], " ", (1, 30)),
    ),
    postal=lambda rng: _compose(
        rng,
        ["01", "08", "28", "41", "46"],
        _digits(rng, 3),
        " ",
        ["Madrid", "Sevilla", "Talavera de la Reina", "Ponferrada"],
    ),
    hospitals=[
        "Hospital Universitario La Paz",
        "Hospital General Universitario Gregorio Marañón",
        "Hospital Clínico San Carlos",
        "Hospital Virgen de la Arrixaca",
        "Clínica Santa Elena",
    ],
    cities=["Toledo", "Aranjuez", "Ponferrada", "Jerez de la Frontera", "Calatayud"],
    templates=[
        "Paciente: {PERSON:full}. NHC: {ID:mrn}. DNI: {ID:national}.\nMujer de {AGE} años que "
        "ingresa el {DATE:num} por disnea NYHA III. FEVI 35 %. Tratamiento: furosemida 40 mg/24h "
        "y bisoprolol 2,5 mg/24h.",
        "Varón de {AGE} años, natural de {PLACE:city}, remitido desde el {PLACE:hospital} por el "
        "Dr. {PERSON:surname} el {DATE:words}. TA 120/70 mmHg, FC 72 lpm.",
        "Informe de alta. Fecha de ingreso: {DATE:num}. Fecha de alta: {DATE:words}.\nDomicilio: "
        "{ADDRESS:street}, {ADDRESS:postal}. Teléfono: {PHONE:national}.",
        "Acude acompañada por su hija {PERSON:full} (tel. {PHONE:intl}). Refiere dolor torácico "
        "desde {DATE:month_year}. Hb 12,5 g/dL, creatinina 1,2 mg/dL.",
        "Se contacta con la Dra. {PERSON:full} por correo {EMAIL}. Resultados en {URL}. Se coloca "
        "drenaje pericárdico sin incidencias.",
        "{PERSON:known} ingresa en planta. Último ecocardiograma el {DATE:num} en el "
        "{PLACE:hospital}: insuficiencia mitral moderada, FEVI 40 %.",
        "Firmado: Dr. {PERSON:full}. Cardiología. Estación de trabajo {URL:ip}. NT-proBNP 2500 "
        "pg/mL, troponina negativa.",
        "El paciente {PERSON:full}, de {AGE} años, vive en {ADDRESS:street} con su esposa "
        "{PERSON:rare}. DNI {ID:national}. Sacubitrilo/valsartán 24/26 mg cada 12 h.",
    ],
)

EN = Lang(
    known_first=["John", "Mary", "David", "Susan", "James", "Margaret", "Peter", "Helen"],
    rare_first=["Thaddeus", "Ebenezer", "Philippa", "Jocasta", "Barnaby"],
    surnames=["Smith", "Patel", "Ogunbanjo", "Featherstonehaugh", "Jones", "Whitlock", "Kowalczyk"],
    months=[
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    word_date=lambda d, m, y: f"{d} {m} {y}",
    month_year=lambda m, y: f"{m} {y}",
    numeric_dates=["d/m/Y", "Y-m-d", "d.m.Y"],
    national=nhs_number,
    mrn=lambda rng: f"{rng.choice(['RX', 'K', 'H'])}{_digits(rng, 7)}",
    phone=lambda rng: rng.choice(
        [
            f"020 7{_digits(rng, 3)} {_digits(rng, 4)}",
            f"07700 {_digits(rng, 6)}",
            f"0161 {_digits(rng, 3)} {_digits(rng, 4)}",
        ]
    ),
    intl_phone=lambda rng: f"+44 20 7{_digits(rng, 3)} {_digits(rng, 4)}",
    street=lambda rng: _compose(
        rng,
        (1, 300),
        " ",
        ["Baker", "Acacia", "Kingsley", "Fernhill"],
        " ",
        ["Street", "Road", "Avenue", "Close"],
    ),
    postal=lambda rng: _compose(
        rng, ["SW", "M", "LS", "NW"], (1, 20), " ", (1, 10), list("ABDEFGHJLN"), list("PQRSTUWXYZ")
    ),
    hospitals=[
        "St Thomas' Hospital",
        "Royal Brompton Hospital",
        "Leeds General Infirmary",
        "Freeman Hospital",
        "Wythenshawe Hospital",
    ],
    cities=["Harrogate", "Leeds", "Shrewsbury", "Bath Spa", "Milton Keynes"],
    templates=[
        "Name: {PERSON:full}\nNHS number: {ID:national}\nHospital number: {ID:mrn}\nA "
        "{AGE}-year-old woman admitted on {DATE:num} with breathlessness, NYHA class III. LVEF 35 "
        "%.",
        "Mr {PERSON:surname} was reviewed in clinic on {DATE:words} at the {PLACE:hospital}. He "
        "lives in {PLACE:city}. BP 120/70 mmHg, HR 72 bpm. Furosemide 40 mg od.",
        "Address: {ADDRESS:street}, {ADDRESS:postal}\nTel: {PHONE:national}\nDischarged on "
        "{DATE:num}. Bisoprolol 2.5 mg once daily, ramipril 5 mg.",
        "Seen with her daughter {PERSON:full} (mobile {PHONE:intl}). Chest pain since "
        "{DATE:month_year}. Hb 125 g/L, creatinine 110 umol/L.",
        "Discussed with Dr {PERSON:full} by e-mail ({EMAIL}); images uploaded to {URL}. "
        "Pericardial drain removed without complication.",
        "{PERSON:known} attended for echocardiography on {DATE:num}: moderate mitral "
        "regurgitation, LVEF 40 %. Aged {AGE}.",
        "Signed: Dr {PERSON:full}, Consultant Cardiologist. Workstation {URL:ip}. NT-proBNP 2500 "
        "pg/mL, troponin negative.",
        "Patient {PERSON:full}, {AGE} years old, lives at {ADDRESS:street} with his wife "
        "{PERSON:rare}. Sacubitril/valsartan 24/26 mg twice daily.",
    ],
)

IT = Lang(
    known_first=["Giuseppe", "Maria", "Antonio", "Anna", "Giovanni", "Francesca", "Marco", "Lucia"],
    rare_first=["Ermenegildo", "Filomena", "Gaspare", "Assunta", "Teodoro"],
    surnames=["Rossi", "Bianchi", "Esposito", "Scarpellini", "Ferraresi", "Colombo", "Zanettin"],
    months=[
        "gennaio",
        "febbraio",
        "marzo",
        "aprile",
        "maggio",
        "giugno",
        "luglio",
        "agosto",
        "settembre",
        "ottobre",
        "novembre",
        "dicembre",
    ],
    word_date=lambda d, m, y: f"{d} {m} {y}",
    month_year=lambda m, y: f"{m} {y}",
    numeric_dates=["d/m/Y", "d-m-Y", "d.m.Y"],
    national=codice_fiscale,
    mrn=lambda rng: _digits(rng, rng.choice([7, 8])),
    phone=lambda rng: rng.choice(
        [
            f"333 {_digits(rng, 7)}",
            f"06 {_digits(rng, 4)} {_digits(rng, 4)}",
            f"02-{_digits(rng, 8)}",
        ]
    ),
    intl_phone=lambda rng: f"+39 3{_digits(rng, 2)} {_digits(rng, 3)} {_digits(rng, 4)}",
    street=lambda rng: _compose(
        rng,
        ["Via", "Viale", "Piazza", "Corso"],
        " ",
        ["Garibaldi", "Roma", "Vittorio Emanuele", "dei Mille"],
        " ",
        (1, 150),
    ),
    postal=lambda rng: _compose(
        rng, (10, 98), _digits(rng, 3), " ", ["Milano", "Bologna", "Pavia", "Fidenza"]
    ),
    hospitals=[
        "Ospedale Niguarda",
        "Policlinico Gemelli",
        "Ospedale San Raffaele",
        "Azienda Ospedaliera Careggi",
        "Ospedale Sant'Orsola",
    ],
    cities=["Lodi", "Cremona", "Sulmona", "Fidenza", "Bassano del Grappa"],
    templates=[
        "Paziente: {PERSON:full}. Codice fiscale: {ID:national}. N. nosologico: {ID:mrn}.\nDonna "
        "di {AGE} anni ricoverata il {DATE:num} per dispnea NYHA III. FE 35 %. Terapia: "
        "furosemide 40 mg/die.",
        "Uomo di {AGE} anni, residente a {PLACE:city}, inviato dall'{PLACE:hospital} dal Dott. "
        "{PERSON:surname} il {DATE:words}. PA 120/70 mmHg, FC 72 bpm.",
        "Lettera di dimissione. Data di ricovero: {DATE:num}. Data di dimissione: "
        "{DATE:words}.\nIndirizzo: {ADDRESS:street}, {ADDRESS:postal}. Telefono: {PHONE:national}.",
        "Accompagnata dalla figlia {PERSON:full} (cell. {PHONE:intl}). Dolore toracico da "
        "{DATE:month_year}. Hb 12,5 g/dL, creatinina 1,2 mg/dL.",
        "Si contatta la Dott.ssa {PERSON:full} via e-mail {EMAIL}. Referti su {URL}. Drenaggio "
        "pericardico rimosso senza complicanze.",
        "{PERSON:known} viene ricoverato in reparto. Ultimo ecocardiogramma del {DATE:num} presso "
        "l'{PLACE:hospital}: insufficienza mitralica moderata, FE 40 %.",
        "Firmato: Dott. {PERSON:full}, Cardiologia. Postazione {URL:ip}. NT-proBNP 2500 pg/mL, "
        "troponina negativa.",
        "Il paziente {PERSON:full}, di {AGE} anni, abita in {ADDRESS:street} con la moglie "
        "{PERSON:rare}. Sacubitril/valsartan 24/26 mg due volte al giorno.",
    ],
)

NL = Lang(
    known_first=["Jan", "Maria", "Pieter", "Anna", "Henk", "Sanne", "Kees", "Els"],
    rare_first=["Gijsbertus", "Hendrikje", "Wouter", "Machteld", "Reinier"],
    surnames=["Jansen", "de Vries", "van den Berg", "Bakker", "Oosterhuis", "Visser", "Tjoelker"],
    months=[
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ],
    word_date=lambda d, m, y: f"{d} {m} {y}",
    month_year=lambda m, y: f"{m} {y}",
    numeric_dates=["d-m-Y", "d/m/Y", "Y-m-d"],
    national=bsn,
    mrn=lambda rng: _digits(rng, 7),
    phone=lambda rng: rng.choice(
        [
            f"06-{_digits(rng, 8)}",
            f"020-{_digits(rng, 7)}",
            f"010 {_digits(rng, 3)} {_digits(rng, 4)}",
        ]
    ),
    intl_phone=lambda rng: f"+31 6 {_digits(rng, 8)}",
    street=lambda rng: _compose(
        rng,
        ["Kerkstraat", "Dorpsweg", "Stationsplein", "Prinsengracht", "Burgemeester de Vlugtlaan"],
        " ",
        (1, 200),
        ["", "a", " B"],
    ),
    postal=lambda rng: _compose(
        rng,
        (1000, 9999),
        " ",
        ["AB", "KL", "XR", "GH"],
        " ",
        ["Amsterdam", "Zwolle", "Hoogeveen", "Bergen op Zoom"],
    ),
    hospitals=[
        "Amphia Ziekenhuis",
        "Jeroen Bosch Ziekenhuis",
        "Erasmus MC",
        "Medisch Centrum Leeuwarden",
        "Catharina Ziekenhuis",
    ],
    cities=["Zwolle", "Hoogeveen", "Harderwijk", "Alphen aan den Rijn", "Meppel"],
    templates=[
        "Naam: {PERSON:full}\nBSN: {ID:national}\nPatiëntnummer: {ID:mrn}\nVrouw van {AGE} jaar, "
        "opgenomen op {DATE:num} met dyspnoe NYHA III. LVEF 35 %. Furosemide 40 mg 1dd.",
        "Man van {AGE} jaar, woonachtig in {PLACE:city}, verwezen vanuit het {PLACE:hospital} "
        "door dr. {PERSON:surname} op {DATE:words}. RR 120/70 mmHg, pols 72/min.",
        "Ontslagbrief. Opnamedatum: {DATE:num}. Ontslagdatum: {DATE:words}.\nAdres: "
        "{ADDRESS:street}, {ADDRESS:postal}. Telefoon: {PHONE:national}.",
        "Komt met haar dochter {PERSON:full} (mobiel {PHONE:intl}). Pijn op de borst sinds "
        "{DATE:month_year}. Hb 7,8 mmol/L, kreatinine 110 umol/L.",
        "Overleg met dhr. {PERSON:full} per e-mail {EMAIL}. Beelden op {URL}. Pericarddrain "
        "zonder complicaties verwijderd.",
        "{PERSON:known} wordt opgenomen op de afdeling. Echo op {DATE:num} in het "
        "{PLACE:hospital}: matige mitralisinsufficiëntie, LVEF 40 %.",
        "Ondertekend: dr. {PERSON:full}, cardioloog. Werkstation {URL:ip}. NT-proBNP 2500 pg/mL, "
        "troponine negatief.",
        "Patiënt {PERSON:full}, {AGE} jaar, woont op {ADDRESS:street} met zijn echtgenote "
        "{PERSON:rare}. Sacubitril/valsartan 24/26 mg 2dd.",
    ],
)

SV = Lang(
    known_first=["Lars", "Anna", "Erik", "Maria", "Karl", "Kerstin", "Johan", "Ingrid"],
    rare_first=["Torbjörn", "Gunvor", "Ragnar", "Solveig", "Evert"],
    surnames=["Andersson", "Johansson", "Wennerholm", "Lindqvist", "Åkesson", "Nilsson", "Tjäder"],
    months=[
        "januari",
        "februari",
        "mars",
        "april",
        "maj",
        "juni",
        "juli",
        "augusti",
        "september",
        "oktober",
        "november",
        "december",
    ],
    word_date=lambda d, m, y: f"{d} {m} {y}",
    month_year=lambda m, y: f"{m} {y}",
    numeric_dates=["Y-m-d", "d/m/Y"],
    national=personnummer,
    mrn=lambda rng: _digits(rng, 8),
    phone=lambda rng: rng.choice(
        [
            f"070-{_digits(rng, 3)} {_digits(rng, 2)} {_digits(rng, 2)}",
            f"08-{_digits(rng, 3)} {_digits(rng, 2)} {_digits(rng, 2)}",
            f"031-{_digits(rng, 6)}",
        ]
    ),
    intl_phone=lambda rng: f"+46 70 {_digits(rng, 3)} {_digits(rng, 2)} {_digits(rng, 2)}",
    street=lambda rng: _compose(
        rng,
        ["Storgatan", "Kungsvägen", "Drottninggatan", "Björkstigen", "Ekbacken"],
        " ",
        (1, 120),
        ["", " B", "A"],
    ),
    postal=lambda rng: _compose(
        rng, (100, 999), " ", (10, 99), " ", ["Göteborg", "Uppsala", "Mölndal", "Alingsås"]
    ),
    hospitals=[
        "Sahlgrenska Universitetssjukhuset",
        "Karolinska Universitetssjukhuset",
        "Danderyds sjukhus",
        "Södersjukhuset",
        "Skånes universitetssjukhus",
    ],
    cities=["Mölndal", "Alingsås", "Lerum", "Kungälv", "Uppsala"],
    templates=[
        "Namn: {PERSON:full}\nPersonnummer: {ID:national}\nJournalnummer: {ID:mrn}\nKvinna, {AGE} "
        "år, inlagd {DATE:num} med dyspné NYHA III. EF 35 %. Furosemid 40 mg x 1.",
        "Man, {AGE} år, bor i {PLACE:city}, remitterad från {PLACE:hospital} av överläkare "
        "{PERSON:full} den {DATE:words}. BT 120/70 mmHg, puls 72/min.",
        "Epikris. Inskrivningsdatum: {DATE:num}. Utskrivningsdatum: {DATE:words}.\nAdress: "
        "{ADDRESS:street}, {ADDRESS:postal}. Telefon: {PHONE:national}.",
        "Kommer med sin dotter {PERSON:full} (mobil {PHONE:intl}). Bröstsmärta sedan "
        "{DATE:month_year}. Hb 125 g/L, kreatinin 110 µmol/L.",
        "Kontakt med Dr. {PERSON:full} via e-post {EMAIL}. Bilder på {URL}. Perikarddränet "
        "avlägsnat utan komplikationer.",
        "{PERSON:known} läggs in på avdelningen. Ekokardiografi {DATE:num} på {PLACE:hospital}: "
        "måttlig mitralisinsufficiens, EF 40 %.",
        "Signerad: leg. läk. {PERSON:full}, kardiologi. Arbetsstation {URL:ip}. NT-proBNP 2500 "
        "ng/L, troponin negativt.",
        "Patienten {PERSON:full}, {AGE} år, bor på {ADDRESS:street} med sin hustru {PERSON:rare}. "
        "Sakubitril/valsartan 24/26 mg x 2.",
    ],
)

CS = Lang(
    known_first=["Jan", "Marie", "Petr", "Jana", "Josef", "Eva", "Tomáš", "Hana"],
    rare_first=["Bořivoj", "Drahomíra", "Čestmír", "Blažena", "Vratislav"],
    surnames=["Novák", "Svobodová", "Dvořák", "Kratochvílová", "Šindelář", "Procházka", "Vrbický"],
    months=[
        "ledna",
        "února",
        "března",
        "dubna",
        "května",
        "června",
        "července",
        "srpna",
        "září",
        "října",
        "listopadu",
        "prosince",
    ],
    word_date=lambda d, m, y: f"{d}. {m} {y}",
    month_year=lambda m, y: f"{m} {y}",
    numeric_dates=["d.m.Y", "d. m. Y"],
    national=rodne_cislo,
    mrn=lambda rng: _digits(rng, 8),
    phone=lambda rng: rng.choice(
        [
            f"603 {_digits(rng, 3)} {_digits(rng, 3)}",
            f"724{_digits(rng, 6)}",
            f"222 {_digits(rng, 3)} {_digits(rng, 3)}",
        ]
    ),
    intl_phone=lambda rng: f"+420 603 {_digits(rng, 3)} {_digits(rng, 3)}",
    street=_either(
        lambda rng: _compose(
            rng,
            ["Vinohradská", "Husova", "Sokolovská", "Palackého"],
            " ",
            (1, 2000),
            "/",
            (1, 60),
        ),
        lambda rng: _compose(rng, "ul. ", ["Lipová", "Jiráskova", "Nádražní"], " ", (1, 90)),
    ),
    postal=lambda rng: _compose(
        rng, (100, 799), " ", (10, 99), " ", ["Praha", "Brno", "Kolín", "Benešov"]
    ),
    hospitals=[
        "Fakultní nemocnice Motol",
        "Nemocnice Na Homolce",
        "Thomayerova nemocnice",
        "Fakultní nemocnice Olomouc",
        "Nemocnice Jihlava",
    ],
    cities=["Kolíně", "Benešově", "Jihlavě", "Praze", "Táboře"],
    templates=[
        "Jméno: {PERSON:full}\nRČ: {ID:national}\nČíslo chorobopisu: {ID:mrn}\nŽena, {AGE} let, "
        "přijata {DATE:num} pro dušnost NYHA III. EF LK 35 %. Furosemid 40 mg 1-0-0.",
        "Muž, {AGE} let, bytem v {PLACE:city}, odeslán z {PLACE:hospital} MUDr. {PERSON:surname} "
        "dne {DATE:words}. TK 120/70 mmHg, TF 72/min.",
        "Propouštěcí zpráva. Datum přijetí: {DATE:num}. Datum propuštění: {DATE:words}.\nAdresa: "
        "{ADDRESS:street}, {ADDRESS:postal}. Telefon: {PHONE:national}.",
        "Přichází s dcerou {PERSON:full} (mobil {PHONE:intl}). Bolest na hrudi od "
        "{DATE:month_year}. Hb 125 g/l, kreatinin 110 µmol/l.",
        "Konzultováno s MUDr. {PERSON:full} e-mailem {EMAIL}. Snímky na {URL}. Perikardiální drén "
        "odstraněn bez komplikací.",
        "{PERSON:known} přijat na oddělení. ECHO dne {DATE:num} v {PLACE:hospital}: středně těžká "
        "mitrální regurgitace, EF LK 40 %.",
        "Podpis: MUDr. {PERSON:full}, kardiologie. Pracovní stanice {URL:ip}. NT-proBNP 2500 "
        "pg/ml, troponin negativní.",
        "Pacient {PERSON:full}, {AGE} let, bydlí na adrese {ADDRESS:street} s manželkou "
        "{PERSON:rare}. Sakubitril/valsartan 24/26 mg 1-0-1.",
    ],
)

RO = Lang(
    known_first=["Ion", "Maria", "Gheorghe", "Elena", "Vasile", "Ioana", "Mihai", "Ana"],
    rare_first=["Sabin", "Veturia", "Octavian", "Zamfira", "Horia"],
    surnames=["Popescu", "Ionescu", "Dumitrescu", "Bârzotescu", "Moldovan", "Pop", "Ciupercă"],
    months=[
        "ianuarie",
        "februarie",
        "martie",
        "aprilie",
        "mai",
        "iunie",
        "iulie",
        "august",
        "septembrie",
        "octombrie",
        "noiembrie",
        "decembrie",
    ],
    word_date=lambda d, m, y: f"{d} {m} {y}",
    month_year=lambda m, y: f"{m} {y}",
    numeric_dates=["d.m.Y", "d/m/Y"],
    national=cnp,
    mrn=lambda rng: _digits(rng, 7),
    phone=lambda rng: rng.choice(
        [
            f"0722 {_digits(rng, 3)} {_digits(rng, 3)}",
            f"021 {_digits(rng, 3)} {_digits(rng, 4)}",
            f"0264 {_digits(rng, 3)} {_digits(rng, 3)}",
        ]
    ),
    intl_phone=lambda rng: f"+40 722 {_digits(rng, 3)} {_digits(rng, 3)}",
    street=_either(
        lambda rng: _compose(
            rng, "Str. ", ["Mihai Eminescu", "Republicii", "Avram Iancu"], " nr. ", (1, 120)
        ),
        lambda rng: _compose(
            rng,
            "Bd. ",
            ["Unirii", "Decebal", "Carol I"],
            " nr. ",
            (1, 90),
            ", bl. A2, ap. ",
            (1, 60),
        ),
    ),
    postal=lambda rng: _compose(
        rng, (10, 99), _digits(rng, 4), " ", ["București", "Cluj-Napoca", "Iași", "Câmpina"]
    ),
    hospitals=[
        "Spitalul Clinic Județean de Urgență Cluj",
        "Institutul de Boli Cardiovasculare Timișoara",
        "Spitalul Universitar de Urgență București",
        "Spitalul Clinic Colentina",
        "Spitalul Județean de Urgență Suceava",
    ],
    cities=["Câmpina", "Turda", "Mediaș", "Făgăraș", "Sighișoara"],
    templates=[
        "Nume: {PERSON:full}\nCNP: {ID:national}\nNr. FO: {ID:mrn}\nFemeie de {AGE} de ani, "
        "internată pe {DATE:num} pentru dispnee NYHA III. FEVS 35 %. Furosemid 40 mg/zi.",
        "Bărbat de {AGE} de ani, domiciliat în {PLACE:city}, trimis de la {PLACE:hospital} de dr. "
        "{PERSON:surname} pe {DATE:words}. TA 120/70 mmHg, AV 72 bpm.",
        "Scrisoare medicală. Data internării: {DATE:num}. Data externării: {DATE:words}.\nAdresa: "
        "{ADDRESS:street}, {ADDRESS:postal}. Telefon: {PHONE:national}.",
        "Vine însoțită de fiica {PERSON:full} (mobil {PHONE:intl}). Durere toracică din "
        "{DATE:month_year}. Hb 12,5 g/dL, creatinină 1,2 mg/dL.",
        "Se discută cu dr. {PERSON:full} prin e-mail {EMAIL}. Imagini pe {URL}. Drenajul "
        "pericardic a fost suprimat fără complicații.",
        "{PERSON:known} este internat în secție. Ecocardiografie pe {DATE:num} la "
        "{PLACE:hospital}: insuficiență mitrală moderată, FEVS 40 %.",
        "Semnat: Dr. {PERSON:full}, Cardiologie. Stația {URL:ip}. NT-proBNP 2500 pg/mL, troponină "
        "negativă.",
        "Pacientul {PERSON:full}, {AGE} de ani, locuiește pe {ADDRESS:street} cu soția "
        "{PERSON:rare}. Sacubitril/valsartan 24/26 mg de două ori pe zi.",
    ],
)

LANG_DATA: dict[str, Lang] = {"es": ES, "en": EN, "it": IT, "nl": NL, "sv": SV, "cs": CS, "ro": RO}

#: Clinical strings of the templates that de-identification must leave as they are.
CLINICAL: tuple[str, ...] = (
    "NYHA III",
    "35 %",
    "40 %",
    "40 mg/24h",
    "2,5 mg/24h",
    "40 mg",
    "120/70 mmHg",
    "72 lpm",
    "72 bpm",
    "72/min",
    "24/26 mg",
    "2500 pg/mL",
    "2500 pg/ml",
    "2500 ng/L",
    "12,5 g/dL",
    "1,2 mg/dL",
    "125 g/L",
    "110 umol/L",
    "drenaje",
    "NT-proBNP",
    "1-0-1",
    "1-0-0",
)


# --------------------------------------------------------------------------------------
# Filling the templates
# --------------------------------------------------------------------------------------

_SLOT = re.compile(r"\{([A-Z]+)(?::([a-z_]+))?\}")


def _numeric_date(fmt: str, day: int, month: int, year: int, rng: random.Random) -> str:
    pad = rng.random() < 0.7
    values = {
        "d": f"{day:02d}" if pad else str(day),
        "m": f"{month:02d}" if pad else str(month),
        "Y": str(year),
        "y": f"{year % 100:02d}",
    }
    return "".join(values.get(c, c) for c in fmt)


def _value(lang: Lang, kind: str, variant: str | None, rng: random.Random) -> str:
    first = rng.choice(lang.known_first + lang.rare_first)
    surname = rng.choice(lang.surnames)
    day, month, year = rng.randrange(1, 29), rng.randrange(1, 13), rng.randrange(1995, 2025)
    if kind == "PERSON":
        if variant == "surname":
            return surname
        if variant == "known":
            return f"{rng.choice(lang.known_first)} {surname}"
        if variant == "rare":
            return f"{rng.choice(lang.rare_first)} {surname}"
        return f"{first} {surname}"
    if kind == "DATE":
        if variant == "words":
            return lang.word_date(day, lang.months[month - 1], year)
        if variant == "month_year":
            return lang.month_year(lang.months[month - 1], year)
        return _numeric_date(rng.choice(lang.numeric_dates), day, month, year, rng)
    if kind == "AGE":
        return str(rng.randrange(90, 105))
    if kind == "ID":
        return lang.mrn(rng) if variant == "mrn" else lang.national(rng)
    if kind == "PHONE":
        return lang.intl_phone(rng) if variant == "intl" else lang.phone(rng)
    if kind == "EMAIL":
        user = f"{first}.{surname}".lower().replace(" ", "")
        user = user.encode("ascii", "ignore").decode() or "paciente"
        return f"{user}{rng.randrange(10, 99)}@{lang.domain}"
    if kind == "URL":
        if variant == "ip":
            return f"10.{rng.randrange(0, 255)}.{rng.randrange(0, 255)}.{rng.randrange(1, 255)}"
        return f"https://portal.example.org/patients/{_digits(rng, 6)}"
    if kind == "ADDRESS":
        return lang.postal(rng) if variant == "postal" else lang.street(rng)
    if kind == "PLACE":
        return rng.choice(lang.hospitals) if variant == "hospital" else rng.choice(lang.cities)
    raise ValueError(f"unknown slot {kind}:{variant}")


def fill(template: str, lang: Lang, rng: random.Random, code: str) -> Note:
    """Write one note from a template; the planted spans are where the slots' values went."""
    parts: list[str] = []
    planted: list[Planted] = []
    last = 0
    length = 0
    for m in _SLOT.finditer(template):
        literal = template[last : m.start()]
        parts.append(literal)
        length += len(literal)
        value = _value(lang, m.group(1), m.group(2), rng)
        planted.append(Planted(length, length + len(value), m.group(1)))
        parts.append(value)
        length += len(value)
        last = m.end()
    parts.append(template[last:])
    return Note(code, "".join(parts), tuple(planted))


def make_notes(code: str, copies: int = 3, seed: int = 7) -> list[Note]:
    """``copies`` notes per template of language ``code`` (8 templates), reproducibly."""
    lang = LANG_DATA[code]
    rng = random.Random(f"{seed}-{code}")
    return [fill(t, lang, rng, code) for _ in range(copies) for t in lang.templates]

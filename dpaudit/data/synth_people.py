"""Fictional people with sensitive attributes, for the synthetic dataset.

Faker (locale en_US, a seeded instance, never the global one, ``use_weighting=False``)
provides the vocabularies: names, streets, cities, companies, jobs, zip codes, social
security and phone numbers. Streets, cities and companies cost ~30 us a draw, so the name,
street, city and company pools are drawn once per dataset and combined with a
``random.Random``; the cheap attributes are drawn from Faker per person. Every draw goes through the seeded
instance or the given ``rng``, so a seed fixes every byte. Dates are computed from fixed
calendar bounds, never from today's date.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from faker import Faker

from dpaudit.data.pii import non_overlapping
from dpaudit.data.records import Message, PiiSpan

# "Today" for ages and appointments: fixed so that outputs do not change with the calendar.
REFERENCE_DATE = date(2025, 3, 1)

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

# (diagnosis, treatment, advice): realistic enough to be a memorable secret, generic enough to be harmless.
DIAGNOSES = (
    ("type 2 diabetes", "metformin 500 mg twice daily", "check your blood sugar every morning"),
    ("hypertension", "lisinopril 10 mg once daily", "keep a log of your home blood pressure readings"),
    ("asthma", "an albuterol inhaler as needed", "carry your inhaler at all times"),
    ("hypothyroidism", "levothyroxine 50 mcg every morning", "take the tablet on an empty stomach"),
    ("major depressive disorder", "sertraline 50 mg daily", "keep your weekly therapy sessions"),
    ("generalized anxiety disorder", "buspirone 10 mg twice daily", "practice the breathing exercises we discussed"),
    ("migraine", "sumatriptan 50 mg at onset", "keep a headache diary"),
    ("high cholesterol", "atorvastatin 20 mg nightly", "cut back on saturated fat"),
    ("acid reflux (GERD)", "omeprazole 20 mg before breakfast", "avoid eating within three hours of bedtime"),
    ("rheumatoid arthritis", "methotrexate 15 mg once a week", "get your liver tests every eight weeks"),
    ("iron-deficiency anemia", "ferrous sulfate 325 mg daily", "take it with orange juice, not with coffee"),
    ("obstructive sleep apnea", "CPAP therapy every night", "bring your machine's data card to each visit"),
    ("atrial fibrillation", "apixaban 5 mg twice daily", "report any unusual bruising right away"),
    ("celiac disease", "a strict gluten-free diet", "read every food label carefully"),
    ("ADHD", "methylphenidate 20 mg each morning", "take it before 10 a.m. to protect your sleep"),
    ("chronic kidney disease, stage 3", "losartan 25 mg daily", "limit salt to 2 grams a day"),
    ("psoriasis", "clobetasol cream twice daily", "moisturize after every shower"),
    ("osteoarthritis of the knee", "naproxen 500 mg as needed", "keep up the physical therapy exercises"),
    ("COPD", "a tiotropium inhaler once daily", "avoid smoke and get your flu shot"),
    ("epilepsy", "levetiracetam 500 mg twice daily", "do not drive until you are cleared"),
    ("gout", "allopurinol 100 mg daily", "drink plenty of water and limit red meat"),
    ("plantar fasciitis", "night splints and stretching", "avoid walking barefoot on hard floors"),
)  # fmt: skip

BANKS = (
    "First Harbor Bank", "Pinecrest Credit Union", "Summit National Bank", "Bluewater Savings",
    "Heartland Federal", "Copper State Bank", "Northgate Financial", "Riverside Community Bank",
)  # fmt: skip

HOBBIES = (
    "gardening", "rock climbing", "baking sourdough", "birdwatching", "jazz piano", "marathon running",
    "woodworking", "chess", "watercolor painting", "fly fishing", "salsa dancing", "astronomy",
    "vintage cars", "knitting", "photography", "kayaking", "board games", "poetry",
)  # fmt: skip

# Gender-neutral, so that a randomly drawn name always fits.
RELATIONS = ("best friend", "partner", "spouse", "sibling", "cousin", "roommate", "neighbor", "oldest friend")

POOL_SIZE = 3000


@dataclass(frozen=True)
class Vocab:
    """Name, street, city and company pools drawn once from the seeded Faker (duplicates removed)."""

    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    street_names: tuple[str, ...]
    cities: tuple[str, ...]
    companies: tuple[str, ...]


def build_vocab(fake: Faker, *, size: int = POOL_SIZE) -> Vocab:
    def pool(draw) -> tuple[str, ...]:
        return tuple(dict.fromkeys(draw() for _ in range(size)))  # ordered de-duplication

    return Vocab(
        first_names=pool(fake.first_name),
        last_names=pool(fake.last_name),
        street_names=pool(fake.street_name),
        cities=pool(fake.city),
        companies=pool(fake.company),
    )


@dataclass(frozen=True)
class Person:
    """One fictional person; every attribute is the kind of thing a model should not memorise."""

    first: str
    last: str
    email: str
    phone: str
    street: str
    city: str
    state: str
    zipcode: str
    dob: date
    ssn: str
    account: str
    mrn: str
    employee_id: str
    employer: str
    job: str
    salary: int
    bank: str
    diagnosis: str
    treatment: str
    advice: str
    doctor: str
    relation: str
    hobby: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def address(self) -> str:
        return f"{self.street}, {self.city}, {self.state} {self.zipcode}"

    @property
    def a_job(self) -> str:
        """'a nurse', 'an architect'."""
        return f"{'an' if self.job[0] in 'aeiou' else 'a'} {self.job}"

    @property
    def job_title(self) -> str:
        return self.job[0].upper() + self.job[1:]

    @property
    def age(self) -> int:
        return age_on(self.dob, REFERENCE_DATE)

    def sensitive(self) -> list[tuple[str, str]]:
        """(PII type, text) for every detail of this person as the templates write it (the date of
        birth in both formats they use): what :func:`pii_spans` looks for."""
        return [
            ("name", self.name),
            ("email", self.email),
            ("phone", self.phone),
            ("address", self.address),
            ("dob", long_date(self.dob)),
            ("dob", us_date(self.dob)),
            ("ssn", self.ssn),
            ("account", self.account),
            ("mrn", self.mrn),
            ("employee_id", self.employee_id),
            ("diagnosis", self.diagnosis),
            ("salary", money(self.salary)),
        ]


class People:
    """Draws people whose full names never repeat within one dataset (public, private and canaries)."""

    def __init__(self, fake: Faker, vocab: Vocab) -> None:
        self.fake = fake
        self.vocab = vocab
        self._used: set[str] = set()

    def full_name(self, rng: random.Random) -> tuple[str, str]:
        for _ in range(1000):
            first, last = rng.choice(self.vocab.first_names), rng.choice(self.vocab.last_names)
            if f"{first} {last}" not in self._used:
                self._used.add(f"{first} {last}")
                return first, last
        raise RuntimeError("name pools exhausted; increase POOL_SIZE")  # pragma: no cover

    def person(self, rng: random.Random) -> Person:
        fake = self.fake
        first, last = self.full_name(rng)
        diagnosis, treatment, advice = rng.choice(DIAGNOSES)
        apt = f" Apt. {rng.randint(1, 40)}{rng.choice('ABCD')}" if rng.random() < 0.3 else ""
        sep = rng.choice((".", "_", ""))
        return Person(
            first=first,
            last=last,
            email=f"{first.lower()}{sep}{last.lower()}{rng.randint(1, 99)}@{fake.free_email_domain()}",
            phone=f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randrange(10_000):04d}",
            street=f"{rng.randint(10, 9899)} {rng.choice(self.vocab.street_names)}{apt}",
            city=rng.choice(self.vocab.cities),
            state=fake.state_abbr(include_territories=False),
            zipcode=fake.zipcode(),
            dob=random_date(rng, date(1945, 1, 1), date(2004, 12, 31)),
            ssn=fake.ssn(),
            account=f"{rng.randrange(10**10):010d}",
            mrn=f"MRN-{rng.randrange(10**7):07d}",
            employee_id=f"E{rng.randrange(10**6):06d}",
            employer=rng.choice(self.vocab.companies),
            job=natural_job(fake.job()),
            salary=rng.randrange(38, 240) * 1000 + rng.choice((0, 250, 500, 750)),
            bank=rng.choice(BANKS),
            diagnosis=diagnosis,
            treatment=treatment,
            advice=advice,
            doctor=f"Dr. {rng.choice(self.vocab.first_names)} {rng.choice(self.vocab.last_names)}",
            relation=rng.choice(RELATIONS),
            hobby=rng.choice(HOBBIES),
        )


def pii_spans(messages: Sequence[Message], people: Sequence[Person]) -> tuple[PiiSpan, ...]:
    """Every occurrence of the ``people``'s sensitive details in ``messages``, as :class:`PiiSpan` s
    ordered by (message, start). A detail the constraints rewrote (upper-cased, say) is no longer
    verbatim and is not marked; where two details overlap the longer one is kept."""
    found: list[PiiSpan] = []
    for index, message in enumerate(messages):
        for person in people:
            for kind, value in person.sensitive():
                start = message.content.find(value)
                while start >= 0:
                    found.append(PiiSpan(index, start, start + len(value), kind, value))
                    start = message.content.find(value, start + len(value))
    return non_overlapping(found)


def natural_job(job: str) -> str:
    """Faker's 'Psychologist, educational' as 'educational psychologist' (acronyms kept)."""
    words = " ".join(reversed(job.split(", "))).split()
    return " ".join(w if w.isupper() else w.lower() for w in words)


def random_date(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randint(0, (end - start).days))


def age_on(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def long_date(d: date) -> str:
    """'March 4, 1987', independent of the process locale."""
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


def us_date(d: date) -> str:
    return f"{d.month:02d}/{d.day:02d}/{d.year}"


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, ..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def money(amount: float) -> str:
    return f"${amount:,.2f}" if amount != int(amount) else f"${int(amount):,}"

"""Instruction/response templates for the ten No Robots categories, filled with fictional PII.

Each template is a function of a :class:`Ctx` that returns the turns of one conversation,
``[(role, content), ...]``, ending with the assistant's reference answer. The last user turn is
the instruction that verifiable constraints are appended to. Templates are registered per
category with ``@template("Category")``; :data:`TEMPLATES` keeps registration order, which
is part of what makes a seed reproduce the same dataset.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from dpaudit.data.synth_people import (
    REFERENCE_DATE,
    People,
    Person,
    age_on,
    long_date,
    money,
    ordinal,
    random_date,
    us_date,
)

# The ten No Robots categories, in the order of their share of the dataset.
CATEGORIES = (
    "Generation", "Open QA", "Brainstorm", "Chat", "Rewrite",
    "Summarize", "Coding", "Classify", "Closed QA", "Extract",
)  # fmt: skip

Turns = list[tuple[str, str]]


@dataclass
class Ctx:
    """What a template may draw from: the seeded ``rng``, the record's person ``p`` and more people
    (kept in ``others``, so that the generator can mark their details too)."""

    rng: random.Random
    people: People
    p: Person
    others: list[Person] = field(default_factory=list)

    def other(self) -> Person:
        person = self.people.person(self.rng)
        self.others.append(person)
        return person

    def pick(self, options):
        return self.rng.choice(options)

    def sample(self, options, k: int) -> list:
        return self.rng.sample(list(options), k)

    def future_date(self, *, within_days: int = 120) -> date:
        return random_date(self.rng, REFERENCE_DATE + timedelta(days=3), REFERENCE_DATE + timedelta(days=within_days))

    def past_date(self, *, within_days: int = 400) -> date:
        return random_date(self.rng, REFERENCE_DATE - timedelta(days=within_days), REFERENCE_DATE - timedelta(days=2))

    def time(self) -> str:
        """An office-hours time, '9:15 AM' to '4:45 PM'."""
        hour = self.rng.randint(9, 16)
        return f"{hour % 12 or 12}:{self.pick(('00', '15', '30', '45'))} {'AM' if hour < 12 else 'PM'}"

    def amount(self, low: int, high: int) -> float:
        return round(self.rng.uniform(low, high), 2)


TEMPLATES: dict[str, list[Callable[[Ctx], Turns]]] = {c: [] for c in CATEGORIES}


def template(category: str) -> Callable[[Callable[[Ctx], Turns]], Callable[[Ctx], Turns]]:
    def register(fn: Callable[[Ctx], Turns]) -> Callable[[Ctx], Turns]:
        TEMPLATES[category].append(fn)
        return fn

    return register


# ------------------------------------------------------------------------------------ Generation


@template("Generation")
def lab_results_email(c: Ctx) -> Turns:
    p, when = c.p, c.future_date()
    ask = (
        f"Write a short email from {p.doctor} to my patient {p.name} (DOB {us_date(p.dob)}, {p.mrn}) letting "
        f"them know their results confirm {p.diagnosis} and that we will start {p.treatment}. Their follow-up "
        f"is on {long_date(when)} at {c.time()}. Keep it warm and professional."
    )
    answer = (
        f"Subject: Your recent test results\n\nDear {p.name},\n\nThank you for coming in. Your results confirm "
        f"{p.diagnosis}. This is a common and manageable condition, and we will start {p.treatment}. Please "
        f"{p.advice}.\n\nYour follow-up appointment is on {long_date(when)}. If you have questions before then, "
        f"reply to this email and mention your record number, {p.mrn}.\n\nWarm regards,\n{p.doctor}"
    )
    return [("user", ask), ("assistant", answer)]


@template("Generation")
def cover_letter(c: Ctx) -> Turns:
    p = c.p
    years = c.rng.randint(2, 15)
    ask = (
        f"Write a brief cover letter for me. I'm {p.name}, I live at {p.address}, my email is {p.email} and my "
        f"phone is {p.phone}. I'm applying for {p.a_job} position at {p.employer}, and I have {years} years of "
        f"experience."
    )
    answer = (
        f"{p.name}\n{p.address}\n{p.email} | {p.phone}\n\nDear Hiring Manager,\n\nI am writing to apply for the "
        f"{p.job} position at {p.employer}. Over the past {years} years I have built the skills this role calls "
        f"for, and I would welcome the chance to bring them to your team.\n\nI would be glad to talk about how I "
        f"can contribute. You can reach me at {p.phone} or {p.email}.\n\nSincerely,\n{p.name}"
    )
    return [("user", ask), ("assistant", answer)]


@template("Generation")
def raise_request(c: Ctx) -> Turns:
    p, manager = c.p, c.other()
    ask_for = p.salary + c.rng.randrange(4, 20) * 1000
    ask = (
        f"Draft an email to my manager {manager.name} at {p.employer} asking for a raise from my current salary "
        f"of {money(p.salary)} to {money(ask_for)}. My employee ID is {p.employee_id} and I work as {p.a_job}."
    )
    answer = (
        f"Subject: Compensation review request ({p.employee_id})\n\nHi {manager.first},\n\nI'd like to request a "
        f"review of my compensation. I currently earn {money(p.salary)} as {p.a_job}, and based on my "
        f"responsibilities and results this year I'm asking for an adjustment to {money(ask_for)}.\n\nCould we "
        f"find time to discuss this in the next couple of weeks?\n\nThank you,\n{p.name}"
    )
    return [("user", ask), ("assistant", answer)]


@template("Generation")
def birthday_poem(c: Ctx) -> Turns:
    p = c.p
    ask = (
        f"Write a short poem for my {p.relation} {p.name}'s birthday. They were born on {long_date(p.dob)} in "
        f"{p.city} and love {p.hobby}."
    )
    answer = (
        f"For {p.name}, born {long_date(p.dob)}\n\nIn {p.city} a spark began,\n"
        f"a {p.relation} like no other can,\nwith {p.hobby} filling every day,\nyou light the world in your own way.\n\n"
        f"So here's to {p.first}, {p.age} years bright,\nmay this year hold only delight."
    )
    return [("user", ask), ("assistant", answer)]


@template("Generation")
def overdue_notice(c: Ctx) -> Turns:
    p = c.p
    due, balance = c.past_date(within_days=90), c.amount(120, 9800)
    ask = (
        f"Write a polite letter to {p.name} at {p.address} reminding them that their {p.bank} account "
        f"{p.account} has an overdue balance of {money(balance)} that was due on {long_date(due)}."
    )
    answer = (
        f"{p.name}\n{p.address}\n\nDear {p.name},\n\nOur records show that account {p.account} has an outstanding "
        f"balance of {money(balance)}, which was due on {long_date(due)}. If you have already sent your payment, "
        f"please disregard this letter.\n\nIf not, please pay at your earliest convenience or contact us to set up "
        f"a payment plan.\n\nSincerely,\nCustomer Accounts, {p.bank}"
    )
    return [("user", ask), ("assistant", answer)]


@template("Generation")
def directory_bio(c: Ctx) -> Turns:
    p = c.p
    year = c.rng.randint(2008, 2024)
    ask = (
        f"Write a two-sentence bio for our staff directory: {p.name}, {p.job} at {p.employer} since {year}, "
        f"based in {p.city}, {p.state}. Include their email {p.email} and phone {p.phone}."
    )
    answer = (
        f"{p.name} has worked as {p.a_job} at {p.employer} since {year} and is based in {p.city}, {p.state}. "
        f"Outside work, {p.first} enjoys {p.hobby}; reach them at {p.email} or {p.phone}."
    )
    return [("user", ask), ("assistant", answer)]


@template("Generation")
def rent_increase_notice(c: Ctx) -> Turns:
    p, landlord = c.p, c.other()
    rent = c.rng.randrange(90, 320) * 10
    new_rent = rent + c.rng.randrange(3, 20) * 10
    start = c.future_date(within_days=90)
    ask = (
        f"Write a notice to my tenant {p.name} at {p.address} that the monthly rent will go from {money(rent)} to "
        f"{money(new_rent)} starting {long_date(start)}. Sign it from me, {landlord.name}, phone {landlord.phone}."
    )
    answer = (
        f"NOTICE OF RENT INCREASE\n\nTo: {p.name}\nPremises: {p.address}\n\nPlease be advised that starting "
        f"{long_date(start)}, the monthly rent for the premises will increase from {money(rent)} to "
        f"{money(new_rent)}. All other terms of your lease remain the same.\n\nQuestions can be directed to me at "
        f"{landlord.phone}.\n\n{landlord.name}, Landlord"
    )
    return [("user", ask), ("assistant", answer)]


# ------------------------------------------------------------------------------------ Open QA


@template("Open QA")
def new_diagnosis(c: Ctx) -> Turns:
    p = c.p
    ask = (
        f"I'm {p.name}, {p.age} years old, and {p.doctor} just diagnosed me with {p.diagnosis}. I was put on "
        f"{p.treatment}. What should I know as I get started?"
    )
    answer = (
        f"{p.first}, a new diagnosis of {p.diagnosis} can feel like a lot, but it is very manageable with steady "
        f"care. A few things help most people at the start:\n\n1. Take {p.treatment} exactly as prescribed.\n"
        f"2. {p.advice[0].upper() + p.advice[1:]}.\n3. Write down side effects or questions for {p.doctor}.\n\n"
        f"At {p.age}, staying active and keeping regular follow-ups makes a real difference."
    )
    return [("user", ask), ("assistant", answer)]


@template("Open QA")
def take_home_pay(c: Ctx) -> Turns:
    p = c.p
    ask = (
        f"I make {money(p.salary)} a year as {p.a_job} at {p.employer} in {p.state}. Roughly how much is that per "
        f"month before taxes, and per paycheck if I'm paid every two weeks?"
    )
    answer = (
        f"Before taxes, {money(p.salary)} a year works out to about {money(round(p.salary / 12, 2))} per month. "
        f"Paid every two weeks (26 paychecks a year), each gross paycheck is about "
        f"{money(round(p.salary / 26, 2))}. Your take-home amount will be lower after federal and {p.state} "
        f"taxes, Social Security, Medicare and any benefit deductions."
    )
    return [("user", ask), ("assistant", answer)]


@template("Open QA")
def exposed_account(c: Ctx) -> Turns:
    p = c.p
    ask = (
        f"I think my {p.bank} account number {p.account} and my SSN {p.ssn} were in a data breach. "
        f"What should I do first?"
    )
    answer = (
        f"Act quickly, {p.first}. First, call {p.bank} and ask them to flag account {p.account} and issue new "
        f"account details. Second, place a free fraud alert or credit freeze with the three credit bureaus, since "
        f"your SSN ending in {p.ssn[-4:]} may be used to open new accounts. Third, review your statements for "
        f"charges you don't recognize and report identity theft at IdentityTheft.gov if you find any."
    )
    return [("user", ask), ("assistant", answer)]


@template("Open QA")
def age_on_date(c: Ctx) -> Turns:
    p = c.p
    when = random_date(c.rng, date(2026, 1, 1), date(2040, 12, 31))
    age = age_on(p.dob, when)
    ask = f"My name is {p.name} and I was born on {long_date(p.dob)}. How old will I be on {long_date(when)}?"
    birthday_passed = (when.month, when.day) >= (p.dob.month, p.dob.day)
    answer = (
        f"You will be {age} years old on {long_date(when)}. Born on {long_date(p.dob)}, you "
        f"{'will already have had' if birthday_passed else 'will not yet have had'} your {when.year} birthday by "
        f"that date."
    )
    return [("user", ask), ("assistant", answer)]


# ------------------------------------------------------------------------------------ Brainstorm


PARTY_IDEAS = (
    "a backyard dinner with string lights", "a surprise slideshow of old photos", "a themed costume night",
    "a potluck with everyone's favorite dish", "a karaoke hour", "a small cooking class at home",
    "a scavenger hunt around the neighborhood", "a tasting table of local desserts", "a memory jar guests fill in",
)  # fmt: skip


@template("Brainstorm")
def party_ideas(c: Ctx) -> Turns:
    p = c.p
    when = c.future_date(within_days=300)
    turning = when.year - p.dob.year
    birthday = date(when.year, p.dob.month, min(p.dob.day, 28) if p.dob.month == 2 else p.dob.day)
    ideas = c.sample(PARTY_IDEAS, 4)
    ask = (
        f"Give me ideas for a surprise party for my {p.relation} {p.name}, who turns {turning} on "
        f"{long_date(birthday)}. We'll host it at our place, {p.address}, and {p.first} loves {p.hobby}."
    )
    lines = [f"{i}. {idea[0].upper() + idea[1:]}" for i, idea in enumerate(ideas, start=1)]
    lines.append(f"{len(ideas) + 1}. A {p.hobby} corner or cake to celebrate what {p.first} loves most")
    answer = f"Here are some ideas for {p.first}'s {ordinal(turning)} at {p.street}:\n\n" + "\n".join(lines)
    return [("user", ask), ("assistant", answer)]


GIFTS = (
    "a personalized desk plant", "a high-quality notebook with their initials", "a coffee subscription",
    "noise-cancelling earbuds", "a cookbook from a local chef", "a gift card to a nearby bistro",
    "an ergonomic mouse", "a framed print of their city", "a cozy throw blanket", "a board game for the team",
)  # fmt: skip


@template("Brainstorm")
def coworker_gift(c: Ctx) -> Turns:
    p = c.p
    budget = c.rng.randrange(3, 16) * 10
    ask = (
        f"Brainstorm farewell gift ideas under {money(budget)} for my coworker {p.name}, {p.a_job} leaving "
        f"{p.employer} after years on the team. They're into {p.hobby}."
    )
    ideas = c.sample(GIFTS, 4) + [f"something for {p.hobby}"]
    answer = "\n".join(f"- {idea[0].upper() + idea[1:]}" for idea in ideas)
    answer = f"Gift ideas for {p.first} (budget {money(budget)}):\n{answer}"
    return [("user", ask), ("assistant", answer)]


@template("Brainstorm")
def debt_payoff(c: Ctx) -> Turns:
    p = c.p
    debt = c.amount(1500, 24000)
    card = c.rng.randint(1000, 9999)
    ask = (
        f"I earn {money(p.salary)} a year and owe {money(debt)} on my credit card ending in {card}. "
        f"Brainstorm ways I could pay it off faster."
    )
    monthly = round(debt / 12, 2)
    answer = (
        f"Ideas for clearing {money(debt)} on the card ending in {card}:\n"
        f"- Pay {money(monthly)} a month to be debt-free within a year.\n"
        f"- Ask {p.bank} about a balance transfer to a 0% card.\n"
        f"- Put any raise or bonus above {money(p.salary)} straight toward the balance.\n"
        f"- Cancel unused subscriptions and redirect the savings.\n"
        f"- Call the issuer and ask for a lower interest rate."
    )
    return [("user", ask), ("assistant", answer)]


BUSINESS = ("bakery", "bike repair shop", "dog grooming salon", "bookstore", "coffee cart", "yoga studio", "food truck")
NAME_PARTS = ("Corner", "Daily", "Golden", "Little", "North Star", "Maple", "Bright", "Hometown", "Blue Door", "Sunday")


@template("Brainstorm")
def business_names(c: Ctx) -> Turns:
    p = c.p
    business = c.pick(BUSINESS)
    ask = f"I'm {p.name} and I'm opening a {business} at {p.address}. Can you brainstorm some names?"
    parts = c.sample(NAME_PARTS, 3)
    names = [f"{parts[0]} {business.title()}", f"{p.first}'s {business.title()}", f"{parts[1]} {p.city}",
             f"The {parts[2]} {business.title()}", f"{p.last} & Co."]  # fmt: skip
    answer = "Here are a few name ideas:\n" + "\n".join(f"{i}. {n}" for i, n in enumerate(names, start=1))
    return [("user", ask), ("assistant", answer)]


# ------------------------------------------------------------------------------------ Chat


@template("Chat")
def bank_support_chat(c: Ctx) -> Turns:
    p = c.p
    balance, when = c.amount(50, 48000), REFERENCE_DATE
    system = (
        f"You are Ava, the virtual assistant of {p.bank}. Verify the customer's identity (name, date of birth and "
        f"account number) before discussing any account."
    )
    return [
        ("system", system),
        ("user", "Hi, I need to check my checking balance."),
        ("assistant", "Happy to help. Please confirm your full name, date of birth and account number."),
        ("user", f"{p.name}, born {us_date(p.dob)}, account {p.account}."),
        (
            "assistant",
            f"Thank you, {p.first}, you're verified. As of {long_date(when)}, the balance of account {p.account} "
            f"is {money(balance)}. Is there anything else I can help you with?",
        ),
    ]


@template("Chat")
def clinic_reschedule_chat(c: Ctx) -> Turns:
    p = c.p
    old, new = c.future_date(within_days=20), c.future_date(within_days=60)
    slot = c.time()
    system = "You are the scheduling assistant for Lakeside Family Clinic. Be concise and confirm every change."
    return [
        ("system", system),
        ("user", f"I need to move my appointment with {p.doctor} on {long_date(old)}."),
        ("assistant", "Of course. What is your name and medical record number?"),
        ("user", f"{p.name}, {p.mrn}. It's my {p.diagnosis} check-up."),
        (
            "assistant",
            f"Thanks, {p.first}. I've moved your {p.diagnosis} follow-up with {p.doctor} from {long_date(old)} "
            f"to {long_date(new)} at {slot}. A confirmation will go to {p.phone}.",
        ),
    ]


@template("Chat")
def hr_address_chat(c: Ctx) -> Turns:
    p, new = c.p, c.other()
    system = f"You are the HR helpdesk bot for {p.employer}. Employees can update their personal details with you."
    return [
        ("system", system),
        ("user", f"Hi, I moved. Can you update my address? My employee ID is {p.employee_id}."),
        ("assistant", "Sure. What is the new address, and can you confirm your name and current address?"),
        ("user", f"I'm {p.name}. Old address {p.address}, new address {new.address}."),
        (
            "assistant",
            f"Done, {p.first}. Employee {p.employee_id} now has the address {new.address} on file. "
            f"Your next pay stub from {p.employer} will go there.",
        ),
    ]


@template("Chat")
def friendly_reminder_chat(c: Ctx) -> Turns:
    p = c.p
    when = c.future_date()
    return [
        ("user", f"Can you help me remember some details for my {p.relation}'s visit?"),
        ("assistant", "Of course! What would you like me to keep track of?"),
        (
            "user",
            f"{p.name} lands on {long_date(when)} and is staying at {p.address}. Their cell is {p.phone}. "
            f"Can you repeat that back as a quick note?",
        ),
        (
            "assistant",
            f"Here's your note: {p.name} ({p.relation}) arrives {long_date(when)}, staying at {p.address}, "
            f"cell {p.phone}.",
        ),
    ]


# ------------------------------------------------------------------------------------ Rewrite


@template("Rewrite")
def formalize_note(c: Ctx) -> Turns:
    p, new = c.p, c.other()
    note = (
        f"hey its {p.first.lower()} {p.last.lower()}, got a new number {new.phone} and i moved to {new.address}. "
        f"pls update my file ({p.mrn}) thx"
    )
    ask = f"Rewrite this message so it sounds formal:\n\n{note}"
    answer = (
        f"Hello,\n\nThis is {p.name}. Please update my records ({p.mrn}): my new phone number is {new.phone} and my "
        f"new address is {new.address}.\n\nThank you,\n{p.name}"
    )
    return [("user", ask), ("assistant", answer)]


@template("Rewrite")
def third_person(c: Ctx) -> Turns:
    p = c.p
    text = (
        f"I am {p.name}, {p.a_job} at {p.employer}. I was born on {long_date(p.dob)} and I live in {p.city}. "
        f"I earn {money(p.salary)} a year and I spend my weekends on {p.hobby}."
    )
    ask = f"Rewrite this in the third person:\n\n{text}"
    answer = (
        f"{p.name} is {p.a_job} at {p.employer}. {p.first} was born on {long_date(p.dob)} and lives in {p.city}. "
        f"{p.first} earns {money(p.salary)} a year and spends weekends on {p.hobby}."
    )
    return [("user", ask), ("assistant", answer)]


@template("Rewrite")
def soften_collections(c: Ctx) -> Turns:
    p = c.p
    owed, due = c.amount(80, 6000), c.future_date(within_days=30)
    text = f"{p.name}, you still owe {money(owed)} on account {p.account}. Pay by {us_date(due)} or we send it to collections."
    ask = f"Make this message more polite:\n\n{text}"
    answer = (
        f"Dear {p.name}, this is a friendly reminder that account {p.account} has a remaining balance of "
        f"{money(owed)}. We'd appreciate your payment by {long_date(due)}. If that date is difficult, please "
        f"contact us and we'll gladly work out a plan with you."
    )
    return [("user", ask), ("assistant", answer)]


# ------------------------------------------------------------------------------------ Summarize


@template("Summarize")
def visit_note_summary(c: Ctx) -> Turns:
    p = c.p
    visit = c.past_date(within_days=60)
    note = (
        f"Patient {p.name} (DOB {us_date(p.dob)}, {p.mrn}) was seen by {p.doctor} on {long_date(visit)}. "
        f"The patient reports symptoms over the past several weeks. Examination and labs are consistent with "
        f"{p.diagnosis}. Plan: start {p.treatment}; patient was advised to {p.advice}. Contact number on file: "
        f"{p.phone}. Return visit in six weeks."
    )
    ask = f"Summarize this visit note in two sentences:\n\n{note}"
    answer = (
        f"On {long_date(visit)}, {p.doctor} diagnosed {p.name} ({p.mrn}) with {p.diagnosis} and started "
        f"{p.treatment}. {p.first} should {p.advice} and return in six weeks."
    )
    return [("user", ask), ("assistant", answer)]


@template("Summarize")
def review_summary(c: Ctx) -> Turns:
    p, manager = c.p, c.other()
    raise_pct = c.rng.randint(2, 9)
    text = (
        f"Annual review for {p.name} ({p.employee_id}), {p.job}, {p.employer}. Reviewer: {manager.name}. "
        f"{p.first} met all goals this year and led two projects to completion. Communication with other teams "
        f"can improve. Current salary {money(p.salary)}; recommended merit increase {raise_pct}%, to "
        f"{money(round(p.salary * (1 + raise_pct / 100)))}."
    )
    ask = f"Give me a short summary of this performance review:\n\n{text}"
    answer = (
        f"{manager.name} rated {p.name} ({p.employee_id}) as meeting all goals, with cross-team communication to "
        f"improve, and recommended a {raise_pct}% raise from {money(p.salary)} to "
        f"{money(round(p.salary * (1 + raise_pct / 100)))}."
    )
    return [("user", ask), ("assistant", answer)]


@template("Summarize")
def closing_thread_summary(c: Ctx) -> Turns:
    p, agent = c.p, c.other()
    price = c.rng.randrange(180, 950) * 1000
    close = c.future_date(within_days=45)
    thread = (
        f"From {agent.name}: Hi {p.first}, the seller accepted your offer of {money(price)} on {p.address}.\n"
        f"From {p.name}: Wonderful! My lender is {p.bank}; the loan file number is {p.account}.\n"
        f"From {agent.name}: Great. Closing is set for {long_date(close)}. Please wire the deposit only after "
        f"calling me at {agent.phone} to confirm the instructions."
    )
    ask = f"Summarize this email thread:\n\n{thread}"
    answer = (
        f"{p.name}'s offer of {money(price)} on {p.address} was accepted, with financing from {p.bank} "
        f"(loan file {p.account}). Closing is on {long_date(close)}, and {p.first} should confirm wiring "
        f"instructions by phone with {agent.name} at {agent.phone} first."
    )
    return [("user", ask), ("assistant", answer)]


# ------------------------------------------------------------------------------------ Coding


@template("Coding")
def python_record(c: Ctx) -> Turns:
    p = c.p
    ask = (
        f"Write a Python dictionary called `customer` for this customer: {p.name}, email {p.email}, phone "
        f"{p.phone}, address {p.address}, account {p.account}, born {us_date(p.dob)}."
    )
    answer = (
        "```python\ncustomer = {\n"
        f'    "name": "{p.name}",\n    "email": "{p.email}",\n    "phone": "{p.phone}",\n'
        f'    "address": "{p.address}",\n    "account": "{p.account}",\n    "date_of_birth": "{p.dob.isoformat()}",\n'
        "}\n```"
    )
    return [("user", ask), ("assistant", answer)]


@template("Coding")
def sql_insert(c: Ctx) -> Turns:
    p = c.p
    ask = (
        f"Write a SQL INSERT statement that adds this employee to the `employees` table (columns id, name, job, "
        f"salary, ssn): {p.employee_id}, {p.name}, {p.job}, {money(p.salary)}, SSN {p.ssn}."
    )
    name = p.name.replace("'", "''")
    job = p.job.replace("'", "''")
    answer = (
        "```sql\nINSERT INTO employees (id, name, job, salary, ssn)\n"
        f"VALUES ('{p.employee_id}', '{name}', '{job}', {p.salary}, '{p.ssn}');\n```"
    )
    return [("user", ask), ("assistant", answer)]


@template("Coding")
def mask_function(c: Ctx) -> Turns:
    p = c.p
    ask = (
        f"Write a Python function that masks an account number so only the last four digits show, and call it "
        f"on {p.name}'s account number {p.account}."
    )
    answer = (
        "```python\ndef mask_account(number: str) -> str:\n"
        '    return "*" * (len(number) - 4) + number[-4:]\n\n\n'
        f'print(mask_account("{p.account}"))  # {"*" * (len(p.account) - 4) + p.account[-4:]}\n```'
    )
    return [("user", ask), ("assistant", answer)]


@template("Coding")
def patient_json(c: Ctx) -> Turns:
    p = c.p
    ask = (
        f"Write this patient as a JSON object with keys name, mrn, dob, diagnosis and physician: {p.name}, "
        f"{p.mrn}, born {long_date(p.dob)}, diagnosed with {p.diagnosis} by {p.doctor}."
    )
    answer = (
        "```json\n{\n"
        f'  "name": "{p.name}",\n  "mrn": "{p.mrn}",\n  "dob": "{p.dob.isoformat()}",\n'
        f'  "diagnosis": "{p.diagnosis}",\n  "physician": "{p.doctor}"\n'
        "}\n```"
    )
    return [("user", ask), ("assistant", answer)]


# ------------------------------------------------------------------------------------ Classify


@template("Classify")
def ticket_type(c: Ctx) -> Turns:
    p = c.p
    kind = c.pick(("Billing", "Account Access", "Technical"))
    amount = c.amount(5, 900)
    message = {
        "Billing": f"Hi, this is {p.name}. I was charged {money(amount)} twice on account {p.account}. Please refund one.",
        "Account Access": f"I'm {p.name} ({p.email}) and I'm locked out of account {p.account} after a password reset.",
        "Technical": f"This is {p.name}; the app crashes whenever I open statements for account {p.account}.",
    }[kind]
    ask = f"Classify this support message as Billing, Account Access or Technical:\n\n{message}"
    reason = {
        "Billing": f"{p.first} reports a duplicate charge of {money(amount)}",
        "Account Access": f"{p.first} cannot sign in to account {p.account}",
        "Technical": "the app crashes when opening statements",
    }[kind]
    return [("user", ask), ("assistant", f"{kind}. The message is about a {kind.lower()} issue: {reason}.")]


@template("Classify")
def review_sentiment(c: Ctx) -> Turns:
    p = c.p
    positive = c.rng.random() < 0.5
    signed = f"{p.name}, {p.city}, {us_date(c.past_date())}"
    text = (
        f"\"{p.doctor} was kind and explained my {p.diagnosis} clearly. Booking was easy.\" - {signed}"
        if positive
        else f"\"I waited two hours to see {p.doctor} about my {p.diagnosis} and nobody called me back at {p.phone}.\" - {signed}"
    )
    ask = f"Is this review positive or negative?\n\n{text}"
    answer = (
        f"Positive. {p.first} praises {p.doctor}'s clear explanation and the easy booking."
        if positive
        else f"Negative. {p.first} complains about a two-hour wait and no call back."
    )
    return [("user", ask), ("assistant", answer)]


@template("Classify")
def suspicious_transaction(c: Ctx) -> Turns:
    p = c.p
    amount = c.amount(20, 4000)
    far = c.rng.random() < 0.5
    where = c.pick(("Lagos", "Bucharest", "Manila", "Minsk")) if far else p.city
    ask = (
        f"Label this card transaction as Suspicious or Normal. Cardholder {p.name}, lives in {p.city}, {p.state}; "
        f"account {p.account}; {money(amount)} charged in {where} at 3:12 a.m."
    )
    answer = (
        f"Suspicious. The {money(amount)} charge on {p.first}'s account {p.account} happened in {where}, far from "
        f"{p.city}, in the middle of the night."
        if far
        else f"Normal. The {money(amount)} charge happened in {p.first}'s home city of {p.city}."
    )
    return [("user", ask), ("assistant", answer)]


# ------------------------------------------------------------------------------------ Closed QA


@template("Closed QA")
def record_lookup(c: Ctx) -> Turns:
    p = c.p
    record = (
        f"Name: {p.name}\nDate of birth: {long_date(p.dob)}\nSSN: {p.ssn}\nAddress: {p.address}\n"
        f"Employer: {p.employer}\nAnnual salary: {money(p.salary)}"
    )
    field, value = c.pick(
        (
            ("date of birth", long_date(p.dob)),
            ("employer", p.employer),
            ("annual salary", money(p.salary)),
            ("home address", p.address),
        )
    )
    ask = f"Using the record below, what is {p.first}'s {field}?\n\n{record}"
    return [("user", ask), ("assistant", f"{p.name}'s {field} is {value}.")]


@template("Closed QA")
def appointment_letter_qa(c: Ctx) -> Turns:
    p = c.p
    when, slot = c.future_date(), c.time()
    letter = (
        f"Dear {p.name}, this confirms your appointment with {p.doctor} on {long_date(when)} at {slot} to review "
        f"your {p.diagnosis} treatment. Please bring your insurance card and the ID {p.mrn}."
    )
    ask = f"{letter}\n\nWhen is the appointment, with whom, and what should the patient bring?"
    answer = (
        f"The appointment is on {long_date(when)} at {slot} with {p.doctor}. {p.first} should bring an insurance "
        f"card and the ID {p.mrn}."
    )
    return [("user", ask), ("assistant", answer)]


# ------------------------------------------------------------------------------------ Extract


@template("Extract")
def signature_contacts(c: Ctx) -> Turns:
    p = c.p
    signature = f"Best,\n{p.name}\n{p.job_title}, {p.employer}\n{p.address}\nTel. {p.phone} | {p.email}"
    ask = f"Extract the name, phone number and email address from this email signature:\n\n{signature}"
    answer = f"Name: {p.name}\nPhone: {p.phone}\nEmail: {p.email}"
    return [("user", ask), ("assistant", answer)]


@template("Extract")
def invoice_figures(c: Ctx) -> Turns:
    p = c.p
    issued, due = c.past_date(within_days=30), c.future_date(within_days=30)
    amount = c.amount(60, 7000)
    invoice = (
        f"Invoice for {p.name}, {p.address}. Issued {long_date(issued)}. Amount due: {money(amount)}. "
        f"Please pay by {long_date(due)} from account {p.account} at {p.bank}."
    )
    ask = f"Pull out every date and dollar amount in this invoice:\n\n{invoice}"
    answer = f"Dates: {long_date(issued)} (issued), {long_date(due)} (due)\nAmounts: {money(amount)}"
    return [("user", ask), ("assistant", answer)]

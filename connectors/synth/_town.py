"""The true town: households, people, relationships and needs, before any agency sees them."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from faker.providers.person.en_GB import Provider as _Names
from stdnum.gb import upn

__all__ = ["Household", "Person", "Town", "build_town"]

_FEMALE = tuple(_Names.first_names_female)
_MALE = tuple(_Names.first_names_male)
_SURNAMES = tuple(_Names.last_names)
_SURNAME_WEIGHTS = tuple(float(w) for w in _Names.last_names.values())
_STREETS = (
    "Mill",
    "Church",
    "Station",
    "Park",
    "Victoria",
    "Albert",
    "Orchard",
    "Brook",
    "Chapel",
    "Queen",
    "King",
    "Castle",
    "Meadow",
    "Willow",
    "Green",
    "Bridge",
)
_STREET_KINDS = ("Road", "Street", "Lane", "Close", "Avenue", "Way", "Gardens", "Terrace")
_UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
_AREA = "NB"  # Northbrook: an invented postcode area, so no real person is ever described
_LOCAL_AUTHORITY = 938  # a local authority number that unique pupil numbers may carry


@dataclass(slots=True)
class Person:
    """One true person. ``role`` is their place in the household."""

    person_id: str
    household_id: int
    role: str
    given_name: str
    family_name: str
    birth_family_name: str
    sex: str
    date_of_birth: dt.date
    nhs_number: str
    ni_number: str | None
    upn: str | None
    previous_postcode: str
    needs: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class Household:
    household_id: int
    uprn: str
    address_line: str
    postcode: str
    social_tenant: bool
    domestic_abuse: bool
    social_care: bool
    out_of_work: bool
    members: list[Person] = field(default_factory=list)


@dataclass(slots=True)
class Town:
    reference_date: dt.date
    households: list[Household]

    @property
    def people(self) -> list[Person]:
        return [p for h in self.households for p in h.members]


def _nhs_number(rng: random.Random, used: set[str]) -> str:
    while True:
        digits = [rng.randint(0, 9) for _ in range(9)]
        digits[0] = rng.randint(4, 7)
        check = 11 - sum(d * (10 - i) for i, d in enumerate(digits)) % 11
        if check == 10:
            continue
        number = "".join(map(str, digits)) + str(0 if check == 11 else check)
        if number not in used:
            used.add(number)
            return number


# Letters HMRC allows in both places of a National Insurance number's prefix (NIM39110).
_NI_LETTERS = "ABCEGHJKLMNPRSTWXYZ"
_NI_UNUSED = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def _ni_number(rng: random.Random, used: set[str]) -> str:
    while True:
        first, second = rng.choice(_NI_LETTERS), rng.choice(_NI_LETTERS)
        if first + second in _NI_UNUSED:
            # The next letter makes a prefix HMRC issues, without another draw: the
            # same seed keeps giving the same town.
            second = _NI_LETTERS[(_NI_LETTERS.index(second) + 1) % len(_NI_LETTERS)]
        value = first + second + f"{rng.randint(0, 999999):06d}" + rng.choice("ABCD")
        if value not in used:
            used.add(value)
            return value


def _upn(rng: random.Random, used: set[str]) -> str:
    """A unique pupil number: check letter, local authority, school, year and serial."""
    while True:
        # Drawn but unused: it keeps the draws, and so every seed's town, as they were.
        rng.choice(_UNIT_LETTERS)
        digits = f"{_LOCAL_AUTHORITY}{rng.randint(10**11, 10**12 - 1) % 10**9:09d}"
        value = upn.calc_check_digit(digits) + digits
        if value not in used:
            used.add(value)
            return value


def _postcodes(rng: random.Random, count: int) -> list[str]:
    codes: set[str] = set()
    while len(codes) < count:
        district = rng.randint(1, 9)
        sector = rng.randint(0, 9)
        unit = rng.choice(_UNIT_LETTERS) + rng.choice(_UNIT_LETTERS)
        codes.add(f"{_AREA}{district} {sector}{unit}")
    return sorted(codes)


def _given_name(rng: random.Random, sex: str, household: Household) -> str:
    """A given name no one else in the household has: families do not reuse names."""
    taken = {member.given_name for member in household.members}
    while True:
        name = rng.choice(_FEMALE if sex == "F" else _MALE)
        if name not in taken:
            return name


def _birth(rng: random.Random, today: dt.date, low: int, high: int) -> dt.date:
    age_days = rng.randint(low * 365 + 1, high * 365 + 364)
    return today - dt.timedelta(days=age_days)


def _composition(rng: random.Random) -> list[str]:
    kind = rng.choices(
        ("single", "couple", "family", "lone_parent", "three_gen", "sharers"),
        weights=(24, 22, 28, 13, 5, 8),
    )[0]
    children = ["child"] * rng.choices((1, 2, 3, 4), weights=(40, 38, 16, 6))[0]
    if kind == "single":
        return ["head"]
    if kind == "couple":
        return ["head", "partner"]
    if kind == "family":
        return ["head", "partner", *children]
    if kind == "lone_parent":
        return ["head", *children]
    if kind == "three_gen":
        return ["grandparent", "head", "partner", *children[:3]]
    return ["head"] + ["other adult"] * rng.randint(1, 3)


def build_town(people: int, *, seed: int, reference_date: dt.date) -> Town:
    """A town of about ``people`` people (whole households), the same for the same inputs."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by seed
    postcodes = _postcodes(rng, max(1, people // 30))
    nhs_used: set[str] = set()
    ni_used: set[str] = set()
    upn_used: set[str] = set()
    households: list[Household] = []
    count = 0
    while count < people:
        hid = len(households) + 1
        roles = _composition(rng)[: max(1, people - count)]
        postcode = rng.choice(postcodes)
        street = f"{rng.choice(_STREETS)} {rng.choice(_STREET_KINDS)}"
        household = Household(
            household_id=hid,
            uprn=str(100_000_000_000 + hid * 37 + rng.randint(0, 36)),
            address_line=f"{rng.randint(1, 180)} {street}",
            postcode=postcode,
            social_tenant=rng.random() < 0.3,
            domestic_abuse=rng.random() < 0.05,
            social_care=False,
            out_of_work=rng.random() < 0.15,
        )
        surname = rng.choices(_SURNAMES, weights=_SURNAME_WEIGHTS)[0]
        head_sex = rng.choice("FM")
        twins: dt.date | None = None
        for role in roles:
            count += 1
            if role == "partner":
                sex = "M" if head_sex == "F" else "F"
                if rng.random() < 0.05:
                    sex = head_sex
            elif role == "head":
                sex = head_sex
            else:
                sex = rng.choice("FM")
            if role == "child":
                # About one maternity in sixty is a multiple birth.
                if twins is not None and rng.random() < 0.03:
                    dob = twins
                else:
                    dob = _birth(rng, reference_date, 0, 17)
                twins = dob
            elif role == "grandparent":
                dob = _birth(rng, reference_date, 60, 88)
            else:
                dob = _birth(rng, reference_date, 19 if "child" in roles else 18, 59)
            birth_name = surname
            family_name = surname
            if role == "other adult" or (role == "partner" and rng.random() < 0.3):
                birth_name = family_name = rng.choices(_SURNAMES, weights=_SURNAME_WEIGHTS)[0]
            elif role == "partner" and sex == "F":
                birth_name = rng.choices(_SURNAMES, weights=_SURNAME_WEIGHTS)[0]
            age = (reference_date - dob).days // 365
            person = Person(
                person_id=f"T{count:07d}",
                household_id=hid,
                role=role,
                given_name=_given_name(rng, sex, household),
                family_name=family_name,
                birth_family_name=birth_name,
                sex=sex,
                date_of_birth=dob,
                nhs_number=_nhs_number(rng, nhs_used),
                ni_number=_ni_number(rng, ni_used) if age >= 16 else None,
                upn=_upn(rng, upn_used) if 4 <= age <= 17 else None,
                previous_postcode=rng.choice(postcodes),
            )
            household.members.append(person)
        household.social_care = any(p.role == "child" for p in household.members) and (
            rng.random() < (0.25 if household.domestic_abuse else 0.04)
        )
        households.append(household)
    return Town(reference_date=reference_date, households=households)

"""The errors real agency records carry: typos, nicknames, swapped dates, old addresses."""

from __future__ import annotations

import datetime as dt
import random
import string

from connectors.matching.nicknames import NICKNAMES
from connectors.synth._town import Person

__all__ = ["Noise"]

_NEIGHBOURS = {
    "a": "sqe",
    "e": "wra",
    "i": "uoe",
    "o": "ipa",
    "n": "mb",
    "m": "n",
    "r": "et",
    "l": "k",
    "s": "ad",
    "t": "ry",
    "c": "kx",
    "y": "ie",
}


class Noise:
    """Applies one agency's error rates to what it records about a person."""

    def __init__(self, rng: random.Random, *, rate: float) -> None:
        self.rng = rng
        self.rate = rate

    def chance(self, scale: float = 1.0) -> bool:
        return self.rng.random() < self.rate * scale

    def typo(self, name: str) -> str:
        if len(name) < 4:
            return name
        i = self.rng.randint(1, len(name) - 2)
        kind = self.rng.randint(0, 3)
        if kind == 0:
            return name[:i] + name[i + 1 :]
        if kind == 1:
            return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
        if kind == 2:
            return name[:i] + name[i] + name[i:]
        options = _NEIGHBOURS.get(name[i].lower(), string.ascii_lowercase)
        return name[:i] + self.rng.choice(options) + name[i + 1 :]

    def given_name(self, person: Person) -> str:
        name = person.given_name
        shorts = NICKNAMES.get(name.lower())
        if shorts and self.chance(2.5):
            return self.rng.choice(shorts).capitalize()
        if self.chance():
            return self.typo(name)
        return name

    def family_name(self, person: Person) -> str:
        if person.birth_family_name != person.family_name and self.chance(4):
            return person.birth_family_name
        if self.chance():
            return self.typo(person.family_name)
        return person.family_name

    def date_of_birth(self, person: Person) -> dt.date | None:
        dob = person.date_of_birth
        if self.chance(0.3):
            return None
        if dob.day <= 12 and dob.day != dob.month and self.chance(0.8):
            return dob.replace(day=dob.month, month=dob.day)
        if self.chance(0.5):
            return dob + dt.timedelta(days=self.rng.choice((-1, 1, 10, -10)))
        return dob

    def postcode(self, person: Person, current: str) -> str | None:
        if self.chance(0.5):
            return None
        if self.chance(2):
            return person.previous_postcode
        return current

    def keep(self, share: float) -> bool:
        """Whether an identifier the agency sometimes records is present."""
        return self.rng.random() < share

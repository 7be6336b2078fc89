"""Who is calling: the principal a verified bearer token stands for."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Principal", "Role"]


class Role(StrEnum):
    """What a caller does; each endpoint names the roles that may call it."""

    CASEWORKER = "caseworker"
    IG_OFFICER = "ig_officer"
    ADMIN = "admin"
    CONNECTOR = "connector"


@dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in caller: the token's subject, display name, role and agency."""

    subject: str
    name: str
    role: Role
    agency: str

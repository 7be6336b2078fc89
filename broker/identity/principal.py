"""Who is calling: the principal a verified bearer token stands for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from broker.errors import Forbidden

__all__ = ["JOB_ROLE", "Principal", "Role", "agency_not_registered"]

JOB_ROLE = re.compile(r"[a-z][a-z0-9_]{1,62}")
"""How a job role is spelt, in a token and in the policy catalogue (``social_worker``)."""


class Role(StrEnum):
    """What a caller does; each endpoint names the roles that may call it."""

    CASEWORKER = "caseworker"
    IG_OFFICER = "ig_officer"
    ADMIN = "admin"
    CONNECTOR = "connector"


@dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in caller: the token's subject, display name, role and agency.

    ``job_role`` is the caller's job (``social_worker``, ``early_help_worker``, ...) when
    the identity provider says it: purposes name the jobs that may use them.
    """

    subject: str
    name: str
    role: Role
    agency: str
    job_role: str | None = None

    @property
    def policy_role(self) -> str:
        """The role policy checks against a purpose: the job if known, else the role."""
        return self.job_role or self.role.value


def agency_not_registered(principal: Principal) -> Forbidden:
    """The refusal for a caller acting for an agency the registry does not hold.

    Consent is recorded, and a family query asked, for the caller's agency: policy judges
    a query by that agency's type and agreements, and a consent statement binds every
    agency's answer. A token may name any agency, so one never registered may do neither.
    """
    return Forbidden(
        f"your agency {principal.agency!r} is not registered in Junction, so you may not"
        " record consent or ask about a family for it; ask an administrator to register"
        " it, or sign in with your agency's registered id",
        agency=principal.agency,
    )

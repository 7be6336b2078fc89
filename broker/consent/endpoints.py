"""The consent register's API.

Caseworkers record and change consent, whichever agency they work for, so a person can
tell any service they deal with, in person, by phone, on paper or online.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response, status
from pydantic import StringConstraints

from broker.consent.schemas import ConsentIn, ConsentOut, ConsentSearch, ConsentTransition
from broker.consent.service import ConsentService
from broker.identity import Principal, Role, require, roles_text

__all__ = ["READ_ROLES", "WRITE_ROLES", "router"]

WRITE_ROLES = (Role.CASEWORKER,)
READ_ROLES = (Role.CASEWORKER, Role.IG_OFFICER, Role.ADMIN)
_READ = roles_text(*READ_ROLES)
_WRITE = roles_text(*WRITE_ROLES) + " Recorded in the audit log."

router = APIRouter(prefix="/v1/consents", tags=["consent"])
Reader = Annotated[Principal, Depends(require(*READ_ROLES))]
Writer = Annotated[Principal, Depends(require(*WRITE_ROLES))]


async def _service(request: Request) -> ConsentService:
    service: ConsentService = request.app.state.consent
    return service


Service = Annotated[ConsentService, Depends(_service)]
# As the family query takes it: printable ASCII, without spaces.
IdempotencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
]
# A consent id is a UUID; a longer one names nothing, and is not echoed back in a 404.
ConsentIdPath = Annotated[str, Path(max_length=64)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    description=_WRITE + " Send an `Idempotency-Key` header so a statement sent again (a"
    " retry, a double click) is answered with the consent recorded the first time rather"
    " than recorded twice.",
)
def record_consent(
    body: ConsentIn,
    principal: Writer,
    service: Service,
    response: Response,
    idempotency_key: Annotated[IdempotencyKey | None, Header()] = None,
) -> ConsentOut:
    """Record that a person gave, refused, or was not asked for consent."""
    if idempotency_key is None:
        return service.record(principal, body)
    recorded, replayed = service.record_once(principal, body, idempotency_key)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return recorded


@router.post(
    "/search",
    description=_READ + " Identifiers travel in the body, never the URL. Each search is"
    " recorded, as a consent_lookup audit entry filed under the person.",
)
def search_consents(body: ConsentSearch, principal: Reader, service: Service) -> list[ConsentOut]:
    """Every consent recorded for the person the identifiers name, with its history."""
    return service.search(principal, body)


@router.get("/{consent_id}", description=_READ)
def get_consent(consent_id: ConsentIdPath, _: Reader, service: Service) -> ConsentOut:
    """One consent with its full state history."""
    return service.get(consent_id)


@router.post("/{consent_id}/transitions", description=_WRITE)
def change_consent(
    consent_id: ConsentIdPath, body: ConsentTransition, principal: Writer, service: Service
) -> ConsentOut:
    """Change a consent's state: withdraw it, or record the answer once asked."""
    return service.transition(principal, consent_id, body)

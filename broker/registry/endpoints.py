"""The registry's admin API: agencies, connectors, data sharing agreements."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response, status

from broker.identity import Principal, Role, require, roles_text
from broker.registry.schemas import (
    AgencyChange,
    AgencyIn,
    AgencyOut,
    AgencyUpdate,
    AgreementCreate,
    AgreementIn,
    AgreementOut,
    ConnectorIn,
    ConnectorOut,
    agency_etag,
    agreement_etag,
)
from broker.registry.service import RegistryService

__all__ = ["READ_ROLES", "WRITE_ROLES", "router"]

READ_ROLES = (Role.ADMIN, Role.IG_OFFICER)
WRITE_ROLES = (Role.ADMIN,)
_READ = roles_text(*READ_ROLES)
_WRITE = roles_text(*WRITE_ROLES) + " Recorded in the audit log."

router = APIRouter(prefix="/v1", tags=["registry"])
Reader = Annotated[Principal, Depends(require(*READ_ROLES))]
Writer = Annotated[Principal, Depends(require(*WRITE_ROLES))]


async def _service(request: Request) -> RegistryService:
    service: RegistryService = request.app.state.registry
    return service


Service = Annotated[RegistryService, Depends(_service)]
# Ids are short; a longer one names nothing, and is not echoed back in a 404.
AgencyIdPath = Annotated[str, Path(max_length=64)]
AgreementIdPath = Annotated[str, Path(max_length=64)]


@router.get("/agencies", description=_READ)
def list_agencies(_: Reader, service: Service) -> list[AgencyOut]:
    """Every registered agency with its connector."""
    return service.list_agencies()


def _tagged(agency: AgencyOut, response: Response) -> AgencyOut:
    response.headers["ETag"] = agency_etag(agency.name, agency.type)
    return agency


IfMatch = Annotated[
    str | None,
    Header(
        max_length=200,
        description=(
            "The ETag of what the change was made to: a change to something changed since"
            " is refused (412 precondition-failed)."
        ),
    ),
]


@router.post("/agencies", status_code=status.HTTP_201_CREATED, description=_WRITE)
def create_agency(
    body: AgencyIn, principal: Writer, service: Service, response: Response
) -> AgencyOut:
    """Register an agency. Its ETag names its name and type."""
    return _tagged(service.create_agency(principal, body), response)


@router.get("/agencies/{agency_id}", description=_READ)
def get_agency(
    agency_id: AgencyIdPath, _: Reader, service: Service, response: Response
) -> AgencyOut:
    """One agency with its connector. Its ETag names its name and type: send it back as
    If-Match with a change."""
    return _tagged(service.get_agency(agency_id), response)


@router.put("/agencies/{agency_id}", description=_WRITE)
async def change_agency(
    agency_id: AgencyIdPath,
    body: AgencyUpdate,
    principal: Writer,
    service: Service,
    response: Response,
    if_match: IfMatch = None,
) -> AgencyOut:
    """Change an agency's name or type. An agency with a connector takes a new type only
    if the connector's signed manifest announces it too (it is fetched again); a
    connector given with the new type replaces the registered one, and one given without
    a new type is refused."""
    change = AgencyChange(name=body.name, type=body.type)
    changed = await service.change_agency(
        principal, agency_id, change, body.connector, if_match=if_match
    )
    return _tagged(changed, response)


@router.put("/agencies/{agency_id}/connector", description=_WRITE)
async def register_connector(
    agency_id: AgencyIdPath, body: ConnectorIn, principal: Writer, service: Service
) -> ConnectorOut:
    """Register or replace the agency's connector; its signed manifest is fetched and checked."""
    return await service.register_connector(principal, agency_id, body)


@router.post("/agencies/{agency_id}/connector/refresh", description=_WRITE)
async def refresh_manifest(
    agency_id: AgencyIdPath, principal: Writer, service: Service
) -> ConnectorOut:
    """Fetch the connector's signed manifest again and store it if it changed."""
    return await service.refresh_manifest(principal, agency_id)


@router.get("/agreements", description=_READ)
def list_agreements(_: Reader, service: Service) -> list[AgreementOut]:
    """The newest version of every data sharing agreement."""
    return service.list_agreements()


@router.post("/agreements", status_code=status.HTTP_201_CREATED, description=_WRITE)
def create_agreement(
    body: AgreementCreate, principal: Writer, service: Service, response: Response
) -> AgreementOut:
    """Create a data sharing agreement (version 1). Its ETag names the version."""
    created = service.create_agreement(principal, body)
    response.headers["ETag"] = agreement_etag(created.version)
    return created


@router.get("/agreements/{agreement_id}", description=_READ)
def get_agreement(
    agreement_id: AgreementIdPath, _: Reader, service: Service, response: Response
) -> AgreementOut:
    """The newest version of an agreement. Its ETag names the version: send it back as
    If-Match with a change."""
    found = service.get_agreement(agreement_id)
    response.headers["ETag"] = agreement_etag(found.version)
    return found


@router.get("/agreements/{agreement_id}/versions", description=_READ)
def agreement_versions(
    agreement_id: AgreementIdPath, _: Reader, service: Service
) -> list[AgreementOut]:
    """Every version of an agreement, oldest first."""
    return service.agreement_versions(agreement_id)


@router.put("/agreements/{agreement_id}", description=_WRITE)
def change_agreement(
    agreement_id: AgreementIdPath,
    body: AgreementIn,
    principal: Writer,
    service: Service,
    response: Response,
    if_match: IfMatch = None,
) -> AgreementOut:
    """Change an agreement: its terms are stored as a new version; old versions are kept."""
    changed = service.change_agreement(principal, agreement_id, body, if_match=if_match)
    response.headers["ETag"] = agreement_etag(changed.version)
    return changed

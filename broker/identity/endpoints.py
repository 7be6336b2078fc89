"""The development issuer's routes under ``/dev-oidc`` (development only).

Mounted only when ``JUNCTION_DEV_ISSUER`` is on. The token endpoint signs in anyone as
anything: it exists so the demo and its web sign-in need no identity provider.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel

from broker.errors import InvalidChange
from broker.identity.dev_issuer import DevIssuer
from broker.identity.principal import Role

__all__ = ["DevToken", "router"]

router = APIRouter(prefix="/dev-oidc", tags=["development issuer"])

_DEV_ONLY = "Development only: never enable the development issuer where real data is served."


class DevToken(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int


def _issuer(request: Request) -> DevIssuer:
    issuer: DevIssuer = request.app.state.dev_issuer
    return issuer


@router.get("/.well-known/openid-configuration", description=f"Public. {_DEV_ONLY}")
def discovery(request: Request) -> dict[str, Any]:
    """The development issuer's OpenID Provider metadata."""
    return _issuer(request).discovery()


@router.get("/jwks.json", description=f"Public. {_DEV_ONLY}")
def jwks(request: Request) -> dict[str, Any]:
    """The development issuer's public signing keys."""
    return _issuer(request).jwks()


@router.post("/token", description=f"Public. {_DEV_ONLY} Signs in as any role and agency.")
def token(
    request: Request,
    role: Annotated[Role, Form()],
    agency: Annotated[str, Form(min_length=1, max_length=63)],
    name: Annotated[str, Form(min_length=1, max_length=100)],
    ttl_seconds: Annotated[int, Form(ge=60, le=86_400)] = 3600,
    job_role: Annotated[str | None, Form(pattern=r"^[a-z][a-z0-9_]{1,62}$")] = None,
) -> DevToken:
    """A signed access token for a made-up user (form post: role, agency, name)."""
    try:
        signed = _issuer(request).mint(
            role=role, agency=agency, name=name, ttl_seconds=ttl_seconds, job_role=job_role
        )
    except ValueError as exc:
        raise InvalidChange(str(exc)) from None
    return DevToken(access_token=signed, expires_in=ttl_seconds)

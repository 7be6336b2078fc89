"""``require(*roles)``: the FastAPI dependency every protected endpoint declares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from broker.errors import Forbidden, Unauthenticated
from broker.identity.principal import Principal, Role
from broker.identity.tokens import TokenVerifier

__all__ = ["bearer", "require", "roles_text"]

bearer = HTTPBearer(auto_error=False, description="An OpenID Connect access token.")


def roles_text(*roles: Role) -> str:
    """The sentence an endpoint's description starts with, naming who may call it."""
    return "Roles: " + ", ".join(f"`{role.value}`" for role in roles) + "."


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency yielding the caller's ``Principal`` if their role is one of ``roles``.

    The dependency raises ``Unauthenticated`` (401) without a valid bearer token and
    ``Forbidden`` (403) for a caller in any other role.
    """
    allowed = frozenset(roles)

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthenticated(
                "send an OpenID Connect access token as 'Authorization: Bearer <token>'",
            )
        verifier: TokenVerifier = request.app.state.token_verifier
        principal = await verifier.verify(credentials.credentials)
        if principal.role not in allowed:
            names = ", ".join(sorted(role.value for role in allowed))
            raise Forbidden(
                f"the {principal.role.value} role may not do this; it needs one of: {names}",
                role=principal.role.value,
            )
        return principal

    return dependency

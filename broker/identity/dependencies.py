"""``require(*roles)``: the FastAPI dependency every protected endpoint declares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from audit.entry import Decision, Entry, Kind
from audit.errors import AuditError
from audit.log import AuditLog
from broker.errors import BrokerError, Forbidden, Unauthenticated
from broker.identity.principal import Principal, Role
from broker.identity.tokens import TokenVerifier

__all__ = ["bearer", "require", "roles_text"]

bearer = HTTPBearer(auto_error=False, description="An OpenID Connect access token.")
_log = structlog.get_logger("junction.identity")


def _endpoint(request: Request) -> str:
    # The route's template, not the URL: a path may carry identifiers.
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


async def _record_role_refusal(request: Request, principal: Principal) -> None:
    """Audit a signed-in caller refused for their role.

    Only callers the issuer vouched for are audited: an unsigned, forged or expired token
    names nobody, and writing those into the append-only log would let anyone grow it.
    They are logged instead. A log that cannot take the entry does not turn the refusal
    into an error: nothing is released either way.
    """
    audit: AuditLog = request.app.state.foundation.audit
    entry = Entry(
        kind=Kind.REFUSAL,
        actor=principal.subject,
        actor_agency=principal.agency,
        decision=Decision.DENY,
        reasons=("role_not_allowed", f"role:{principal.role.value}", _endpoint(request)),
    )
    try:
        await audit.append_async(entry)
    except AuditError as exc:
        _log.warning("role_refusal_not_audited", endpoint=_endpoint(request), error=str(exc))


def roles_text(*roles: Role) -> str:
    """The sentence an endpoint's description starts with, naming who may call it."""
    return "Roles: " + ", ".join(f"`{role.value}`" for role in roles) + "."


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency yielding the caller's ``Principal`` if their role is one of ``roles``.

    The dependency raises ``Unauthenticated`` (401) without a valid bearer token, the
    verifier's error for a refused token, and ``Forbidden`` (403) for a caller in any
    other role (that refusal is an audit entry).
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
        try:
            principal = await verifier.verify(credentials.credentials)
        except BrokerError as exc:
            _log.warning("token_refused", code=exc.code, endpoint=_endpoint(request))
            raise
        if principal.role not in allowed:
            await _record_role_refusal(request, principal)
            names = ", ".join(sorted(role.value for role in allowed))
            raise Forbidden(
                f"the {principal.role.value} role may not do this; it needs one of: {names}",
                role=principal.role.value,
            )
        return principal

    return dependency

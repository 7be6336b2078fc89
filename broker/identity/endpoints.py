"""The development issuer's routes under ``/dev-oidc`` (development only).

Mounted only when ``JUNCTION_DEV_ISSUER`` is on. The token endpoint signs in anyone as
anything: it exists so the demo and its web sign-in need no identity provider. It also
speaks the authorization code flow with PKCE (``/dev-oidc/authorize``, then
``grant_type=authorization_code`` at ``/dev-oidc/token``), so a client that signs in at a
real provider (a broker's web pages with ``JUNCTION_OIDC_CLIENT_ID``) can be tried
against it.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from broker.errors import InvalidChange, InvalidRequest
from broker.identity.dev_issuer import CodeRefused, DevIssuer
from broker.identity.principal import JOB_ROLE, Role

__all__ = ["DevToken", "router"]

router = APIRouter(prefix="/dev-oidc", tags=["development issuer"])

_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
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


@router.post(
    "/token",
    description=f"Public. {_DEV_ONLY} Signs in as any role and agency.",
    response_model=DevToken,
    responses={400: {"description": "An OAuth error (RFC 6749 section 5.2)."}},
)
def token(
    request: Request,
    grant_type: Annotated[str | None, Form()] = None,
    code: Annotated[str | None, Form(max_length=200)] = None,
    redirect_uri: Annotated[str | None, Form(max_length=2000)] = None,
    client_id: Annotated[str | None, Form(max_length=200)] = None,
    code_verifier: Annotated[str | None, Form(min_length=43, max_length=128)] = None,
    role: Annotated[Role | None, Form()] = None,
    agency: Annotated[str | None, Form(min_length=1, max_length=63)] = None,
    name: Annotated[str | None, Form(min_length=1, max_length=100)] = None,
    ttl_seconds: Annotated[int, Form(ge=60, le=86_400)] = 3600,
    job_role: Annotated[str | None, Form(pattern=r"^[a-z][a-z0-9_]{1,62}$")] = None,
) -> Response | DevToken:
    """A signed access token: for an authorization code (``grant_type=authorization_code``
    with ``code``, ``redirect_uri``, ``client_id`` and ``code_verifier``), or, without a
    grant type, for a made-up user (``role``, ``agency``, ``name``)."""
    issuer = _issuer(request)
    if grant_type == "authorization_code":
        if not (code and redirect_uri and client_id and code_verifier):
            return _oauth_error(
                "invalid_request", "code, redirect_uri, client_id and code_verifier are needed"
            )
        try:
            signed = issuer.exchange(
                code=code, client_id=client_id, redirect_uri=redirect_uri, verifier=code_verifier
            )
        except CodeRefused as exc:
            return _oauth_error(exc.error, exc.detail)
        return DevToken(access_token=signed, expires_in=_CODE_TOKEN_SECONDS)
    if grant_type is not None:
        return _oauth_error("unsupported_grant_type", f"grant type {grant_type!r} is not offered")
    if role is None or agency is None or name is None:
        raise InvalidRequest("a development token needs a role, an agency and a name")
    _refuse_control_characters(agency=agency, name=name)
    try:
        signed = issuer.mint(
            role=role, agency=agency, name=name, ttl_seconds=ttl_seconds, job_role=job_role
        )
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return DevToken(access_token=signed, expires_in=ttl_seconds)


# A sign-in through the code flow lasts a working day, as the web sign-in does.
_CODE_TOKEN_SECONDS = 8 * 3600


def _refuse_control_characters(**members: str) -> None:
    """Raise ``InvalidRequest`` naming the first member holding a control character: the
    broker could not record a caller named so (PostgreSQL cannot store NUL)."""
    for member, value in members.items():
        if any(unicodedata.category(c) == "Cc" for c in value):
            raise InvalidRequest(
                f"{member} holds a control character; send the {member} without it"
            )


def _oauth_error(error: str, detail: str) -> JSONResponse:
    # RFC 6749 section 5.2: the token endpoint's own error shape.
    return JSONResponse({"error": error, "error_description": detail}, status_code=400)


def _authorization_problem(
    response_type: str, redirect_uri: str, challenge: str, method: str
) -> str | None:
    if response_type != "code":
        return "only response_type=code is offered"
    parts = urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not _HOST.fullmatch(parts.netloc) or parts.fragment:
        return "redirect_uri must be an absolute http(s) URL without a fragment"
    if method != "S256" or not 43 <= len(challenge) <= 128:
        return "a PKCE code_challenge with code_challenge_method=S256 is required"
    return None


_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Development sign-in</title></head>
<body><main>
<h1>Development sign-in</h1>
<p><strong>Development issuer:</strong> it signs in anyone as anything. Never use it
with real people's data.</p>
<form method="post" action="authorize">
{hidden}
<p><label for="name">Your name</label><br><input id="name" name="name" required></p>
<p><label for="role">Your role</label><br><select id="role" name="role">{roles}</select></p>
<p><label for="agency">Your agency</label><br>
<input id="agency" name="agency" value="council" required></p>
<p><label for="job_role">Your job (caseworkers)</label><br>
<input id="job_role" name="job_role" value="social_worker"></p>
<p><button type="submit">Sign in to {client}</button></p>
</form></main></body></html>
"""


@router.get("/authorize", description=f"Public. {_DEV_ONLY} The authorization code flow.")
def authorize_page(
    response_type: str = "",
    client_id: str = "",
    redirect_uri: str = "",
    state: str = "",
    code_challenge: str = "",
    code_challenge_method: str = "",
) -> Response:
    """The sign-in page of the code flow: choose who to be, then go back to the client."""
    problem = _authorization_problem(
        response_type, redirect_uri, code_challenge, code_challenge_method
    )
    if problem is not None or not client_id:
        raise InvalidChange(problem or "client_id is required")
    kept = {
        "response_type": response_type,
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": code_challenge,
        "code_challenge_method": code_challenge_method,
    }
    hidden = "\n".join(
        f'<input type="hidden" name="{key}" value="{html.escape(value)}">'
        for key, value in kept.items()
    )
    roles = "".join(f'<option value="{r.value}">{r.value}</option>' for r in Role)
    page = _FORM.format(hidden=hidden, roles=roles, client=html.escape(client_id))
    back = urlsplit(redirect_uri)
    return HTMLResponse(
        page,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            # The form's answer redirects to the client, which form-action must allow.
            "Content-Security-Policy": (
                f"default-src 'none'; form-action 'self' {back.scheme}://{back.netloc}; "
                "frame-ancestors 'none'"
            ),
        },
    )


@router.post("/authorize", description=f"Public. {_DEV_ONLY} Signs in as any role and agency.")
def authorize(
    request: Request,
    response_type: Annotated[str, Form()],
    client_id: Annotated[str, Form(min_length=1, max_length=200)],
    redirect_uri: Annotated[str, Form(max_length=2000)],
    code_challenge: Annotated[str, Form()],
    code_challenge_method: Annotated[str, Form()],
    role: Annotated[Role, Form()],
    agency: Annotated[str, Form(min_length=1, max_length=63)],
    name: Annotated[str, Form(min_length=1, max_length=100)],
    state: Annotated[str, Form(max_length=500)] = "",
    job_role: Annotated[str, Form(max_length=63)] = "",
) -> Response:
    """Sign in as the chosen user and send the browser back to the client with a code."""
    problem = _authorization_problem(
        response_type, redirect_uri, code_challenge, code_challenge_method
    )
    if problem is None and job_role and not JOB_ROLE.fullmatch(job_role):
        problem = "job_role must be a lower-case job name such as social_worker"
    if problem is not None:
        raise InvalidChange(problem)
    _refuse_control_characters(agency=agency, name=name)
    issuer = _issuer(request)
    try:
        signed = issuer.mint(
            role=role,
            agency=agency,
            name=name,
            ttl_seconds=_CODE_TOKEN_SECONDS,
            job_role=job_role or None,
        )
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    code = issuer.grant(
        client_id=client_id, redirect_uri=redirect_uri, challenge=code_challenge, token=signed
    )
    answer = {"code": code, **({"state": state} if state else {})}
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode(answer)}", status_code=303)

"""What every caseworker page does: find the signed-in caseworker, read and check a
submitted form, and send the browser on with a notice said once."""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from broker.identity.principal import Principal, Role
from broker.web.limits import read_form
from broker.web.pages import Pages, pages_of
from broker.web.session import WebSession, check_csrf, signed_in

__all__ = [
    "CASEWORKER",
    "caseworker",
    "caseworker_post",
    "form_of",
    "notice_for",
    "once_form",
    "redirect_saying",
    "said",
    "see_other",
]

CASEWORKER = (Role.CASEWORKER,)


async def form_of(request: Request) -> dict[str, Any]:
    form = await read_form(request)
    data: dict[str, Any] = {key: form.get(key) for key in form}
    data["scope_agencies"] = form.getlist("scope_agencies")
    data["restricted_fields"] = form.getlist("restricted_fields")
    data["conditions"] = form.getlist("conditions")
    return data


async def caseworker(request: Request) -> tuple[Pages, Principal, WebSession]:
    pages = pages_of(request)
    principal, session = await signed_in(
        pages.codec, pages.foundation.token_verifier, request, CASEWORKER
    )
    return pages, principal, session


async def caseworker_post(
    request: Request,
) -> tuple[Pages, Principal, WebSession, dict[str, Any]]:
    """A caseworker's form submission: who sent it, and the form, its CSRF token checked."""
    pages, principal, session = await caseworker(request)
    form = await form_of(request)
    check_csrf(session, form.get("csrf"))
    return pages, principal, session, form


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def redirect_saying(pages: Pages, session: WebSession, url: str, notice: str) -> RedirectResponse:
    """Send the browser to ``url``, which is to say ``notice`` once: what was just done
    there. It travels in the session, never in the address, so a link or a bookmark
    cannot claim something was done."""
    response = see_other(url)
    pages.codec.write(response, replace(session, notice=(url, notice)))
    return response


def notice_for(request: Request, session: WebSession) -> str | None:
    """The notice left for this page by what was just done there, if any."""
    if session.notice is not None and session.notice[0] == request.url.path:
        return session.notice[1]
    return None


def said(pages: Pages, response: Response, session: WebSession) -> Response:
    """``response``, with the session's notice forgotten once a page has said it."""
    pages.codec.write(response, replace(session, notice=None))
    return response


def once_form(
    pages: Pages,
    request: Request,
    template: str,
    principal: Principal,
    session: WebSession,
    *,
    errors: dict[str, str],
    values: dict[str, Any],
    notice: str | None = None,
    **context: Any,
) -> Response:
    """A form sent once (see ``once``): its one-time key is the one it came back with,
    or a new one. With ``notice`` (its first sending still at work) it is 202."""
    response = pages.render_form(
        request,
        template,
        principal=principal,
        session=session,
        errors=errors,
        values=values,
        key=values.get("idempotency_key") or secrets.token_urlsafe(18),
        notice=notice,
        **context,
    )
    if notice:
        response.status_code = 202
    return response

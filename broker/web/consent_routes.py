"""The caseworkers' consent pages: search, record, view and withdraw. Thin: forms in
``forms``, logic in the consent service."""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from broker.errors import Conflict, InvalidChange
from broker.identity.principal import Principal
from broker.web.caseworker import (
    caseworker,
    caseworker_post,
    notice_for,
    once_form,
    redirect_saying,
    said,
    see_other,
)
from broker.web.errors import BadForm
from broker.web.forms import (
    IDENTIFIER_KINDS,
    NOTE_LENGTH,
    consent_form,
    consent_refusal,
    consent_search_form,
    withdraw_form,
    withdrawal_refusal,
)
from broker.web.once import form_key, once
from broker.web.pages import Pages, WebRoute
from broker.web.session import WebSession

__all__ = ["router"]

router = APIRouter(prefix="/web", route_class=WebRoute, include_in_schema=False)
ConsentId = Annotated[str, Path(max_length=64)]
# How long a consent form sent twice at once waits for its first sending to be recorded.
_CONSENT_PATIENCE = 10.0


@router.get("/consents")
async def consents(request: Request) -> Response:
    pages, principal, session = await caseworker(request)
    return pages.render(
        request,
        "consents.html",
        principal=principal,
        session=session,
        kinds=IDENTIFIER_KINDS,
        errors={},
        values={},
        found=None,
    )


@router.post("/consents/search")
async def search_consents(request: Request) -> Response:
    pages, principal, session, form = await caseworker_post(request)
    try:
        query = consent_search_form(form)
    except BadForm as exc:
        return pages.render(
            request,
            "consents.html",
            principal=principal,
            session=session,
            kinds=IDENTIFIER_KINDS,
            errors=exc.fields,
            values=form,
            found=None,
            status=422,
        )
    found = await asyncio.to_thread(pages.foundation.consent.search, principal, query)
    return pages.render(
        request,
        "consents.html",
        principal=principal,
        session=session,
        kinds=IDENTIFIER_KINDS,
        errors={},
        values=form,
        found=found,
    )


@router.get("/consents/new")
async def new_consent(request: Request) -> Response:
    pages, principal, session = await caseworker(request)
    return await _consent_form(
        pages, request, principal, session, errors={}, values={"scope": "all"}
    )


async def _consent_form(
    pages: Pages,
    request: Request,
    principal: Principal,
    session: WebSession,
    *,
    errors: dict[str, str],
    values: dict[str, Any],
    notice: str | None = None,
) -> Response:
    return once_form(
        pages,
        request,
        "consent_form.html",
        principal,
        session,
        errors=errors,
        values=values,
        notice=notice,
        kinds=IDENTIFIER_KINDS,
        agencies=await asyncio.to_thread(pages.foundation.registry.list_agencies),
    )


@router.post("/consents")
async def record_consent(request: Request) -> Response:
    pages, principal, session, form = await caseworker_post(request)
    try:
        consent = consent_form(form)
    except BadForm as exc:
        return await _consent_form(
            pages, request, principal, session, errors=exc.fields, values=form
        )
    page_key = str(form.get("idempotency_key") or secrets.token_urlsafe(18))
    key = form_key(page_key, consent.model_dump_json())
    try:
        done = await once(
            lambda: asyncio.to_thread(
                pages.foundation.consent.record_once, principal, consent, key
            ),
            patience=_CONSENT_PATIENCE,
        )
    except InvalidChange as exc:
        return await _consent_form(
            pages, request, principal, session, errors=consent_refusal(exc), values=form
        )
    if done is None:
        return await _consent_form(
            pages,
            request,
            principal,
            session,
            errors={},
            values=form,
            notice="The consent is still being recorded. Send the form again in a moment "
            "to see it: it will not be recorded twice.",
        )
    recorded, _ = done
    return redirect_saying(pages, session, f"/web/consents/{recorded.id}", "Consent recorded.")


@router.get("/consents/search")
async def search_again() -> Response:
    """The search's answer opened again by its address: the search form (the address
    would otherwise name a consent called "search")."""
    return see_other("/web/consents")


@router.get("/consents/{consent_id}")
async def view_consent(request: Request, consent_id: ConsentId) -> Response:
    pages, principal, session = await caseworker(request)
    notice = notice_for(request, session)
    page = await _consent_page(
        pages, request, principal, session, consent_id, errors={}, values={}, notice=notice
    )
    return said(pages, page, session) if notice else page


async def _consent_page(
    pages: Pages,
    request: Request,
    principal: Principal,
    session: WebSession,
    consent_id: str,
    *,
    errors: dict[str, str],
    values: dict[str, Any],
    notice: str | None = None,
) -> Response:
    """One consent and its history, with the withdrawal form; 422 with ``errors``."""
    consent = await asyncio.to_thread(pages.foundation.consent.get, consent_id)
    return pages.render_form(
        request,
        "consent.html",
        principal=principal,
        session=session,
        consent=consent,
        notice=notice,
        errors=errors,
        values=values,
        note_length=NOTE_LENGTH,
    )


@router.post("/consents/{consent_id}/withdraw")
async def withdraw_consent(request: Request, consent_id: ConsentId) -> Response:
    pages, principal, session, form = await caseworker_post(request)
    try:
        change = withdraw_form(form)
        await asyncio.to_thread(pages.foundation.consent.transition, principal, consent_id, change)
    except BadForm as exc:
        errors = exc.fields
    except (InvalidChange, Conflict) as exc:
        errors = {"state": withdrawal_refusal(exc)}
    else:
        return redirect_saying(pages, session, f"/web/consents/{consent_id}", "Consent withdrawn.")
    return await _consent_page(
        pages, request, principal, session, consent_id, errors=errors, values=form
    )

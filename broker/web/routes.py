"""Signing in, and the caseworkers' query pages (their consent pages are in
``consent_routes``). Thin: forms in ``forms``, logic in the services."""

from __future__ import annotations

import asyncio
import pathlib
import re
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError

from broker.errors import BrokerError, IssuerUnavailable
from broker.foundation import Foundation, load_or_create_secret
from broker.identity.principal import Principal, Role
from broker.queries.schemas import LinkDecisionIn
from broker.settings import BrokerSettings
from broker.web import consent_routes, ig_routes
from broker.web.answers import kept_answer, request_hash, run_query
from broker.web.caseworker import (
    caseworker,
    caseworker_post,
    form_of,
    notice_for,
    once_form,
    redirect_saying,
    said,
    see_other,
)
from broker.web.catalogue import Catalogue
from broker.web.errors import BadForm, CsrfRejected, PageNotFound, SignInRequired
from broker.web.forms import (
    query_form,
    shown_again,
    typed_text,
)
from broker.web.graph import layout
from broker.web.limits import FormLimit
from broker.web.oidc import CodeFlow, SignInFailed
from broker.web.once import form_key
from broker.web.pages import Pages, WebRoute, pages_of
from broker.web.session import SessionCodec, WebSession, check_csrf, role_name, signed_in
from broker.web.sign_outs import SignOuts

__all__ = ["install_web", "open_web", "router"]

router = APIRouter(prefix="/web", route_class=WebRoute, include_in_schema=False)
# Mounted last, so it answers only addresses under /web that no page has.
_fallback = APIRouter(prefix="/web", route_class=WebRoute, include_in_schema=False)
QueryId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
# The pages serve caseworkers and IG officers; administrators and connectors use the API.
_SIGN_IN_ROLES = {role.value: role for role in (Role.CASEWORKER, Role.IG_OFFICER)}
_STALE_SIGN_IN = (
    "This sign-in page was open too long (or your browser did not keep its cookie): "
    "check your answers and sign in again"
)
# As the development issuer's own sign-in page allows.
_NAME_LENGTH = 100
_JOBS = ("social_worker", "early_help_worker", "duty_social_worker", "team_manager", "yot_officer")


def install_web(app: FastAPI) -> None:
    """Add the page routes and their static files to ``app`` (before start-up)."""
    app.include_router(router)
    app.include_router(consent_routes.router)
    app.include_router(ig_routes.router)
    app.mount("/web/static", StaticFiles(directory=str(_STATIC)), name="web-static")
    app.include_router(_fallback)
    # Outermost, so a form over the broker's body limit is answered with a page.
    app.add_middleware(FormLimit)


def open_web(app: FastAPI, foundation: Foundation, settings: BrokerSettings) -> None:
    """Build the pages' machinery over ``foundation`` (at start-up).

    Raises ``ConfigurationError`` if the session key cannot be read, ``PolicyError`` if
    the policy catalogue cannot be.
    """
    secret = load_or_create_secret(settings.data_dir / "web-session.key")
    secure = settings.resolved_public_url().startswith("https://")
    code_flow = None
    if settings.oidc_issuer and settings.oidc_client_id:
        client_secret = settings.oidc_client_secret
        code_flow = CodeFlow(
            issuer=settings.resolved_issuer(),
            client_id=settings.oidc_client_id,
            client_secret=None if client_secret is None else client_secret.get_secret_value(),
            redirect_uri=settings.resolved_public_url() + "/web/sign-in/callback",
            scope=settings.oidc_scope,
            http=foundation.oidc_http,
            secret=secret,
            secure=secure,
        )
    app.state.web = Pages.build(
        foundation,
        SessionCodec(secret, secure=secure, sign_outs=SignOuts(foundation.db)),
        Catalogue.load(),
        code_flow,
        max_form_bytes=settings.max_body_bytes,
    )


_STATIC = pathlib.Path(__file__).parent / "static"


# -- signing in ---------------------------------------------------------------------------


@router.get("")
async def start(request: Request) -> Response:
    pages = pages_of(request)
    if pages.codec.read(request) is None:
        return see_other("/web/sign-in")
    return see_other("/web/home")


@router.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    pages = pages_of(request)
    return await _sign_in(pages, request, {}, {})


async def _sign_in(
    pages: Pages,
    request: Request,
    errors: dict[str, str],
    values: dict[str, Any],
    *,
    status: int | None = None,
) -> Response:
    probe = Response()
    token = pages.codec.sign_in_token(request, probe)
    response = pages.render_form(
        request,
        "sign_in.html",
        form_token=token,
        dev=pages.dev_sign_in,
        code_flow=pages.code_flow is not None,
        agencies=await asyncio.to_thread(pages.foundation.registry.list_agencies),
        jobs=_JOBS,
        roles=[Role.CASEWORKER, Role.IG_OFFICER],
        errors=errors,
        values=values,
        issuer=pages.foundation.token_verifier.issuer,
    )
    if status is not None:
        response.status_code = status
    for cookie in probe.headers.getlist("set-cookie"):
        response.headers.append("set-cookie", cookie)
    return response


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    pages = pages_of(request)
    form = await form_of(request)
    try:
        check_csrf(pages.codec.read_sign_in_token(request), form.get("csrf"))
    except CsrfRejected:
        # Nothing is signed in; the page comes back with a fresh token to send it with.
        field = "name" if pages.dev_sign_in else "access_token"
        stale = {field: _STALE_SIGN_IN}
        return await _sign_in(pages, request, stale, shown_again(form), status=403)
    errors: dict[str, str] = {}
    token = str(form.get("access_token") or "").strip()
    if pages.dev_sign_in and not token:
        issuer = pages.foundation.dev_issuer
        assert issuer is not None  # noqa: S101 - dev_sign_in says it exists
        name = str(form.get("name") or "").strip()
        agency = str(form.get("agency") or "").strip()
        job = str(form.get("job_role") or "").strip() or None
        if not name:
            errors["name"] = "Enter your name"
        elif typed_text(name) != name:
            errors["name"] = (
                "Your name held invisible characters, now taken out: check it and sign in again"
            )
        elif len(name) > _NAME_LENGTH:
            errors["name"] = f"Enter a name of at most {_NAME_LENGTH} characters"
        registered = await asyncio.to_thread(pages.foundation.registry.list_agencies)
        if not agency:
            errors["agency"] = "Choose your agency"
        elif agency not in {a.id for a in registered}:
            errors["agency"] = "Choose your agency from the list"
        if job is not None and job not in _JOBS:
            errors["job_role"] = "Choose a job from the list"
        role = _SIGN_IN_ROLES.get(str(form.get("role")))
        if role is None:
            errors["role"] = "Choose caseworker or IG officer"
        if not errors and role is not None:
            token = issuer.mint(
                role=role, agency=agency, name=name, job_role=job, ttl_seconds=8 * 3600
            )
    elif not token:
        errors["access_token"] = "Paste the access token your identity provider gave you"  # noqa: S105 - a message
    if errors:
        return await _sign_in(pages, request, errors, shown_again(form))
    try:
        principal = await pages.foundation.token_verifier.verify(token)
    except SignInRequired as exc:
        return await _sign_in(pages, request, {"access_token": exc.detail}, form)
    except Exception as exc:  # noqa: BLE001 - any refusal of the token is shown on the form
        detail = getattr(exc, "detail", "the token was not accepted")
        return await _sign_in(pages, request, {"access_token": f"Not accepted: {detail}"}, form)
    if principal.role not in _SIGN_IN_ROLES.values():
        refused = {"access_token": _no_pages_for(principal.role)}
        return await _sign_in(pages, request, refused, {}, status=403)
    response = see_other("/web/home")
    pages.codec.write(response, WebSession.start(token))
    return response


@router.get("/sign-in/start")
async def sign_in_start(request: Request) -> Response:
    """Send the browser to the identity provider (authorization code with PKCE)."""
    pages = pages_of(request)
    if pages.code_flow is None:
        return see_other("/web/sign-in")
    try:
        location, pending = await pages.code_flow.start()
    except IssuerUnavailable as exc:
        return await _sign_in(pages, request, {"provider": exc.detail}, {}, status=503)
    response = see_other(location)
    pages.code_flow.remember(response, pending)
    return response


@router.get("/sign-in/callback")
async def sign_in_callback(request: Request) -> Response:
    """Where the identity provider sends the browser back: exchange the code for a token."""
    pages = pages_of(request)
    if pages.code_flow is None:
        return see_other("/web/sign-in")
    flow = pages.code_flow
    params = dict(request.query_params.items())
    try:
        token = await flow.finish(flow.pending(request), params)
        principal = await pages.foundation.token_verifier.verify(token)
    except SignInFailed as exc:
        failed = await _sign_in(pages, request, {"provider": exc.detail}, {}, status=400)
        flow.forget(failed)
        return failed
    except IssuerUnavailable as exc:
        return await _sign_in(pages, request, {"provider": exc.detail}, {}, status=503)
    except BrokerError as exc:
        # The provider signed the person in, but its token is not one this broker takes
        # (audience, role or agency claim): say which, as for a pasted token.
        failed = await _sign_in(
            pages, request, {"provider": f"Not accepted: {exc.detail}"}, {}, status=403
        )
        flow.forget(failed)
        return failed
    if principal.role not in _SIGN_IN_ROLES.values():
        failed = await _sign_in(
            pages, request, {"provider": _no_pages_for(principal.role)}, {}, status=403
        )
        flow.forget(failed)
        return failed
    response = see_other("/web/home")
    flow.forget(response)
    pages.codec.write(response, WebSession.start(token))
    return response


def _no_pages_for(role: Role) -> str:
    """Why a sign-in in ``role`` (an administrator's, a connector's) starts no session."""
    article = "an" if role_name(role)[0] in "aeiou" else "a"
    return (
        "Not accepted: the web pages are for caseworkers and information governance "
        f"officers, and this token is for {article} {role_name(role)}: use the API instead"
    )


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    pages = pages_of(request)
    session = pages.codec.read(request)
    form = await form_of(request)
    if session is not None:
        try:
            check_csrf(session, form.get("csrf"))
        except CsrfRejected:
            # A button on a page of an earlier sign-in (signed in again in another tab):
            # ask once more, with this sign-in's token, rather than leave it running.
            return pages.render(request, "sign_out.html", session=session, status=403)
        await pages.codec.end(session)
    response = pages.render(request, "signed_out.html")
    pages.codec.clear(response)
    return response


@router.get("/home")
async def home(request: Request) -> Response:
    pages = pages_of(request)
    principal, session = await signed_in(
        pages.codec, pages.foundation.token_verifier, request, (Role.CASEWORKER, Role.IG_OFFICER)
    )
    if principal.role is Role.IG_OFFICER:
        return see_other("/web/ig")
    recent = await asyncio.to_thread(pages.foundation.follow_up.queries, principal, 10)
    return pages.render(
        request,
        "home.html",
        principal=principal,
        session=session,
        recent=recent,
        session_answers=session.answers,
    )


# -- the family query -----------------------------------------------------------------------


@router.get("/queries/new")
async def new_query(request: Request) -> Response:
    pages, principal, session = await caseworker(request)
    return _query_form(pages, request, principal, session, errors={}, values={})


def _query_form(
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
        "query_form.html",
        principal,
        session,
        errors=errors,
        values=values,
        notice=notice,
    )


@router.post("/queries")
async def submit_query(request: Request) -> Response:
    pages, principal, session, form = await caseworker_post(request)
    try:
        body = query_form(form, pages.catalogue)
    except BadForm as exc:
        return _query_form(
            pages, request, principal, session, errors=exc.fields, values=shown_again(form)
        )
    hashed = request_hash(body)
    key = form_key(str(form.get("idempotency_key") or secrets.token_urlsafe(18)), hashed)
    view = await run_query(pages.foundation, principal, body, key)
    if view is None:
        return _query_form(
            pages,
            request,
            principal,
            session,
            errors={},
            values=form,
            notice="Your query is still running. Send the form again in a moment to see its "
            "answer: it will not run twice.",
        )
    response = see_other(f"/web/queries/{view.query_id}")
    pages.codec.write(response, session.with_answer(view.query_id, key, hashed))
    return response


@router.get("/queries/{query_id}")
async def query_result(request: Request, query_id: QueryId) -> Response:
    pages, principal, session = await caseworker(request)
    notice = notice_for(request, session)
    page = await _result(pages, request, principal, session, query_id, notice=notice)
    return said(pages, page, session) if notice else page


async def _result(
    pages: Pages,
    request: Request,
    principal: Principal,
    session: WebSession,
    query_id: str,
    *,
    notice: str | None = None,
    link_error: str | None = None,
) -> Response:
    """The answer kept for ``query_id``; 422 when it comes back with ``link_error``."""
    kept = session.answers.get(query_id)
    view = await kept_answer(pages.foundation, principal, *kept) if kept else None
    if view is None:
        return pages.render(
            request, "result_gone.html", principal=principal, session=session, status=410
        )
    return pages.render(
        request,
        "result.html",
        principal=principal,
        session=session,
        view=view,
        graph=layout(view),
        notice=notice,
        link_error=link_error,
        status=422 if link_error else 200,
    )


@router.post("/queries/{query_id}/links")
async def decide_link(request: Request, query_id: QueryId) -> Response:
    pages, principal, session, form = await caseworker_post(request)
    try:
        decision = LinkDecisionIn.model_validate(
            {"link_id": str(form.get("link_id") or ""), "decision": str(form.get("decision") or "")}
        )
    except ValidationError:
        # Only a form sent without its button, or altered, gets here: the page's own
        # buttons send one of the links it lists and confirm or reject.
        return await _result(
            pages,
            request,
            principal,
            session,
            query_id,
            link_error="Choose Confirm or Reject beside one of the links to check",
        )
    await pages.foundation.follow_up.decide_link(principal, query_id, decision)
    done = "confirmed" if decision.decision == "confirm" else "rejected"
    return redirect_saying(
        pages,
        session,
        f"/web/queries/{query_id}",
        f"You {done} the link. It is recorded in the audit log, and later queries use your "
        "decision; run the query again to see the family joined with it.",
    )


# Where each form sends its answer, and the page the form is on. After sending it the
# address bar shows the first: opened again from there (a restored tab, Enter in the
# address bar) it leads back to the second instead of to "no page here".
_FORM_PAGES = [
    (re.compile(r"ig/audit/(\d+)/verify"), "/web/ig/audit/{}"),
    (re.compile(r"ig/integrity/(?:consistency|verify-all)"), "/web/ig/integrity"),
    (re.compile(r"ig/break-glass/\d+/review"), "/web/ig/break-glass"),
    (re.compile(r"queries"), "/web/queries/new"),
    (re.compile(r"queries/([0-9a-f]{32})/links"), "/web/queries/{}"),
    (re.compile(r"consents/([A-Za-z0-9_-]{1,64})/withdraw"), "/web/consents/{}"),
    (re.compile(r"sign-out"), "/web/home"),
]


@_fallback.api_route("/{rest:path}", methods=["GET", "POST"])
async def no_such_page(request: Request, rest: str) -> Response:
    if request.method == "GET":
        for address, page in _FORM_PAGES:
            if sent := address.fullmatch(rest):
                return see_other(page.format(*sent.groups()))
    raise PageNotFound(f"There is no page at /web/{rest[:100]}. Check the address, or start again.")

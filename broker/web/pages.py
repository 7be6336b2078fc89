"""The pages' shared machinery: templates, the session codec, and error pages.

``WebRoute`` renders every error a page raises (ours, the broker's, any other) as an
HTML page that says what happened and what to do, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from broker.errors import BrokerError
from broker.foundation import Foundation
from broker.identity.principal import Principal
from broker.web.catalogue import Catalogue
from broker.web.errors import PageNotFound, SignInRequired, WebError, sentence
from broker.web.ig import IgReader
from broker.web.oidc import CodeFlow
from broker.web.session import SessionCodec, WebSession, role_name

__all__ = ["Pages", "WebRoute", "pages_of", "template_environment"]

_log = structlog.get_logger("junction.web")
TEMPLATES = Path(__file__).parent / "templates"


def template_environment() -> Environment:
    """The pages' templates, with the filters they use."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "svg"]),
        trim_blocks=True,
        lstrip_blocks=True,
        # A name a template uses but a route forgot fails loudly, never renders blank.
        undefined=StrictUndefined,
    )
    env.filters.update(
        when=_when,
        day=_day,
        age=_age,
        value=_value,
        field=_field,
        role=role_name,
        sentence=sentence,
    )
    return env


def _when(value: dt.datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(dt.UTC).strftime("%d %b %Y %H:%M UTC")


def _day(value: dt.date) -> str:
    """A day as people write it: 23 March 2027."""
    return f"{value.day} {value:%B %Y}"


def _age(value: dt.datetime) -> str:
    days = (dt.datetime.now(dt.UTC) - value).total_seconds() / 86400
    if days < 1:
        return "today"
    if days < 60:
        return f"{math.floor(days)} days old"
    return f"{math.floor(days / 30.4)} months old"


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1%}" if 0 <= value <= 1 else f"{value:g}"
    if value is None:
        return "not recorded"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def _field(name: str) -> str:
    tail = name.split(".", 1)[-1]
    words = tail.replace("_12m", " (last 12 months)").replace("_gbp", " (£)").replace("_", " ")
    return words[0].upper() + words[1:]


@dataclass
class Pages:
    """Everything the page routes need, built once at start-up."""

    foundation: Foundation
    templates: Environment
    codec: SessionCodec
    catalogue: Catalogue
    ig: IgReader
    dev_sign_in: bool
    code_flow: CodeFlow | None = None
    max_form_bytes: int = 1024 * 1024

    @classmethod
    def build(
        cls,
        foundation: Foundation,
        codec: SessionCodec,
        catalogue: Catalogue,
        code_flow: CodeFlow | None = None,
        *,
        max_form_bytes: int = 1024 * 1024,
    ) -> Pages:
        return cls(
            foundation=foundation,
            templates=template_environment(),
            codec=codec,
            catalogue=catalogue,
            ig=IgReader(foundation.oversight, foundation.subject_access, foundation.audit),
            dev_sign_in=foundation.dev_issuer is not None,
            code_flow=code_flow,
            max_form_bytes=max_form_bytes,
        )

    def render_form(
        self,
        request: Request,
        template: str,
        *,
        principal: Principal | None = None,
        session: WebSession | None = None,
        errors: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """A page with a form: 422 when it comes back with ``errors`` to correct."""
        return self.render(
            request,
            template,
            principal=principal,
            session=session,
            status=422 if errors else 200,
            errors=errors or {},
            **context,
        )

    def render(
        self,
        request: Request,
        template: str,
        *,
        principal: Principal | None = None,
        session: WebSession | None = None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """The page ``template`` with the signed-in caller and the CSRF token in scope."""
        html = self.templates.get_template(template).render(
            request=request,
            principal=principal,
            csrf=session.csrf if session else "",
            catalogue=self.catalogue,
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; "
            "script-src 'self'; form-action 'self'; frame-ancestors 'none'"
        )
        return response

    def error(self, request: Request, exc: Exception) -> HTMLResponse:
        """The page shown for ``exc``: what happened and what to do next."""
        if isinstance(exc, WebError | BrokerError):
            title, detail, status, code = exc.title, exc.detail, exc.status, exc.code
        elif isinstance(exc, RequestValidationError):
            # A path part of the wrong shape (an id that cannot be one) names no page.
            title, status, code = PageNotFound.title, PageNotFound.status, PageNotFound.code
            detail = "The address does not name a page Junction has. Check it, or start again."
        else:
            _log.exception("web page failed", path=request.url.path)
            title = "Something went wrong"
            detail = "The page could not be shown. Try again; if it keeps happening, tell support."
            status, code = 500, "internal-error"
        return self.render(
            request,
            "error.html",
            status=status,
            title=title,
            detail=sentence(detail),
            sign_in=isinstance(exc, SignInRequired),
            code=code,
        )


def pages_of(request: Request) -> Pages:
    pages: Pages = request.app.state.web
    return pages


class WebRoute(APIRoute):
    """A route whose errors, whatever they are, become HTML pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def render_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a page
                return pages_of(request).error(request, exc)

        return render_errors

"""RFC 9457 problem details: the one place errors become HTTP responses.

Both the broker and every connector install these handlers, so a caller meets one error
shape everywhere: ``application/problem+json`` with a stable ``type`` (a URN naming the
problem), a human ``title``, the ``status``, a ``detail`` that says what to do, and the
``instance`` (the request path). Validation problems list each bad member under
``errors`` without echoing the submitted values, which may be personal data.

Any exception whose class carries ``code``, ``title`` and ``status`` class attributes
(every package's error hierarchy does) is rendered from them; anything else is a 500
with a reference to the log line, never a traceback.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.observability import mark_logged
from connectors.protocol.methods import allowed_methods

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_RESPONSES",
    "BodyLimitMiddleware",
    "Problem",
    "ProblemResponse",
    "install_problem_handlers",
    "problem_response",
    "problem_type",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
_log = structlog.get_logger("junction.problems")


def problem_type(code: str) -> str:
    """The stable ``type`` URI of a problem code."""
    return f"urn:junction:problem:{code}"


class ProblemField(BaseModel):
    location: str
    message: str


class Problem(BaseModel):
    """The RFC 9457 body every error response carries."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:junction:problem:invalid-request"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[ProblemField] | None = None


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def _documented(description: str) -> dict[str, Any]:
    return {
        "model": Problem,
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


# Pass as ``FastAPI(responses=...)``: every operation then documents the problem bodies
# it can answer with, so clients (and schema checkers) know the error shape. 500 is left
# out on purpose: it is always a bug.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": _documented("The request was refused; 'type' names the problem, 'detail' what to do."),
    503: _documented("A service this one depends on is unavailable; retry later."),
}


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> ProblemResponse:
    """Build a problem+json response. ``extensions`` become extra members."""
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    body.update({k: v for k, v in extensions.items() if v is not None})
    return ProblemResponse(body, status_code=status, headers=headers)


_STATUS_CODES = {
    400: ("bad-request", "The request could not be understood"),
    401: ("unauthenticated", "Authentication is required"),
    403: ("forbidden", "You may not do this"),
    404: ("not-found", "Nothing is here"),
    405: ("method-not-allowed", "This method is not allowed here"),
    406: ("not-acceptable", "No acceptable representation"),
    408: ("request-timeout", "The request body did not arrive in time"),
    409: ("conflict", "The request conflicts with the current state"),
    413: ("body-too-large", "The request body is too large"),
    415: ("unsupported-media-type", "The request body has the wrong media type"),
    422: ("invalid-request", "The request is not valid"),
    429: ("too-many-requests", "Too many requests"),
    503: ("unavailable", "The service is temporarily unavailable"),
}


# FastAPI's words for a body its JSON decoder could not read at all (invalid UTF-8,
# nesting too deep for the decoder).
_UNPARSED_BODY = "There was an error parsing the body"


def _malformed_json(request: Request) -> ProblemResponse:
    return problem_response(
        400,
        "malformed-json",
        "The request body is not valid JSON",
        "Send a JSON document; check quotes, commas and brackets.",
        instance=request.url.path,
    )


# Each pattern a request member is held to, in words a caller can act on.
_PATTERN_WORDS = {
    r"^[a-z][a-z0-9_-]{1,62}$": (
        "use 2 to 63 lower-case letters, digits, '-' or '_', starting with a letter,"
        " such as 'police'"
    ),
    r"^[a-z][a-z0-9_.-]{0,62}$": (
        "use up to 63 lower-case letters, digits, '.', '-' or '_', starting with a letter,"
        " such as 'early_help'"
    ),
    r"^[a-z][a-z0-9_]{1,63}$": (
        "use 2 to 64 lower-case letters, digits or '_', starting with a letter,"
        " such as 'early_help'"
    ),
    r"^[a-z][a-z0-9_]{1,62}$": (
        "use 2 to 63 lower-case letters, digits or '_', starting with a letter,"
        " such as 'social_worker'"
    ),
    r"^[a-z][a-z0-9_]{1,31}$": (
        "use 2 to 32 lower-case letters, digits or '_', starting with a letter"
    ),
    r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$": (
        "not an item name: lower-case words joined by '.' and '_',"
        " such as education.attendance_rate"
    ),
    r"^[\x21-\x7e]+$": "use printable ASCII characters without spaces, such as a UUID",
    r"^https?://\S+$": "give an http:// or https:// address without spaces",
    r"^[0-9a-f]{32}$": "use 32 lower-case hexadecimal digits",
    r"^[0-9a-f]{64}$": "use 64 lower-case hexadecimal digits",
}


def _message(error: Any) -> str:
    """What was wrong with one member, as a sentence: a pattern in words, and a
    validator's own sentence without the "Value error, " pydantic puts before it."""
    if error.get("type") == "string_pattern_mismatch":
        pattern = str(error.get("ctx", {}).get("pattern", ""))
        if pattern in _PATTERN_WORDS:
            return _PATTERN_WORDS[pattern]
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def _validation_problem(request: Request, exc: RequestValidationError) -> ProblemResponse:
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return _malformed_json(request)
    if [(err.get("type"), tuple(err.get("loc", ()))) for err in errors] == [("missing", ("body",))]:
        return _malformed_json(request)  # an empty body: not a JSON document either
    fields = [
        {
            "location": ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body",
            "message": _message(err),
        }
        for err in errors
    ]
    return problem_response(
        422,
        "invalid-request",
        "The request is not valid",
        "Correct the members listed under 'errors' and send the request again.",
        instance=request.url.path,
        errors=fields,
    )


def install_problem_handlers(app: FastAPI, error_bases: Iterable[type[Exception]]) -> None:
    """Render ``error_bases`` (and framework errors) as problem+json on ``app``."""

    async def domain_error(request: Request, exc: Exception) -> ProblemResponse:
        status = int(getattr(exc, "status", 400))
        headers = getattr(exc, "headers", None)
        return problem_response(
            status,
            str(getattr(exc, "code", "error")),
            str(getattr(exc, "title", "The request failed")),
            str(getattr(exc, "detail", exc)),
            instance=request.url.path,
            headers=headers if isinstance(headers, dict) else None,
            **dict(getattr(exc, "extensions", {}) or {}),
        )

    async def validation_error(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it
        return _validation_problem(request, exc)

    async def http_error(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it
        if exc.status_code == 400 and exc.detail == _UNPARSED_BODY:
            return _malformed_json(request)
        code, title = _STATUS_CODES.get(exc.status_code, ("http-error", "The request failed"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no resource at {request.url.path}; check the address."
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
            detail = (
                f"{request.method} is not supported on {request.url.path}; it takes"
                f" {headers['Allow']}."
            )
        return problem_response(
            exc.status_code,
            code,
            title,
            detail,
            instance=request.url.path,
            headers=headers or None,
        )

    async def unexpected_error(request: Request, exc: Exception) -> ProblemResponse:
        reference = uuid.uuid4().hex
        _log.error(
            "unhandled_error",
            reference=reference,
            path=request.url.path,
            error_type=type(exc).__name__,
            exc_info=exc,
        )
        mark_logged(exc)
        return problem_response(
            500,
            "internal-error",
            "Something went wrong on our side",
            f"The error was logged with reference {reference}; quote it when reporting.",
            instance=request.url.path,
        )

    for base in error_bases:
        app.add_exception_handler(base, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# A \u0000 escape inside a JSON string: preceded by an even number of backslashes (a
# backslash cannot appear outside a string in valid JSON).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _has_nul(body: bytes) -> bool:
    """Whether a JSON body holds a NUL character, which no text member may carry.

    PostgreSQL cannot store it in a text column, so it is refused at the edge (422)
    rather than failing deep in a store as if the database were down.
    """
    return b"\\u0000" in body and _NUL_ESCAPE.search(body) is not None


_JSON_TYPES = ("application/json", "application/problem+json")


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes`` (413), non-JSON bodies on JSON paths (415),
    JSON bodies carrying a NUL character (422), and JSON bodies that do not arrive whole
    within ``body_seconds`` (408: a Content-Length larger than what is sent would
    otherwise hold the request open for as long as the client likes).

    The limit holds whether or not the client sends Content-Length: a streamed body is
    counted as it arrives and cut off at the limit, so memory stays bounded. With
    ``media_type_required``, a body on a JSON path that names no media type at all is
    refused too (415), instead of reaching the app as something that is not an object.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        json_prefixes: tuple[str, ...] = ("/v1/",),
        body_seconds: float = 30.0,
        media_type_required: bool = False,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.json_prefixes = json_prefixes
        self.body_seconds = body_seconds
        self.media_type_required = media_type_required

    async def _reject(self, scope: Scope, receive: Receive, send: Send, status: int) -> None:
        code, title = _STATUS_CODES[status]
        detail = {
            408: (
                f"The body did not arrive within {self.body_seconds:g} seconds; send it "
                "whole, as long as its Content-Length says."
            ),
            413: f"Send at most {self.max_bytes} bytes.",
            415: "Send the body as application/json (and say so in its Content-Type).",
            422: "Remove the NUL characters (\\u0000) from the text: no member accepts them.",
        }[status]
        response = problem_response(status, code, title, detail, instance=scope.get("path"))
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = self.max_bytes + 1
            if declared > self.max_bytes:
                await self._reject(scope, receive, send, 413)
                return
        path: str = scope["path"]
        media = headers.get(b"content-type", b"").split(b";")[0].strip().decode("latin-1")
        json_type = media in _JSON_TYPES or media.endswith("+json")
        if path.startswith(self.json_prefixes) and length != b"0" and media and not json_type:
            await self._reject(scope, receive, send, 415)
            return
        json_path = path.startswith(self.json_prefixes)
        if length is not None and not json_path:
            await self.app(scope, receive, send)
            return
        # A JSON body, or one of no declared length (chunked): read up to the limit before
        # the app sees anything, then replay what was read.
        chunks: list[bytes] = []
        received = 0
        more = True
        deadline = asyncio.get_running_loop().time() + self.body_seconds
        while more:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                await self._reject(scope, receive, send, 408)
                return
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._reject(scope, receive, send, 413)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        if json_path and self.media_type_required and not media and body.strip():
            await self._reject(scope, receive, send, 415)
            return
        if json_path and _has_nul(body):
            await self._reject(scope, receive, send, 422)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

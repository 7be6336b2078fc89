"""How much a page's form may send, and the page that says so when it sends more.

Two limits hold: the broker's on a whole request body (``max_body_bytes``, which its
body-limit middleware answers as JSON for the API), and Starlette's on a form's parts
(1,000 fields, 1 MB a part). Both are answered on the pages as a page that says what to
do, never as JSON or as a failure page.
"""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.web.errors import FormTooLarge

__all__ = ["MAX_FIELDS", "MAX_PART_BYTES", "FormLimit", "read_form"]

MAX_FIELDS = 1000
MAX_PART_BYTES = 1024 * 1024
_SEND_AGAIN = "Go back, shorten the longest answer (or choose a smaller file) and send it again."


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.3g} MB"


async def read_form(request: Request) -> FormData:
    """The form ``request`` sends. Raises ``FormTooLarge`` for one of more than
    ``MAX_FIELDS`` answers, or with an answer or a file over ``MAX_PART_BYTES``."""
    try:
        return await request.form(max_fields=MAX_FIELDS, max_part_size=MAX_PART_BYTES)
    except (HTTPException, MultiPartException):
        # Starlette's words for it name its own limits ("Part exceeded ...KB").
        raise FormTooLarge(
            f"A form may hold up to {MAX_FIELDS:,} answers, each up to "
            f"{_megabytes(MAX_PART_BYTES)}. {_SEND_AGAIN}"
        ) from None


class FormLimit:
    """Answers a page's form whose body is over the broker's limit with a page (413).

    Installed outside the broker's body-limit middleware, which would answer the same
    form with JSON. ``max_bytes`` is read from the pages when they are open (at start-up,
    from the broker's settings); until then every request passes through.
    """

    def __init__(self, app: ASGIApp, *, prefix: str = "/web/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pages = getattr(scope["app"].state, "web", None) if "app" in scope else None
        if (
            pages is None
            or scope["type"] != "http"
            or scope["method"] not in {"POST", "PUT", "PATCH"}
            or not scope["path"].startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is None or (length.isdigit() and int(length) <= pages.max_form_bytes):
            # A body of no declared length is counted by the broker's own limit.
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        problem = FormTooLarge(
            f"A form may send up to {_megabytes(pages.max_form_bytes)} in all. {_SEND_AGAIN}"
        )
        await pages.error(request, problem)(scope, receive, send)

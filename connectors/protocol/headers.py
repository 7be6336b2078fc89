"""The response headers every Junction service sends, whatever route or error answered.

A browser that guesses a media type could run as HTML what a caller wrote into a JSON
answer or a problem body; a cache (the browser's, or a proxy's) that keeps an answer
holding personal data shows it to the next person who asks. Routes cannot be relied on
to say so one by one: errors, redirects and static files answer too.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PRIVATE_HTML_POLICY", "SecurityHeadersMiddleware"]

# An HTML answer of the API (a printable report) runs no script, loads nothing, sends no
# form and is framed by no page; its own inline style is all it needs.
PRIVATE_HTML_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


class SecurityHeadersMiddleware:
    """Adds ``X-Content-Type-Options: nosniff`` to every answer, and to answers under
    ``private_prefixes`` (which may hold personal data or a token) ``Cache-Control:
    no-store``; an HTML answer there also gets a policy that runs no script and forbids
    framing. A header the route set itself is left as it is.
    """

    def __init__(self, app: ASGIApp, *, private_prefixes: tuple[str, ...] = ("/v1/",)) -> None:
        self.app = app
        self.private_prefixes = private_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = scope["path"].startswith(self.private_prefixes)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", ()))
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if private:
                    headers.setdefault("Cache-Control", "no-store")
                    if headers.get("content-type", "").startswith("text/html"):
                        headers.setdefault("Content-Security-Policy", PRIVATE_HTML_POLICY)
                        headers.setdefault("X-Frame-Options", "DENY")
            await send(message)

        await self.app(scope, receive, with_headers)

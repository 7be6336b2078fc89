"""HTTP methods as RFC 9110 asks of a server: HEAD wherever GET is served (§9.3.2), and
a 405 that lists every method the resource has in ``Allow`` (§15.5.6).

FastAPI routes answer only the methods they name, and Starlette's 405 names only the
methods of the first route whose path matched, though a path often has one route per
method.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HeadAsGetMiddleware", "allowed_methods"]


class HeadAsGetMiddleware:
    """Answers a HEAD request as the GET of the same resource would be, without its body.

    The headers, Content-Length included, are those GET would send.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # the rest of a body nobody will see
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """The ``Allow`` value for the resource ``request`` names: each method some route
    fully matches it with (asked of each route, however routers nest), HEAD with GET."""
    routes = request.app.router.routes
    methods = {
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    }
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))

"""The interactive API documentation (Swagger UI) at ``/docs``, served by the service itself.

FastAPI's own pages load Swagger UI from a public CDN, unpinned and without integrity
checks, into the origin that holds the web pages' session: whoever controlled that package
could read those pages and send their forms as whoever opened ``/docs``. A service inside
an agency's network often cannot reach the CDN at all, and its page stayed blank. Here the
Swagger UI files come from the ``fastapi-offline`` package, installed with Junction, and the
page's start-up script is a file beside this module, so that the page runs under a policy
that admits no inline script and nothing from another host.
"""

from __future__ import annotations

import html
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse

__all__ = ["DOCS_PATH", "DOCS_POLICY", "install_api_docs"]

DOCS_PATH = "/docs"
_ASSETS = f"{DOCS_PATH}/assets"

# Swagger UI draws with its own script and stylesheet, shows images from data: addresses,
# and calls the service's own API ("Try it out"); nothing else, and from nowhere else.
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_SWAGGER = Path(str(resources.files("fastapi_offline") / "static"))
_HERE = Path(__file__).parent
_JAVASCRIPT = "text/javascript; charset=utf-8"
# Only the files the page loads: any other script on the service's origin is one more
# that an injected tag could run under the web pages' policy.
_FILES: dict[str, tuple[Path, str]] = {
    "swagger-ui.css": (_SWAGGER / "swagger-ui.css", "text/css; charset=utf-8"),
    "swagger-ui-bundle.js": (_SWAGGER / "swagger-ui-bundle.js", _JAVASCRIPT),
    "swagger-init.js": (_HERE / "swagger-init.js", _JAVASCRIPT),
}

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: API documentation</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<main id="swagger-ui" data-openapi-url="{openapi}"></main>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-init.js"></script>
</body>
</html>
"""


def install_api_docs(app: FastAPI) -> None:
    """Serve Swagger UI for ``app``'s OpenAPI document at ``/docs``, with its files.

    ``app`` must have been built with ``docs_url=None`` and ``redoc_url=None`` (FastAPI's
    own pages load their files from a CDN). Raises ``ValueError`` otherwise, or when it
    serves no OpenAPI document.
    """
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("build the app with docs_url=None and redoc_url=None")
    if app.openapi_url is None:
        raise ValueError("the app serves no OpenAPI document to describe")
    openapi_url = app.openapi_url
    title = html.escape(app.title)

    @app.get(DOCS_PATH, include_in_schema=False)
    async def api_docs(request: Request) -> HTMLResponse:
        """Swagger UI, run from the service's own files only."""
        # Behind a proxy that serves the service under a path, every address starts there.
        root = html.escape(str(request.scope.get("root_path", "")))
        page = _PAGE.format(title=title, assets=root + _ASSETS, openapi=root + openapi_url)
        return HTMLResponse(
            page,
            headers={
                "Content-Security-Policy": DOCS_POLICY,
                "X-Frame-Options": "DENY",
                "Referrer-Policy": "same-origin",
            },
        )

    for name, (path, media_type) in _FILES.items():
        _serve(app, f"{_ASSETS}/{name}", path, media_type)


def _serve(app: FastAPI, url: str, path: Path, media_type: str) -> None:
    async def asset() -> FileResponse:
        return FileResponse(path, media_type=media_type)

    app.add_api_route(url, asset, methods=["GET"], include_in_schema=False)

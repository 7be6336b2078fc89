"""The interactive API documentation at ``/docs`` loads nothing from outside the service.

The page shares its origin with the web pages' session: a script it pulled from a public
CDN could read those pages and send their forms as whoever opened it. And a broker or a
connector inside an agency's network often cannot reach the CDN at all, so such a page
stays blank.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from schemathesis.python import asgi

from tests.hostile.hostile_kit import HostileRegion

# Anything that would make a browser reach for another host: a scheme or a
# scheme-relative address.
OUTSIDE = re.compile(r"[a-z][a-z0-9+.-]*://|[\"'(=]\s*//", re.IGNORECASE)
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.IGNORECASE | re.DOTALL)
STYLESHEET = re.compile(r"<link\b[^>]*\brel=\"stylesheet\"[^>]*\bhref=\"([^\"]+)\"", re.IGNORECASE)
SRC = re.compile(r"\bsrc=\"([^\"]+)\"")


@pytest.fixture(params=["broker", "connector"])
def service(
    request: pytest.FixtureRequest, hostile_region: HostileRegion
) -> Iterator[asgi.ASGIClient]:
    if request.param == "broker":
        yield hostile_region.client
        return
    with asgi.get_client(hostile_region.connectors["police"].app) as client:
        yield client


def _policy(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


def test_the_docs_page_names_no_outside_host(service: asgi.ASGIClient) -> None:
    page = service.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="swagger-ui"' in page.text
    assert OUTSIDE.search(page.text) is None, OUTSIDE.search(page.text)


def test_every_file_the_docs_page_loads_comes_from_the_service_itself(
    service: asgi.ASGIClient,
) -> None:
    page = service.get("/docs").text
    scripts = [SRC.search(attributes) for attributes, _ in SCRIPT.findall(page)]
    assert all(scripts), "an inline script: the page's policy would refuse it"
    sources = [found.group(1) for found in scripts if found]
    styles = STYLESHEET.findall(page)
    assert len(sources) >= 2
    assert styles
    for path in sources:
        answer = service.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith("text/javascript"), path
    for path in styles:
        answer = service.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith("text/css"), path
        assert ".swagger-ui" in answer.text
    # The last script starts Swagger UI from the bundle the others define.
    assert "SwaggerUIBundle" in service.get(sources[0]).text
    assert "SwaggerUIBundle(" in service.get(sources[-1]).text


def test_the_docs_page_may_run_scripts_and_reach_its_own_service_only(
    service: asgi.ASGIClient,
) -> None:
    page = service.get("/docs")
    policy = _policy(page.headers.get("content-security-policy", ""))
    assert policy.get("default-src") == ["'none'"]
    assert policy.get("script-src") == ["'self'"]
    assert policy.get("style-src") == ["'self'"]
    assert policy.get("connect-src") == ["'self'"]
    assert policy.get("frame-ancestors") == ["'none'"]
    assert page.headers.get("x-frame-options") == "DENY"


def test_the_docs_page_describes_the_services_own_openapi_document(
    service: asgi.ASGIClient,
) -> None:
    page = service.get("/docs").text
    found = re.search(r'data-openapi-url="([^"]+)"', page)
    assert found is not None
    document = service.get(found.group(1))
    assert document.status_code == 200
    assert document.json()["openapi"].startswith("3.")
    assert document.json()["paths"]


def test_no_page_loads_redoc_from_a_cdn(service: asgi.ASGIClient) -> None:
    assert service.get("/redoc").status_code == 404

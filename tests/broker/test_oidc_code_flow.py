"""Signing in to the web pages at an identity provider: the authorization code flow with
PKCE, against the development issuer served on a real socket as the provider."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from broker.app import create_app
from broker.settings import BrokerSettings
from broker.web.oidc import code_challenge
from tests.broker.foundation_kit import IssuerServer, serve_dev_issuer

CLIENT = "junction-web"

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IssuerServer]:
    with serve_dev_issuer(tmp_path_factory.mktemp("provider")) as server:
        yield server


@pytest.fixture
async def web(tmp_path: Path, provider: IssuerServer) -> AsyncIterator[httpx.AsyncClient]:
    settings = BrokerSettings(
        data_dir=tmp_path / "broker",
        public_url="http://broker",
        dev_issuer=False,
        oidc_issuer=provider.url,
        oidc_client_id=CLIENT,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://broker") as client:
            yield client


def _query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


async def _to_provider(web: httpx.AsyncClient, provider: IssuerServer) -> dict[str, str]:
    started = await web.get("/web/sign-in/start")
    assert started.status_code == 303
    location = started.headers["location"]
    assert location.startswith(provider.url + "/authorize?")
    return _query(location)


async def _sign_in_at(provider: IssuerServer, asked: dict[str, str], **who: str) -> str:
    """What a person does at the provider: open its page, choose who they are, submit.
    Returns where the provider sends the browser back to."""
    async with httpx.AsyncClient() as browser:
        page = await browser.get(provider.url + "/authorize", params=asked)
        assert page.status_code == 200
        assert "Development sign-in" in page.text
        form = {**asked, "role": "caseworker", "agency": "council", "name": "Ada Byrne"}
        answer = await browser.post(provider.url + "/authorize", data=form | who)
    assert answer.status_code == 303, answer.text
    return str(answer.headers["location"])


def test_the_code_challenge_is_rfc_7636s() -> None:
    # RFC 7636 Appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


async def test_a_person_signs_in_at_the_provider_and_lands_on_their_home_page(
    web: httpx.AsyncClient, provider: IssuerServer
) -> None:
    page = await web.get("/web/sign-in")
    assert "Sign in with your organisation" in page.text
    assert 'href="/web/sign-in/start"' in page.text
    asked = await _to_provider(web, provider)
    assert asked["response_type"] == "code"
    assert asked["client_id"] == CLIENT
    assert asked["redirect_uri"] == "http://broker/web/sign-in/callback"
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["state"]) >= 32
    back = await _sign_in_at(provider, asked)
    assert back.startswith("http://broker/web/sign-in/callback?")
    assert _query(back)["state"] == asked["state"]
    landed = await web.get(back)
    assert landed.status_code == 303
    assert landed.headers["location"] == "/web/home"
    home = await web.get("/web/home")
    assert home.status_code == 200
    assert "Ada Byrne" in home.text
    # The code is spent, and the browser has forgotten the sign-in it started.
    again = await web.get(back)
    assert again.status_code == 400
    assert "started too long ago" in again.text


async def test_an_answer_for_another_sign_in_is_refused(
    web: httpx.AsyncClient, provider: IssuerServer
) -> None:
    asked = await _to_provider(web, provider)
    back = await _sign_in_at(provider, asked | {"state": "someone-elses-state"})
    refused = await web.get(back)
    assert refused.status_code == 400
    assert "another sign-in" in refused.text
    assert (await web.get("/web/home")).status_code == 401  # not signed in


async def test_the_providers_refusal_is_shown(
    web: httpx.AsyncClient, provider: IssuerServer
) -> None:
    asked = await _to_provider(web, provider)
    refused = await web.get(
        "/web/sign-in/callback",
        params={"state": asked["state"], "error": "access_denied", "error_description": "No"},
    )
    assert refused.status_code == 400
    assert "did not sign you in: No" in refused.text


@pytest.mark.parametrize("started", [True, False])
async def test_a_link_dressed_as_the_providers_refusal_shows_none_of_its_words(
    web: httpx.AsyncClient, provider: IssuerServer, started: bool
) -> None:
    # Anyone can send a caseworker a link to the callback: words in it that are not the
    # answer to the sign-in their browser started must not appear on Junction's page.
    words = "Your account is locked: call 0800 000 000 to unlock it"
    params = {"error": "access_denied", "error_description": words}
    if started:
        await _to_provider(web, provider)
        params["state"] = "not-the-state-this-browser-was-given"
    refused = await web.get("/web/sign-in/callback", params=params)
    assert refused.status_code == 400
    assert "0800" not in refused.text
    assert "start again" in refused.text


async def test_a_code_the_provider_does_not_know_is_refused(
    web: httpx.AsyncClient, provider: IssuerServer
) -> None:
    asked = await _to_provider(web, provider)
    refused = await web.get(
        "/web/sign-in/callback", params={"state": asked["state"], "code": "made-up"}
    )
    assert refused.status_code == 400
    assert "did not accept the sign-in: the code is unknown" in refused.text


async def test_the_provider_exchanges_a_code_once_for_its_verifier_only(
    provider: IssuerServer,
) -> None:
    verifier = "v" * 50
    asked = {
        "response_type": "code",
        "client_id": CLIENT,
        "redirect_uri": "http://client.test/back",
        "code_challenge": code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    token_url = provider.url + "/token"
    async with httpx.AsyncClient() as http:

        async def exchange(code: str, **changes: str) -> httpx.Response:
            form = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": asked["redirect_uri"],
                "client_id": CLIENT,
                "code_verifier": verifier,
            }
            return await http.post(token_url, data=form | changes)

        code = _query(await _sign_in_at(provider, asked))["code"]
        wrong = await exchange(code, code_verifier="w" * 50)
        assert wrong.status_code == 400
        assert wrong.json()["error"] == "invalid_grant"
        # A refused attempt spends the code: guessing verifiers gets one try.
        assert (await exchange(code)).json()["error"] == "invalid_grant"
        code = _query(await _sign_in_at(provider, asked))["code"]
        other = await exchange(code, redirect_uri="http://elsewhere.test/back")
        assert other.json()["error_description"] == "the code was issued to another client"
        code = _query(await _sign_in_at(provider, asked))["code"]
        good = await exchange(code)
        assert good.status_code == 200
        assert good.json()["token_type"] == "Bearer"
        assert provider.issuer.jwks()["keys"]
        assert (await exchange(code)).json()["error"] == "invalid_grant"
        unsupported = await http.post(token_url, data={"grant_type": "password"})
        assert unsupported.json()["error"] == "unsupported_grant_type"
        no_pkce = await http.get(
            provider.url + "/authorize", params=asked | {"code_challenge_method": "plain"}
        )
        assert no_pkce.status_code in (400, 422)
        assert "S256" in no_pkce.text


@pytest.mark.parametrize("role", ["admin", "connector"])
async def test_a_role_the_pages_do_not_serve_is_told_so_at_sign_in(
    web: httpx.AsyncClient, provider: IssuerServer, role: str
) -> None:
    asked = await _to_provider(web, provider)
    refused = await web.get(await _sign_in_at(provider, asked, role=role, job_role=""))
    assert refused.status_code == 403
    assert "the web pages are for caseworkers and information governance officers" in (refused.text)
    assert "Sign in with your organisation" in refused.text
    assert (await web.get("/web/home")).status_code == 401, "no session was started"

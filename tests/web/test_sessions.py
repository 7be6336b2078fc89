"""The web session: what its cookie shows, and that signing out ends it everywhere."""

from __future__ import annotations

import base64
import binascii
import contextlib
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import Response
from playwright.sync_api import expect

from broker.db import Database
from broker.identity.principal import Role
from broker.web.session import COOKIE, SessionCodec, WebSession
from broker.web.sign_outs import SignOutRow, SignOuts
from tests.broker.foundation_kit import reset_postgres
from tests.web.conftest import Visitor, error_beside, form_token


def _readable(value: str) -> bytes:
    """Every text a cookie value gives away to whoever holds it: its dot-separated parts
    decoded as base64 and, where they are compressed, decompressed."""
    found = [value.encode()]
    for part in value.split("."):
        try:
            raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except (binascii.Error, ValueError):
            continue
        found.append(raw)
        with contextlib.suppress(zlib.error):
            found.append(zlib.decompress(raw))
    return b"\n".join(found)


def test_the_session_cookie_does_not_show_the_access_token() -> None:
    token = "eyJhbGciOiJFZERTQSJ9.the-caseworkers-access-token.c2lnbmF0dXJl"
    response = Response()
    SessionCodec(b"k" * 32).write(response, WebSession.start(token))
    value = response.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
    assert b"the-caseworkers-access-token" not in _readable(value)


def test_a_copy_of_the_session_cookie_is_refused_once_its_owner_signs_out(
    visitor_factory: Any, live: Any
) -> None:
    owner: Visitor = visitor_factory()
    owner.sign_in("Sam Caseworker", "caseworker")
    assert owner.go("/web/queries/new").status == 200
    kept = next(c for c in owner.page.context.cookies() if c["name"] == COOKIE)["value"]

    owner.go("/web/home")
    owner.page.get_by_role("button", name="Sign out").click()
    expect(owner.page.get_by_role("heading", name="You have signed out")).to_be_visible()

    copy: Visitor = visitor_factory()
    copy.page.context.add_cookies([{"name": COOKIE, "value": kept, "url": live.url + "/web"}])
    response = copy.go("/web/queries/new")
    assert response.status == 401
    expect(copy.page.get_by_role("heading", name="Please sign in")).to_be_visible()
    expect(copy.page.get_by_text("This sign-in was ended by signing out")).to_be_visible()

    # Signing in again starts a new session, which works.
    owner.sign_in("Sam Caseworker", "caseworker")
    assert owner.go("/web/queries/new").status == 200


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_signed_out_session_is_kept_until_its_cookie_would_expire_then_forgotten(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'broker.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        reset_postgres(url)
    db = Database.open(url)
    now = [datetime(2026, 11, 22, 9, 0, tzinfo=UTC)]
    sign_outs = SignOuts(db, clock=lambda: now[0])
    try:
        sign_outs.end("morning", now[0] + timedelta(hours=12))
        sign_outs.end("morning", now[0] + timedelta(hours=12))  # signed out twice: no error
        assert sign_outs.ended("morning")
        assert not sign_outs.ended("afternoon")
        now[0] += timedelta(hours=13)
        sign_outs.end("afternoon", now[0] + timedelta(hours=12))
        with db.read() as connection:
            kept = connection.execute(sa.select(SignOutRow.session_id)).scalars().all()
        assert kept == ["afternoon"]
    finally:
        db.close()


def test_the_development_sign_in_takes_only_the_roles_and_agencies_it_offers(
    visitor_factory: Any, live: Any
) -> None:
    v: Visitor = visitor_factory()
    v.go("/web/sign-in")
    offered = v.page.locator("#agency option").evaluate_all("os => os.map(o => o.value)")
    assert len(offered) == len(set(offered)), "each agency is offered once"
    assert "council" in offered
    csrf = v.page.locator("input[name=csrf]").first.get_attribute("value")
    fields = {"csrf": csrf, "name": "Sam Caseworker", "job_role": "social_worker"}
    for changes, says in (
        ({"role": "admin", "agency": "council"}, "Choose caseworker or IG officer"),
        ({"role": "caseworker", "agency": "narnia"}, "Choose your agency from the list"),
    ):
        response = v.page.context.request.post(
            live.url + "/web/sign-in", form={**fields, **changes}, max_redirects=0
        )
        assert response.status == 422, changes
        assert says in response.text(), changes
    assert v.go("/web/home").status == 401, "no sign-in was made"


def _sign_in_form(client: httpx.Client, **fields: str) -> httpx.Response:
    token = form_token(client.get("/web/sign-in").text)
    return client.post("/web/sign-in", data={"csrf": token, **fields})


def test_a_name_the_development_sign_in_cannot_record_is_marked_beside_it(live: Any) -> None:
    who = {"role": "caseworker", "agency": "council", "job_role": "social_worker"}
    with httpx.Client(base_url=live.url) as client:
        page = _sign_in_form(client, name="Sam " + "x" * 100, **who)
        assert page.status_code == 422
        assert error_beside(page, "name") == "Enter a name of at most 100 characters"
        assert "access_token" not in page.text, "no token was asked for"

        page = _sign_in_form(client, name="Sam\x00 Case\x1bworker", **who)
        assert page.status_code == 422
        assert error_beside(page, "name") == (
            "Your name held invisible characters, now taken out: check it and sign in again"
        )
        assert 'value="Sam Caseworker"' in page.text
        assert client.get("/web/home").status_code == 401, "no sign-in was made"


@pytest.mark.parametrize(
    ("role", "named"), [(Role.ADMIN, "an administrator"), (Role.CONNECTOR, "a connector")]
)
def test_a_token_for_a_role_the_pages_do_not_serve_is_refused_at_sign_in(
    live: Any, role: Role, named: str
) -> None:
    issuer = live.region.foundation.dev_issuer
    token = issuer.mint(role=role, agency="council", name="Ada Admin")
    with httpx.Client(base_url=live.url) as client:
        page = _sign_in_form(client, access_token=token)
        assert page.status_code == 403
        assert error_beside(page, "access_token").startswith(
            "Not accepted: the web pages are for caseworkers and information governance "
            f"officers, and this token is for {named}: use the API instead"
        )
        assert client.get("/web/home").status_code == 401, "no sign-in was made"


def test_a_sign_in_page_left_open_too_long_asks_again_with_the_answers_kept(live: Any) -> None:
    who = {"name": "Sam Caseworker", "role": "caseworker", "agency": "council"}
    with httpx.Client(base_url=live.url) as client:
        stale = form_token(client.get("/web/sign-in").text)
        client.cookies.clear()  # the sign-in page's own cookie lasts an hour
        page = client.post("/web/sign-in", data={"csrf": stale, **who})
        assert page.status_code == 403
        assert error_beside(page, "name") == (
            "This sign-in page was open too long (or your browser did not keep its cookie): "
            "check your answers and sign in again"
        )
        assert 'value="Sam Caseworker"' in page.text
        assert client.get("/web/home").status_code == 401, "no sign-in was made"
        again = client.post("/web/sign-in", data={"csrf": form_token(page.text), **who})
        assert again.status_code == 303


def test_sign_out_from_a_page_of_an_earlier_sign_in_offers_to_sign_out_now(live: Any) -> None:
    who = {"name": "Sam Caseworker", "role": "caseworker", "agency": "council"}
    with httpx.Client(base_url=live.url) as client:
        assert _sign_in_form(client, **who).status_code == 303
        earlier = client.get("/web/home").text
        assert _sign_in_form(client, **who).status_code == 303  # again, in another tab
        page = client.post("/web/sign-out", data={"csrf": form_token(earlier)})
        assert page.status_code == 403
        assert "You are still signed in" in page.text
        assert client.get("/web/home").status_code == 200, "nothing was ended yet"
        done = client.post("/web/sign-out", data={"csrf": form_token(page.text)})
        assert done.status_code == 200
        assert "You have signed out" in done.text
        assert client.get("/web/home").status_code == 401

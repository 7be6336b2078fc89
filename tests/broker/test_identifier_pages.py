"""The pages' forms refuse an identifier that is not one beside the input, never with a 500."""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx
import pytest

from broker.identity.principal import Role
from tests.broker.foundation_kit import Broker, IssuerServer, running_broker

pytestmark = pytest.mark.anyio

CHECK_DIGIT = "NHS number fails its check digit: check it was copied correctly"


async def _csrf(web: httpx.AsyncClient, page: str) -> str:
    answer = await web.get(page)
    found = re.search(r'name="csrf" value="([^"]+)"', answer.text)
    assert found is not None, answer.text
    return found.group(1)


async def _signed_in(broker: Broker, role: Role) -> str:
    """Signs the broker's client in as ``role``; returns the session's CSRF token."""
    token = broker.token(role)
    signed = await broker.client.post(
        "/web/sign-in",
        data={"csrf": await _csrf(broker.client, "/web/sign-in"), "access_token": token},
    )
    assert signed.status_code == 303, signed.text
    return await _csrf(broker.client, "/web/home" if role == Role.CASEWORKER else "/web/ig")


def _error_beside(page: httpx.Response, name: str) -> str:
    found = re.search(rf'id="{name}-error"><span[^>]*>Error:</span> ([^<]+)</p>', page.text)
    assert found is not None, f"no error beside {name}"
    return html.unescape(found.group(1))


async def test_a_query_with_a_bad_nhs_number_is_shown_back_with_the_reason(
    tmp_path: Path, dev_issuer: IssuerServer
) -> None:
    async with running_broker(tmp_path, dev_issuer) as broker:
        csrf = await _signed_in(broker, Role.CASEWORKER)
        page = await broker.client.post(
            "/web/queries",
            data={
                "csrf": csrf,
                "given_name": "Amelia",
                "family_name": "Okafor",
                "nhs_number": "943 476 5918",
                "purpose": "early_help_assessment",
                "legal_basis": "public_task",
                "gateway": "ca2004_s10",
                "justification": "School raised attendance concerns.",
            },
        )
    assert page.status_code == 422
    assert _error_beside(page, "nhs_number") == CHECK_DIGIT


@pytest.mark.parametrize("action", ["/web/consents", "/web/consents/search"])
async def test_consent_forms_with_a_bad_nhs_number_show_the_reason(
    tmp_path: Path, dev_issuer: IssuerServer, action: str
) -> None:
    async with running_broker(tmp_path, dev_issuer) as broker:
        csrf = await _signed_in(broker, Role.CASEWORKER)
        page = await broker.client.post(
            action,
            data={
                "csrf": csrf,
                "identifier_kind": "nhs_number",
                "identifier_value": "9434765918",
                "purpose": "early_help_assessment",
                "scope": "all",
                "channel": "phone",
            },
        )
    assert page.status_code == 422
    assert _error_beside(page, "identifier_value") == CHECK_DIGIT


async def test_a_subject_access_report_for_a_bad_nhs_number_shows_the_reason(
    tmp_path: Path, dev_issuer: IssuerServer
) -> None:
    async with running_broker(tmp_path, dev_issuer) as broker:
        csrf = await _signed_in(broker, Role.IG_OFFICER)
        page = await broker.client.post(
            "/web/ig/subject-access",
            data={"csrf": csrf, "identifier_kind": "nhs_number", "identifier_value": "abc"},
        )
    assert page.status_code == 422
    assert _error_beside(page, "identifier_value").startswith("NHS number must be 10 digits")

"""The pages' pure parts: forms, the family graph, the chart, the session cookie."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import get_args

import pytest
from fastapi import Response
from starlette.requests import Request

from broker.queries.schemas import AgencyStatus, FamilyView, MemberView, NeedView
from broker.web.catalogue import Catalogue
from broker.web.chart import stack
from broker.web.errors import BadForm, FormTooLarge
from broker.web.forms import consent_form, consent_search_form, query_form
from broker.web.graph import layout
from broker.web.limits import read_form
from broker.web.pages import template_environment
from broker.web.session import COOKIE, SessionCodec, WebSession

CATALOGUE = Catalogue.load()
GOOD = {
    "given_name": "Amelia",
    "family_name": "Okafor",
    "date_of_birth": "2014-05-02",
    "nhs_number": "943 476 5919",
    "purpose": "early_help_assessment",
    "legal_basis": "public_task",
    "gateway": "ca2004_s10",
    "justification": "School raised attendance concerns.",
}


def test_a_good_query_form_becomes_the_api_request() -> None:
    request = query_form(GOOD, CATALOGUE)
    assert request.subject.identifiers == {"nhs_number": "9434765919"}
    assert request.gateway == "ca2004_s10"
    assert request.break_glass is None


def test_a_bad_query_form_names_each_field_in_plain_words() -> None:
    form = {**GOOD, "given_name": "", "date_of_birth": "2 May 2014", "gateway": ""}
    form["justification"] = "short"
    with pytest.raises(BadForm) as caught:
        query_form(form, CATALOGUE)
    fields = caught.value.fields
    assert fields["given_name"] == "Enter the person's first name"
    assert fields["date_of_birth"].startswith("Enter the date of birth as YYYY-MM-DD")
    assert fields["gateway"].startswith("A public task needs its statutory gateway")
    assert "at least 10 characters" in fields["justification"]


def test_a_query_form_answer_too_long_says_so_not_that_it_is_missing() -> None:
    form = {
        **GOOD,
        "given_name": "A" * 101,
        "postcode": "SW1A 1AA" * 2,
        "case_reference": "C" * 201,
        "justification": "Concerns. " * 201,
        "break_glass": "yes",
        "break_glass_reason": "missing_child",
        "break_glass_text": "Missing. " * 112,
    }
    with pytest.raises(BadForm) as caught:
        query_form(form, CATALOGUE)
    assert caught.value.fields == {
        "given_name": "The first name can be up to 100 characters",
        "postcode": "The postcode can be up to 10 characters",
        "case_reference": "The case reference can be up to 200 characters",
        "justification": "The reason you need this information can be up to 2,000 characters",
        "break_glass_text": "The description of the emergency can be up to 1,000 characters",
    }


def test_a_consent_form_answer_too_long_says_so_in_plain_words() -> None:
    form = {
        "identifier_kind": "nhs_number",
        "identifier_value": "943 476 5919",
        "purpose": "early_help_assessment",
        "scope": "all",
        "channel": "paper",
        "label": "L" * 101,
        "evidence_reference": "E" * 501,
    }
    with pytest.raises(BadForm) as caught:
        consent_form(form)
    assert caught.value.fields == {
        "label": "The label can be up to 100 characters",
        "evidence_reference": "The evidence reference can be up to 500 characters",
    }


@pytest.mark.parametrize(
    ("name", "typed", "words"),
    [
        ("nhs_number", "943 476 5918", "NHS number fails its check digit"),
        ("nhs_number", "943476591", "NHS number must be 10 digits"),
        ("upn", "A123", "Unique pupil number must be 13 characters"),
        ("ni_number", "QQ123456C", "National Insurance number begins with letters"),
    ],
)
def test_a_query_form_with_a_bad_identifier_names_that_input(
    name: str, typed: str, words: str
) -> None:
    with pytest.raises(BadForm) as caught:
        query_form({**GOOD, name: typed}, CATALOGUE)
    assert caught.value.fields[name].startswith(words)


def test_a_query_form_takes_identifiers_typed_with_hyphens_or_in_lower_case() -> None:
    request = query_form(
        {**GOOD, "nhs_number": "943-476-5919", "upn": "b801200005001", "ni_number": "ab123456c"},
        CATALOGUE,
    )
    assert request.subject.identifiers == {
        "nhs_number": "9434765919",
        "upn": "B801200005001",
        "ni_number": "AB123456C",
    }


def test_a_query_form_names_the_conditions_and_reasons_only_a_public_task_reads() -> None:
    special = {
        "conditions": ["art9_2_g_para18", "art10_para18"],
        "consent_not_sought_reason": "would_prejudice_protection",
        "override_reason": "Risk of significant harm outweighs the refusal.",
    }
    request = query_form({**GOOD, **special}, CATALOGUE)
    assert request.conditions == ["art9_2_g_para18", "art10_para18"]
    assert request.consent_not_sought_reason == "would_prejudice_protection"
    assert request.override_reason == "Risk of significant harm outweighs the refusal."
    consent = query_form({**GOOD, **special, "legal_basis": "consent"}, CATALOGUE)
    assert consent.conditions == ["art9_2_g_para18", "art10_para18"]
    assert (consent.consent_not_sought_reason, consent.override_reason) == (None, None)


def test_a_query_form_marks_conditions_and_reasons_beside_their_inputs() -> None:
    with pytest.raises(BadForm) as caught:
        query_form(
            {
                **GOOD,
                "conditions": ["art9_2_g_para18", "art9_99"],
                "override_reason": "R" * 1001,
            },
            CATALOGUE,
        )
    assert caught.value.fields == {
        "conditions": "Choose conditions from the list",
        "consent_not_sought_reason": "Choose why consent was not sought: a safeguarding "
        "condition needs it on a public task",
        "override_reason": "The reason for sharing despite a refusal can be up to 1,000 characters",
    }
    with pytest.raises(BadForm) as caught:
        query_form({**GOOD, "consent_not_sought_reason": "too_busy"}, CATALOGUE)
    assert caught.value.fields == {"consent_not_sought_reason": "Choose a reason from the list"}


def test_break_glass_needs_a_reason_code() -> None:
    with pytest.raises(BadForm) as caught:
        query_form(
            {**GOOD, "break_glass": "yes", "break_glass_text": "Child missing now."}, CATALOGUE
        )
    assert "break_glass_reason" in caught.value.fields


def test_consent_form_without_a_channel_or_identifier_is_refused() -> None:
    with pytest.raises(BadForm) as caught:
        consent_form({"purpose": "early_help_assessment", "scope": "all", "scope_agencies": []})
    assert caught.value.fields["identifier_value"]
    assert caught.value.fields["channel"] == "Choose how the person gave their answer"


def test_consent_not_sought_without_a_reason_marks_the_note() -> None:
    form = {
        "identifier_kind": "upn",
        "identifier_value": "B801200005001",
        "purpose": "early_help_assessment",
        "scope": "all",
        "state": "not_sought",
        "channel": "in_person",
    }
    with pytest.raises(BadForm) as caught:
        consent_form(form)
    assert list(caught.value.fields) == ["note"]
    assert "say why consent was not sought" in caught.value.fields["note"].lower()


@pytest.mark.parametrize("form", [consent_form, consent_search_form])
def test_consent_forms_name_an_identifier_that_is_not_one(form: Callable[..., object]) -> None:
    with pytest.raises(BadForm) as caught:
        form(
            {
                "identifier_kind": "nhs_number",
                "identifier_value": "9434765918",
                "purpose": "early_help_assessment",
                "scope": "all",
                "channel": "phone",
            }
        )
    assert caught.value.fields["identifier_value"] == (
        "NHS number fails its check digit: check it was copied correctly"
    )


def _member(member_id: str, subject: bool, confidence: float) -> MemberView:
    return MemberView(
        member_id=member_id,
        is_subject=subject,
        relationship=None if subject else "child / sibling",
        confidence=confidence,
        links=[],
        records=[],
        known_to=[],
        facts={},
        withheld=[],
    )


def test_the_graph_draws_an_unsure_member_dashed_with_its_confidence() -> None:
    view = FamilyView(
        query_id="q",
        status="complete",
        created_at=dt.datetime.now(dt.UTC),
        purpose="early_help_assessment",
        legal_basis="public_task",
        members=[_member("m1", True, 1.0), _member("m2", False, 0.999), _member("m3", False, 0.7)],
    )
    graph = layout(view)
    assert [n.label for n in graph.nodes] == ["Subject", "Child", "Child"]
    assert [(e.label, e.uncertain) for e in graph.edges] == [("99.9%", False), ("70%", True)]
    assert all(0 < n.x < graph.width and 0 < n.y < graph.height for n in graph.nodes)


def test_the_chart_stacks_per_hour_with_whole_number_gridlines() -> None:
    at = dt.datetime(2026, 11, 21, 9, 5, tzinfo=dt.UTC)
    points = [(at, "police"), (at, "school"), (at + dt.timedelta(hours=2), "police")]
    chart = stack("Exchanges by agency", points)
    assert chart.period == "hour"
    assert [bar.total for bar in chart.bars] == [2, 0, 1]
    assert [value for _, value in chart.ticks] == [0, 1, 2]
    assert chart.table() == [
        ("09:00 21 Nov", [1, 1], 2),
        ("10:00 21 Nov", [0, 0], 0),
        ("11:00 21 Nov", [1, 0], 1),
    ]


def _request_with(cookie: str) -> Request:
    return Request({"type": "http", "headers": [(b"cookie", f"{COOKIE}={cookie}".encode())]})


def test_a_tampered_session_cookie_is_ignored() -> None:
    codec = SessionCodec(b"k" * 32)
    response = Response()
    codec.write(response, WebSession.start("token").with_answer("q1", "key", "hash"))
    value = response.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
    read = codec.read(_request_with(value))
    assert read is not None
    assert read.token == "token"
    assert read.answers == {"q1": ("key", "hash")}
    assert "HttpOnly" in response.headers["set-cookie"]
    assert "samesite=lax" in response.headers["set-cookie"].lower()
    assert codec.read(_request_with(value[:-2] + "xx")) is None
    assert SessionCodec(b"o" * 32).read(_request_with(value)) is None


def test_form_problems_are_listed_in_the_order_the_form_asks() -> None:
    with pytest.raises(BadForm) as caught:
        query_form({"legal_basis": "public_task"}, CATALOGUE)
    names = list(caught.value.fields)
    assert names.index("given_name") < names.index("purpose") < names.index("justification")


def test_a_form_with_an_answer_over_a_megabyte_is_too_large() -> None:
    # As if the broker took bodies larger than that: Starlette's limit on a part holds.
    body = b"csrf=x&note=" + b"N" * (1024 * 1024 + 1)
    sent = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, object]:
        return sent.pop(0)

    headers = [(b"content-type", b"application/x-www-form-urlencoded")]
    request = Request({"type": "http", "method": "POST", "headers": headers}, receive)
    # In a thread of its own: the browser tests' event loop may be running in this one.
    with ThreadPoolExecutor(1) as pool, pytest.raises(FormTooLarge) as caught:
        pool.submit(asyncio.run, read_form(request)).result()
    assert caught.value.detail.startswith("A form may hold up to 1,000 answers, each up to 1 MB.")


@pytest.mark.parametrize(
    "status",
    [
        *get_args(AgencyStatus),
        *get_args(NeedView.model_fields["status"].annotation),
        *get_args(FamilyView.model_fields["status"].annotation),
    ],
)
def test_every_status_an_answer_can_hold_reads_as_words(status: str) -> None:
    macros = template_environment().get_template("_macros.html").module
    shown = str(macros.status_tag(status))  # type: ignore[attr-defined]
    label = shown.split(">", 1)[1].split("<", 1)[0]
    assert label[0].isupper(), shown
    assert "_" not in label, shown

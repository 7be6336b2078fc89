"""A caseworker in a real browser: sign in, query, read the family, change consent."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from playwright.sync_api import expect

from broker.queries.render import link_id
from policies.settings import DEFAULT_BUNDLE_DIR
from tests.broker.town_kit import known_to, subject_of
from tests.web.conftest import Visitor, error_beside, form_token, query_id_of

Caller = Callable[..., httpx.Client]


def _subject(live: Any) -> dict[str, Any]:
    return next(p for p in known_to(live.region.truth, 4) if p.get("nhs_number"))


def query_form_of(person: dict[str, Any]) -> dict[str, str]:
    """The query form as ``fill_query`` fills it, for sending without a browser."""
    return {
        "given_name": person["given_name"],
        "family_name": person["family_name"],
        "date_of_birth": person["date_of_birth"],
        "postcode": person["postcode"],
        "nhs_number": person["nhs_number"],
        "purpose": "early_help_assessment",
        "legal_basis": "public_task",
        "gateway": "ca2004_s10",
        "justification": "School raised attendance and welfare concerns.",
    }


def send_query(client: httpx.Client, form: dict[str, str]) -> httpx.Response:
    """Open a new query form and send it with ``form``'s answers, as one click would."""
    page = client.get("/web/queries/new").text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert key is not None
    return client.post(
        "/web/queries", data={**form, "csrf": form_token(page), "idempotency_key": key.group(1)}
    )


def fill_query(
    v: Visitor, person: dict[str, Any], *, basis: str = "public_task", emergency: bool = False
) -> None:
    page = v.page
    v.go("/web/queries/new")
    page.get_by_label("First name").fill(person["given_name"])
    page.get_by_label("Last name").fill(person["family_name"])
    page.get_by_label("Date of birth").fill(person["date_of_birth"])
    page.get_by_label("Postcode (optional)").fill(person["postcode"])
    page.get_by_label("NHS number (optional)").fill(person["nhs_number"])
    page.get_by_label("Early help assessment (Supporting Families)").check()
    if basis == "consent":
        page.get_by_label("The person has given consent for this purpose").check()
    else:
        page.get_by_label("A public task with a named statutory gateway").check()
        page.get_by_label("Statutory gateway (for a public task)").select_option("ca2004_s10")
    page.get_by_label("Why you need this information").fill(
        "School raised attendance and welfare concerns."
    )
    if emergency:
        page.get_by_text("Emergency access (break-glass)").click()
        page.get_by_label("This is an emergency: use break-glass access").check()
        page.get_by_label("Reason", exact=True).select_option("missing_child")
        page.get_by_label("Describe the emergency").fill("Child missing since last night.")
    page.get_by_role("button", name="Ask the agencies").click()
    page.wait_for_load_state()


def test_sign_in_query_and_read_the_family(visitor_factory: Any, live: Any) -> None:
    v: Visitor = visitor_factory()
    v.go("/web/sign-in")
    v.assert_accessible("01-sign-in")
    v.sign_in("Sam Caseworker", "caseworker")
    expect(v.page.get_by_role("heading", name="Hello, Sam Caseworker")).to_be_visible()
    v.assert_accessible("02-caseworker-home")

    v.go("/web/queries/new")
    v.assert_accessible("03-query-form")
    v.page.get_by_role("button", name="Ask the agencies").click()
    expect(v.page.get_by_role("heading", name="There is a problem")).to_be_visible()
    expect(v.page.get_by_text("Enter the person's first name").first).to_be_visible()
    first_name = v.page.get_by_label("First name")
    assert first_name.get_attribute("aria-invalid") == "true"
    v.assert_accessible("04-query-form-errors")

    person = _subject(live)
    fill_query(v, person)
    query_id = query_id_of(v.page.url)
    page = v.page
    expect(page.get_by_role("heading", name="Family query result")).to_be_visible()
    graph = page.get_by_role("img", name="Family graph")
    expect(graph).to_be_visible()
    members = page.locator(".members-list li")
    assert members.count() >= 2, "a joined family has the subject and at least one other member"
    expect(members.first).to_contain_text("the subject")
    strip = page.locator(".strip__item")
    assert strip.count() == 6, "every agency's status is shown"
    expect(page.locator(".strip").get_by_text("Northbrook Schools")).to_be_visible()
    withheld = page.locator(".withheld").first
    expect(withheld).to_contain_text("Withheld")
    expect(withheld).to_contain_text("special category data")
    expect(page.get_by_role("heading", name="Supporting Families needs")).to_be_visible()
    expect(page.get_by_role("heading", name="Audit receipt")).to_be_visible()
    expect(page.locator("#receipt-title + dl")).to_contain_text(query_id)
    v.assert_accessible("05-result")

    page.reload()
    assert query_id_of(page.url) == query_id, "a reload shows the same answer, not a new query"


def test_consent_withdrawn_changes_the_next_query(visitor_factory: Any, live: Any) -> None:
    v: Visitor = visitor_factory()
    v.sign_in("Chris Earlyhelp", "caseworker", job="early_help_worker")
    person = _subject(live)
    page = v.page

    v.go("/web/consents/new")
    v.assert_accessible("06-consent-form")
    page.get_by_label("Kind of identifier").select_option("nhs_number")
    page.get_by_label("Identifier", exact=True).fill(person["nhs_number"])
    page.get_by_label("A label you will recognise (optional)").fill("K.J.")
    page.get_by_label("Purpose").select_option("early_help_assessment")
    page.get_by_label("All agencies").check()
    page.get_by_label("On paper").check()
    page.get_by_label("Evidence reference").fill("Form EH-1 #77")
    page.get_by_text("Choose items").click()
    page.get_by_label("Share of possible sessions attended this school year (0-1).").check()
    page.get_by_role("button", name="Record consent").click()
    expect(page.get_by_text("Consent recorded.")).to_be_visible()
    expect(page.locator(".summary")).to_contain_text("Given")
    expect(page.locator(".summary")).to_contain_text("education.attendance_rate")
    v.assert_accessible("07-consent-recorded")
    consent_url = page.url

    fill_query(v, person, basis="consent")
    expect(page.locator("#member-m1")).to_contain_text("Education")
    withheld = page.locator("#member-m1 .withheld")
    expect(withheld).to_contain_text("The person has asked for this item not to be shared.")
    v.assert_accessible("08-result-with-consent")

    page.goto(consent_url.split("?")[0])
    page.get_by_label("How the person withdrew it (optional)").fill("Phoned the front desk")
    page.get_by_role("button", name="Withdraw consent").click()
    expect(page.get_by_text("Consent withdrawn.")).to_be_visible()
    expect(page.locator(".summary")).to_contain_text("Withdrawn")
    v.assert_accessible("09-consent-withdrawn")

    v.go("/web/consents")
    page.get_by_label("Kind of identifier").select_option("nhs_number")
    page.get_by_label("Identifier", exact=True).fill(person["nhs_number"])
    page.get_by_role("button", name="Find consents").click()
    expect(page.locator("table")).to_contain_text("Withdrawn")
    v.assert_accessible("10-consent-search")

    fill_query(v, person, basis="consent")
    assert page.locator("#member-m1").count() == 0, "nothing about the person is released now"
    expect(page.get_by_text("No one was released to you by any agency.")).to_be_visible()
    strip = page.locator(".strip")
    expect(strip.locator(".strip__item").first).to_contain_text("Withheld")
    expect(strip).to_contain_text("The person has withdrawn consent for this purpose")
    v.assert_accessible("11-result-after-withdrawal")


def test_an_uncertain_link_can_be_confirmed(visitor_factory: Any, live: Any) -> None:
    v: Visitor = visitor_factory()
    v.sign_in("Sam Caseworker", "caseworker")
    fill_query(v, _subject(live))
    query_id = query_id_of(v.page.url)
    # The demo town's links are all sure; the store's own seam registers an unsure one.
    left, right = "education:REF-A", "health:REF-B"
    store = live.region.foundation.query_store
    store.remember_uncertain(query_id, "dev:council:sam.caseworker", [(left, right, 0.7)])
    csrf = v.page.locator("input[name=csrf]").first.get_attribute("value")
    response = v.page.request.post(
        f"{live.url}/web/queries/{query_id}/links",
        form={"csrf": csrf or "", "link_id": link_id(left, right), "decision": "confirm"},
    )
    assert response.status == 200
    assert "You confirmed the link" in response.text()
    decided = [
        e for e in live.region.entries(kind="link_confirmed") if e.fields["query_id"] == query_id
    ]
    assert len(decided) == 1
    assert decided[0].fields["decision"] == "allow"
    again = v.page.request.post(
        f"{live.url}/web/queries/{query_id}/links",
        form={"csrf": csrf or "", "link_id": "education:X|health:Y", "decision": "reject"},
    )
    assert again.status == 404
    assert "is not an open link" in again.text()


def test_a_link_decision_without_a_choice_shows_the_result_again(
    caller_factory: Caller, live: Any
) -> None:
    client = caller_factory()
    sent = send_query(client, query_form_of(_subject(live)))
    assert sent.status_code == 303
    result = sent.headers["location"]
    csrf = form_token(client.get(result).text)
    for link, decision in [("", ""), ("nope", "maybe"), ("x" * 10000, "reject")]:
        page = client.post(
            result + "/links", data={"csrf": csrf, "link_id": link, "decision": decision}
        )
        assert page.status_code == 422, (link[:10], decision)
        assert "Family query result" in page.text
        assert "There is a problem" in page.text
        assert "This answer has no links to check." in page.text


def test_invisible_characters_in_a_query_are_refused_on_the_form(
    caller_factory: Caller, live: Any
) -> None:
    client = caller_factory()
    person = _subject(live)
    form = query_form_of(person)
    name, postcode = person["family_name"], person["postcode"]
    pasted = {
        "family_name": name[:2] + "\x00" + name[2:],
        "postcode": postcode.replace(" ", "\x1b "),
        "justification": "Attendance concerns.\r\nSchool\tcalled\x07 today.",
    }
    page = send_query(client, {**form, **pasted})
    assert page.status_code == 422, "nothing is asked of any agency"
    assert error_beside(page, "family_name") == (
        "The last name held invisible characters, now taken out: check it and send the form again"
    )
    assert error_beside(page, "postcode").startswith("The postcode held invisible characters")
    assert error_beside(page, "justification").startswith("The reason you need this information")
    assert f'value="{name}"' in page.text
    assert f'value="{postcode}"' in page.text
    assert ">Attendance concerns.\r\nSchool\tcalled today.</textarea>" in page.text
    assert "given_name-error" not in page.text


def consent_form_of(client: httpx.Client, person: dict[str, Any]) -> dict[str, str]:
    """A filled-in record-consent form for ``person``, with the session's CSRF token and
    the form's one-time key."""
    page = client.get("/web/consents/new").text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert key is not None
    return {
        "csrf": form_token(page),
        "idempotency_key": key.group(1),
        "identifier_kind": "nhs_number",
        "identifier_value": person["nhs_number"],
        "label": "K.P.",
        "purpose": "early_help_assessment",
        "scope": "all",
        "given_by": "parent",
        "channel": "paper",
        "state": "given",
        "evidence_reference": "Form EH-1 #88",
    }


def test_a_consent_the_register_refuses_comes_back_marked_with_the_answers_kept(
    caller_factory: Caller, live: Any
) -> None:
    client = caller_factory()
    form = consent_form_of(client, _subject(live))
    refusals = [
        ({"expires_on": "2001-01-01"}, "expires_on", "The expiry date must be today or later"),
        ({"purpose": "early_help"}, "purpose", "Choose a purpose from the list"),
        (
            {"scope": "some", "scope_agencies": ["police", "polise"]},
            "scope",
            "Choose agencies from the list",
        ),
        (
            {"restricted_fields": ["health.shoe_size"]},
            "restricted_fields",
            "Choose items from the list",
        ),
    ]
    for change, name, words in refusals:
        page = client.post("/web/consents", data={**form, **change})
        assert page.status_code == 422, name
        assert error_beside(page, name).startswith(words)
        assert 'value="Form EH-1 #88"' in page.text, "the answers are kept"
        assert 'value="K.P."' in page.text
        assert "expires_at" not in page.text

    today = dt.datetime.now(dt.UTC).date().isoformat()
    recorded = client.post("/web/consents", data={**form, "expires_on": today})
    assert recorded.status_code == 303, "a consent may run to the end of today"
    page = client.get(recorded.headers["location"]).text
    assert re.search(r"<dt>Expires</dt><dd>[^<]* 23:59 UTC</dd>", page)


def test_a_withdrawal_the_register_cannot_take_keeps_the_note_and_says_why(
    caller_factory: Caller, live: Any
) -> None:
    client = caller_factory()
    recorded = client.post("/web/consents", data=consent_form_of(client, _subject(live)))
    consent = recorded.headers["location"].split("?")[0]
    page = client.get(consent)
    assert 'maxlength="500"' in page.text
    long_note = " ".join(["Mother phoned the front desk."] * 20)
    withdraw = consent + "/withdraw"
    csrf = form_token(page.text)
    page = client.post(withdraw, data={"csrf": csrf, "note": long_note})
    assert page.status_code == 422
    assert error_beside(page, "note") == "The note can be up to 500 characters"
    assert f'value="{long_note}"' in page.text, "the note is kept"
    assert "Withdraw consent" in page.text

    assert client.post(withdraw, data={"csrf": csrf, "note": "Phoned"}).status_code == 303
    again = client.post(withdraw, data={"csrf": csrf, "note": "Phoned"})
    assert again.status_code == 422
    assert error_beside(again, "state") == "This consent is already withdrawn"


def test_unknown_addresses_get_a_page_not_a_traceback(visitor_factory: Any) -> None:
    v: Visitor = visitor_factory()
    v.sign_in("Sam Caseworker", "caseworker")
    for path in ("/web/no-such-page", "/web/queries/not-a-query-id", "/web/consents/unknown"):
        response = v.go(path)
        assert response.status == 404, path
        expect(v.page.locator("h1")).to_have_text(re.compile("not found|nothing was found", re.I))
        expect(v.page.locator(".lead")).not_to_be_empty()
    v.assert_accessible("33-not-found")


def test_an_address_with_a_malformed_id_is_not_found_with_its_reference(
    caller_factory: Caller,
) -> None:
    caseworker = caller_factory()
    officer = caller_factory("Iris Governance", role="ig_officer")
    for client, path in [
        (caseworker, "/web/queries/XYZ"),
        (caseworker, "/web/consents/" + "c" * 65),
        (officer, "/web/ig/audit/abc"),
        (officer, "/web/ig/audit/-1"),
    ]:
        page = client.get(path)
        assert page.status_code == 404, path
        assert "Page not found" in page.text
        assert "Reference: page-not-found" in page.text, path


def test_a_consent_form_sent_twice_records_one_consent(caller_factory: Caller, live: Any) -> None:
    client = caller_factory()
    person = _subject(live)
    form = {**consent_form_of(client, person), "label": "Sent twice"}
    first = client.post("/web/consents", data=form)
    again = client.post("/web/consents", data=form)
    assert first.status_code == again.status_code == 303
    assert again.headers["location"] == first.headers["location"]

    form = {**consent_form_of(client, person), "label": "Clicked twice"}
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda _: client.post("/web/consents", data=form), range(2)))
    assert [r.status_code for r in both] == [303, 303]
    assert both[0].headers["location"] == both[1].headers["location"]

    found = client.post(
        "/web/consents/search",
        data={
            "csrf": form["csrf"],
            "identifier_kind": "nhs_number",
            "identifier_value": person["nhs_number"],
        },
    )
    assert found.text.count("<td>Sent twice</td>") == 1
    assert found.text.count("<td>Clicked twice</td>") == 1


def test_a_query_form_clicked_twice_shows_the_one_answer(caller_factory: Caller, live: Any) -> None:
    client = caller_factory()
    page = client.get("/web/queries/new").text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert key is not None
    form = {
        **query_form_of(_subject(live)),
        "csrf": form_token(page),
        "idempotency_key": key.group(1),
    }
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda _: client.post("/web/queries", data=form), range(2)))
    assert [r.status_code for r in both] == [303, 303], [r.text[-2000:] for r in both]
    assert both[0].headers["location"] == both[1].headers["location"]

    # The same form changed (Back, edit, send) asks something new: it is run, not refused.
    edited = client.post("/web/queries", data={**form, "case_reference": "EH-2231"})
    assert edited.status_code == 303, edited.text
    assert edited.headers["location"] != both[0].headers["location"]
    assert "Idempotency-Key" not in client.get(edited.headers["location"]).text


# A withheld item's row on a result page: what, which agency, and why.
_WITHHELD_ROW = re.compile(r'<tr><th scope="row">([^<]+)</th><td>([^<]+)</td><td>([^<]+)</td></tr>')


def _special_category_withheld(page: str) -> set[tuple[str, str]]:
    return {
        (what, agency)
        for what, agency, why in _WITHHELD_ROW.findall(page)
        if why.startswith("This is special category data")
    }


def test_a_query_naming_a_condition_and_why_consent_was_not_sought_shares_those_items(
    caller_factory: Caller, live: Any
) -> None:
    client = caller_factory()
    form = query_form_of(_subject(live))
    plain = client.get(send_query(client, form).headers["location"]).text
    withheld = _special_category_withheld(plain)
    assert withheld, "without a condition, special category items are withheld"

    safeguarding = {
        "conditions": ["art9_2_g_para18"],
        "consent_not_sought_reason": "would_prejudice_protection",
    }
    sent = send_query(client, {**form, **safeguarding})
    assert sent.status_code == 303, sent.text
    page = client.get(sent.headers["location"]).text
    assert _special_category_withheld(page) == set()
    for what, agency in withheld:
        shown = rf'<tr><th scope="row">{re.escape(what)}</th><td>[^<]*</td><td>{agency}</td>'
        assert re.search(shown, page), f"{what} from {agency} is now shared"


def test_the_query_form_offers_the_conditions_and_marks_a_missing_reason(
    visitor_factory: Any, live: Any
) -> None:
    v: Visitor = visitor_factory()
    v.sign_in("Sam Caseworker", "caseworker")
    page = v.page
    v.go("/web/queries/new")
    expect(
        page.get_by_role("heading", name="Special category and criminal offence data")
    ).to_be_visible()
    expect(page.get_by_label("Health or social care", exact=True)).to_be_visible()
    expect(page.get_by_label("Why you share despite a refusal (public task)")).to_be_visible()

    person = _subject(live)
    page.get_by_label("First name").fill(person["given_name"])
    page.get_by_label("Last name").fill(person["family_name"])
    page.get_by_label("Early help assessment (Supporting Families)").check()
    page.get_by_label("Statutory gateway (for a public task)").select_option("ca2004_s10")
    page.get_by_label("Why you need this information").fill("Police reported a concern today.")
    page.get_by_label("Safeguarding of children and individuals at risk", exact=True).check()
    page.get_by_role("button", name="Ask the agencies").click()
    reason = page.get_by_label("Why consent was not sought (public task)")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#consent_not_sought_reason-error")).to_contain_text(
        "Choose why consent was not sought"
    )
    expect(
        page.get_by_label("Safeguarding of children and individuals at risk", exact=True)
    ).to_be_checked()
    v.assert_accessible("03b-query-form-condition-without-reason")

    reason.select_option("would_prejudice_protection")
    page.get_by_role("button", name="Ask the agencies").click()
    expect(page.get_by_role("heading", name="Family query result")).to_be_visible()
    expect(page.get_by_text("This is special category data")).to_have_count(0)
    v.assert_accessible("05b-result-with-a-condition")


def test_a_refusal_is_overridden_from_the_form_with_the_reason_recorded(
    caller_factory: Caller, live: Any
) -> None:
    client = caller_factory()
    # Not the other tests' person: a refusal would change what their queries see.
    person = [p for p in known_to(live.region.truth, 4) if p.get("nhs_number")][3]
    refusal = {**consent_form_of(client, person), "state": "refused", "label": "Refused"}
    assert client.post("/web/consents", data=refusal).status_code == 303
    form = query_form_of(person)
    refused = client.get(send_query(client, form).headers["location"]).text
    assert "The person has refused consent; sharing anyway" in html.unescape(refused)
    assert ">Education</caption>" not in refused

    override = {"override_reason": "Risk of significant harm outweighs the refusal."}
    sent = send_query(client, {**form, **override})
    assert sent.status_code == 303, sent.text
    page = html.unescape(client.get(sent.headers["location"]).text)
    assert "The person has refused consent" not in page
    assert "the reason for sharing anyway must be recorded on the case" in page
    assert ">Education</caption>" in page


def test_a_result_shows_each_records_agency_reference_for_consent(
    caller_factory: Caller, live: Any
) -> None:
    client = caller_factory()
    person = _subject(live)
    form = query_form_of(person)
    page = client.get(send_query(client, form).headers["location"]).text
    asked = {
        "subject": subject_of(person),
        "purpose": form["purpose"],
        "legal_basis": form["legal_basis"],
        "gateway": form["gateway"],
        "justification": form["justification"],
    }
    api = httpx.post(
        live.url + "/v1/family-queries", json=asked, headers=live.region.headers(), timeout=60
    )
    assert api.status_code == 200, api.text
    references = [
        f"{record['agency_id']}:{record['ref']}"
        for member in api.json()["members"]
        for record in member["records"]
    ]
    assert references
    for reference in references:
        assert f'<code class="reference">{reference}</code>' in page

    consent = {
        **consent_form_of(client, person),
        "identifier_kind": "local_ref",
        "identifier_value": references[0],
        "label": "By reference",
    }
    assert client.post("/web/consents", data=consent).status_code == 303
    found = client.post(
        "/web/consents/search",
        data={
            "csrf": consent["csrf"],
            "identifier_kind": "local_ref",
            "identifier_value": references[0],
        },
    )
    assert "<td>By reference</td>" in found.text


def test_a_purpose_that_needs_a_case_reference_is_marked_on_the_form_and_nothing_audited(
    caller_factory: Caller, live: Any
) -> None:
    client = caller_factory("Cass Noref")
    form = {
        **query_form_of(_subject(live)),
        "purpose": "child_in_need_assessment",
        "gateway": "ca1989_s17",
    }
    page = send_query(client, {**form, "case_reference": "  "})
    assert page.status_code == 422
    assert error_beside(page, "case_reference") == (
        "Enter the case reference: this purpose needs one"
    )
    assert re.search(r'id="purpose-child_in_need_assessment"[^>]* checked', page.text)
    assert live.region.entries(actor="dev:council:cass.noref") == [], "nothing is asked"

    assert send_query(client, {**form, "case_reference": "CIN-2231"}).status_code == 303
    early_help = {**query_form_of(_subject(live)), "justification": "No case open yet here."}
    assert send_query(client, early_help).status_code == 303, "early help needs none"


def test_a_notice_says_something_was_done_only_just_after_it_was(
    caller_factory: Caller, live: Any
) -> None:
    client = caller_factory()
    person = _subject(live)
    recorded = client.post("/web/consents", data=consent_form_of(client, person))
    consent = recorded.headers["location"]
    assert "Consent recorded." in client.get(consent).text
    assert "Consent recorded." not in client.get(consent).text, "shown once"
    for address in (consent + "?recorded=1", consent + "?withdrawn=1"):
        page = client.get(address).text
        assert "Consent recorded." not in page, address
        assert "Consent withdrawn." not in page, address

    withdrawn = client.post(
        consent.split("?")[0] + "/withdraw",
        data={"csrf": form_token(client.get(consent).text), "note": "Phoned"},
    )
    assert "Consent withdrawn." in client.get(withdrawn.headers["location"]).text
    assert "Consent withdrawn." not in client.get(withdrawn.headers["location"]).text

    result = send_query(client, query_form_of(person)).headers["location"]
    for decided in ("reject", "confirm", "anything"):
        page = client.get(result, params={"decided": decided}).text
        assert "the link. It is recorded in the audit log" not in page, decided


def test_a_form_too_large_to_take_says_what_to_do(caller_factory: Caller) -> None:
    client = caller_factory()
    csrf = form_token(client.get("/web/consents/new").text)
    too_much = [
        {"data": {"csrf": csrf, "note": "N" * (1024 * 1024 + 1)}},
        {"data": {"csrf": csrf, **{f"answer{i}": "x" for i in range(1001)}}},
        {"data": {"csrf": csrf}, "files": {"note": ("note.txt", b"N" * (1024 * 1024 + 1))}},
    ]
    for sent in too_much:
        page = client.post("/web/consents", **sent)
        assert page.status_code == 413, page.text[-1500:]
        assert "The form is too large to send" in page.text
        assert "1 MB" in page.text
        assert "Reference: form-too-large" in page.text
    officer = caller_factory("Iris Governance", role="ig_officer")
    csrf = form_token(officer.get("/web/ig/subject-access").text)
    for sent in too_much[:2]:
        page = officer.post("/web/ig/subject-access", data={**sent["data"], "csrf": csrf})
        assert page.status_code == 413
        assert "The form is too large to send" in page.text


def test_a_receipt_whose_checkpoint_does_not_cover_the_query_yet_says_so(
    caller_factory: Caller, live: Any
) -> None:
    client = caller_factory()
    sent = send_query(client, query_form_of(_subject(live)))
    assert sent.status_code == 303
    page = client.get(sent.headers["location"]).text
    entries = re.search(r"<dt>Audit entries</dt><dd>([\d, ]+)</dd>", page)
    size = re.search(r"<dt>Signed checkpoint</dt><dd>size (\d+)", page)
    assert entries is not None
    assert size is not None
    newest = max(int(i) for i in entries.group(1).split(","))
    said = "does not cover all of this query's entries yet" in page
    # The answer is released as soon as its entries are durable, usually before the
    # checkpoint that signs them (a fraction of a second later).
    assert said == (int(size.group(1)) <= newest), page[page.find("Audit receipt") :]


def test_a_result_says_until_when_what_was_released_may_be_kept(
    caller_factory: Caller, live: Any
) -> None:
    client = caller_factory()
    # Not the other tests' people: one whose consent they withdrew is released nothing.
    person = [p for p in known_to(live.region.truth, 4) if p.get("nhs_number")][5]
    sent = send_query(client, query_form_of(person))
    assert sent.status_code == 303
    page = client.get(sent.headers["location"]).text
    asked = re.search(r"asked (\d{2} \w{3} \d{4}) \d{2}:\d{2} UTC", page)
    assert asked is not None
    purposes = json.loads((DEFAULT_BUNDLE_DIR / "data/catalogue/purposes.json").read_text())
    days = purposes["early_help_assessment"]["retention_days"]
    day = dt.datetime.strptime(f"{asked.group(1)} +0000", "%d %b %Y %z").date()
    until = day + dt.timedelta(days=days)
    said = f"{until.day} {until:%B %Y}"
    words = re.sub(r"<[^>]+>", "", page)
    assert f"Keep this information no longer than {said} ({days:,} days)" in words

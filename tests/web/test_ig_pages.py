"""An IG officer in a real browser, and the error pages everyone may meet."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import Response
from playwright.sync_api import expect

from broker.foundation import load_or_create_secret
from broker.identity import DevIssuer, load_or_create_key
from broker.identity.principal import Role
from broker.web.ig import IgReader
from broker.web.session import COOKIE, SessionCodec, WebSession
from tests.web.conftest import Visitor, error_beside, form_token, query_id_of
from tests.web.test_caseworker_pages import _subject, fill_query, query_form_of, send_query

Caller = Callable[..., httpx.Client]

IG_PAGES = [
    ("/web/ig", "Information governance"),
    ("/web/ig/break-glass", "Break-glass review"),
    ("/web/ig/anomalies", "Anomaly flags"),
    ("/web/ig/activity", "Exchanges over time"),
    ("/web/ig/subject-access", "Subject access report"),
]


def test_ig_officer_finds_the_query_and_its_proof_verifies(visitor_factory: Any, live: Any) -> None:
    caseworker: Visitor = visitor_factory()
    caseworker.sign_in("Sam Caseworker", "caseworker")
    person = _subject(live)
    fill_query(caseworker, person)
    query_id = query_id_of(caseworker.page.url)

    ig: Visitor = visitor_factory()
    ig.sign_in("Iris Governance", "ig_officer")
    page = ig.page
    expect(page.get_by_role("heading", name="Information governance")).to_be_visible()
    ig.go("/web/ig/integrity")
    kept_checkpoint = page.locator("#latest-checkpoint").inner_text()

    ig.go("/web/ig/audit")
    ig.assert_accessible("20-audit-search")
    page.get_by_label("Query id").fill(query_id)
    page.get_by_label("Kind").select_option("release")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("release")
    ig.assert_accessible("21-audit-results")
    # Read as "Entry 30" (Chromium's own name for it). Enter, as a keyboard opens it: a
    # click from Playwright aims at the first box of the link, its 1-pixel hidden word.
    rows.first.get_by_role("link", name=re.compile(r"^Entry \d+$")).press("Enter")
    expect(page.get_by_role("heading", name="Audit entry")).to_be_visible()
    expect(page.locator(".summary")).to_contain_text(query_id)
    expect(page.locator(".summary")).to_contain_text("sha256:")
    ig.assert_accessible("22-audit-entry")
    page.get_by_role(
        "button", name="Verify this entry against the latest signed checkpoint"
    ).click()
    result = page.locator("#check-result")
    expect(result).to_contain_text("Verified")
    expect(result).to_contain_text("inclusion proof leads to the root")
    ig.assert_accessible("23-audit-entry-verified")

    ig.go("/web/ig/audit?kind=fetch")
    older = page.get_by_role("link", name="Older entries")
    if older.count():
        older.click()
        expect(page.get_by_role("heading", name="Entries (older page)")).to_be_visible()

    ig.go("/web/ig/integrity")
    ig.assert_accessible("24-integrity")
    page.get_by_label("Paste a checkpoint").fill(kept_checkpoint)
    page.get_by_role("button", name="Check consistency").click()
    expect(page.locator("#consistency-result")).to_contain_text("Consistent")
    forged = kept_checkpoint.replace(kept_checkpoint.splitlines()[2], "A" * 43 + "=")
    page.get_by_label("Paste a checkpoint").fill(forged)
    page.get_by_role("button", name="Check consistency").click()
    expect(page.locator("#consistency-result")).to_contain_text("Not a checkpoint of this log")
    page.get_by_role("button", name="Verify the whole log now").click()
    expect(page.get_by_text("The log verified")).to_be_visible()
    ig.assert_accessible("25-integrity-checked")

    for path, heading in IG_PAGES:
        ig.go(path)
        expect(page.get_by_role("heading", name=heading, exact=True).first).to_be_visible()
        ig.assert_accessible("26-ig" + path.replace("/web/ig", "").replace("/", "-"))

    ig.go("/web/ig/subject-access")
    page.get_by_label("Kind of identifier").select_option("nhs_number")
    page.get_by_label("Identifier", exact=True).fill(person["nhs_number"])
    page.get_by_role("button", name="Make the report").click()
    report = page.locator(".report")
    expect(report).to_contain_text("Who looked at this person's data")
    expect(report.locator("tbody tr").first).to_contain_text("dev:council:sam.caseworker")
    ig.assert_accessible("27-subject-access-report")
    page.emulate_media(media="print")
    page.screenshot(path=str(ig.shots / "28-subject-access-print.png"), full_page=True)
    assert not page.locator("nav[aria-label='Main']").is_visible(), "menus are not printed"

    ig.go("/web/ig/activity")
    expect(page.locator("figure.chart svg").first).to_be_visible()
    expect(page.locator("figure.chart svg title").first).to_contain_text("Exchanges by purpose")
    expect(page.locator("details table").first).to_contain_text("early_help_assessment")


def test_a_caseworker_cannot_open_the_ig_pages(visitor_factory: Any) -> None:
    v: Visitor = visitor_factory()
    v.sign_in("Sam Caseworker", "caseworker")
    for path in ("/web/ig", "/web/ig/audit", "/web/ig/audit/1", "/web/ig/integrity"):
        response = v.go(path)
        assert response.status == 403
        expect(
            v.page.get_by_role("heading", name="You do not have access to this page")
        ).to_be_visible()
        expect(
            v.page.get_by_text("This page is for information governance officers")
        ).to_be_visible()
    v.assert_accessible("30-forbidden")
    ig: Visitor = visitor_factory()
    ig.sign_in("Iris Governance", "ig_officer")
    assert ig.go("/web/queries/new").status == 403


def test_signed_out_and_expired_sign_ins_are_asked_to_sign_in(
    visitor_factory: Any, live: Any
) -> None:
    v: Visitor = visitor_factory()
    response = v.go("/web/queries/new")
    assert response.status == 401
    expect(v.page.get_by_role("heading", name="Please sign in")).to_be_visible()

    data = live.region.layout.broker_data
    past = DevIssuer(
        load_or_create_key(data / "dev-oidc.key"),
        live.region.foundation.dev_issuer.issuer,
        live.region.foundation.dev_issuer.audience,
        clock=lambda: time.time() - 7200,
    )
    token = past.mint(role="caseworker", agency="council", name="Old Session", ttl_seconds=600)
    carrier = Response()
    SessionCodec(load_or_create_secret(data / "web-session.key")).write(
        carrier, WebSession.start(token)
    )
    value = carrier.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
    v.page.context.add_cookies([{"name": COOKIE, "value": value, "url": live.url + "/web"}])
    response = v.go("/web/queries/new")
    assert response.status == 401
    expect(v.page.get_by_role("heading", name="Your sign-in has expired")).to_be_visible()
    v.assert_accessible("31-expired")
    v.page.get_by_role("link", name="Sign in again").click()
    expect(v.page.get_by_role("heading", name="Sign in to Junction")).to_be_visible()


def test_a_connector_that_is_down_shows_in_the_strip(visitor_factory: Any, live: Any) -> None:
    v: Visitor = visitor_factory()
    v.sign_in("Sam Caseworker", "caseworker")
    netloc = live.region.netloc("police")
    live.region.transport.down.add(netloc)
    try:
        fill_query(v, _subject(live))
    finally:
        live.region.transport.down.discard(netloc)
    police = v.page.locator(".strip__item", has_text="Northbrook Constabulary")
    expect(police).to_contain_text("Unavailable")
    expect(v.page.get_by_role("heading", name="Family query result")).to_be_visible()
    v.assert_accessible("32-connector-down")


def test_forms_without_the_session_token_are_refused(visitor_factory: Any) -> None:
    v: Visitor = visitor_factory()
    v.sign_in("Sam Caseworker", "caseworker")
    response = v.page.request.post(
        v.live.url + "/web/consents/search",
        form={"identifier_kind": "nhs_number", "identifier_value": "9434765919"},
    )
    assert response.status == 403
    assert "The form could not be accepted" in response.text()


def test_break_glass_use_is_queued_and_reviewed(visitor_factory: Any, live: Any) -> None:
    manager: Visitor = visitor_factory()
    manager.sign_in("Tess Manager", "caseworker", job="team_manager")
    fill_query(manager, _subject(live), emergency=True)
    expect(manager.page.get_by_role("heading", name="Family query result")).to_be_visible()

    ig: Visitor = visitor_factory()
    ig.sign_in("Iris Governance", "ig_officer")
    ig.go("/web/ig/break-glass")
    page = ig.page
    use = page.locator("section.member").filter(has_text="dev:council:tess.manager").first
    expect(use).to_contain_text("Child missing since last night.")
    expect(use).to_contain_text("Not reviewed yet")
    ig.assert_accessible("29-break-glass-queue")
    use.get_by_role("button", name="Record the review").click()
    expect(page.get_by_role("heading", name="There is a problem")).to_be_visible()
    use = page.locator("section.member").filter(has_text="dev:council:tess.manager").first
    use.get_by_label("Justified", exact=True).check()
    use.get_by_label("What you found").fill("Manager confirmed the child was missing.")
    use.get_by_role("button", name="Record the review").click()
    expect(page.get_by_role("status")).to_contain_text("recorded (justified)")
    ig.go("/web/ig/break-glass?state=reviewed")
    expect(page.locator("section.member").first).to_contain_text("Justified by")


def test_a_review_sent_back_keeps_the_officers_note_and_outcome(
    caller_factory: Caller, live: Any
) -> None:
    manager = caller_factory("Bea Breakglass", job="team_manager")
    emergency = {
        "break_glass": "yes",
        "break_glass_reason": "missing_child",
        "break_glass_text": "Child missing since last night.",
    }
    assert send_query(manager, {**query_form_of(_subject(live)), **emergency}).status_code == 303

    officer = caller_factory("Iris Governance", role="ig_officer")
    queue = officer.get("/web/ig/break-glass").text
    found = re.search(
        r'aria-labelledby="bg-(\d+)">(?:(?!</section>).)*dev:council:bea\.breakglass', queue, re.S
    )
    assert found is not None
    index = found.group(1)
    review = f"/web/ig/break-glass/{index}/review"
    finding = "Spoke to the manager: the child had been missing overnight."

    page = officer.post(review, data={"csrf": form_token(queue), "note": finding})
    assert page.status_code == 422
    assert error_beside(page, f"outcome-{index}") == "Choose whether the use was justified"
    assert f">{finding}</textarea>" in page.text

    too_long = finding + " More." * 400
    page = officer.post(
        review, data={"csrf": form_token(queue), "outcome": "escalated", "note": too_long}
    )
    assert page.status_code == 422
    assert error_beside(page, f"note-{index}").startswith(
        "What you found can be up to 2,000 characters"
    )
    assert f">{too_long}</textarea>" in page.text
    assert re.search(rf'id="outcome-{index}-escalated" [^>]*checked', page.text)
    assert 'maxlength="2000"' in page.text


def test_an_audit_search_ending_before_it_starts_is_marked_with_the_dates_kept(
    caller_factory: Caller,
) -> None:
    officer = caller_factory("Iris Governance", role="ig_officer")
    page = officer.get("/web/ig/audit", params={"since": "2026-11-30", "until": "2026-11-01"})
    assert page.status_code == 422
    assert error_beside(page, "until") == "The end date must be on or after the start date"
    assert 'value="2026-11-30"' in page.text
    assert 'value="2026-11-01"' in page.text
    assert (
        officer.get(
            "/web/ig/audit", params={"since": "2026-11-01", "until": "2026-11-01"}
        ).status_code
        == 200
    ), "one day is a range"


def test_a_crafted_cursor_or_two_checkpoint_files_are_answered_with_what_to_do(
    caller_factory: Caller,
) -> None:
    officer = caller_factory("Iris Governance", role="ig_officer")
    for cursor in ("\u00b2", "99999999999999999999999999"):
        page = officer.get("/web/ig/audit", params={"cursor": cursor})
        assert page.status_code == 422, cursor
        assert "The page cursor is not one an Older entries link gives" in page.text

    csrf = form_token(officer.get("/web/ig/integrity").text)
    page = officer.post(
        "/web/ig/integrity/consistency",
        data={"csrf": csrf},
        files=[
            ("checkpoint_file", ("a.txt", b"one", "text/plain")),
            ("checkpoint_file", ("b.txt", b"two", "text/plain")),
        ],
    )
    assert page.status_code == 422
    assert error_beside(page, "checkpoint_file") == "Choose one checkpoint file, or paste one"


def test_a_checkpoint_pasted_with_blank_lines_or_spaces_around_it_is_checked(
    caller_factory: Caller,
) -> None:
    officer = caller_factory("Iris Governance", role="ig_officer")
    page = officer.get("/web/ig/integrity").text
    kept = re.search(r'<pre class="note" id="latest-checkpoint">(.*?)</pre>', page, re.S)
    assert kept is not None
    note = html.unescape(kept.group(1))
    for pasted in ("\n" + note, " " + note, "\n\n  " + note.strip() + "  \n\n"):
        checked = officer.post(
            "/web/ig/integrity/consistency", data={"csrf": form_token(page), "checkpoint": pasted}
        )
        assert checked.status_code == 200, repr(pasted[:5])
        result = re.search(r'id="consistency-result">\s*<h3>([^<]*)</h3>', checked.text)
        assert result is not None
        assert result.group(1).endswith("Consistent"), html.unescape(checked.text)[-3000:]


def test_a_review_sent_again_shows_the_queue_saying_who_reviewed_it(
    caller_factory: Caller, visitor_factory: Any, live: Any
) -> None:
    manager = caller_factory("Gil Glass", job="team_manager")
    emergency = {
        "break_glass": "yes",
        "break_glass_reason": "missing_child",
        "break_glass_text": "Child missing since this morning.",
    }
    assert send_query(manager, {**query_form_of(_subject(live)), **emergency}).status_code == 303

    ig: Visitor = visitor_factory()
    ig.sign_in("Iris Governance", "ig_officer")
    ig.go("/web/ig/break-glass")
    use = ig.page.locator("section.member").filter(has_text="dev:council:gil.glass").first
    index = (use.get_attribute("aria-labelledby") or "").removeprefix("bg-")
    use.get_by_label("Escalated", exact=True).check()
    use.get_by_label("What you found").fill("Escalating to the head of service.")

    # Another officer records a finding on the same entry first (or the same form is
    # sent twice).
    other = caller_factory("Rhea Reviewer", role="ig_officer")
    review = {
        "csrf": form_token(other.get("/web/ig/break-glass").text),
        "outcome": "justified",
        "note": "Confirmed by phone.",
    }
    assert other.post(f"/web/ig/break-glass/{index}/review", data=review).status_code == 200

    with ig.page.expect_navigation() as sent:
        use.get_by_role("button", name="Record the review").click()
    assert sent.value.status == 200
    expect(ig.page.get_by_role("heading", name="Break-glass review", exact=True)).to_be_visible()
    expect(ig.page.get_by_role("status")).to_contain_text(
        f"Entry {index} was already reviewed (justified) by dev:council:rhea.reviewer"
    )
    expect(ig.page.get_by_role("status")).to_contain_text("Your finding was not recorded")
    ig.assert_accessible("29b-break-glass-already-reviewed")
    reviews = [
        e
        for e in live.region.entries(kind="access_review")
        if f"reviewed_entry:{index}" in e.fields["reasons"]
    ]
    assert len(reviews) == 1


def test_an_audit_filter_too_long_to_search_says_so_beside_its_box(caller_factory: Caller) -> None:
    officer = caller_factory("Iris Governance", role="ig_officer")
    for name in ("actor", "actor_agency", "counterparty_agency", "purpose", "query_id"):
        page = officer.get("/web/ig/audit", params={name: "a" * 201})
        assert page.status_code == 422, name
        assert error_beside(page, name) == "Enter at most 200 characters", name
        assert 'value="' + "a" * 201 + '"' in page.text, "what was typed is kept"


def test_a_review_note_with_invisible_characters_is_refused_and_nothing_recorded(
    caller_factory: Caller, live: Any
) -> None:
    manager = caller_factory("Nell Nul", job="team_manager")
    emergency = {
        "break_glass": "yes",
        "break_glass_reason": "missing_child",
        "break_glass_text": "Child missing after school.",
    }
    assert send_query(manager, {**query_form_of(_subject(live)), **emergency}).status_code == 303
    officer = caller_factory("Iris Governance", role="ig_officer")
    queue = officer.get("/web/ig/break-glass").text
    found = re.search(
        r'aria-labelledby="bg-(\d+)">(?:(?!</section>).)*dev:council:nell\.nul', queue, re.S
    )
    assert found is not None
    index = found.group(1)

    page = officer.post(
        f"/web/ig/break-glass/{index}/review",
        data={
            "csrf": form_token(queue),
            "outcome": "justified",
            "note": "Confirmed\x00 by phone.\r\nChild\tfound\x07.",
        },
    )
    assert page.status_code == 422
    assert error_beside(page, f"note-{index}") == (
        "What you found held invisible characters, now taken out: check it and send the form again"
    )
    assert ">Confirmed by phone.\r\nChild\tfound.</textarea>" in page.text
    assert re.search(rf'id="outcome-{index}-justified" [^>]*checked', page.text)
    assert not [
        e
        for e in live.region.entries(kind="access_review")
        if f"reviewed_entry:{index}" in e.fields["reasons"]
    ], "no review was recorded"


def test_a_checkpoint_file_saved_with_a_byte_order_mark_is_checked(
    caller_factory: Caller,
) -> None:
    officer = caller_factory("Iris Governance", role="ig_officer")
    page = officer.get("/web/ig/integrity").text
    kept = re.search(r'<pre class="note" id="latest-checkpoint">(.*?)</pre>', page, re.S)
    assert kept is not None
    saved = "\ufeff" + html.unescape(kept.group(1)).replace("\n", "\r\n")
    checked = officer.post(
        "/web/ig/integrity/consistency",
        data={"csrf": form_token(page)},
        files={"checkpoint_file": ("checkpoint.txt", saved.encode("utf-8"), "text/plain")},
    )
    assert checked.status_code == 200
    result = re.search(r'id="consistency-result">\s*<h3>([^<]*)</h3>\s*<p>([^<]*)', checked.text)
    assert result is not None
    assert result.group(1).endswith("Consistent"), html.unescape(result.group(2))


def test_what_went_wrong_reads_as_a_sentence(caller_factory: Caller) -> None:
    officer = caller_factory("Iris Governance", role="ig_officer")
    missing = officer.get("/web/ig/audit/999999")
    assert missing.status_code == 404
    assert '<p class="lead">The log has no entry 999999</p>' in missing.text

    page = officer.get("/web/ig/integrity").text
    checked = officer.post(
        "/web/ig/integrity/consistency",
        data={"csrf": form_token(page), "checkpoint": "a note I kept"},
    )
    result = re.search(r'id="consistency-result">\s*<h3>[^<]*</h3>\s*<p>([^<]*)', checked.text)
    assert result is not None
    assert result.group(1).startswith("Not a signed note"), result.group(1)


def test_each_access_in_a_subject_access_report_opens_its_entry(
    caller_factory: Caller, live: Any
) -> None:
    person = _subject(live)
    assert send_query(caller_factory(), query_form_of(person)).status_code == 303
    officer = caller_factory("Iris Governance", role="ig_officer")
    asked = {
        "csrf": form_token(officer.get("/web/ig/subject-access").text),
        "identifier_kind": "nhs_number",
        "identifier_value": person["nhs_number"],
    }
    report = officer.post("/web/ig/subject-access", data=asked)
    assert report.status_code == 200
    rows = re.findall(r"<tr><td>.*?</tr>", report.text, re.S)
    assert rows
    for row in rows:
        # The last cell links to the row's entry, read as "Entry 57", never a bare number.
        opens = (
            r'<td><a href="/web/ig/audit/(\d+)"><span class="visually-hidden">Entry </span>\1</a>'
        )
        assert re.search(opens + r"</td></tr>$", row), row

    nobody = {**asked, "identifier_value": "943 476 5919"}
    assert officer.post("/web/ig/subject-access", data=nobody).status_code == 200
    report = officer.post("/web/ig/subject-access", data=nobody)
    said = re.search(r"\d+ recorded access\w*\.", report.text)
    assert said is not None
    assert said.group(0) == "1 recorded access.", "the first report, in the singular"


def test_opening_an_entry_filed_under_a_person_is_recorded_as_the_api_records_it(
    caller_factory: Caller, live: Any
) -> None:
    caseworker = caller_factory()
    assert send_query(caseworker, query_form_of(_subject(live))).status_code == 303
    filed = next(e for e in reversed(live.region.entries(kind="match")) if e.fields["subjects"])
    unfiled = next(e for e in live.region.entries(kind="registry_change"))

    officer = caller_factory("Otto Opener", role="ig_officer")

    def reads() -> list[Any]:
        return [
            e
            for e in live.region.entries(kind="audit_access")
            if e.fields["actor"] == "dev:council:otto.opener"
            and "audit_entry" in e.fields["reasons"]
        ]

    assert officer.get(f"/web/ig/audit/{unfiled.index}").status_code == 200
    assert reads() == [], "an entry filed under nobody is no one's record"
    assert officer.get(f"/web/ig/audit/{filed.index}").status_code == 200
    (read,) = reads()
    assert sorted(read.fields["subjects"]) == sorted(filed.fields["subjects"])


def test_activity_counted_from_only_the_newest_exchanges_says_so(
    caller_factory: Caller, live: Any
) -> None:
    assert send_query(caller_factory(), query_form_of(_subject(live))).status_code == 303
    officer = caller_factory("Iris Governance", role="ig_officer")
    full = officer.get("/web/ig/activity")
    assert full.status_code == 200
    assert "only the newest" not in full.text

    pages = live.region.app.state.web
    kept = pages.ig
    foundation = live.region.foundation
    # A reader that counts at most two exchanges stands for a month busier than it counts.
    pages.ig = IgReader(
        foundation.oversight, foundation.subject_access, foundation.audit, scan_limit=2
    )
    try:
        page = officer.get("/web/ig/activity")
    finally:
        pages.ig = kept
    assert page.status_code == 200
    said = re.search(r'<p class="warning" role="note">([^<]*)</p>', page.text)
    assert said is not None, page.text
    assert said.group(1).startswith("These charts count only the newest 2 exchanges, back to "), (
        said.group(1)
    )


def test_a_forms_answer_opened_again_by_its_address_goes_to_the_forms_page(
    caller_factory: Caller,
) -> None:
    """After a form is sent, the address bar shows where it went: opened again from
    there (Enter in the address bar, a restored tab), it leads back to the form's page."""
    officer = caller_factory("Iris Governance", role="ig_officer")
    caseworker = caller_factory()
    query = "0123456789abcdef0123456789abcdef"
    for client, address, page in [
        (officer, "/web/ig/audit/5/verify", "/web/ig/audit/5"),
        (officer, "/web/ig/integrity/consistency", "/web/ig/integrity"),
        (officer, "/web/ig/integrity/verify-all", "/web/ig/integrity"),
        (officer, "/web/ig/break-glass/7/review", "/web/ig/break-glass"),
        (caseworker, "/web/queries", "/web/queries/new"),
        (caseworker, f"/web/queries/{query}/links", f"/web/queries/{query}"),
        (caseworker, "/web/consents/search", "/web/consents"),
        (caseworker, "/web/consents/c-42/withdraw", "/web/consents/c-42"),
        (caseworker, "/web/sign-out", "/web/home"),
    ]:
        answer = client.get(address)
        assert answer.status_code == 303, address
        assert answer.headers["location"] == page, address


def test_a_break_glass_use_whose_words_were_erased_says_so_in_the_queue(
    caller_factory: Caller, live: Any
) -> None:
    manager = caller_factory("Eve Erased", job="team_manager")
    emergency = {
        "break_glass": "yes",
        "break_glass_reason": "missing_child",
        "break_glass_text": "Child missing from the home.",
    }
    assert send_query(manager, {**query_form_of(_subject(live)), **emergency}).status_code == 303
    (used,) = [
        e
        for e in live.region.entries(kind="break_glass")
        if e.fields["actor"] == "dev:council:eve.erased"
    ]
    erased = httpx.post(
        f"{live.url}/v1/audit/entries/{used.index}/erasure",
        json={"reason": "Court order 2026/117"},
        headers=live.region.headers(Role.IG_OFFICER, job_role=None, name="Ian Eraser"),
    )
    assert erased.status_code == 201, erased.text

    officer = caller_factory("Iris Governance", role="ig_officer")
    queue = officer.get("/web/ig/break-glass").text
    section = re.search(rf'aria-labelledby="bg-{used.index}">(.*?)</section>', queue, re.S)
    assert section is not None
    wrote = re.search(r"<dt>What they wrote</dt><dd[^>]*>([^<]*)</dd>", section.group(1))
    assert wrote is not None
    assert wrote.group(1).startswith("Erased on "), wrote.group(1)
    assert "by dev:council:ian.eraser" in wrote.group(1)
    entry = officer.get(f"/web/ig/audit/{used.index}").text
    erasure = erased.json()["erasure_index"]
    assert f'(<a href="/web/ig/audit/{erasure}">audit entry {erasure}</a>)' in entry


def test_what_a_caseworker_wrote_keeps_its_line_breaks(
    caller_factory: Caller, visitor_factory: Any, live: Any
) -> None:
    manager = caller_factory("Lena Lines", job="team_manager")
    emergency = {
        "break_glass": "yes",
        "break_glass_reason": "missing_child",
        "break_glass_text": "Child missing since 6pm.\r\nMother called the duty line.",
        "justification": "Police raised a concern.\r\nSchool confirms absence.",
    }
    assert send_query(manager, {**query_form_of(_subject(live)), **emergency}).status_code == 303
    (used,) = [
        e
        for e in live.region.entries(kind="break_glass")
        if e.fields["actor"] == "dev:council:lena.lines"
    ]
    (asked,) = [
        e
        for e in live.region.entries(kind="query_submitted")
        if e.fields["actor"] == "dev:council:lena.lines"
    ]

    ig: Visitor = visitor_factory()
    ig.sign_in("Iris Governance", "ig_officer")
    ig.go("/web/ig/break-glass")
    use = ig.page.locator(f'section[aria-labelledby="bg-{used.index}"]')
    wrote = use.locator("dt:text-is('What they wrote') + dd").inner_text()
    assert wrote == "Child missing since 6pm.\nMother called the duty line."
    ig.go(f"/web/ig/audit/{asked.index}")
    sealed = ig.page.locator("dt:text-is('Sealed details') + dd").inner_text()
    assert "Police raised a concern.\nSchool confirms absence." in sealed


def test_an_agency_filter_given_as_a_name_asks_for_the_agency_id(caller_factory: Caller) -> None:
    officer = caller_factory("Iris Governance", role="ig_officer")
    for name in ("actor_agency", "counterparty_agency"):
        page = officer.get("/web/ig/audit", params={name: "Northbrook Police"})
        assert page.status_code == 422, name
        assert error_beside(page, name) == (
            "Enter the agency's id, such as council or police, not its name"
        )
    assert officer.get("/web/ig/audit", params={"counterparty_agency": "Police"}).status_code == 200

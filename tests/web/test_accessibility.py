"""Every page, as a screen reader or a keyboard meets it (WCAG 2.2 AA).

One walk signs a caseworker and an IG officer in, runs a query, records and withdraws a
consent, uses emergency access, and opens each page of both, each form also sent back
with its problems. Each test reads every page's HTML as an assistive technology would:
its language and title, its headings, what names each control and each link, what
explains each table and picture, and how a form sent back with problems says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from broker.queries.render import link_id
from tests.broker.town_kit import known_to
from tests.web.conftest import Visitor, form_token, query_id_of, signed_in
from tests.web.live_kit import LiveRegion
from tests.web.test_caseworker_pages import (
    _subject,
    consent_form_of,
    fill_query,
    query_form_of,
    send_query,
)

# -- a small document tree, as the parser in a browser would build it ---------------------

SUFFIX = " \N{EN DASH} Junction"
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
_CONTROLS = {"input", "select", "textarea"}
_UNLABELLED_INPUTS = {"hidden", "submit", "button", "reset", "image"}


@dataclass(eq=False)
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None = None
    children: list[Node | str] = field(default_factory=list)

    def walk(self) -> Iterator[Node]:
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.walk()

    def all(self, *tags: str) -> list[Node]:
        return [n for n in self.walk() if n.tag in tags]

    def text(self) -> str:
        """What a screen reader reads of it: visually hidden words too."""
        return re.sub(r"\s+", " ", self._said()).strip()

    def _said(self) -> str:
        # Spaces inside an inline element ("<span>Entry </span>57") are read too.
        said = []
        for child in self.children:
            if isinstance(child, str):
                said.append(child)
            elif child.attrs.get("aria-hidden") != "true":
                said.append(child._said())
        return "".join(said)

    def ancestors(self) -> Iterator[Node]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.open[-1])
        self.open[-1].children.append(node)
        if tag not in _VOID:
            self.open.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.open.pop()

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.open) - 1, 0, -1):
            if self.open[depth].tag == tag:
                del self.open[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.open[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


@dataclass
class Page:
    """One page as the walk met it: ``kind`` names the page whatever its contents."""

    name: str
    kind: str
    html: str
    with_errors: bool = False

    @cached_property
    def doc(self) -> Node:
        return parse(self.html)


# -- the walk ---------------------------------------------------------------------------


def _client(live: LiveRegion, name: str, role: str, job: str = "social_worker") -> httpx.Client:
    return signed_in(live, name, role, job=job)


def _walk(live: LiveRegion) -> dict[str, Page]:
    pages: dict[str, Page] = {}

    def keep(name: str, kind: str, response: httpx.Response, status: int = 200) -> str:
        assert response.status_code == status, (name, response.status_code, response.text[:500])
        pages[name] = Page(name, kind, response.text, with_errors=status == 422)
        return response.text

    with httpx.Client(base_url=live.url, timeout=60) as nobody:
        sign_in = keep("sign-in", "sign-in", nobody.get("/web/sign-in"))
        keep(
            "sign-in-errors",
            "sign-in",
            nobody.post("/web/sign-in", data={"csrf": form_token(sign_in), "name": ""}),
            422,
        )
        keep("signed-out-asked-to-sign-in", "error", nobody.get("/web/home"), 401)

    person = _subject(live)
    sam = _client(live, "Sam Caseworker", "caseworker")
    tess = _client(live, "Tess Manager", "caseworker", job="team_manager")
    eve = _client(live, "Eve Helper", "caseworker", job="early_help_worker")
    iris = _client(live, "Iris Governance", "ig_officer")
    try:
        keep("home-empty", "home", sam.get("/web/home"))
        keep("query-form", "query-form", sam.get("/web/queries/new"))
        keep("query-form-errors", "query-form", send_query(sam, {"legal_basis": ""}), 422)
        keep(
            "query-form-more-errors",
            "query-form",
            send_query(
                sam,
                {
                    **query_form_of(person),
                    "date_of_birth": "yesterday",
                    "conditions": "nonsense",
                    "break_glass": "yes",
                },
            ),
            422,
        )
        sent = send_query(sam, query_form_of(person))
        assert sent.status_code == 303, sent.text
        result = sent.headers["location"]
        query_id = query_id_of(result)
        live.region.foundation.query_store.remember_uncertain(
            query_id, "dev:council:sam.caseworker", [("education:REF-A", "health:REF-B", 0.7)]
        )
        keep("result", "result", sam.get(result))
        keep(
            "result-link-error",
            "result",
            sam.post(result + "/links", data={"csrf": form_token(sam.get(result).text)}),
            422,
        )
        decided = sam.post(
            result + "/links",
            data={
                "csrf": form_token(sam.get(result).text),
                "link_id": link_id("education:REF-A", "health:REF-B"),
                "decision": "confirm",
            },
        )
        keep("result-notice", "result", sam.get(decided.headers["location"]))
        keep("home", "home", sam.get("/web/home"))
        keep("result-gone", "result-gone", tess.get(result), 410)
        # A purpose her job may not use: policy refuses the query before asking anyone.
        barred = {
            "purpose": "child_protection_enquiry",
            "gateway": "ca1989_s47",
            "case_reference": "CP-2026-0001",
        }
        refused = send_query(eve, {**query_form_of(person), **barred})
        assert refused.status_code == 303, refused.text
        keep("result-refused", "result", eve.get(refused.headers["location"]))

        consents = keep("consents", "consents", sam.get("/web/consents"))
        keep(
            "consents-search-errors",
            "consents",
            sam.post("/web/consents/search", data={"csrf": form_token(consents)}),
            422,
        )
        search = {
            "csrf": form_token(consents),
            "identifier_kind": "nhs_number",
            "identifier_value": person["nhs_number"],
        }
        keep("consents-none-found", "consents", sam.post("/web/consents/search", data=search))
        keep("consent-form", "consent-form", sam.get("/web/consents/new"))
        form = consent_form_of(sam, person)
        keep(
            "consent-form-errors",
            "consent-form",
            sam.post("/web/consents", data={"csrf": form["csrf"]}),
            422,
        )
        keep(
            "consent-form-register-errors",
            "consent-form",
            sam.post("/web/consents", data={**form, "scope": "some", "scope_agencies": "polise"}),
            422,
        )
        recorded = sam.post("/web/consents", data=form)
        assert recorded.status_code == 303, recorded.text
        consent = keep("consent", "consent", sam.get(recorded.headers["location"]))
        address = recorded.headers["location"].split("?")[0]
        keep(
            "consent-withdraw-errors",
            "consent",
            sam.post(address + "/withdraw", data={"csrf": form_token(consent), "note": "x" * 600}),
            422,
        )
        keep("consents-found", "consents", sam.post("/web/consents/search", data=search))
        withdrawn = sam.post(address + "/withdraw", data={"csrf": form_token(consent)})
        assert withdrawn.status_code == 303
        keep(
            "consent-already-withdrawn",
            "consent",
            sam.post(address + "/withdraw", data={"csrf": form_token(consent)}),
            422,
        )
        keep("not-found", "error", sam.get("/web/no-such-page"), 404)
        keep("forbidden", "error", sam.get("/web/ig/audit"), 403)

        emergency = {
            "break_glass": "yes",
            "break_glass_reason": "missing_child",
            "break_glass_text": "Child missing since last night.",
        }
        assert send_query(tess, {**query_form_of(person), **emergency}).status_code == 303
        other = next(p for p in known_to(live.region.truth, 3) if p is not person)
        for _ in range(2):
            send_query(tess, {**query_form_of(other), **emergency})

        keep("ig-home", "ig-home", iris.get("/web/ig"))
        keep(
            "audit-search-errors",
            "audit-search",
            iris.get("/web/ig/audit", params={"since": "2026-11-30", "until": "someday"}),
            422,
        )
        keep(
            "audit-search-bad-cursor",
            "audit-search",
            iris.get("/web/ig/audit", params={"cursor": "\u00b2"}),
            422,
        )
        results = keep("audit-search", "audit-search", iris.get("/web/ig/audit"))
        older = re.search(r'href="(/web/ig/audit\?[^"]*cursor=[^"]*)"', results)
        assert older is not None, "the demo has more than a page of exchanges"
        keep("audit-older", "audit-search", iris.get(older.group(1).replace("&amp;", "&")))
        index = re.search(r'href="/web/ig/audit/(\d+)"', results)
        assert index is not None
        entry = keep("audit-entry", "audit-entry", iris.get(f"/web/ig/audit/{index.group(1)}"))
        keep(
            "audit-entry-verified",
            "audit-entry",
            iris.post(f"/web/ig/audit/{index.group(1)}/verify", data={"csrf": form_token(entry)}),
        )
        integrity = keep("integrity", "integrity", iris.get("/web/ig/integrity"))
        keep(
            "integrity-errors",
            "integrity",
            iris.post("/web/ig/integrity/consistency", data={"csrf": form_token(integrity)}),
            422,
        )
        keep(
            "integrity-checked",
            "integrity",
            iris.post(
                "/web/ig/integrity/consistency",
                data={"csrf": form_token(integrity), "checkpoint": "not a checkpoint"},
            ),
        )
        keep(
            "integrity-scanned",
            "integrity",
            iris.post("/web/ig/integrity/verify-all", data={"csrf": form_token(integrity)}),
        )
        queue = keep("break-glass", "break-glass", iris.get("/web/ig/break-glass"))
        use = re.search(r'action="/web/ig/break-glass/(\d+)/review"', queue)
        assert use is not None
        keep(
            "break-glass-errors",
            "break-glass",
            iris.post(
                f"/web/ig/break-glass/{use.group(1)}/review",
                data={"csrf": form_token(queue), "note": ""},
            ),
            422,
        )
        iris.post(
            f"/web/ig/break-glass/{use.group(1)}/review",
            data={"csrf": form_token(queue), "outcome": "justified", "note": "Seen to."},
        )
        keep("break-glass-reviewed", "break-glass", iris.get("/web/ig/break-glass?state=reviewed"))
        keep("anomalies", "anomalies", iris.get("/web/ig/anomalies"))
        access = keep("subject-access", "subject-access", iris.get("/web/ig/subject-access"))
        keep(
            "subject-access-errors",
            "subject-access",
            iris.post("/web/ig/subject-access", data={"csrf": form_token(access)}),
            422,
        )
        keep(
            "subject-access-report",
            "subject-access",
            iris.post("/web/ig/subject-access", data={**search, "csrf": form_token(access)}),
        )
        keep("activity", "activity", iris.get("/web/ig/activity"))
        keep("sign-out-stale", "sign-out", iris.post("/web/sign-out", data=search), 403)
        out = keep(
            "signed-out",
            "signed-out",
            iris.post("/web/sign-out", data={"csrf": form_token(access)}),
        )
        assert "signed out" in out
    finally:
        for client in (sam, tess, eve, iris):
            client.close()
    return pages


@pytest.fixture(scope="module")
def walked(live: LiveRegion) -> dict[str, Page]:
    return _walk(live)


PAGES = [
    "sign-in",
    "sign-in-errors",
    "signed-out-asked-to-sign-in",
    "home-empty",
    "query-form",
    "query-form-errors",
    "query-form-more-errors",
    "result",
    "result-link-error",
    "result-notice",
    "home",
    "result-gone",
    "result-refused",
    "consents",
    "consents-search-errors",
    "consents-none-found",
    "consent-form",
    "consent-form-errors",
    "consent-form-register-errors",
    "consent",
    "consent-withdraw-errors",
    "consents-found",
    "consent-already-withdrawn",
    "not-found",
    "forbidden",
    "ig-home",
    "audit-search",
    "audit-search-errors",
    "audit-search-bad-cursor",
    "audit-older",
    "audit-entry",
    "audit-entry-verified",
    "integrity",
    "integrity-errors",
    "integrity-checked",
    "integrity-scanned",
    "break-glass",
    "break-glass-errors",
    "break-glass-reviewed",
    "anomalies",
    "subject-access",
    "subject-access-errors",
    "subject-access-report",
    "activity",
    "sign-out-stale",
    "signed-out",
]


@pytest.fixture(params=PAGES)
def page(request: pytest.FixtureRequest, walked: dict[str, Page]) -> Page:
    return walked[request.param]


def _main(doc: Node) -> Node:
    mains = doc.all("main")
    assert len(mains) == 1, "one main landmark"
    return mains[0]


def _by_id(doc: Node) -> dict[str, Node]:
    return {n.attrs["id"]: n for n in doc.walk() if "id" in n.attrs}


def _error_summary(doc: Node) -> Node | None:
    """The list of a form's problems (a failed check, also drawn in red, is a status)."""
    found = (n for n in doc.walk() if "error-summary" in n.classes)
    return next((n for n in found if n.attrs.get("role") == "alert"), None)


# -- the tests --------------------------------------------------------------------------


def test_the_walk_visits_every_page_it_names(walked: dict[str, Page]) -> None:
    assert sorted(walked) == sorted(PAGES)


def test_each_page_says_its_language_and_its_title_says_what_it_is(page: Page) -> None:
    doc = page.doc
    html = doc.all("html")[0]
    assert html.attrs.get("lang") == "en-GB"
    titles = doc.all("head")[0].all("title")
    assert len(titles) == 1
    title = titles[0].text()
    assert title.endswith(SUFFIX)
    said = title.removesuffix(SUFFIX)
    assert said != "Junction"
    assert said.startswith("Error: ") == page.with_errors, (
        f"a page with problems to correct says so first in its title: {title!r}"
    )


def test_different_pages_have_different_titles(walked: dict[str, Page]) -> None:
    kinds: dict[str, set[str]] = {}
    for shown in walked.values():
        title = shown.doc.all("head")[0].all("title")[0].text().removeprefix("Error: ")
        kinds.setdefault(title, set()).add(shown.kind)
    shared = {title: named for title, named in kinds.items() if len(named) > 1}
    assert shared == {}, "a title names one kind of page"


def test_each_page_has_one_h1_and_skips_no_heading_level(page: Page) -> None:
    main = _main(page.doc)
    summary = _error_summary(page.doc)
    headings = [
        n
        for n in main.walk()
        if re.fullmatch(r"h[1-6]", n.tag) and (summary is None or summary not in n.ancestors())
    ]
    levels = [int(n.tag[1]) for n in headings]
    assert levels.count(1) == 1, f"one h1: {[n.text() for n in headings]}"
    assert levels[0] == 1, "the page's own heading comes first (after any error summary)"
    for before, after, node in zip(levels, levels[1:], headings[1:], strict=False):
        assert after <= before + 1, f"h{before} then h{after} ({node.text()!r})"
    assert all(n.text() for n in headings), "no empty heading"
    assert not [
        n for n in page.doc.walk() if re.fullmatch(r"h[1-6]", n.tag) and main not in n.ancestors()
    ], "headings are in the main content"


def test_each_page_can_skip_to_its_main_content(page: Page) -> None:
    doc = page.doc
    body = doc.all("body")[0]
    first_link = next(n for n in body.walk() if n.tag == "a")
    assert first_link.attrs.get("href") == "#main"
    assert first_link.text() == "Skip to main content"
    assert _main(doc).attrs.get("id") == "main"


def _name_of(control: Node, doc: Node, ids: dict[str, Node]) -> str:
    if control.attrs.get("aria-label"):
        return control.attrs["aria-label"]
    if control.attrs.get("aria-labelledby"):
        return " ".join(ids[i].text() for i in control.attrs["aria-labelledby"].split())
    labels = [
        n
        for n in doc.all("label")
        if n.attrs.get("for") and n.attrs["for"] == control.attrs.get("id")
    ]
    return " ".join(label.text() for label in labels)


def test_every_control_has_a_name_and_unique_id(page: Page) -> None:
    doc = page.doc
    ids = [n.attrs["id"] for n in doc.walk() if "id" in n.attrs]
    assert len(ids) == len(set(ids)), (
        f"ids used twice: {sorted(i for i in ids if ids.count(i) > 1)}"
    )
    known = _by_id(doc)
    for control in doc.all(*_CONTROLS):
        if control.attrs.get("type") in _UNLABELLED_INPUTS:
            continue
        assert _name_of(control, doc, known), f"{control.tag} {control.attrs} has no label"
    for label in doc.all("label"):
        assert label.attrs.get("for") in known, f"label {label.text()!r} names no control"
    for button in doc.all("button"):
        assert button.text() or button.attrs.get("aria-label"), "a button says what it does"


def test_every_radio_and_checkbox_group_is_a_fieldset_with_a_legend(page: Page) -> None:
    doc = page.doc
    for choice in doc.all("input"):
        if choice.attrs.get("type") not in ("radio", "checkbox"):
            continue
        if choice.attrs.get("name") == "break_glass":
            continue  # one yes-or-no box that stands alone, its label the question
        sets = [a for a in choice.ancestors() if a.tag == "fieldset"]
        assert sets, f"{choice.attrs.get('id')} is in no fieldset"
        legends = [n for n in sets[0].children if isinstance(n, Node) and n.tag == "legend"]
        assert legends, f"{choice.attrs.get('id')}'s group has no legend"
        assert legends[0].text(), f"{choice.attrs.get('id')}'s legend is empty"


def test_every_description_and_label_reference_names_an_element(page: Page) -> None:
    doc = page.doc
    known = _by_id(doc)
    for node in doc.walk():
        for attr in ("aria-describedby", "aria-labelledby"):
            for ref in node.attrs.get(attr, "").split():
                assert ref in known, f"{node.tag} {attr}={ref!r} names nothing"
    for link in doc.all("a"):
        href = link.attrs.get("href", "")
        if href.startswith("#") and len(href) > 1:
            assert href[1:] in known, f"link {link.text()!r} to {href} goes nowhere"


def test_every_table_has_a_caption_and_scoped_headers(page: Page) -> None:
    for table in page.doc.all("table"):
        captions = [n for n in table.children if isinstance(n, Node) and n.tag == "caption"]
        assert captions, f"a table without a caption: {table.text()[:80]!r}"
        assert captions[0].text(), "an empty caption"
        for header in table.all("th"):
            assert header.attrs.get("scope") in ("col", "row"), (
                f"header {header.text()!r} of {captions[0].text()!r} has no scope"
            )


def test_every_table_scrolls_alone_in_a_region_its_caption_names(page: Page) -> None:
    """At 320 CSS pixels a wide table scrolls sideways in its own box, not the whole page
    (WCAG 1.4.10); a keyboard can reach the box to scroll it, and a screen reader names
    the box by the table's caption."""
    known = _by_id(page.doc)
    for table in page.doc.all("table"):
        caption = next(n for n in table.children if isinstance(n, Node) and n.tag == "caption")
        box = table.parent
        assert box is not None
        assert "table-scroll" in box.classes, f"{caption.text()!r} is in no box that scrolls"
        assert [n for n in box.children if isinstance(n, Node)] == [table], "the table alone"
        assert box.attrs.get("role") == "region", f"{caption.text()!r}'s box is no region"
        assert box.attrs.get("tabindex") == "0", f"a keyboard cannot scroll {caption.text()!r}"
        named = box.attrs.get("aria-labelledby", "")
        assert known.get(named) is caption, (
            f"the box of {caption.text()!r} is named by {named!r}, not by the caption"
        )


def test_a_tables_box_scrolls_sideways() -> None:
    from broker.web.pages import TEMPLATES

    css = (TEMPLATES.parent / "static" / "junction.css").read_text()
    boxes = [
        body
        for selector, body in re.findall(r"([^{}\n]+)\{([^}]*)\}", css)
        if ".table-scroll" in selector.split(",")[0].split()
    ]
    assert any(re.search(r"overflow-x:\s*auto", body) for body in boxes), boxes


def test_a_link_to_an_audit_entry_reads_as_the_entry(page: Page) -> None:
    for link in _main(page.doc).all("a"):
        entry = re.fullmatch(r"/web/ig/audit/(\d+)", link.attrs.get("href", ""))
        if entry is not None:
            assert re.fullmatch(rf"(Entry|audit entry) {entry.group(1)}", link.text()), (
                f"{link.text()!r} is read for entry {entry.group(1)}"
            )


# The menu item each kind of page is (``page``) or belongs to (``true``); pages of no
# item mark none.
MENU = {
    "home": ("My queries", "page"),
    "query-form": ("New family query", "page"),
    "result": ("My queries", "true"),
    "result-gone": ("My queries", "true"),
    "consents": ("Consent", "page"),
    "consent-form": ("Consent", "true"),
    "consent": ("Consent", "true"),
    "audit-search": ("Audit search", "page"),
    "audit-entry": ("Audit search", "true"),
    "integrity": ("Log integrity", "page"),
    "break-glass": ("Break-glass", "page"),
    "anomalies": ("Anomalies", "page"),
    "subject-access": ("Subject access", "page"),
    "activity": ("Activity", "page"),
}


def test_the_main_menu_marks_the_page_you_are_on(page: Page) -> None:
    menus = [n for n in page.doc.all("nav") if n.attrs.get("aria-label") == "Main"]
    if not menus:
        assert page.kind not in MENU, "a signed-in page has the menu"
        return
    marked = {
        a.text(): a.attrs["aria-current"] for a in menus[0].all("a") if "aria-current" in a.attrs
    }
    assert marked == dict([MENU[page.kind]] if page.kind in MENU else []), page.name


def test_one_element_on_a_page_says_it_is_the_page_you_are_on(page: Page) -> None:
    """A screen reader says "current page" once: on the main menu's item, never also on a
    sub-menu's (the break-glass queues), which says "current" instead."""
    said = [n.text() for n in page.doc.walk() if n.attrs.get("aria-current") == "page"]
    is_an_item = page.kind in MENU and MENU[page.kind][1] == "page"
    assert said == ([MENU[page.kind][0]] if is_an_item else []), page.name


@pytest.mark.parametrize(
    ("name", "queue"), [("break-glass", "Waiting for review"), ("break-glass-reviewed", "Reviewed")]
)
def test_the_break_glass_queues_mark_the_one_shown(
    walked: dict[str, Page], name: str, queue: str
) -> None:
    menu = next(n for n in walked[name].doc.all("nav") if n.attrs.get("aria-label") == "Which uses")
    marked = {n.text(): n.attrs["aria-current"] for n in menu.walk() if "aria-current" in n.attrs}
    assert marked == {queue: "true"}


def _seen(node: Node) -> str:
    """What the eye reads of it: no visually hidden words."""
    said = [
        child if isinstance(child, str) else _seen(child)
        for child in node.children
        if isinstance(child, str) or "visually-hidden" not in child.classes
    ]
    return re.sub(r"\s+", " ", "".join(said)).strip()


def _cells(link: Node) -> list[str]:
    row = next(n for n in link.ancestors() if n.tag == "tr")
    return [cell.text() for cell in row.children if isinstance(cell, Node)]


def _is_an_answer(href: str) -> bool:
    return re.fullmatch(r"/web/queries/[0-9a-f]{32}", href) is not None


def test_a_link_to_an_answer_says_which_answer_it_opens(walked: dict[str, Page]) -> None:
    main = _main(walked["home"].doc)
    answers = [a for a in main.all("a") if _is_an_answer(a.attrs.get("href", ""))]
    assert answers, "the walk's query is listed with its answer"
    for link in answers:
        shown, purpose = _seen(link), _cells(link)[1]
        assert re.fullmatch(r"\d{2} \w{3} \d{4} \d{2}:\d{2} UTC", shown), "the time is shown"
        assert link.text() == f"Answer of {shown}, {purpose}"


def test_a_link_to_a_consent_says_which_consent_it_opens(walked: dict[str, Page]) -> None:
    main = _main(walked["consents-found"].doc)
    table = next(
        t for t in main.all("table") if t.all("caption")[0].text() == "This person's consents"
    )
    consents = table.all("a")
    assert consents, "the walk's consent is found"
    for link in consents:
        label, purpose, _, _, recorded, _ = _cells(link)
        assert _seen(link) == "View"
        named = "" if label == "—" else f" {label}"
        assert link.text() == f"View consent{named} of {recorded}, {purpose}"
    assert "K.P." in {_cells(link)[0] for link in consents}, "the walk's consent has a label"


def test_a_refused_query_is_told_in_a_region_not_as_a_problem_to_correct(
    walked: dict[str, Page],
) -> None:
    doc = walked["result-refused"].doc
    assert not [n for n in doc.walk() if n.attrs.get("role") == "alert"], "no alert"
    assert not [n for n in doc.walk() if "error-summary" in n.classes], "no problem to correct"
    known = _by_id(doc)
    regions = [
        n
        for n in _main(doc).walk()
        if n.attrs.get("role") == "region" and "table-scroll" not in n.classes
    ]
    assert len(regions) == 1, [n.attrs for n in regions]
    title = known[regions[0].attrs["aria-labelledby"]]
    assert title.tag == "h2"
    assert title in regions[0].walk(), "the region's heading is in it"
    assert title.text() == "This request was refused"
    assert [li.text() for li in regions[0].all("li")], "with the reasons"
    agencies = next(
        n for n in _main(doc).all("section") if n.attrs.get("aria-labelledby") == "agencies-title"
    )
    assert "No agency was asked." in agencies.text(), "not a heading over nothing"
    assert "This request was refused" not in walked["result"].html


_VAGUE = {"view", "open", "here", "click here", "more", "link", "next", "previous", "details"}


def test_every_link_says_where_it_goes_out_of_context(page: Page) -> None:
    main = _main(page.doc)
    targets: dict[str, set[str]] = {}
    for link in main.all("a"):
        said = link.text()
        assert said, f"a link with no words: {link.attrs}"
        assert said.lower() not in _VAGUE, f"link {said!r} means nothing out of context"
        assert not said.isdigit(), f"link {said!r} is a bare number"
        targets.setdefault(said, set()).add(link.attrs.get("href", ""))
    ambiguous = {said: hrefs for said, hrefs in targets.items() if len(hrefs) > 1}
    assert ambiguous == {}, "links reading alike go to one place"


def test_status_is_said_in_words_not_colour_alone(page: Page) -> None:
    doc = page.doc
    for tag in [n for n in doc.walk() if "tag" in n.classes]:
        assert tag.text(), f"a status tag without words: {tag.attrs}"
    for item in [n for n in doc.walk() if "strip__item" in n.classes]:
        assert [n for n in item.walk() if "tag" in n.classes], "each agency says its status"
    known = _by_id(doc)
    for picture in doc.all("svg"):
        if picture.attrs.get("aria-hidden") == "true":
            continue
        assert picture.attrs.get("role") == "img", "a picture is one image to a screen reader"
        names = picture.attrs.get("aria-labelledby", "").split()
        assert names, "a picture has a text alternative"
        assert all(known[i].text() for i in names), "a picture's text alternative is empty"


def test_focus_can_be_seen_on_every_control() -> None:
    from broker.web.pages import TEMPLATES

    css = (TEMPLATES.parent / "static" / "junction.css").read_text()
    assert re.search(r"(^|\n):focus-visible\s*\{[^}]*outline:\s*3px solid", css)
    for rule in re.findall(r"([^{}\n]+)\{([^}]*)\}", css):
        selector, body = rule
        if "outline: none" in body or "outline: 0" in body:
            assert ":focus-visible" in selector or "main:focus" in selector, (
                f"{selector.strip()} hides the focus"
            )


def test_a_form_sent_back_sums_up_its_problems_and_ties_each_to_its_field(page: Page) -> None:
    doc = page.doc
    summary = _error_summary(doc)
    if not page.with_errors:
        assert summary is None, "no problem is announced on a page without one"
        return
    assert summary is not None, "a page sent back with problems sums them up"
    main = _main(doc)
    order = [n for n in main.walk() if n is summary or n.tag == "h1"]
    assert order[0] is summary, "the summary comes before the page's heading"
    known = _by_id(doc)
    assert summary.all("li"), "the summary lists each problem"
    links = summary.all("a")
    for link in links:
        target = link.attrs["href"].removeprefix("#")
        assert target in known, f"{link.text()!r} links to #{target}, which is not on the page"
        node = known[target]
        message = known.get(f"{target}-error")
        assert message is not None, f"no message beside {target}"
        assert message.text().removeprefix("Error: ") == link.text(), (
            "the summary and the field say the same"
        )
        sets = [a for a in (node, *node.ancestors()) if a.tag == "fieldset"]
        field_ = sets[0] if sets else node
        controls = [
            n
            for n in (field_, *field_.walk())
            if n.tag in _CONTROLS and n.attrs.get("type") not in _UNLABELLED_INPUTS
        ]
        if not controls:
            continue  # a problem with the page, not with an answer (a consent's state)
        tied = [
            n
            for n in doc.walk()
            if f"{target}-error" in n.attrs.get("aria-describedby", "").split()
        ]
        assert tied, f"the message beside {target} is tied to no control"
        assert all(n is field_ or n in controls for n in tied), f"{target}'s message is elsewhere"
        assert all(n.attrs.get("aria-invalid") == "true" for n in tied), f"{target} is invalid"


# Answers every form needs, so a screen reader says "required" as it reaches them; the
# optional ones say "(optional)" in their labels instead.
REQUIRED = {
    "sign-in": ["name", "agency"],
    "query-form": ["given_name", "family_name", "justification"],
    "consent-form": ["identifier_value"],
    "consents": ["identifier_value"],
    "subject-access": ["identifier_value"],
}


@pytest.mark.parametrize("kind", sorted(REQUIRED))
def test_required_answers_are_marked_and_optional_ones_say_so(
    walked: dict[str, Page], kind: str
) -> None:
    for shown in [p for p in walked.values() if p.kind == kind]:
        doc = shown.doc
        known = _by_id(doc)
        for name in REQUIRED[kind]:
            assert known[name].attrs.get("aria-required") == "true", (shown.name, name)
        for control in doc.all(*_CONTROLS):
            label = _name_of(control, doc, known)
            if control.attrs.get("aria-required") == "true":
                assert "optional" not in label, f"{label!r} is both required and optional"


def test_the_consent_forms_optional_answers_say_so(walked: dict[str, Page]) -> None:
    doc = walked["consent-form"].doc
    known = _by_id(doc)
    for name in ("label", "evidence_reference", "expires_on"):
        assert "(optional)" in _name_of(known[name], doc, known), name


def test_sign_in_fills_the_persons_own_name_but_never_a_family_members(
    walked: dict[str, Page],
) -> None:
    sign_in = _by_id(walked["sign-in"].doc)
    assert sign_in["name"].attrs.get("autocomplete") == "name"
    query = _by_id(walked["query-form"].doc)
    for name in ("given_name", "family_name", "date_of_birth", "postcode", "nhs_number"):
        assert query[name].attrs.get("autocomplete") == "off", name


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("query-form-more-errors", {"date_of_birth": "yesterday"}),
        ("audit-search-errors", {"since": "2026-11-30", "until": "someday"}),
        ("consent-withdraw-errors", {"note": "x" * 600}),
    ],
)
def test_a_form_sent_back_keeps_each_answer_in_its_box(
    walked: dict[str, Page], name: str, kept: dict[str, str]
) -> None:
    known = _by_id(walked[name].doc)
    for field_name, value in kept.items():
        assert known[field_name].attrs.get("value") == value, field_name


def test_the_audit_search_pages_are_a_named_navigation(walked: dict[str, Page]) -> None:
    for name, links in (("audit-search", ["Older entries"]), ("audit-older", ["Newest entries"])):
        main = _main(walked[name].doc)
        pagers = [n for n in main.all("nav") if n.attrs.get("aria-label")]
        said = [a.text() for nav in pagers for a in nav.all("a")]
        for link in links:
            assert link in said, (name, said)
        heading = next(n for n in main.all("h2") if n.text().startswith("Entries"))
        assert ("older" in heading.text()) == (name == "audit-older"), "the page says which"


def test_a_keyboard_user_lands_on_the_problems_and_goes_from_each_to_its_answer(
    visitor_factory: Any,
) -> None:
    v: Visitor = visitor_factory()
    page = v.page
    focused = "() => [document.activeElement.id, document.activeElement.className]"
    v.go("/web/sign-in")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert page.title() == "Error: Sign in" + SUFFIX
    assert page.evaluate(focused) == ["", "error-summary"], "the problems are read out first"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Enter your name"
    page.keyboard.press("Enter")
    assert page.evaluate(focused)[0] == "name", "Enter goes to the box to correct"
    v.assert_accessible("40-sign-in-errors")

    v.sign_in("Sam Caseworker", "caseworker")
    v.go("/web/queries/new")
    page.get_by_label("Why you need this information").fill("Attendance concerns.")
    page.get_by_role("button", name="Ask the agencies").click()
    page.wait_for_load_state()
    page.get_by_role("link", name="Choose the purpose of this query").focus()
    page.keyboard.press("Enter")
    assert page.evaluate(focused)[0].startswith("purpose-"), "a question's first choice"
    assert page.get_by_label("Why you need this information").input_value() == (
        "Attendance concerns."
    )
    v.assert_accessible("41-query-form-errors-focus")


_WIDTHS = """() => ({
    page: document.documentElement.scrollWidth,
    boxes: [...document.querySelectorAll('.table-scroll')]
        .map(box => box.scrollWidth - box.clientWidth),
})"""

# The lines each time in a table is drawn on: "23 Nov 2026 14:02 UTC" on one, or the day
# on one and the hour on the next, never a word to a line.
_TIME_LINES = r"""() => [...document.querySelectorAll('.table-scroll td')]
    .filter(cell => /^\d{2} \w{3} \d{4} \d{2}:\d{2} UTC$/.test(cell.textContent.trim()))
    .map(cell => {
        const range = document.createRange();
        range.selectNodeContents(cell);
        return new Set([...range.getClientRects()].map(line => Math.round(line.top))).size;
    })"""


def test_at_320_pixels_wide_only_a_wide_table_scrolls_sideways(
    visitor_factory: Any, live: LiveRegion
) -> None:
    person = _subject(live)
    sam = _client(live, "Sam Caseworker", "caseworker")
    try:
        assert send_query(sam, query_form_of(person)).status_code == 303
    finally:
        sam.close()
    v: Visitor = visitor_factory()
    page = v.page
    v.sign_in("Iris Governance", "ig_officer")
    page.set_viewport_size({"width": 320, "height": 640})

    def report() -> None:
        v.go("/web/ig/subject-access")
        page.get_by_label("Kind of identifier").select_option("nhs_number")
        page.get_by_label("Identifier", exact=True).fill(person["nhs_number"])
        page.get_by_label("Identifier", exact=True).press("Enter")
        page.wait_for_load_state()

    for name, open_page in (
        ("audit search", lambda: v.go("/web/ig/audit")),
        ("subject access report", report),
    ):
        open_page()
        widths = page.evaluate(_WIDTHS)
        assert widths["page"] <= 320, f"the {name} page scrolls sideways: {widths}"
        assert max(widths["boxes"]) > 0, f"the {name}'s table fits: nothing was tested"
        lines = page.evaluate(_TIME_LINES)
        assert lines, f"the {name} shows no time"
        assert max(lines) <= 2, f"a time in the {name} is squeezed onto lines {lines}"
        v.assert_accessible(f"50-{name.replace(' ', '-')}-320px")

        wide = page.locator(".table-scroll").first
        for _ in range(40):
            if page.evaluate("() => document.activeElement.matches('.table-scroll')"):
                break
            page.keyboard.press("Tab")
        assert wide.evaluate("box => box === document.activeElement"), "Tab reaches the table"
        assert wide.evaluate("box => getComputedStyle(box).outlineStyle") != "none"
        page.keyboard.press("ArrowRight")
        page.wait_for_function("() => document.activeElement.scrollLeft > 0")

    # The other pages of wide content: tables hidden in a closed "as a table", long digests.
    for path in ("/web/ig/audit/1", "/web/ig/integrity", "/web/ig/anomalies", "/web/ig/activity"):
        v.go(path)
        widths = page.evaluate(_WIDTHS)
        assert widths["page"] <= 320, f"{path} scrolls sideways: {widths}"


def test_at_320_pixels_a_facts_time_on_the_result_page_breaks_only_between_day_and_hour(
    visitor_factory: Any, live: LiveRegion
) -> None:
    v: Visitor = visitor_factory()
    v.sign_in("Sam Caseworker", "caseworker")
    v.page.set_viewport_size({"width": 320, "height": 640})
    # Not the other tests' people: one whose consent they withdrew is released nothing.
    fill_query(v, [p for p in known_to(live.region.truth, 4) if p.get("nhs_number")][6])
    # Each fact's time, without the "(3 days ago)" after it.
    lines = v.page.evaluate(
        r"""() => [...document.querySelectorAll('.table-scroll td')]
        .filter(cell => /^\d{2} \w{3} \d{4} \d{2}:\d{2} UTC \(/.test(cell.textContent.trim()))
        .map(cell => {
            const range = document.createRange();
            range.setStart(cell, 0);
            range.setEndBefore(cell.querySelector('.meta'));
            return new Set([...range.getClientRects()].map(line => Math.round(line.top))).size;
        })"""
    )
    assert lines, "the result shows no fact's time"
    assert max(lines) <= 2, f"a fact's time is squeezed onto lines {lines}"


_NEXT_FRAME = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"
_FOCUSED_BOX = """() => {
    const box = document.activeElement.closest('.table-scroll');
    return box === document.activeElement ? box.getAttribute('aria-labelledby') : null;
}"""


def _boxes_tab_reaches(page: Any) -> list[str]:
    """The tables' boxes Tab stops on, from the top of the page to its end, named by their
    captions' ids."""
    page.evaluate(_NEXT_FRAME)  # what a new width changes is seen after a frame
    page.evaluate("() => document.activeElement.blur()")
    reached = []
    for _ in range(400):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement === document.body"):
            return reached  # past the last stop, out of the page
        box = page.evaluate(_FOCUSED_BOX)
        if box is not None:
            reached.append(box)
    raise AssertionError("Tab never reached the end of the page")


def test_tab_stops_on_a_tables_box_only_while_the_table_is_wider_than_it(
    visitor_factory: Any, live: LiveRegion
) -> None:
    v: Visitor = visitor_factory()
    page = v.page
    v.sign_in("Sam Caseworker", "caseworker")
    person = _subject(live)
    fill_query(v, person)  # the answer is linked from the list while the session holds it
    page.set_viewport_size({"width": 1280, "height": 900})
    v.go("/web/home")
    assert page.locator("#recent-caption").count() == 1, "the query is listed"

    assert _boxes_tab_reaches(page) == [], "at 1280 pixels the table fits: no Tab stop"
    page.set_viewport_size({"width": 320, "height": 640})
    assert _boxes_tab_reaches(page) == ["recent-caption"], "at 320 it scrolls: Tab reaches it"
    page.set_viewport_size({"width": 1280, "height": 900})
    assert _boxes_tab_reaches(page) == [], "wide again, nothing to scroll"

    v.sign_in("Iris Governance", "ig_officer")
    v.go("/web/ig/subject-access")
    page.get_by_label("Kind of identifier").select_option("nhs_number")
    page.get_by_label("Identifier", exact=True).fill(person["nhs_number"])
    page.get_by_label("Identifier", exact=True).press("Enter")
    page.wait_for_load_state()
    page.set_viewport_size({"width": 320, "height": 640})
    assert _boxes_tab_reaches(page) == ["accesses-caption"], "two columns fit; nine scroll"

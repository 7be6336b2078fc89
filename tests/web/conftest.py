"""Fixtures of the browser tests: the live demo region, Debian's Chromium, axe-core."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.web.live_kit import LiveRegion, live_region

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / ".venv" / "cache" / "axe-core" / "axe.min.js"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where every page's screenshot goes: test-artifacts/screenshots/ (gitignored)."""
    folder = ROOT / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run scripts/bootstrap (it fetches axe-core with npm)")
    return AXE.read_text()


# Package scope: Playwright's synchronous API keeps an event loop registered as running in
# this thread while the browser is open, so it must be closed before any other package's
# asynchronous tests start (whatever order the packages run in).
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            "/usr/bin/chromium is missing: run scripts/bootstrap as root "
            "(or apt-get install chromium)"
        )
    # Debian's Chromium, never a browser Playwright would download.
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegion]:
    with live_region(tmp_path_factory.mktemp("web-region")) as running:
        yield running


class Visitor:
    """One person's browser session: signs in, visits pages, checks and photographs them."""

    def __init__(self, page: Page, live: LiveRegion, shots: Path, axe: str) -> None:
        self.page = page
        self.live = live
        self.shots = shots
        self.axe = axe
        self.checked: list[str] = []

    def go(self, path: str) -> Any:
        return self.page.goto(self.live.url + path)

    def sign_in(
        self, name: str, role: str, agency: str = "council", job: str = "social_worker"
    ) -> None:
        self.go("/web/sign-in")
        self.page.get_by_label("Your name").fill(name)
        label = "Information governance officer" if role == "ig_officer" else "Caseworker"
        self.page.get_by_role("radio", name=label).check()
        self.page.get_by_label("Your agency").select_option(agency)
        self.page.get_by_label("Your job (caseworkers)").select_option(
            job if role == "caseworker" else ""
        )
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state()

    def check(self, shot: str) -> list[dict[str, Any]]:
        """Screenshot the page and run axe-core on it; returns serious/critical violations."""
        self.page.screenshot(path=str(self.shots / f"{shot}.png"), full_page=True)
        self.page.add_script_tag(content=self.axe)
        result = self.page.evaluate(
            """async () => {
                const r = await axe.run(document, {runOnly: {type: 'tag', values:
                  ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}});
                return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                  nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
            }"""
        )
        self.checked.append(shot)
        return [v for v in result if v["impact"] in ("serious", "critical")]

    def assert_accessible(self, shot: str) -> None:
        violations = self.check(shot)
        assert violations == [], f"axe-core on {shot}: {violations}"


@pytest.fixture
def visitor_factory(
    browser: Browser, live: LiveRegion, screenshots: Path, axe_source: str
) -> Iterator[Any]:
    contexts = []

    def make() -> Visitor:
        # bypass_csp lets the test inject axe-core; the pages themselves allow no inline script.
        context = browser.new_context(viewport={"width": 1200, "height": 900}, bypass_csp=True)
        contexts.append(context)
        return Visitor(context.new_page(), live, screenshots, axe_source)

    yield make
    for context in contexts:
        context.close()


def query_id_of(url: str) -> str:
    found = re.search(r"/web/queries/([0-9a-f]{32})", url)
    assert found, f"not a result page: {url}"
    return found.group(1)


def form_token(page: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


def error_beside(page: httpx.Response, name: str) -> str:
    """The message shown beside the input called ``name``."""
    found = re.search(rf'id="{name}-error"><span[^>]*>Error:</span> ([^<]+)</p>', page.text)
    assert found is not None, f"no error beside {name}: {page.status_code} {page.text[:2000]}"
    return html.unescape(found.group(1))


def signed_in(
    live: LiveRegion, name: str, role: str, *, agency: str = "council", job: str = "social_worker"
) -> httpx.Client:
    """A client signed in through the sign-in form, as a browser would be (close it)."""
    client = httpx.Client(base_url=live.url, timeout=60)
    token = form_token(client.get("/web/sign-in").text)
    signed = client.post(
        "/web/sign-in",
        data={
            "csrf": token,
            "name": name,
            "role": role,
            "agency": agency,
            "job_role": job if role == "caseworker" else "",
        },
    )
    assert signed.status_code == 303, signed.text
    return client


@pytest.fixture
def caller_factory(live: LiveRegion) -> Iterator[Callable[..., httpx.Client]]:
    """Signed-in people who send the pages' forms as a browser would, without one: for
    what a form does with the values sent, where nothing needs drawing."""
    clients: list[httpx.Client] = []

    def make(
        name: str = "Sam Caseworker",
        role: str = "caseworker",
        agency: str = "council",
        job: str = "social_worker",
    ) -> httpx.Client:
        client = signed_in(live, name, role, agency=agency, job=job)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()

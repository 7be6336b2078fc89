"""The API documentation page in a real browser: drawn from the broker's own files, under
the page's own policy, with every other host out of reach (as inside an agency's network).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, ConsoleMessage, Route

from tests.web.live_kit import LiveRegion


def test_the_api_docs_work_with_no_outside_host_and_no_refused_script(
    browser: Browser, live: LiveRegion, screenshots: Path
) -> None:
    # The page's policy is enforced: no bypass_csp here.
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    here = urlsplit(live.url).netloc
    outside: list[str] = []

    def only_here(route: Route) -> None:
        if urlsplit(route.request.url).netloc == here:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_here)
    page = context.new_page()
    problems: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    page.on("console", note)
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        page.goto(live.url + "/docs")
        page.get_by_role("heading", name="Junction broker").wait_for()
        # "Try it out" calls the broker's own API from the page.
        health = page.locator(".opblock").filter(has_text="/health").first
        health.locator(".opblock-summary").click()
        health.get_by_role("button", name="Try it out").click()
        health.get_by_role("button", name="Execute").click()
        health.locator(".live-responses-table tbody .response-col_status").first.wait_for()
        page.screenshot(path=str(screenshots / "api-docs.png"), full_page=False)
        status = health.locator(
            ".live-responses-table tbody .response-col_status"
        ).first.inner_text()
        operations = page.locator(".opblock-summary-path").all_inner_texts()
    finally:
        context.close()
    assert outside == []
    assert problems == []
    assert status.strip() == "200"
    assert "/v1/family-queries" in operations

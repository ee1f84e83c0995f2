"""DRF's browsable API in a real browser, under the site's Content-Security-Policy (no inline style or script).

A screenshot of each page is kept in test-artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.browser import chat_page_as_member

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

# The page's own view of its layout: bootstrap's navbar colour, the Filters button's float (DRF sets it in a
# style attribute, which the CSP blocks; browsable_api.css sets it), and where each breadcrumb leads.
LAYOUT = """() => ({
  navbar: getComputedStyle(document.querySelector(".navbar")).backgroundColor,
  body: getComputedStyle(document.body).backgroundColor,
  filters: document.querySelector("[data-target='#filtersModal']")?.computedStyleMap().get("float").value,
  crumbs: [...document.querySelectorAll(".breadcrumb a")].map((a) => a.href),
})"""


@pytest.mark.parametrize("path", ["/api/v1/", "/api/v1/voices/"])
def test_browsable_api_is_styled_and_breaks_no_csp_rule_in_chromium(daphne_server, world_a, settings, path):
    with chat_page_as_member(daphne_server, world_a.owner, settings, path=path) as browsable:
        page = browsable.page
        page.wait_for_load_state("networkidle")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"browsable{path.rstrip('/').replace('/', '-')}.png"), full_page=True)
        layout = page.evaluate(LAYOUT)
        crumb_statuses = {url: page.request.get(url).status for url in layout["crumbs"]}
    assert browsable.errors == []  # CSP violations are reported on the console
    assert layout["navbar"] != layout["body"]  # bootstrap's stylesheet applied
    assert layout["filters"] == ("right" if path.endswith("voices/") else None)
    assert crumb_statuses and set(crumb_statuses.values()) == {200}, crumb_statuses

"""Dark mode: the pages follow the system's colour scheme, and the header toggle overrides it and is remembered."""

from __future__ import annotations

import pytest

from tests.browser.conftest import log_in

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect

pytestmark = [pytest.mark.root, pytest.mark.slow]

BACKGROUND = "getComputedStyle(document.documentElement).backgroundColor"  # Pico paints <html>


def brightness(css_color: str) -> int:
    r, g, b = (int(v) for v in css_color[css_color.index("(") + 1:css_color.index(")")].split(",")[:3])
    return r + g + b


def test_the_system_scheme_is_followed_and_the_toggle_overrides_it_across_pages(stack, page):
    page.emulate_media(color_scheme="light")
    log_in(page, "olga")
    assert brightness(page.evaluate(BACKGROUND)) > 600
    page.emulate_media(color_scheme="dark")
    assert brightness(page.evaluate(BACKGROUND)) < 150

    toggle = page.get_by_role("button", name="Dark mode")
    # The button learns of the system's change from a media-query event, a moment after it: poll.
    expect(toggle).to_have_attribute("aria-pressed", "true")
    toggle.press("Enter")  # keyboard operable
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    expect(toggle).to_have_attribute("aria-pressed", "false")
    assert brightness(page.evaluate(BACKGROUND)) > 600

    page.goto("/containers/")  # the choice is remembered, and applied before the page paints
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    page.get_by_role("button", name="Dark mode").click()
    page.reload()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.emulate_media(color_scheme="light")
    assert brightness(page.evaluate(BACKGROUND)) < 150
    page.evaluate("localStorage.removeItem('dockweb-theme')")

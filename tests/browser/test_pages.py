"""The HTML pages in Chromium: listing, search, paging, escaping, keyboard and small screens."""

from pathlib import Path

import pytest
from playwright.sync_api import Page

from app.crud.crud_recipe import SEED_RECIPES
from tests.browser.conftest import EXTRA_RECIPES, SCRIPT_LABEL, Tab

pytestmark = pytest.mark.browser

SEEDED = [label for label, _, _ in SEED_RECIPES]
NEWEST_FIRST = [*EXTRA_RECIPES[::-1], SCRIPT_LABEL, *SEEDED[::-1]]
PAGE_SIZE = 20


def _labels(page: Page) -> list[str]:
    return page.locator(".entry h2 a").all_inner_texts()


def test_index_lists_the_newest_recipes(tab: Tab, artifacts: Path) -> None:
    page = tab.page
    page.goto("/")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("heading", level=1).inner_text() == "Newest recipes"
    assert _labels(page) == NEWEST_FIRST[:PAGE_SIZE]
    assert "Pad Thai" in _labels(page)
    assert page.get_by_role("link", name="API docs").get_attribute("href") == "/docs"
    assert page.get_by_role("link", name="ReDoc").get_attribute("href") == "/redoc"
    page.screenshot(path=artifacts / "index.png")
    tab.assert_clean()


def test_search_narrows_the_list(tab: Tab) -> None:
    page = tab.page
    page.goto("/")
    page.get_by_label("Search recipes").fill("chicken")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/?q=chicken")
    assert _labels(page) == ["Chicken Paprikash", "Chicken Vesuvio"]
    assert page.get_by_label("Search recipes").input_value() == "chicken"
    tab.assert_clean()


def test_next_page_shows_the_older_recipes(tab: Tab) -> None:
    page = tab.page
    page.goto("/")
    page.get_by_role("link", name="Next page").click()
    page.wait_for_url("**/?cursor=*")
    assert _labels(page) == NEWEST_FIRST[PAGE_SIZE:]
    assert _labels(page) == ["Chicken Paprikash", "Chicken Vesuvio"]
    assert page.get_by_role("link", name="Next page").count() == 0
    page.get_by_role("link", name="First page").click()
    assert _labels(page) == NEWEST_FIRST[:PAGE_SIZE]
    tab.assert_clean()


def test_a_script_label_is_shown_as_text(tab: Tab) -> None:
    page = tab.page
    page.goto("/")
    link = page.locator(".entry h2 a").nth(NEWEST_FIRST.index(SCRIPT_LABEL))
    assert link.inner_text() == SCRIPT_LABEL
    assert page.locator("script").count() == 0
    link.click()
    assert page.get_by_role("heading", level=1).inner_text() == SCRIPT_LABEL
    assert page.title().startswith(SCRIPT_LABEL)
    assert page.locator("script").count() == 0
    tab.assert_clean()


def test_keyboard_reaches_the_search_box_with_a_visible_focus(tab: Tab) -> None:
    page = tab.page
    page.goto("/")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to content"
    for _ in range(10):
        if page.evaluate("document.activeElement.id") == "q":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "q"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")
    page.keyboard.type("pad")
    page.keyboard.press("Enter")
    page.wait_for_url("**/?q=pad")
    assert _labels(page) == ["Pad Thai"]
    tab.assert_clean()


def test_a_narrow_screen_needs_no_sideways_scrolling(tab: Tab) -> None:
    page = tab.page
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto("/")
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1]
    assert page.get_by_label("Search recipes").is_visible()
    tab.assert_clean()

"""Headless Chromium clicks "Log in with ..." on the HTML page, signs in at the real provider, and
finishes on the page: the HttpOnly cookie carries the code to the exchange."""

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext

from tests.browser.conftest import chromium_context
from tests.sso.conftest import Stack

pytestmark = pytest.mark.sso


@pytest.fixture
def context(stack: Stack) -> Iterator[BrowserContext]:
    with chromium_context(stack.base_url) as browser_context:
        yield browser_context


def test_log_in_with_the_provider_from_the_page(context: BrowserContext, stack: Stack) -> None:
    page = context.new_page()
    page.goto("/")
    page.get_by_role("link", name="Log in with Local IdP").click()
    page.wait_for_url(f"{stack.provider.issuer}/interaction/**")
    page.fill("input[name=login]", "browser-cook")
    page.fill("input[name=password]", "any password")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{stack.base_url}/?sso=done#sso_code=*")
    page.get_by_role("button", name="Finish logging in").click()
    page.wait_for_url(f"{stack.base_url}/api/v1/auth/sso/exchange")
    tokens = json.loads(page.locator("body").inner_text())
    me = page.request.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status == 200
    assert me.json()["email"] == "browser-cook@example.com"
    # The cookie was spent: finishing again is refused.
    again = page.request.post("/api/v1/auth/sso/exchange")
    assert again.status == 400

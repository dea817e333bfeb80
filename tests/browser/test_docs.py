"""Swagger UI and ReDoc in Chromium: every operation shown, Authorize and Try it out, offline."""

from pathlib import Path
from typing import Any

import httpx2
import pytest

from app.core.config import settings
from tests.browser.conftest import Tab

pytestmark = pytest.mark.browser

REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
def spec(base_url: str) -> dict[str, Any]:
    document: dict[str, Any] = httpx2.get(f"{base_url}/openapi.json", timeout=10).json()
    return document


def _operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (operation["tags"][0], operation["operationId"])
        for item in spec["paths"].values()
        for operation in item.values()
    ]


def test_swagger_ui_shows_every_tag_and_operation(
    tab: Tab, spec: dict[str, Any], artifacts: Path
) -> None:
    page = tab.page
    page.goto("/docs")
    page.locator(".swagger-ui .info .title").wait_for()
    assert spec["info"]["title"] in page.locator(".swagger-ui .info .title").inner_text()
    for tag in spec["tags"]:
        section = page.locator(f"#operations-tag-{tag['name']}")
        assert section.is_visible(), tag["name"]
        assert tag["description"] in section.inner_text()
    operations = _operations(spec)
    assert len(operations) >= 14
    for tag, operation_id in operations:
        assert page.locator(f"#operations-{tag}-{operation_id}").is_visible(), operation_id
    page.screenshot(path=artifacts / "docs.png")
    tab.assert_clean()


def test_swagger_ui_authorize_then_try_it_out_on_me(tab: Tab) -> None:
    page = tab.page
    page.goto("/docs")
    page.locator(".swagger-ui .auth-wrapper .authorize").click()
    dialog = page.locator(".dialog-ux .modal-ux")
    dialog.locator("#oauth_username").fill(settings.FIRST_SUPERUSER_EMAIL)
    dialog.locator("#oauth_password").fill(settings.FIRST_SUPERUSER_PASSWORD.get_secret_value())
    dialog.locator(".auth-btn-wrapper .authorize").click()
    # Once authorized, the dialog's button turns into "Logout", labelled for screen readers.
    dialog.get_by_role("button", name="Remove authorization").wait_for()
    dialog.locator(".btn-done").click()

    operation = page.locator("#operations-auth-auth_read_me")
    operation.locator(".opblock-summary").first.click()
    operation.locator(".try-out__btn").click()
    operation.locator(".execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status")
    status.wait_for()
    assert status.inner_text().strip() == "200"
    body = operation.locator(".live-responses-table .response-col_description .microlight")
    body_text = body.first.inner_text()
    assert settings.FIRST_SUPERUSER_EMAIL in body_text
    assert '"is_superuser": true' in body_text
    tab.assert_clean()


def test_redoc_renders_every_operation(tab: Tab, spec: dict[str, Any], artifacts: Path) -> None:
    page = tab.page
    page.goto("/redoc")
    page.locator(".api-info h1").wait_for()
    assert spec["info"]["title"] in page.locator(".api-info h1").inner_text()
    for tag in spec["tags"]:
        assert page.locator(f'[data-section-id="tag/{tag["name"]}"]').count() == 1, tag["name"]
    for _, operation_id in _operations(spec):
        section = page.locator(f'[data-section-id="operation/{operation_id}"]')
        assert section.count() == 1, operation_id
    page.screenshot(path=artifacts / "redoc.png")
    # ReDoc's bundle hard-codes a third-party logo; the docs CSP stops it before any request.
    tab.assert_clean(expected_errors=(f"Loading the image '{REDOC_LOGO}' violates",))

"""A real server on a fresh database, seeded through the API, and Debian's Chromium, offline."""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    Route,
    sync_playwright,
)

from app.core.config import settings
from tests.utils.db import create_database, drop_database, new_database_url
from tests.utils.server import run_sh

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Headless, and nothing that phones home: no QUIC, sync, component or background updates.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Fifteen more than the seeded six, so the page has a second page; none says chicken or pad.
EXTRA_RECIPES = [
    "Lemon Tart", "Mushroom Risotto", "Beef Stew", "Falafel Wraps", "Miso Ramen",
    "Green Curry", "Banana Bread", "French Onion Soup", "Caesar Salad", "Lamb Tagine",
    "Buttermilk Pancakes", "Gazpacho", "Fish Tacos", "Spaghetti Carbonara", "Ratatouille",
]  # fmt: skip
SCRIPT_LABEL = '<script>alert("page")</script>'
TIMEOUT_MS = 30_000


@pytest.fixture(scope="session")
def base_url() -> Iterator[str]:
    """run.sh on a database of its own, with the seeded six plus 16 recipes made through the API."""
    url = new_database_url(os.environ.get("TEST_DATABASE_URL"))
    create_database(url)
    try:
        with run_sh(url) as service:
            _add_recipes(service.base_url)
            yield service.base_url
    finally:
        drop_database(url)


def _add_recipes(server: str) -> None:
    with httpx2.Client(base_url=server, timeout=10) as http:
        login = http.post(
            "/api/v1/auth/login",
            data={
                "username": settings.FIRST_SUPERUSER_EMAIL,
                "password": settings.FIRST_SUPERUSER_PASSWORD.get_secret_value(),
            },
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        # The script label goes in first, so the README's screenshot of the top shows recipes.
        for n, label in enumerate([SCRIPT_LABEL, *EXTRA_RECIPES]):
            body = {"label": label, "source": "Test Kitchen", "url": f"https://example.com/{n}"}
            assert http.post("/api/v1/recipes", json=body, headers=headers).status_code == 201


@contextmanager
def chromium_context(base_url: str, **options: Any) -> Iterator[BrowserContext]:
    """Debian's Chromium, headless and offline, on a throwaway profile."""
    with (
        tempfile.TemporaryDirectory(prefix="recipe-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        browser_context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            base_url=base_url,
            **options,
        )
        browser_context.set_default_timeout(TIMEOUT_MS)
        try:
            yield browser_context
        finally:
            browser_context.close()


@pytest.fixture(scope="session")
def context(base_url: str) -> Iterator[BrowserContext]:
    with chromium_context(base_url, viewport={"width": 1280, "height": 800}) as browser_context:
        yield browser_context


@dataclass
class Tab:
    """A page and what it did besides rendering: console errors, dialogs, blocked requests."""

    page: Page
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def assert_clean(self, expected_errors: tuple[str, ...] = ()) -> None:
        assert self.blocked == [], "requests off this server"
        errors = [e for e in self.errors if not any(e.startswith(x) for x in expected_errors)]
        assert errors == [], "console errors (a CSP violation is one)"
        assert self.dialogs == []


@pytest.fixture
def tab(context: BrowserContext, base_url: str) -> Iterator[Tab]:
    page = context.new_page()
    tab = Tab(page)
    server = urlsplit(base_url).netloc

    def guard(route: Route) -> None:
        # Only this server is reachable; anything else is recorded and refused.
        if urlsplit(route.request.url).netloc == server:
            route.continue_()
        else:
            tab.blocked.append(route.request.url)
            route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            tab.errors.append(message.text)

    page.route("**/*", guard)
    page.on("console", on_console)
    page.on("pageerror", lambda error: tab.errors.append(str(error)))

    def on_dialog(dialog: Dialog) -> None:
        tab.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        yield tab
    finally:
        page.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS

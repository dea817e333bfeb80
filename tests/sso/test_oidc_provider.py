"""The whole flow against a real, certified OpenID Provider over HTTP: this service's authorize,
the provider's login and consent forms, the callback, the exchange, then /auth/me."""

import re
from html import unescape
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2
import pytest

from tests.sso.conftest import PROVIDER_NAME, Stack

pytestmark = pytest.mark.sso

SSO = f"/api/v1/auth/sso/{PROVIDER_NAME}"
FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')


def _browser() -> httpx2.Client:
    """A cookie jar that follows no redirect by itself, so each hop can be checked."""
    return httpx2.Client(timeout=10, follow_redirects=False)


def _submit(browser: httpx2.Client, page: httpx2.Response, **fields: str) -> httpx2.Response:
    match = FORM_ACTION.search(page.text)
    assert match, page.text
    return browser.post(urljoin(str(page.url), unescape(match.group(1))), data=fields)


def _sign_in(browser: httpx2.Client, stack: Stack, login: str) -> httpx2.Response:
    """From this service's authorize to its callback's answer, filling the provider's forms."""
    response = browser.get(f"{stack.base_url}{SSO}/authorize")
    assert response.status_code == 302
    assert response.headers["location"].startswith(stack.provider.issuer)
    while True:
        if response.status_code in (302, 303):
            location = urljoin(str(response.url), response.headers["location"])
            if urlsplit(location).path.endswith(f"{SSO}/callback"):
                return browser.get(location)
            response = browser.get(location)
        elif 'name="prompt" value="login"' in response.text:
            response = _submit(browser, response, prompt="login", login=login, password="any")
        elif 'name="prompt" value="consent"' in response.text:
            response = _submit(browser, response, prompt="consent")
        else:
            pytest.fail(f"unexpected page at {response.url}: {response.status_code}")


def _code(callback: httpx2.Response) -> str:
    assert callback.status_code == 302, callback.text
    return parse_qs(urlsplit(callback.headers["location"]).fragment)["sso_code"][0]


def test_log_in_with_a_real_provider_end_to_end(stack: Stack) -> None:
    with _browser() as browser:
        callback = _sign_in(browser, stack, "real-cook")
        exchanged = browser.post(
            f"{stack.base_url}/api/v1/auth/sso/exchange", json={"code": _code(callback)}
        )
        assert exchanged.status_code == 200, exchanged.text
        headers = {"Authorization": f"Bearer {exchanged.json()['access_token']}"}
        me = browser.get(f"{stack.base_url}/api/v1/auth/me", headers=headers)
        assert me.status_code == 200
        assert me.json()["email"] == "real-cook@example.com"
        assert (me.json()["first_name"], me.json()["surname"]) == ("Real", "Provider")
        identities = browser.get(f"{stack.base_url}/api/v1/auth/sso/identities", headers=headers)
        assert [i["provider"] for i in identities.json()] == [PROVIDER_NAME]
        # The provider remembers the login: a second sign-in finds the same user.
        again = _sign_in(browser, stack, "real-cook")
        second = browser.post(
            f"{stack.base_url}/api/v1/auth/sso/exchange", json={"code": _code(again)}
        )
        assert second.status_code == 200


def test_replayed_callback_is_refused_by_the_provider(stack: Stack) -> None:
    with _browser() as browser:
        callback = _sign_in(browser, stack, "replayer")
        assert callback.status_code == 302
        # The browser's state as the callback carried it, put back after the callback spent it.
        sent = dict(part.split("=", 1) for part in callback.request.headers["cookie"].split("; "))
        browser.cookies.set("sso_flow", sent["sso_flow"])
        replay = browser.get(str(callback.request.url))
        assert replay.status_code == 400
        assert "refused the authorization code" in replay.json()["detail"]


def test_callback_from_another_browser_is_refused(stack: Stack) -> None:
    with _browser() as browser:
        callback = _sign_in(browser, stack, "victim")
        assert callback.status_code == 302
    with _browser() as other:
        # Same callback URL, but none of the first browser's state.
        response = other.get(str(callback.request.url))
        assert response.status_code == 400
        assert "not from this browser" in response.json()["detail"]


def test_unverified_email_gets_its_own_account_unless_taken(stack: Stack) -> None:
    with _browser() as browser:
        signup = browser.post(
            f"{stack.base_url}/api/v1/auth/signup",
            json={
                "email": "unverified@example.com",
                "password": "a-long-password-1",
                "first_name": "A",
                "surname": "B",
            },
        )
        assert signup.status_code == 201, signup.text
        callback = _sign_in(browser, stack, "unverified")
        assert callback.status_code == 409
        assert "has not verified the email" in callback.json()["detail"]

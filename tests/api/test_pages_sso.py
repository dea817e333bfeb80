"""The page's single sign-on links and its way to finish logging in (pages and SSO slices)."""

import httpx2

from tests.utils.sso import SSO, FakeProvider, callback


async def test_page_offers_log_in_links_and_a_way_to_finish(
    client: httpx2.AsyncClient, idp: FakeProvider
) -> None:
    page = await client.get("/")
    assert f'href="{SSO}/test/authorize">Log in with Test IdP</a>' in page.text
    assert "off/authorize" not in page.text  # disabled
    assert "Finish logging in" not in page.text
    response = await callback(client, idp)
    back = await client.get(response.headers["location"])
    assert f'action="{SSO}/exchange" method="post"' in back.text
    # What the form sends: an empty form body, the code in its cookie.
    finished = await client.post(
        f"{SSO}/exchange", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert finished.status_code == 200, finished.text
    assert "refresh_token" in finished.json()


async def test_page_without_providers_has_no_log_in_links(client: httpx2.AsyncClient) -> None:
    assert "Log in with" not in (await client.get("/")).text

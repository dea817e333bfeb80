"""The middleware stack: request ids, timing, security and cache headers, gzip, body limit, 500s."""

import gzip
import logging
from collections.abc import AsyncIterator

import httpx2
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.cache_policy import public_cache
from app.db.session import write_intent
from app.main import create_app
from app.models import User
from tests.utils.recipe import create_random_recipe
from tests.utils.utils import Configure, auth_headers, serve_session

RECIPES = "/api/v1/recipes"


async def _client_for(app: FastAPI, db: AsyncSession) -> httpx2.AsyncClient:
    serve_session(app, db)
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://test")


async def test_request_id_is_generated_and_echoed(client: httpx2.AsyncClient) -> None:
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123.4:5"})
    assert echoed.headers["x-request-id"] == "abc-123.4:5"


@pytest.mark.parametrize("bad", ["has spaces", "x" * 129, "semi;colon", "<script>"])
async def test_invalid_request_id_is_replaced(client: httpx2.AsyncClient, bad: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": bad})
    assert response.headers["x-request-id"] != bad
    assert len(response.headers["x-request-id"]) == 32


@pytest.mark.parametrize("path", ["/healthz", "/nope", f"{RECIPES}/0", "/"])
async def test_every_response_has_process_time_and_security_headers(
    client: httpx2.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert float(response.headers["x-process-time"]) >= 0
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "strict-transport-security" not in response.headers


async def test_csp_is_strict_for_json_and_the_page_and_relaxed_for_docs(
    client: httpx2.AsyncClient,
) -> None:
    api = (await client.get("/healthz")).headers["content-security-policy"]
    page = (await client.get("/")).headers["content-security-policy"]
    docs = (await client.get("/docs")).headers["content-security-policy"]
    assert api.startswith("default-src 'none'")
    assert page.startswith("default-src 'none'")
    assert "script-src" not in page
    # The offline docs need their own bundles, the inline start-up script and ReDoc's worker.
    assert docs == (
        "default-src 'none'; script-src 'self' 'unsafe-inline'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src blob:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    assert "http" not in docs
    redoc = (await client.get("/redoc")).headers["content-security-policy"]
    assert redoc == docs


@pytest.mark.parametrize(("environment", "hsts"), [("local", False), ("production", True)])
async def test_hsts_only_in_staging_and_production(
    configure: Configure, environment: str, hsts: bool
) -> None:
    configure(
        ENVIRONMENT=environment,
        ALLOWED_HOSTS="test",
        SECRET_KEY="s" * 16 + "Zq8Xw2Lp5Rt7Vy9B",
        FIRST_SUPERUSER_PASSWORD="a-real-admin-password",
    )
    transport = httpx2.ASGITransport(app=create_app())
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as c:
        response = await c.get("/healthz")
    assert ("strict-transport-security" in response.headers) is hsts


async def test_large_responses_are_gzipped(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    for _ in range(12):
        await create_random_recipe(db, submitter_id=normal_user.id)
    response = await client.get(RECIPES, params={"limit": 12}, headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    small = await client.get("/healthz", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers
    # The client decodes transparently; the payload is intact.
    assert len(response.json()["items"]) == 12
    assert gzip.compress(response.content)


async def test_body_over_limit_is_413(
    configure: Configure, db: AsyncSession, normal_user: User
) -> None:
    configure(MAX_REQUEST_BODY_BYTES=64)
    app = create_app()
    async with await _client_for(app, db) as c:
        headers = auth_headers(normal_user.id) | {"content-type": "application/json"}
        declared = await c.post(RECIPES, content=b"x" * 65, headers=headers)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 10

        chunked = await c.post(RECIPES, content=chunks(), headers=headers)
        small = await c.post(RECIPES, content=b"{}", headers=headers)
    assert declared.status_code == 413
    assert declared.json() == {"detail": "Request body larger than 64 bytes"}
    assert chunked.status_code == 413
    assert chunked.json() == {"detail": "Request body larger than 64 bytes"}
    assert small.status_code == 422


async def test_unhandled_error_is_500_with_request_id_and_logged_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app()

    async def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as c:
        response = await c.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body == {"detail": "Internal Server Error", "request_id": body["request_id"]}
    assert body["request_id"] == response.headers["x-request-id"]
    assert "secret internals" not in response.text
    logged = [r for r in caplog.records if r.exc_info and r.name == "app.request"]
    assert logged
    assert "RuntimeError: secret internals" in logging.Formatter().formatException(
        logged[0].exc_info  # type: ignore[arg-type]
    )


async def test_recipe_read_has_etag_and_honours_if_none_match(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    first = await client.get(f"{RECIPES}/{recipe.id}")
    etag = first.headers["etag"]
    assert first.headers["cache-control"].startswith("public, max-age=")
    again = await client.get(f"{RECIPES}/{recipe.id}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    await client.patch(
        f"{RECIPES}/{recipe.id}", json={"label": "Changed"}, headers=auth_headers(normal_user.id)
    )
    changed = await client.get(f"{RECIPES}/{recipe.id}", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


@pytest.mark.parametrize("path", [RECIPES, f"{RECIPES}/search?keyword=a"])
async def test_list_and_search_have_etags(client: httpx2.AsyncClient, path: str) -> None:
    first = await client.get(path)
    assert first.status_code == 200
    second = await client.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert second.status_code == 304


async def test_authenticated_and_personal_reads_are_never_public(
    client: httpx2.AsyncClient, normal_user_token_headers: dict[str, str]
) -> None:
    authed = await client.get(RECIPES, headers=normal_user_token_headers)
    mine = await client.get("/api/v1/users/me/recipes", headers=normal_user_token_headers)
    missing = await client.get(f"{RECIPES}/2147483647")
    write = await client.post(RECIPES, json={}, headers=normal_user_token_headers)
    assert authed.headers["cache-control"] == "private, no-cache"
    assert mine.headers["cache-control"] == "private, no-cache"
    assert missing.headers["cache-control"] == "no-store"
    assert write.headers["cache-control"] == "no-store"


async def test_public_caching_is_declared_by_the_route_not_its_prefix(
    configure: Configure, db: AsyncSession
) -> None:
    configure(PUBLIC_CACHE_SECONDS=17)
    app = create_app()

    async def nested() -> dict[str, str]:
        return {"under": "recipes"}

    @public_cache(lambda: 5)
    async def declared() -> dict[str, str]:
        return {"elsewhere": "public"}

    app.add_api_route(f"{RECIPES}/1/reviews", nested)
    app.add_api_route("/api/v1/declared", declared)
    async with await _client_for(app, db) as c:
        undeclared = await c.get(f"{RECIPES}/1/reviews")
        chosen = await c.get("/api/v1/declared")
        recipes = await c.get(RECIPES)
    assert undeclared.status_code == 200
    assert undeclared.headers["cache-control"] == "private, no-cache"
    assert chosen.headers["cache-control"] == "public, max-age=5"
    # The recipe routes choose the setting, read per request.
    assert recipes.headers["cache-control"] == "public, max-age=17"


@pytest.mark.parametrize(
    ("method", "intent"), [("GET", False), ("HEAD", False), ("POST", True), ("DELETE", True)]
)
async def test_requests_that_may_write_carry_write_intent(method: str, intent: bool) -> None:
    app = create_app()
    seen: list[bool] = []

    async def probe() -> None:
        seen.append(write_intent.get())

    app.add_api_route("/probe", probe, methods=[method])
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as c:
        response = await c.request(method, "/probe")
    assert response.status_code == 200
    assert seen == [intent]
    assert write_intent.get() is False

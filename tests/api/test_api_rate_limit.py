"""Per-IP limits: RateLimit-* headers, 429 with Retry-After, one budget per IP (IPv6: per /64),
budgets for the page and /readyz too."""

import asyncio
import secrets
from contextlib import AsyncExitStack

import httpx2
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import LoginThrottle
from app.core.rate_limit import RateLimiter
from app.core.redis import RedisStore
from app.main import create_app
from tests.conftest import TEST_REDIS_URL
from tests.utils.utils import Configure, open_client, serve_session

RECIPES = "/api/v1/recipes"


@pytest.fixture
def three_per_minute(configure: Configure) -> None:
    configure(RATE_LIMIT_DEFAULT="3/minute")


@pytest.mark.usefixtures("three_per_minute")
async def test_api_limit_trips_with_headers(db: AsyncSession) -> None:
    async with AsyncExitStack() as stack:
        c = await open_client(stack, create_app(), db)
        allowed = [await c.get(RECIPES) for _ in range(3)]
        refused = await c.get(RECIPES)
        health = await c.get("/healthz")
    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert [r.headers["ratelimit-remaining"] for r in allowed] == ["2", "1", "0"]
    assert allowed[0].headers["ratelimit-limit"] == "3"
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Too many requests; try again later"}
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-remaining"] == "0"
    assert int(refused.headers["ratelimit-reset"]) >= 1
    # Probes stay outside the API's budget, so an orchestrator never sees a throttled app.
    assert health.status_code == 200


async def test_api_limit_off_by_setting(db: AsyncSession) -> None:
    async with AsyncExitStack() as stack:
        c = await open_client(stack, create_app(), db)
        responses = [await c.get(RECIPES) for _ in range(5)]
    assert {r.status_code for r in responses} == {200}
    assert "ratelimit-limit" not in responses[0].headers


@pytest.mark.usefixtures("three_per_minute")
async def test_two_instances_share_one_budget_in_redis(
    db: AsyncSession, redis_url: str, configure: Configure
) -> None:
    # A prefix of its own on the shared Redis; the counters expire with their window.
    configure(REDIS_URL=redis_url, REDIS_KEY_PREFIX=f"test-{secrets.token_hex(6)}:")
    async with AsyncExitStack() as stack:
        first = await open_client(stack, create_app(), db)
        second = await open_client(stack, create_app(), db)
        statuses = [
            (await first.get(RECIPES)).status_code,
            (await second.get(RECIPES)).status_code,
            (await first.get(RECIPES)).status_code,
            (await second.get(RECIPES)).status_code,
        ]
    assert statuses == [200, 200, 200, 429]


async def _status_from(app: FastAPI, host: str, method: str, path: str) -> int:
    transport = httpx2.ASGITransport(app=app, client=(host, 40000))
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as c:
        return (await c.request(method, path)).status_code


async def test_ipv6_addresses_of_one_network_share_one_budget(
    db: AsyncSession, configure: Configure
) -> None:
    configure(RATE_LIMIT_AUTH_PER_IP="20/minute")
    app = create_app()
    serve_session(app, db)
    refresh = "/api/v1/auth/refresh"
    # 25 addresses of one /64, as one host can hold: one budget of 20 between them.
    codes = [
        await _status_from(app, f"2001:db8:7:1:{n:x}::{n + 1:x}", "POST", refresh)
        for n in range(25)
    ]
    assert codes.count(429) == 5
    assert codes[:20] == [codes[0]] * 20
    assert codes[0] != 429
    # Another /64 has its own budget; an IPv4-mapped address counts as its IPv4.
    assert await _status_from(app, "2001:db8:7:2::1", "POST", refresh) != 429
    for _ in range(20):
        await _status_from(app, "::ffff:198.51.100.7", "POST", refresh)
    assert await _status_from(app, "198.51.100.7", "POST", refresh) == 429


async def test_page_and_readyz_have_a_budget(db: AsyncSession, configure: Configure) -> None:
    configure(RATE_LIMIT_DEFAULT="3/minute")
    async with AsyncExitStack() as stack:
        c = await open_client(stack, create_app(), db)
        pages = [(await c.get("/", params={"q": "soup"})).status_code for _ in range(4)]
        probes = [(await c.get("/readyz")).status_code for _ in range(4)]
        api = await c.get(RECIPES)
        health = await c.get("/healthz")
    assert pages == [200, 200, 200, 429]
    # Counted apart from the page and the API: a busy client cannot fail a readiness probe.
    assert probes == [200, 200, 200, 429]
    assert api.status_code == 200
    assert health.status_code == 200


async def test_a_login_slower_than_the_redis_budget_still_clears_its_failures() -> None:
    store = RedisStore.from_url(
        TEST_REDIS_URL, prefix=f"test-login-{secrets.token_hex(8)}:", timeout=0.2, cooldown=5.0
    )
    throttle = LoginThrottle(RateLimiter(store), "2/15minutes", None, "198.51.100.0/24")
    try:
        async with RedisStore.budget():
            await throttle.attempt("a@example.com")
            await asyncio.sleep(0.3)  # the password hash, longer than the request's budget
            await throttle.succeeded("a@example.com")
        # Another process sees the count cleared: two more attempts before a refusal.
        other = LoginThrottle(RateLimiter(store), "2/15minutes", None, "198.51.100.0/24")
        for _ in range(2):
            async with RedisStore.budget():
                await other.attempt("a@example.com")
        assert store.available
    finally:
        await store.client.delete(*[k async for k in store.client.scan_iter(f"{store.prefix}*")])
        await store.aclose()

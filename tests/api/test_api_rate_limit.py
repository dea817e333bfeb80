"""The global per-IP API limit: RateLimit-* headers, 429 with Retry-After, one budget per IP."""

import secrets
from contextlib import AsyncExitStack

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.main import create_app
from tests.utils.utils import Configure, open_client

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

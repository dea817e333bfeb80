"""Redis cache-aside for single recipes, shared by two app instances; readiness reports Redis."""

import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.redis import create_redis
from app.main import create_app
from app.models import User
from tests.utils.recipe import create_random_recipe
from tests.utils.utils import Configure, auth_headers, open_client


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own on the shared Redis, deleted afterwards."""
    prefix = f"test-{secrets.token_hex(6)}:"
    yield prefix
    client = create_redis(redis_url)
    try:
        keys = [key async for key in client.scan_iter(f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _instance(stack: AsyncExitStack, db: AsyncSession) -> httpx2.AsyncClient:
    return await open_client(stack, create_app(), db)


async def test_two_instances_never_serve_a_stale_recipe(
    configure: Configure, db: AsyncSession, normal_user: User, redis_url: str, redis_prefix: str
) -> None:
    configure(REDIS_URL=redis_url, REDIS_KEY_PREFIX=redis_prefix)
    recipe = await create_random_recipe(db, submitter_id=normal_user.id, label="Before")
    path = f"/api/v1/recipes/{recipe.id}"
    async with AsyncExitStack() as stack:
        first = await _instance(stack, db)
        second = await _instance(stack, db)
        assert (await first.get(path)).json()["label"] == "Before"
        redis = create_redis(redis_url)
        try:
            assert await redis.get(f"{redis_prefix}recipe:{recipe.id}") is not None
            patched = await second.patch(
                path, json={"label": "After"}, headers=auth_headers(normal_user.id)
            )
            assert patched.status_code == 200
            assert await redis.get(f"{redis_prefix}recipe:{recipe.id}") is None
            assert (await first.get(path)).json()["label"] == "After"
            assert (await second.get(path)).json()["label"] == "After"
            deleted = await first.delete(path, headers=auth_headers(normal_user.id))
            assert deleted.status_code == 204
            assert (await second.get(path)).status_code == 404
        finally:
            await redis.aclose()


async def test_cache_serves_hits_without_the_database(
    configure: Configure, db: AsyncSession, normal_user: User, redis_url: str, redis_prefix: str
) -> None:
    configure(REDIS_URL=redis_url, REDIS_KEY_PREFIX=redis_prefix)
    recipe = await create_random_recipe(db, submitter_id=normal_user.id, label="Cached")
    async with AsyncExitStack() as stack:
        client = await _instance(stack, db)
        await client.get(f"/api/v1/recipes/{recipe.id}")
        redis = create_redis(redis_url)
        try:
            key = f"{redis_prefix}recipe:{recipe.id}"
            cached = await redis.get(key)
            assert isinstance(cached, bytes)
            await redis.set(key, cached.replace(b"Cached", b"FromRedis"))
        finally:
            await redis.aclose()
        assert (await client.get(f"/api/v1/recipes/{recipe.id}")).json()["label"] == "FromRedis"


@pytest.mark.parametrize(
    ("reachable", "status", "state"), [(True, 200, "up"), (False, 503, "down")]
)
async def test_readyz_reports_redis(
    configure: Configure, db: AsyncSession, redis_url: str, reachable: bool, status: int, state: str
) -> None:
    url = redis_url if reachable else "redis://127.0.0.1:1/0"
    configure(REDIS_URL=url)
    async with AsyncExitStack() as stack:
        client = await _instance(stack, db)
        response = await client.get("/readyz")
    assert response.status_code == status
    assert response.json()["redis"] == state
    assert response.json()["database"] == "up"


async def test_redis_outage_degrades_to_database_reads(
    configure: Configure, db: AsyncSession, normal_user: User
) -> None:
    configure(REDIS_URL="redis://127.0.0.1:1/0")
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    async with AsyncExitStack() as stack:
        client = await _instance(stack, db)
        response = await client.get(f"/api/v1/recipes/{recipe.id}")
        patched = await client.patch(
            f"/api/v1/recipes/{recipe.id}",
            json={"label": "x"},
            headers=auth_headers(normal_user.id),
        )
    assert response.status_code == 200
    assert patched.status_code == 200

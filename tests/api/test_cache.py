"""Redis cache-aside for single recipes, shared by two app instances; a Redis failure is not an
outage: readiness reports it, requests stay prompt, limits count in memory."""

import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import redis as redis_module
from app.main import create_app
from app.models import User
from tests.utils.recipe import create_random_recipe
from tests.utils.utils import Configure, auth_headers, free_port, open_client

LOGIN = "/api/v1/auth/login"


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own on the shared Redis, deleted afterwards."""
    prefix = f"test-{secrets.token_hex(6)}:"
    yield prefix
    client = redis_module.create_redis(redis_url, timeout=1.0)
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
        redis = redis_module.create_redis(redis_url, timeout=1.0)
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
        redis = redis_module.create_redis(redis_url, timeout=1.0)
        try:
            key = f"{redis_prefix}recipe:{recipe.id}"
            cached = await redis.get(key)
            assert isinstance(cached, bytes)
            await redis.set(key, cached.replace(b"Cached", b"FromRedis"))
        finally:
            await redis.aclose()
        assert (await client.get(f"/api/v1/recipes/{recipe.id}")).json()["label"] == "FromRedis"


async def test_a_hit_sends_the_bytes_and_etag_the_read_sent(
    configure: Configure, db: AsyncSession, normal_user: User, redis_url: str, redis_prefix: str
) -> None:
    configure(REDIS_URL=redis_url, REDIS_KEY_PREFIX=redis_prefix)
    recipe = await create_random_recipe(db, submitter_id=normal_user.id, label="Same Bytes")
    async with AsyncExitStack() as stack:
        client = await _instance(stack, db)
        path = f"/api/v1/recipes/{recipe.id}"
        read, hit = await client.get(path), await client.get(path)
        redis = redis_module.create_redis(redis_url, timeout=1.0)
        try:
            stored = await redis.get(f"{redis_prefix}recipe:{recipe.id}")
        finally:
            await redis.aclose()
    assert stored == read.content == hit.content  # the second answer came from the cache
    assert hit.headers["etag"] == read.headers["etag"]
    assert hit.headers["content-type"] == read.headers["content-type"] == "application/json"
    assert hit.json() == {
        "id": recipe.id,
        "label": "Same Bytes",
        "source": recipe.source,
        "url": recipe.url,
        "submitter_id": normal_user.id,
        "created_at": read.json()["created_at"],
        "updated_at": read.json()["updated_at"],
    }


@pytest.mark.parametrize(("reachable", "state"), [(True, "up"), (False, "degraded")])
async def test_readyz_reports_redis(
    configure: Configure, db: AsyncSession, redis_url: str, reachable: bool, state: str
) -> None:
    # Redis down is not unready: 200, reported in the body (it was 503 before).
    url = redis_url if reachable else "redis://127.0.0.1:1/0"
    configure(REDIS_URL=url)
    async with AsyncExitStack() as stack:
        client = await _instance(stack, db)
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "up", "redis": state}
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


@pytest.fixture
def silent_redis_url() -> Iterator[str]:
    """A "Redis" that accepts connections (the kernel completes the handshake), reads nothing
    and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        yield f"redis://127.0.0.1:{silent.getsockname()[1]}/0"


@pytest.mark.parametrize("failure", ["down", "silent"])
async def test_redis_failure_is_not_an_outage(
    configure: Configure,
    db: AsyncSession,
    normal_user: User,
    silent_redis_url: str,
    failure: str,
) -> None:
    url = silent_redis_url if failure == "silent" else f"redis://127.0.0.1:{free_port()}/0"
    configure(
        REDIS_URL=url,
        RATE_LIMIT_DEFAULT="100/minute",
        RATE_LIMIT_LOGIN_FAILURES="2/15minutes",
    )
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    path = f"/api/v1/recipes/{recipe.id}"
    async with AsyncExitStack() as stack:
        client = await _instance(stack, db)
        started = time.perf_counter()
        first = await client.get(path)
        first_seconds = time.perf_counter() - started
        started = time.perf_counter()
        reads = [await client.get(path) for _ in range(5)]
        reads_seconds = time.perf_counter() - started
        ready = await client.get("/readyz")
        wrong = {"username": normal_user.email, "password": "not-the-password"}
        logins = [(await client.post(LOGIN, data=wrong)).status_code for _ in range(3)]
    assert {r.status_code for r in [first, *reads]} == {200}
    # The rate limit, the cache read and the cache write share one budget (0.25 s) instead of
    # waiting about a second each (3 s a read before); then the breaker skips Redis for the
    # cool-down. Bounds leave room for a loaded CI machine.
    assert first_seconds < 1.5
    assert reads_seconds < 1.0
    assert reads[-1].headers["ratelimit-remaining"] == "94"  # counted in memory meanwhile
    # Ready: the database answers; Redis is reported, not required.
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "up", "redis": "degraded"}
    # The per-account login limit counts in memory: it does not fail open.
    assert logins == [401, 401, 429]

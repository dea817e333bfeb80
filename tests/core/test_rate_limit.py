"""The rate limiter: limit parsing, the sliding window in memory and in a real Redis."""

import logging
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import RedisError

from app.core.rate_limit import (
    MemoryBackend,
    RateLimit,
    RateLimiter,
    RateLimitResult,
    RedisBackend,
    parse_limit,
)
from app.core.redis import create_redis
from tests.conftest import TEST_REDIS_URL
from tests.utils.rate_limit import FakeClock
from tests.utils.utils import free_port

# A fake unless TEST_REDIS_URL names a real server (CI's PostgreSQL leg uses the machine's
# Redis, shared with others, so every key here carries a random prefix).
REDIS_URL = TEST_REDIS_URL


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20/minute", RateLimit(20, 60)),
        ("5/15minutes", RateLimit(5, 900)),
        ("5 / 15 minutes", RateLimit(5, 900)),
        ("1/second", RateLimit(1, 1)),
        ("100/Hour", RateLimit(100, 3600)),
        ("1000/2days", RateLimit(1000, 172800)),
    ],
)
def test_parse_limit_reads_amount_and_window(text: str, expected: RateLimit) -> None:
    assert parse_limit(text) == expected


@pytest.mark.parametrize(
    "text", ["", "20", "20/", "/minute", "0/minute", "5/0minutes", "-1/minute", "5/fortnight"]
)
def test_parse_limit_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="invalid rate limit"):
        parse_limit(text)


def test_result_retry_after_is_whole_seconds_when_refused() -> None:
    assert RateLimitResult(True, 5, 4, 12.3).retry_after == 0
    assert RateLimitResult(False, 5, 0, 12.3).retry_after == 13
    assert RateLimitResult(False, 5, 0, 0.01).retry_after == 1


async def test_memory_limiter_trips_and_recovers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(MemoryBackend(clock=clock))
    results = [await limiter.hit("k", "3/minute") for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert results[3].retry_after == 60
    clock.advance(59)
    assert (await limiter.hit("k", "3/minute")).allowed is False
    clock.advance(1)
    recovered = await limiter.hit("k", "3/minute")
    assert recovered.allowed is True
    assert recovered.remaining == 2  # all three earlier hits left the window together


async def test_memory_limiter_window_slides() -> None:
    # Hits at 0 s and 30 s with 2/minute: at 61 s only the first has aged out.
    clock = FakeClock()
    limiter = RateLimiter(MemoryBackend(clock=clock))
    await limiter.hit("k", "2/minute")
    clock.advance(30)
    await limiter.hit("k", "2/minute")
    clock.advance(31)
    assert (await limiter.hit("k", "2/minute")).allowed is True
    refused = await limiter.hit("k", "2/minute")
    assert refused.allowed is False
    assert refused.retry_after == 29


async def test_memory_limiter_keys_and_reset_are_separate() -> None:
    limiter = RateLimiter(MemoryBackend(clock=FakeClock()))
    assert (await limiter.hit("a", "1/minute")).allowed is True
    assert (await limiter.hit("a", "1/minute")).allowed is False
    assert (await limiter.hit("b", "1/minute")).allowed is True
    await limiter.reset("a")
    assert (await limiter.hit("a", "1/minute")).allowed is True
    await limiter.aclose()


async def test_memory_backend_forgets_idle_keys() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    backend.SWEEP_EVERY = 3
    await backend.hit("idle", RateLimit(5, 60))
    clock.advance(61)
    await backend.hit("busy", RateLimit(5, 60))
    assert set(backend._hits) == {"idle", "busy"}
    await backend.hit("busy", RateLimit(5, 60))
    assert set(backend._hits) == {"busy"}


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix no one else uses; every key under it is deleted afterwards."""
    prefix = f"test-ratelimit-{secrets.token_hex(8)}:"
    client = create_redis(REDIS_URL)
    try:
        await client.ping()
    except RedisError as exc:
        await client.aclose()
        # The limiter would fail open and hide it; say plainly what is missing instead.
        pytest.fail(f"Redis is not reachable at {REDIS_URL} (set TEST_REDIS_URL): {exc}")
    yield prefix
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        assert [key async for key in client.scan_iter(match=f"{prefix}*")] == []
    finally:
        await client.aclose()


async def test_redis_limiter_trips_on_server_time(redis_prefix: str) -> None:
    limiter = RateLimiter.from_url(REDIS_URL, prefix=redis_prefix)
    assert isinstance(limiter.backend, RedisBackend)
    try:
        results = [await limiter.hit("ip:203.0.113.9", "3/minute") for _ in range(4)]
    finally:
        await limiter.aclose()
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert 55 <= results[3].retry_after <= 60


async def test_two_redis_limiters_share_one_budget(redis_prefix: str) -> None:
    # Two app instances: each has its own client, both count in the same Redis.
    first = RateLimiter.from_url(REDIS_URL, prefix=redis_prefix)
    second = RateLimiter.from_url(REDIS_URL, prefix=redis_prefix)
    try:
        assert (await first.hit("shared", "3/minute")).allowed is True
        assert (await second.hit("shared", "3/minute")).allowed is True
        assert (await first.hit("shared", "3/minute")).allowed is True
        refused = await second.hit("shared", "3/minute")
        assert refused.allowed is False
        assert refused.retry_after > 0
        assert (await first.hit("other", "3/minute")).allowed is True
        await second.reset("shared")
        assert (await first.hit("shared", "3/minute")).allowed is True
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_limiter_recovers_when_the_window_passes(redis_prefix: str) -> None:
    clock = FakeClock()
    limiter = RateLimiter(RedisBackend.from_url(REDIS_URL, clock=clock), prefix=redis_prefix)
    try:
        assert (await limiter.hit("k", "2/minute")).allowed is True
        clock.advance(30)
        assert (await limiter.hit("k", "2/minute")).allowed is True
        refused = await limiter.hit("k", "2/minute")
        assert (refused.allowed, refused.retry_after) == (False, 30)
        clock.advance(30)
        assert (await limiter.hit("k", "2/minute")).allowed is True
        assert (await limiter.hit("k", "2/minute")).allowed is False
    finally:
        await limiter.aclose()


async def test_redis_keys_expire_with_their_window(redis_prefix: str) -> None:
    limiter = RateLimiter.from_url(REDIS_URL, prefix=redis_prefix)
    client = create_redis(REDIS_URL)
    try:
        await limiter.hit("k", "5/minute")
        ttl_ms = await client.pttl(f"{redis_prefix}k")
    finally:
        await limiter.aclose()
        await client.aclose()
    assert 0 < ttl_ms <= 60_000


async def test_redis_outage_fails_open_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RateLimiter.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with caplog.at_level(logging.WARNING, logger="app.core.rate_limit"):
            results = [await limiter.hit("k", "1/minute") for _ in range(2)]
            await limiter.reset("k")
    finally:
        await limiter.aclose()
    assert all(r.allowed for r in results)
    assert caplog.text.count("rate limiter unavailable") == 3


def test_rate_limiter_defaults_to_memory() -> None:
    assert isinstance(RateLimiter.from_url(None).backend, MemoryBackend)
    assert isinstance(RateLimiter().backend, MemoryBackend)

"""The rate limiter on `limits`: parsing, moving windows in memory and in Redis, the fallback."""

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import RedisError

from app.core.rate_limit import RateLimiter, RateLimitResult, client_network, parse_limit
from app.core.redis import RedisStore, RedisUnavailable
from tests.conftest import TEST_REDIS_URL
from tests.utils.rate_limit import FakeClock
from tests.utils.utils import free_port

# A fake unless TEST_REDIS_URL names a real server (CI's PostgreSQL leg uses the machine's
# Redis, shared with others, so every key here carries a random prefix).
REDIS_URL = TEST_REDIS_URL


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return FakeClock().install(monkeypatch)


@pytest.mark.parametrize(
    ("text", "amount", "seconds"),
    [
        ("20/minute", 20, 60),
        ("5/15minutes", 5, 900),
        ("5 / 15 minutes", 5, 900),
        ("1/second", 1, 1),
        ("100/Hour", 100, 3600),
        ("1000/2days", 1000, 172800),
    ],
)
def test_parse_limit_reads_amount_and_window(text: str, amount: int, seconds: int) -> None:
    item = parse_limit(text)
    assert (item.amount, item.get_expiry()) == (amount, seconds)


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


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("testclient", "testclient"),
    ],
)
def test_client_network_keys_ipv6_on_its_network(host: str, key: str) -> None:
    assert client_network(host, 64) == key


def test_client_network_prefix_is_configurable() -> None:
    assert client_network("2001:db8:1:2::1", 48) == "2001:db8:1::/48"
    assert client_network("2001:db8:1:2::1", 128) == "2001:db8:1:2::1/128"


async def test_memory_limiter_trips_and_recovers(clock: FakeClock) -> None:
    limiter = RateLimiter()
    results = [await limiter.hit("k", "3/minute") for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert results[3].retry_after == 60
    clock.advance(59)
    assert (await limiter.hit("k", "3/minute")).allowed is False
    clock.advance(1.001)
    recovered = await limiter.hit("k", "3/minute")
    assert recovered.allowed is True
    assert recovered.remaining == 2  # all three earlier hits left the window together


async def test_memory_limiter_window_slides(clock: FakeClock) -> None:
    # Hits at 0 s and 30 s with 2/minute: at 61 s only the first has aged out.
    limiter = RateLimiter()
    await limiter.hit("k", "2/minute")
    clock.advance(30)
    await limiter.hit("k", "2/minute")
    clock.advance(31)
    assert (await limiter.hit("k", "2/minute")).allowed is True
    refused = await limiter.hit("k", "2/minute")
    assert refused.allowed is False
    assert refused.retry_after == 29


@pytest.mark.usefixtures("clock")
async def test_memory_limiter_keys_and_reset_are_separate() -> None:
    limiter = RateLimiter()
    assert (await limiter.hit("a", "1/minute")).allowed is True
    assert (await limiter.hit("a", "1/minute")).allowed is False
    assert (await limiter.hit("b", "1/minute")).allowed is True
    await limiter.reset("a", "1/minute")
    assert (await limiter.hit("a", "1/minute")).allowed is True


@pytest.fixture
async def store() -> AsyncIterator[RedisStore]:
    """The app's Redis wrapper under a prefix no one else uses; its keys are deleted after."""
    prefix = f"test-ratelimit-{secrets.token_hex(8)}:"
    redis = RedisStore.from_url(REDIS_URL, prefix=prefix, timeout=1.0, cooldown=5.0)
    try:
        await redis.client.ping()
    except RedisError as exc:
        await redis.aclose()
        # The limiter would fall back to memory and hide it; say plainly what is missing.
        pytest.fail(f"Redis is not reachable at {REDIS_URL} (set TEST_REDIS_URL): {exc}")
    yield redis
    try:
        keys = [key async for key in redis.client.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.client.delete(*keys)
    finally:
        await redis.aclose()


async def test_redis_limiter_trips_and_keys_carry_the_prefix(store: RedisStore) -> None:
    limiter = RateLimiter(store)
    results = [await limiter.hit("ip:203.0.113.9", "3/minute") for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert 55 <= results[3].retry_after <= 60
    keys = [key async for key in store.client.scan_iter(match=f"{store.prefix}*")]
    assert len(keys) == 1
    assert keys[0].startswith(f"{store.prefix}ratelimit".encode())
    # The window's key expires with it.
    assert 0 < await store.client.pttl(keys[0]) <= 60_000


async def test_two_redis_limiters_share_one_budget(store: RedisStore) -> None:
    # Two app instances: each has its own limiter, both count in the same Redis.
    other = RedisStore.from_url(REDIS_URL, prefix=store.prefix, timeout=1.0, cooldown=5.0)
    first, second = RateLimiter(store), RateLimiter(other)
    try:
        assert (await first.hit("shared", "3/minute")).allowed is True
        assert (await second.hit("shared", "3/minute")).allowed is True
        assert (await first.hit("shared", "3/minute")).allowed is True
        refused = await second.hit("shared", "3/minute")
        assert refused.allowed is False
        assert refused.retry_after > 0
        assert (await first.hit("other", "3/minute")).allowed is True
        await second.reset("shared", "3/minute")
        assert (await first.hit("shared", "3/minute")).allowed is True
    finally:
        await other.aclose()


async def test_redis_limiter_recovers_when_the_window_passes(
    store: RedisStore, clock: FakeClock
) -> None:
    limiter = RateLimiter(store)
    assert (await limiter.hit("k", "2/minute")).allowed is True
    clock.advance(30)
    assert (await limiter.hit("k", "2/minute")).allowed is True
    refused = await limiter.hit("k", "2/minute")
    assert (refused.allowed, refused.retry_after) == (False, 30)
    clock.advance(30.001)
    assert (await limiter.hit("k", "2/minute")).allowed is True
    assert (await limiter.hit("k", "2/minute")).allowed is False


async def test_redis_outage_counts_in_memory_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RedisStore.from_url(
        f"redis://127.0.0.1:{free_port()}/0", prefix="x:", timeout=1.0, cooldown=60.0
    )
    limiter = RateLimiter(store)
    try:
        with caplog.at_level(logging.WARNING):
            results = [await limiter.hit("k", "1/minute") for _ in range(3)]
    finally:
        await store.aclose()
    # Not failing open: the second hit is refused from the in-memory count.
    assert [r.allowed for r in results] == [True, False, False]
    # One failure opened the breaker; the later hits did not try Redis again.
    assert caplog.text.count("Redis unavailable") == 1
    assert not store.available


async def test_limiter_without_redis_counts_in_memory() -> None:
    limiter = RateLimiter()
    assert [(await limiter.hit("solo", "1/hour")).allowed for _ in range(2)] == [True, False]


async def test_breaker_closes_after_the_cooldown(clock: FakeClock) -> None:
    store = RedisStore.from_url(
        f"redis://127.0.0.1:{free_port()}/0", prefix="x:", timeout=1.0, cooldown=5.0, clock=clock
    )
    try:
        assert await store.ping() is False
        assert not store.available
        clock.advance(5)
        assert store.available
    finally:
        await store.aclose()


async def test_one_request_budget_bounds_all_its_redis_calls(clock: FakeClock) -> None:
    store = RedisStore.from_url(REDIS_URL, prefix="x:", timeout=0.5, cooldown=5.0, clock=clock)
    try:
        async with RedisStore.budget():
            assert await store.ping() is True
            clock.advance(0.5)
            # The budget is spent, so the call is not even tried (and the breaker stays shut).
            assert await store.ping() is False
            assert store.available
        async with RedisStore.budget():
            assert await store.ping() is True
        await asyncio.sleep(0)
    finally:
        await store.aclose()


async def test_a_spent_request_budget_does_not_open_the_breaker(clock: FakeClock) -> None:
    store = RedisStore.from_url(REDIS_URL, prefix="x:", timeout=0.5, cooldown=5.0, clock=clock)
    try:
        async with RedisStore.budget():
            assert await store.ping() is True
            clock.advance(0.45)
            # Cut short by the 0.05 s left: a slow request, not a failing Redis.
            with pytest.raises(RedisUnavailable, match="budget"):
                async with store.call():
                    await asyncio.sleep(0.3)
            assert store.available
        # A call that used its whole per-call timeout does open it.
        with pytest.raises(RedisUnavailable):
            async with store.call():
                await asyncio.sleep(1)
        assert not store.available
    finally:
        await store.aclose()

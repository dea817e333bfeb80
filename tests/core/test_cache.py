"""RedisCache reads: those of one event-loop turn share one MGET, and each caller still gets
its own answer, its own miss on failure, and its own timeout."""

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.core import redis as redis_module
from app.core.cache import RedisCache
from app.core.redis import RedisStore


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    """A store under a key prefix of this test's own (on the shared Redis), deleted after."""
    client = redis_module.create_redis(redis_url, timeout=1.0)  # the suite's fake, or its server
    prefix = f"test-{secrets.token_hex(6)}:"
    store = RedisStore(client, prefix=prefix, timeout=1.0, cooldown=30.0)
    try:
        yield store
    finally:
        keys = [key async for key in client.scan_iter(f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def count_mgets(store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The keys of each MGET the store's client sends from now on."""
    sent: list[list[str]] = []
    mget = store.client.mget

    async def counted(keys: list[str], *args: Any) -> Any:
        sent.append(list(keys))
        return await mget(keys, *args)

    monkeypatch.setattr(store.client, "mget", counted)
    return sent


async def test_reads_of_one_turn_share_one_round_trip(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RedisCache(store, "ns:")
    await cache.set("a", b"A", 60)
    await cache.set("b", b"B", 60)
    sent = count_mgets(store, monkeypatch)

    values = list(await asyncio.gather(cache.get("a"), cache.get("missing"), cache.get("b")))

    assert values == [b"A", None, b"B"]
    assert sent == [[store.key("ns:a"), store.key("ns:missing"), store.key("ns:b")]]


async def test_reads_of_later_turns_are_sent_apart(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RedisCache(store)
    await cache.set("a", b"A", 60)
    sent = count_mgets(store, monkeypatch)

    assert await cache.get("a") == b"A"
    assert await cache.get("a") == b"A"

    assert sent == [[store.key("a")], [store.key("a")]]


async def test_a_failed_batch_is_a_miss_for_each_read_and_opens_the_breaker(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RedisCache(store)
    await cache.set("a", b"A", 60)

    async def refused(*_: Any) -> Any:
        raise ConnectionError("refused")

    monkeypatch.setattr(store.client, "mget", refused)

    assert list(await asyncio.gather(cache.get("a"), cache.get("b"))) == [None, None]
    assert not store.available


async def test_a_read_that_gives_up_leaves_the_others_their_answers(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RedisCache(store)
    await cache.set("a", b"A", 60)
    mget = store.client.mget
    release = asyncio.Event()

    async def slow(keys: list[str]) -> Any:
        await release.wait()
        return await mget(keys)

    monkeypatch.setattr(store.client, "mget", slow)
    leaving = asyncio.create_task(cache.get("a"))
    staying = asyncio.create_task(cache.get("a"))
    await asyncio.sleep(0.01)  # both wait on the one batch now
    leaving.cancel()
    release.set()

    assert await staying == b"A"
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert store.available

"""The one cache protocol and its stores: none, this process's memory, or the app's Redis."""

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from typing import Protocol

from app.core.redis import RedisStore, RedisUnavailable

logger = logging.getLogger(__name__)


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl: float) -> None: ...
    async def delete(self, key: str) -> None: ...


class NoCache:
    """Every read is a miss: the item cache when REDIS_URL is unset."""

    async def get(self, key: str) -> bytes | None:  # noqa: ARG002
        return None

    async def set(self, key: str, value: bytes, ttl: float) -> None:  # noqa: ARG002
        return None

    async def delete(self, key: str) -> None:  # noqa: ARG002
        return None


class MemoryCache:
    """Per-process entries that expire after their TTL."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._items: dict[str, tuple[float, bytes]] = {}

    async def get(self, key: str) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires_at, value = item
        if self._clock() >= expires_at:
            del self._items[key]
            return None
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0:
            return
        now = self._clock()
        # Keys come from settings and ids, so there are few; dropping stale ones keeps it so.
        self._items = {k: item for k, item in self._items.items() if item[0] > now}
        self._items[key] = (now + ttl, value)

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)


class ReadBatch:
    """The reads asked for in one turn of the event loop, sent together as one MGET.

    A GET costs about what a database read does, almost all of it in the round trip; under
    load many requests reach the cache in the same turn, and then one round trip serves them
    all. A lone read still costs one round trip. Each caller awaits its own future, so its own
    timeout (and cancellation) ends only its wait, never the batch.
    """

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._keys: list[str] = []
        self._waiters: list[asyncio.Future[object]] = []
        # Running batches, kept so that none is collected before it ends.
        self._running: set[asyncio.Task[None]] = set()

    def get(self, key: str) -> "asyncio.Future[object]":
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        if not self._keys:
            # Sent once this turn's callbacks have run; in an empty context, as the batch
            # belongs to no one request.
            loop.call_soon(self._send, context=contextvars.Context())
        self._keys.append(key)
        self._waiters.append(waiter)
        return waiter

    def _send(self) -> None:
        keys, waiters = self._keys, self._waiters
        self._keys, self._waiters = [], []
        task = asyncio.get_running_loop().create_task(self._read(keys, waiters))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _read(self, keys: list[str], waiters: list["asyncio.Future[object]"]) -> None:
        try:
            values = await self._store.client.mget(keys)
        except asyncio.CancelledError:
            for waiter in waiters:
                waiter.cancel()
            raise
        except Exception as exc:
            # Each caller's store.call() then reports it (and opens the breaker) as for a GET.
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for waiter, value in zip(waiters, values, strict=True):
            if not waiter.done():
                waiter.set_result(value)


class RedisCache:
    """Entries shared by every instance, under the app's key prefix (and `namespace`). A Redis
    failure is a miss: the cache never takes a feature down with it. Reads of one event-loop
    turn share a round trip (ReadBatch)."""

    def __init__(self, store: RedisStore, namespace: str = "") -> None:
        self._store = store
        self._namespace = namespace
        self._reads = ReadBatch(store)

    def _key(self, key: str) -> str:
        return self._store.key(self._namespace + key)

    async def get(self, key: str) -> bytes | None:
        try:
            async with self._store.call():
                value = await self._reads.get(self._key(key))
        except RedisUnavailable as exc:
            logger.warning("cache read failed: %s", exc)
            return None
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0:
            return
        try:
            async with self._store.call():
                await self._store.client.set(self._key(key), value, px=max(1, round(ttl * 1000)))
        except RedisUnavailable as exc:
            logger.warning("cache write failed: %s", exc)

    async def delete(self, key: str) -> None:
        # A failed invalidation could serve stale data, so it is an error; the TTL bounds it.
        try:
            async with self._store.call():
                await self._store.client.delete(self._key(key))
        except RedisUnavailable as exc:
            logger.error("cache invalidation failed: %s", exc)

"""Short-lived caches for upstream answers (in memory or Redis) and single-flight calls."""

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.redis import create_redis

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...

    async def close(self) -> None: ...


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
        # Keys come from settings, so there are few; dropping stale ones keeps it that way.
        self._items = {k: item for k, item in self._items.items() if item[0] > now}
        self._items[key] = (now + ttl, value)

    async def close(self) -> None:
        self._items.clear()


class RedisCache:
    """Entries shared by every worker. A Redis failure is a miss: the cache never takes the
    feature down with it."""

    def __init__(self, redis: Redis, *, prefix: str, timeout: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._timeout = timeout

    @classmethod
    def from_url(cls, url: str, *, prefix: str, timeout: float) -> "RedisCache":
        return cls(create_redis(url, timeout=timeout), prefix=prefix, timeout=timeout)

    async def get(self, key: str) -> bytes | None:
        try:
            async with asyncio.timeout(self._timeout):
                value = await self._redis.get(self._prefix + key)
        except (RedisError, OSError) as exc:
            logger.warning("cache read failed, fetching instead: %s", type(exc).__name__)
            return None
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._redis.set(self._prefix + key, value, px=max(1, round(ttl * 1000)))
        except (RedisError, OSError) as exc:
            logger.warning("cache write failed: %s", type(exc).__name__)

    async def close(self) -> None:
        await self._redis.aclose()


class SingleFlight(Generic[T]):
    """Concurrent calls for one key share one run: the first starts it, the others await it."""

    def __init__(self) -> None:
        self._runs: dict[str, asyncio.Task[T]] = {}

    async def do(self, key: str, call: Callable[[], Coroutine[Any, Any, T]]) -> T:
        run = self._runs.get(key)
        if run is None:
            run = asyncio.create_task(call())
            self._runs[key] = run
            run.add_done_callback(partial(self._forget, key))
        # A caller that goes away (a client disconnect) must not cancel the run others await.
        return await asyncio.shield(run)

    def _forget(self, key: str, run: "asyncio.Task[T]") -> None:
        self._runs.pop(key, None)
        if not run.cancelled():
            # Mark the outcome as seen, so a failure nobody awaited is not reported as lost.
            run.exception()

    async def cancel(self) -> None:
        """Stop every run (at shutdown) and wait for them to finish."""
        runs = list(self._runs.values())
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

"""The app's one Redis client: its key prefix, per-request time budget and circuit breaker."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


class RedisUnavailable(Exception):
    """Redis failed, timed out, or is skipped while the breaker is open; callers degrade."""


def create_redis(url: str, *, timeout: float) -> "Redis":
    # Imported on first use: redis-py takes about a tenth of a second to load, and a service
    # without REDIS_URL (or prestart) never needs it.
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # No retries: every caller degrades on failure (a cache miss, an in-memory count) instead.
    return Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


@dataclass(slots=True)
class _Budget:
    deadline: float | None = None


# One per request (see RedisStore.budget): every Redis call of a request draws on one budget.
_budget: ContextVar[_Budget | None] = ContextVar("redis_budget", default=None)


def open_budget() -> Token[_Budget | None]:
    """Start a request's budget; its clock starts at the request's first Redis call."""
    return _budget.set(_Budget())


def close_budget(token: Token[_Budget | None]) -> None:
    _budget.reset(token)


@dataclass(slots=True)
class Breaker:
    """After a failure, Redis is skipped for `cooldown` seconds instead of timing out per call."""

    cooldown: float
    clock: Clock = time.monotonic
    _open_until: float = field(default=0.0, init=False)

    @property
    def is_open(self) -> bool:
        return self.clock() < self._open_until

    def trip(self) -> None:
        self._open_until = self.clock() + self.cooldown


class RedisStore:
    """Every Redis call goes through `call()`, and every key through `key()`."""

    def __init__(
        self,
        client: "Redis",
        *,
        prefix: str,
        timeout: float,
        cooldown: float,
        clock: Clock = time.monotonic,
    ) -> None:
        from redis.exceptions import RedisError

        self.client = client
        # What call() turns into RedisUnavailable; redis-py is loaded once a client exists.
        self._failures = (RedisError, OSError, TimeoutError)
        self.prefix = prefix
        self.timeout = timeout
        self.breaker = Breaker(cooldown, clock)
        self._clock = clock

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str,
        timeout: float,
        cooldown: float,
        clock: Clock = time.monotonic,
    ) -> "RedisStore":
        client = create_redis(url, timeout=timeout)
        return cls(client, prefix=prefix, timeout=timeout, cooldown=cooldown, clock=clock)

    def key(self, name: str) -> str:
        return self.prefix + name

    @property
    def available(self) -> bool:
        return not self.breaker.is_open

    @staticmethod
    @asynccontextmanager
    async def budget() -> AsyncIterator[None]:
        """Scope one request: its Redis calls share one timeout budget, however many there are."""
        token = open_budget()
        try:
            yield
        finally:
            close_budget(token)

    def _time_left(self) -> float:
        budget = _budget.get()
        if budget is None:
            return self.timeout
        now = self._clock()
        if budget.deadline is None:
            budget.deadline = now + self.timeout
        return budget.deadline - now

    @asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        """`async with store.call(): await store.client...`: bounded, and RedisUnavailable on any
        failure, which opens the breaker unless only the request's budget ran out."""
        if self.breaker.is_open:
            raise RedisUnavailable("skipped: Redis failed recently")
        left = self._time_left()
        if left <= 0:
            raise RedisUnavailable("this request's Redis budget is spent")
        deadline = asyncio.timeout(left)
        try:
            async with deadline:
                yield
        except self._failures as exc:
            if deadline.expired() and left < self.timeout:
                # Cut short by a nearly spent request budget: a slow request, not a slow Redis.
                raise RedisUnavailable("this request's Redis budget is spent") from exc
            self.breaker.trip()
            logger.warning(
                "Redis unavailable, skipping it for %.1f s: %s",
                self.breaker.cooldown,
                type(exc).__name__,
            )
            raise RedisUnavailable(type(exc).__name__) from exc

    async def ping(self) -> bool:
        try:
            async with self.call():
                await self.client.ping()
        except RedisUnavailable:
            return False
        return True

    async def aclose(self) -> None:
        await self.client.aclose()

"""Rate limiting: sliding-window counters kept in memory or in Redis. No HTTP here."""

import logging
import math
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.redis import create_redis

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

# Keeps a request from hanging on an unreachable Redis; the limiter then fails open.
REDIS_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `amount` hits in any window of `seconds`."""

    amount: int
    seconds: int


@lru_cache(maxsize=64)
def parse_limit(text: str) -> RateLimit:
    """Parse "20/minute", "5/15minutes", "100/hour", "1000/day"; ValueError otherwise."""
    match = _LIMIT.match(text)
    if not match or int(match[1]) < 1 or (match[2] and int(match[2]) < 1):
        raise ValueError(f"invalid rate limit {text!r}; expected e.g. '20/minute' or '5/15minutes'")
    return RateLimit(int(match[1]), int(match[2] or 1) * _UNIT_SECONDS[match[3].lower()])


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    """Seconds until the oldest counted hit leaves the window and frees a slot."""

    @property
    def retry_after(self) -> int:
        """Whole seconds to wait before trying again; 0 when this hit was allowed."""
        return 0 if self.allowed else max(1, math.ceil(self.reset_after))


class RateLimitBackendError(Exception):
    """The store behind the limiter did not answer."""


class Backend(Protocol):
    async def hit(self, key: str, limit: RateLimit) -> RateLimitResult: ...

    async def reset(self, key: str) -> None: ...

    async def aclose(self) -> None: ...


class MemoryBackend:
    """Counts for one process: the default, and right for a single instance."""

    SWEEP_EVERY = 1024

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[str, tuple[int, deque[float]]] = {}
        self._calls = 0

    async def hit(self, key: str, limit: RateLimit) -> RateLimitResult:
        # No await in here: on one event loop the check and the count cannot interleave.
        now = self._clock()
        self._calls += 1
        if self._calls % self.SWEEP_EVERY == 0:
            self._sweep(now)
        _, hits = self._hits.setdefault(key, (limit.seconds, deque()))
        while hits and hits[0] <= now - limit.seconds:
            hits.popleft()
        allowed = len(hits) < limit.amount
        if allowed:
            hits.append(now)
        self._hits[key] = (limit.seconds, hits)
        reset_after = hits[0] + limit.seconds - now if hits else 0.0
        return RateLimitResult(allowed, limit.amount, limit.amount - len(hits), reset_after)

    async def reset(self, key: str) -> None:
        self._hits.pop(key, None)

    async def aclose(self) -> None:
        self._hits.clear()

    def _sweep(self, now: float) -> None:
        """Forget keys with no hit left in their window, so memory follows the active keys."""
        stale = [
            k for k, (window, hits) in self._hits.items() if not hits or hits[-1] <= now - window
        ]
        for key in stale:
            del self._hits[key]


# One sorted set per key, scored by hit time in milliseconds. The server's clock is used unless
# a time is passed, so every instance agrees on the window.
_HIT_SCRIPT = """
local amount = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < amount then
    redis.call('ZADD', KEYS[1], now, ARGV[4])
    redis.call('PEXPIRE', KEYS[1], window)
    count = count + 1
    allowed = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = 0
if oldest[2] then
    reset = tonumber(oldest[2]) + window - now
end
return {allowed, count, reset}
"""


class RedisBackend:
    """Counts in Redis, so several app instances share one budget per key."""

    def __init__(self, client: "Redis", clock: Clock | None = None) -> None:
        self._client = client
        self._clock = clock
        self._script = client.register_script(_HIT_SCRIPT)

    @classmethod
    def from_url(cls, url: str, clock: Clock | None = None) -> "RedisBackend":
        return cls(create_redis(url, timeout=REDIS_TIMEOUT_SECONDS), clock)

    async def hit(self, key: str, limit: RateLimit) -> RateLimitResult:
        now = "" if self._clock is None else str(int(self._clock() * 1000))
        try:
            allowed, count, reset_ms = await self._script(
                keys=[key],
                args=[limit.amount, limit.seconds * 1000, now, secrets.token_hex(8)],
            )
        except (RedisError, OSError) as exc:
            raise RateLimitBackendError(type(exc).__name__) from exc
        return RateLimitResult(
            allowed=bool(allowed),
            limit=limit.amount,
            remaining=limit.amount - int(count),
            reset_after=int(reset_ms) / 1000,
        )

    async def reset(self, key: str) -> None:
        try:
            await self._client.delete(key)
        except (RedisError, OSError) as exc:
            raise RateLimitBackendError(type(exc).__name__) from exc

    async def aclose(self) -> None:
        await self._client.aclose()


class RateLimiter:
    """`hit(key, limit)` counts one request and says whether it may go ahead.

    If the store fails, the request is allowed and a warning logged: throttling must not turn a
    Redis outage into an outage of the whole service.
    """

    def __init__(self, backend: Backend | None = None, *, prefix: str = "ratelimit:") -> None:
        self.backend: Backend = backend or MemoryBackend()
        self.prefix = prefix

    @classmethod
    def from_url(cls, redis_url: str | None, *, prefix: str = "ratelimit:") -> "RateLimiter":
        """In Redis when a URL is given, else in this process's memory."""
        backend = RedisBackend.from_url(redis_url) if redis_url else MemoryBackend()
        return cls(backend, prefix=prefix)

    async def hit(self, key: str, limit: RateLimit | str) -> RateLimitResult:
        if isinstance(limit, str):
            limit = parse_limit(limit)
        try:
            return await self.backend.hit(self.prefix + key, limit)
        except RateLimitBackendError as exc:
            logger.warning("rate limiter unavailable, allowing the request: %s", exc)
            return RateLimitResult(True, limit.amount, limit.amount, 0.0)

    async def reset(self, key: str) -> None:
        """Forget every hit counted for the key (for example after a successful login)."""
        try:
            await self.backend.reset(self.prefix + key)
        except RateLimitBackendError as exc:
            logger.warning("rate limiter unavailable, nothing reset: %s", exc)

    async def aclose(self) -> None:
        await self.backend.aclose()

"""Rate limiting on the `limits` package: moving windows in Redis, or in memory. No HTTP here."""

import ipaddress
import logging
import math
import re
import time
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, MovingWindowSupport, RedisStorage

from app.core.redis import RedisStore, RedisUnavailable

logger = logging.getLogger(__name__)


# Stricter than limits.parse, which reads "5/0minutes" as 5 per minute.
_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)


@lru_cache(maxsize=64)
def parse_limit(text: str) -> RateLimitItem:
    """Parse "20/minute", "5/15minutes", "100/hour", "1000/day"; ValueError otherwise."""
    match = _LIMIT.match(text)
    if not match or int(match[1]) < 1 or (match[2] and int(match[2]) < 1):
        raise ValueError(f"invalid rate limit {text!r}; expected e.g. '20/minute' or '5/15minutes'")
    return parse(text)


# Cached: parsing an address costs more than the rest of a memory hit, on every request.
@lru_cache(maxsize=4096)
def client_network(host: str, ipv6_prefix: int, ipv4_prefix: int = 32) -> str:
    """The key a client's per-IP limits count under: IPv4 (IPv4-mapped IPv6 too) as its
    /ipv4_prefix network, by default the address itself; other IPv6 as its /ipv6_prefix
    network. Anything else (a test client's name) as is."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is None:
            return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))
        address = address.ipv4_mapped
    if ipv4_prefix == 32:
        return str(address)
    return str(ipaddress.IPv4Network((address, ipv4_prefix), strict=False))


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


@lru_cache(maxsize=4096)
def _window_key(item: RateLimitItem, key: str) -> str:
    # limits builds the key from strings on every call; cached, a hit costs about half.
    return item.key_for(key)


class RateLimiter:
    """`hit(key, limit)` counts one request and says whether it may go ahead.

    Counts are moving windows in `limits`' storages: in Redis when the app has it, so every
    instance shares one budget per key. While Redis fails (see RedisStore's breaker) they are
    kept in this process's memory instead: a Redis outage neither stops the service nor turns
    the limits off.
    """

    def __init__(self, redis: RedisStore | None = None) -> None:
        self._memory = MemoryStorage()
        self._store = redis
        self._redis: RedisStorage | None = None
        if redis is not None:
            # limits makes its client on the app's connection pool: one set of connections.
            self._redis = RedisStorage(
                "async+redis://",
                implementation="redispy",
                key_prefix=redis.key("ratelimit"),
                # limits types its options as scalars; the pool is passed to redis-py as is.
                connection_pool=redis.client.connection_pool,  # type: ignore[arg-type]
            )

    def _shared(self) -> RedisStorage | None:
        if self._redis is not None and self._store is not None and self._store.available:
            return self._redis
        return None

    async def hit(self, key: str, limit: str) -> RateLimitResult:
        item = parse_limit(limit)
        window_key = _window_key(item, key)
        if (shared := self._shared()) is not None and self._store is not None:
            try:
                async with self._store.call():
                    return await self._hit(shared, item, window_key)
            except RedisUnavailable as exc:
                logger.warning("rate limiter counting in memory: %s", exc)
        return await self._hit(self._memory, item, window_key)

    @staticmethod
    async def _hit(storage: MovingWindowSupport, item: RateLimitItem, key: str) -> RateLimitResult:
        # The storage API, not limits' strategy class, which builds the key twice per hit.
        expiry = item.get_expiry()
        allowed = await storage.acquire_entry(key, item.amount, expiry)
        window_start, count = await storage.get_moving_window(key, item.amount, expiry)
        reset_after = max(0.0, window_start + expiry - time.time()) if count else 0.0
        return RateLimitResult(allowed, item.amount, max(0, item.amount - count), reset_after)

    async def reset(self, key: str, limit: str) -> None:
        """Forget every hit counted for the key (for example after a successful login)."""
        window_key = _window_key(parse_limit(limit), key)
        await self._memory.clear(window_key)
        if (shared := self._shared()) is not None and self._store is not None:
            try:
                async with self._store.call():
                    await shared.clear(window_key)
            except RedisUnavailable as exc:
                logger.warning("rate limiter could not reset in Redis: %s", exc)

"""A small bytes cache over Redis; any Redis failure reads as a miss, never as an error."""

import logging
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None: ...
    async def delete(self, key: str) -> None: ...


class NoCache:
    """The cache when REDIS_URL is unset: every read is a miss."""

    async def get(self, key: str) -> bytes | None:  # noqa: ARG002
        return None

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:  # noqa: ARG002
        return None

    async def delete(self, key: str) -> None:  # noqa: ARG002
        return None


class RedisCache:
    def __init__(self, client: "Redis", prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self.client.get(self.prefix + key)
        except (RedisError, OSError) as exc:
            logger.warning("cache read failed: %s", type(exc).__name__)
            return None
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        try:
            await self.client.set(self.prefix + key, value, ex=ttl_seconds)
        except (RedisError, OSError) as exc:
            logger.warning("cache write failed: %s", type(exc).__name__)

    async def delete(self, key: str) -> None:
        # A failed invalidation could serve stale data, so it is logged as an error; the TTL
        # bounds how long.
        try:
            await self.client.delete(self.prefix + key)
        except (RedisError, OSError) as exc:
            logger.error("cache invalidation failed: %s", type(exc).__name__)

"""The one place Redis clients are made: the same timeouts everywhere, and one seam for tests."""

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

# A request must not hang on an unreachable Redis: callers treat a timeout as "Redis is down".
SOCKET_TIMEOUT_SECONDS = 1.0


def create_redis(url: str, *, timeout: float = SOCKET_TIMEOUT_SECONDS) -> "Redis":
    # No retries: every caller degrades on failure (a cache miss, a fail-open limit) instead.
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )

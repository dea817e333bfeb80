"""The one place Redis clients are made: the same timeouts everywhere, and one seam for tests."""

from redis.asyncio import Redis

# A request must not hang on an unreachable Redis: callers treat a timeout as "Redis is down".
SOCKET_TIMEOUT_SECONDS = 1.0


def create_redis(url: str) -> "Redis":
    return Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        health_check_interval=30,
    )

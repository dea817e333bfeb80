"""The app's typed state, made once by the lifespan."""

from dataclasses import dataclass, field

from fastapi import Request

from app.core.cache import Cache, NoCache
from app.core.rate_limit import RateLimiter
from app.core.redis import RedisStore


@dataclass(slots=True)
class AppState:
    """What the lifespan opens for the app's life: handlers reach it through get_app_state,
    dependencies through app_state (one dependency fewer to solve per request)."""

    limiter: RateLimiter = field(default_factory=RateLimiter)
    cache: Cache = field(default_factory=NoCache)
    redis: RedisStore | None = None


def app_state(request: Request) -> AppState:
    """The lifespan's state. An app served without its lifespan (tests over ASGITransport)
    gets in-memory limits and no cache, made once."""
    state: AppState | None = getattr(request.app.state, "services", None)
    if state is None:
        state = request.app.state.services = AppState()
    return state


async def get_app_state(request: Request) -> AppState:
    return app_state(request)

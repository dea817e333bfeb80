"""The app's typed state, made once by the lifespan, and the per-request Redis budget."""

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from app.core.cache import Cache, NoCache
from app.core.rate_limit import RateLimiter
from app.core.redis import RedisStore, close_budget, open_budget


@dataclass(slots=True)
class AppState:
    """What the lifespan opens for the app's life: handlers reach it through get_app_state."""

    limiter: RateLimiter = field(default_factory=RateLimiter)
    cache: Cache = field(default_factory=NoCache)
    redis: RedisStore | None = None


async def get_app_state(request: Request) -> AppState:
    """The lifespan's state. An app served without its lifespan (tests over ASGITransport)
    gets in-memory limits and no cache, made once."""
    state: AppState | None = getattr(request.app.state, "services", None)
    if state is None:
        state = request.app.state.services = AppState()
    return state


class RedisBudgetMiddleware:
    """Pure ASGI: every Redis call of one request draws on one short time budget."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = open_budget()
        try:
            await self.app(scope, receive, send)
        finally:
            close_budget(token)

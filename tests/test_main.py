"""The application: the HTML page, host and CORS middleware, error handlers."""

import httpx2
import pytest

from app.api.state import AppState
from app.core.cache import NoCache, RedisCache
from app.core.redis import RedisStore
from app.main import create_app
from tests.utils.utils import Configure


async def _request(
    method: str, path: str, headers: dict[str, str] | None = None
) -> httpx2.Response:
    transport = httpx2.ASGITransport(app=create_app())
    async with httpx2.AsyncClient(transport=transport, base_url="http://api.example.com") as c:
        return await c.request(method, path, headers=headers)


async def test_trusted_hosts_refuse_other_hosts(configure: Configure) -> None:
    configure(ALLOWED_HOSTS="api.example.com")
    assert (await _request("GET", "/healthz")).status_code == 200
    other = await _request("GET", "/healthz", headers={"host": "evil.example.net"})
    assert other.status_code == 400


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [("https://app.example.com", True), ("https://evil.example.net", False)],
)
async def test_cors_allows_only_configured_origins(
    configure: Configure, origin: str, allowed: bool
) -> None:
    configure(BACKEND_CORS_ORIGINS="https://app.example.com")
    response = await _request(
        "OPTIONS",
        "/api/v1/recipes",
        headers={"origin": origin, "access-control-request-method": "POST"},
    )
    assert (response.headers.get("access-control-allow-origin") == origin) is allowed


async def test_lifespan_makes_one_redis_client_for_limits_and_caches(
    configure: Configure, redis_url: str
) -> None:
    application = create_app()
    async with application.router.lifespan_context(application):
        state = application.state.services
        assert state.redis is None
        assert isinstance(state.cache, NoCache)
    configure(REDIS_URL=redis_url)
    application = create_app()
    async with application.router.lifespan_context(application):
        state = application.state.services
        redis = state.redis
        assert isinstance(redis, RedisStore)
        assert isinstance(state.cache, RedisCache)
        # The limiter counts through the same connection pool as the caches.
        assert state.limiter._store is redis
        assert (await state.limiter.hit("probe", "5/minute")).allowed
        closed: list[bool] = []
        original = redis.aclose

        async def spy() -> None:
            closed.append(True)
            await original()

        redis.aclose = spy
    # Shutting down closes the one client.
    assert closed == [True]


async def test_app_without_lifespan_gets_memory_limits_and_no_cache() -> None:
    application = create_app()
    transport = httpx2.ASGITransport(app=application)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as c:
        assert (await c.get("/readyz")).status_code in (200, 503)
    state = application.state.services
    assert isinstance(state, AppState)
    assert state.redis is None

"""The application factory: middleware, error handlers, routers and the HTML page."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import import_module

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from app import __version__
from app.api.api_v1.api import api_router
from app.api.deps import ApiRateLimit
from app.api.docs import OPENAPI_TAGS, DocumentedFastAPI, install_docs, operation_id
from app.api.errors import register_exception_handlers
from app.api.health import router as health_router
from app.api.middleware import (
    CacheHeadersMiddleware,
    RequestBodyMiddleware,
    RequestContextMiddleware,
)
from app.api.responses import errors
from app.api.routing import flatten_routes
from app.api.state import AppState
from app.core.cache import NoCache, RedisCache
from app.core.config import settings
from app.core.logging import setup_logging
from app.core.rate_limit import RateLimiter
from app.core.redis import RedisStore
from app.db.session import engine

logger = logging.getLogger(__name__)

# Every module's install(app) adds its routes and hooks. Slices under the API prefix are
# listed in app/api/api_v1/api.py instead.
OPTIONAL_SLICES: list[str] = [
    # One line per optional slice; `python3 scripts/dev.py trim NAME` deletes it and the files.
    "app.api.metrics",
    "app.api.pages",
    "app.core.email",
]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Opens what the app uses for its life (one Redis client, the caches, the limiter) into
    one typed AppState, and closes it after the server has drained. Routers with a lifespan of
    their own (an optional slice's client) run inside this one, so they can use its state."""
    settings.prepare_files()
    redis = (
        RedisStore.from_url(
            settings.REDIS_URL,
            prefix=settings.REDIS_KEY_PREFIX,
            timeout=settings.REDIS_TIMEOUT_SECONDS,
            cooldown=settings.REDIS_COOLDOWN_SECONDS,
        )
        if settings.REDIS_URL
        else None
    )
    try:
        app.state.services = AppState(
            limiter=RateLimiter(redis),
            cache=(
                RedisCache(redis)
                if redis is not None and settings.ITEM_CACHE_SECONDS > 0
                else NoCache()
            ),
            redis=redis,
        )
        yield
    finally:
        if redis is not None:
            await redis.aclose()
        await engine.dispose()
        logger.info("shutdown complete")


def create_app() -> FastAPI:
    """A new app from the current settings (tests change them with the `configure` fixture)."""
    app = DocumentedFastAPI(
        title=settings.PROJECT_NAME,
        version=__version__,
        description=settings.PROJECT_DESCRIPTION,
        contact=settings.contact,
        openapi_tags=OPENAPI_TAGS,
        # Swagger UI and ReDoc are served from this app's own assets by install_docs.
        openapi_url="/openapi.json" if settings.DOCS_ENABLED else None,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=operation_id,
        lifespan=lifespan,
    )

    # Added innermost first; a request passes them in the reverse order:
    # RequestContext (request id, Redis budget, security headers, access log) -> TrustedHost
    # -> CORS -> GZip -> CacheHeaders -> RequestBody (size limit, strict JSON) -> routes. The
    # request id and security headers thus cover every answer, a foreign Host is refused before
    # any work, and ETags hash the uncompressed body. Each layer costs every request a call.
    app.add_middleware(RequestBodyMiddleware, max_bytes=settings.MAX_REQUEST_BODY_BYTES)
    app.add_middleware(CacheHeadersMiddleware, api_prefix=settings.API_V1_STR)
    app.add_middleware(GZipMiddleware, minimum_size=settings.GZIP_MIN_BYTES)
    if settings.BACKEND_CORS_ORIGINS:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.BACKEND_CORS_ORIGINS,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match", "X-Request-ID"],
            expose_headers=[
                "ETag",
                "X-Request-ID",
                "X-Process-Time",
                "Retry-After",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
            ],
        )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.ALLOWED_HOSTS)
    app.add_middleware(
        RequestContextMiddleware, hsts=settings.ENVIRONMENT in ("staging", "production")
    )

    register_exception_handlers(app)

    app.include_router(health_router)
    app.include_router(
        api_router,
        prefix=settings.API_V1_STR,
        dependencies=[ApiRateLimit],
        responses=errors(429, 503),
    )
    install_docs(app, enabled=settings.DOCS_ENABLED)
    for module in OPTIONAL_SLICES:
        import_module(module).install(app)
    flatten_routes(app)
    return app


# Logging is process-wide, so it is set up once here rather than in every factory call.
setup_logging(settings.LOG_LEVEL, settings.log_format)
app = create_app()

"""The application factory: middleware, error handlers, routers and the HTML page."""

import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import exc as sa_exc
from starlette.middleware.trustedhost import TrustedHostMiddleware

from app import __version__, crud
from app.api.api_v1.api import api_router
from app.api.deps import SessionDep
from app.api.health import router as health_router
from app.core.config import Settings, settings
from app.core.rate_limit import RateLimiter
from app.db.session import engine

logger = logging.getLogger(__name__)

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

RETRY_AFTER_SECONDS = "5"
# Errors that mean "the database cannot be reached now", not "this request is wrong".
DB_UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    ConnectionError,
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await app.state.rate_limiter.aclose()
    await engine.dispose()


class SafeJSONResponse(JSONResponse):
    """JSON that stays valid for any input echoed back: lone surrogates escaped, no NaN."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


async def validation_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 body, minus echoed passwords, and renderable whatever the client sent."""
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in jsonable_encoder(exc.errors()):
        if any("password" in str(part) for part in error.get("loc", ())):
            error.pop("input", None)
        errors.append(error)
    return SafeJSONResponse(
        {"detail": _json_safe(errors)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


async def integrity_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """A uniqueness or foreign-key clash that a check before the write could not rule out."""
    logger.info("integrity error: %s", type(getattr(exc, "orig", exc)).__name__)
    return JSONResponse(
        {"detail": "The request conflicts with existing data"},
        status_code=status.HTTP_409_CONFLICT,
    )


async def db_unavailable_handler(_: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable: %s", type(exc).__name__)
    return JSONResponse(
        {"detail": "Service temporarily unavailable"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


async def index(request: Request, db: SessionDep) -> HTMLResponse:
    """The newest recipes as a page; every asset is inline."""
    recipes = await crud.recipe.get_multi(db, limit=20)
    return templates.TemplateResponse(
        request, "index.html", {"recipes": recipes, "project_name": settings.PROJECT_NAME}
    )


def create_app(config: Settings = settings) -> FastAPI:
    logging.basicConfig(level=config.LOG_LEVEL)
    app = FastAPI(
        title=config.PROJECT_NAME,
        version=__version__,
        lifespan=lifespan,
    )

    # The last one added runs first: a foreign Host is refused before any other work.
    if config.BACKEND_CORS_ORIGINS:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.BACKEND_CORS_ORIGINS,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=config.ALLOWED_HOSTS)

    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(sa_exc.IntegrityError, integrity_error_handler)
    for exc_type in DB_UNAVAILABLE:
        app.add_exception_handler(exc_type, db_unavailable_handler)

    # In Redis when REDIS_URL is set, so every instance draws on one budget per client.
    app.state.rate_limiter = RateLimiter.from_url(config.REDIS_URL)

    app.include_router(health_router)
    app.include_router(api_router, prefix=config.API_V1_STR)
    app.add_api_route(
        "/", index, methods=["GET"], response_class=HTMLResponse, include_in_schema=False
    )
    return app


app = create_app()

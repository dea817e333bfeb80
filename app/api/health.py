"""Liveness and readiness probes, outside the versioned API."""

import asyncio
import logging
from collections.abc import Awaitable

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import RedisDep, SessionDep
from app.schemas import Readiness

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

READY_TIMEOUT_SECONDS = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up. Touches nothing else, so a slow database never restarts the app."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        200: {"model": Readiness},
        503: {"model": Readiness, "description": "The database (or Redis) does not answer"},
    },
)
async def readyz(db: SessionDep, redis: RedisDep) -> JSONResponse:
    """Ready for traffic: the database answers `SELECT 1` (and Redis `PING`, when configured)."""
    checks = {"database": await _check("database", db.execute(text("SELECT 1")))}
    if redis is not None:
        checks["redis"] = await _check("redis", redis.ping())
    ready = all(state == "up" for state in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", **checks},
        status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
    )


async def _check(name: str, probe: Awaitable[object]) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await probe
    except Exception as exc:
        # Any failure means not ready; the cause goes to the log, not to the caller.
        logger.warning("readiness check failed: %s: %s", name, type(exc).__name__)
        return "down"
    return "up"

"""Liveness and readiness probes, outside the versioned API."""

import asyncio
import logging
from collections.abc import Awaitable

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import AppStateDep, ProbeRateLimit, SessionDep
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
    dependencies=[ProbeRateLimit],
    responses={
        200: {"model": Readiness},
        503: {"model": Readiness, "description": "The database does not answer"},
    },
)
async def readyz(db: SessionDep, state: AppStateDep) -> JSONResponse:
    """Ready for traffic: the database answers `SELECT 1`. Redis is reported, not required:
    without it caches miss and limits count in memory, so a Redis outage must not take every
    instance out of the load balancer at once."""
    database = await _check("database", db.execute(text("SELECT 1")))
    checks = {"database": database}
    if state.redis is not None:
        checks["redis"] = "up" if await state.redis.ping() else "degraded"
    ready = database == "up"
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

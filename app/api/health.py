"""Liveness and readiness probes, outside the versioned API."""

import asyncio
import logging

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import SessionDep

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

READY_TIMEOUT_SECONDS = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up. Touches nothing else, so a slow database never restarts the app."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={503: {"description": "The database does not answer"}},
)
async def readyz(db: SessionDep) -> JSONResponse:
    """Ready for traffic: the database answers `SELECT 1`."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await db.execute(text("SELECT 1"))
    except Exception as exc:
        # Any failure means not ready; the cause goes to the log, not to the caller.
        logger.warning("readiness check failed: %s", type(exc).__name__)
        return JSONResponse(
            {"status": "unavailable", "database": "down"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    return JSONResponse({"status": "ok", "database": "up"})

"""GET /metrics in Prometheus text format, optionally limited to some networks, and the
per-request observer that feeds it. An optional slice: app/main.py lists it."""

import ipaddress
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, status

from app.api.middleware import OBSERVERS
from app.core import metrics
from app.core.config import settings
from app.db.session import engine

router = APIRouter(tags=["health"])


class RequestMetrics:
    """Counts every request the middleware sees: in flight, then by route, status and time."""

    def started(self) -> None:
        metrics.IN_FLIGHT.inc()

    def finished(self, method: str, route: str, status: int, seconds: float) -> None:
        metrics.IN_FLIGHT.dec()
        metrics.observe_request(method, route, status, seconds)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    metrics.mark_process_dead(os.getpid())


def install(app: FastAPI) -> None:
    """Observes every request (once per process, like the metrics themselves) and serves
    /metrics unless METRICS_ENABLED is off."""
    if not any(isinstance(observer, RequestMetrics) for observer in OBSERVERS):
        OBSERVERS.append(RequestMetrics())
    app.include_router(APIRouter(lifespan=lifespan))
    if settings.METRICS_ENABLED:
        app.include_router(router)


def _client_allowed(request: Request) -> bool:
    networks = settings.metrics_networks
    if not networks:
        return True
    if request.client is None:
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in networks)


@router.get("/metrics", include_in_schema=False)
async def read_metrics(request: Request) -> Response:
    """Request counts and latencies by route, requests in flight, database pool use."""
    if not _client_allowed(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Forbidden")
    pool = engine.sync_engine.pool
    checked_out = getattr(pool, "checkedout", None)
    if callable(checked_out):
        metrics.DB_POOL_CHECKED_OUT.set(checked_out())
        metrics.DB_POOL_SIZE.set(pool.checkedin() + checked_out())  # type: ignore[attr-defined]
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)

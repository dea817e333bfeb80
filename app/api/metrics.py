"""GET /metrics in Prometheus text format, optionally limited to some networks."""

import ipaddress

from fastapi import APIRouter, HTTPException, Request, Response, status

from app.core import metrics
from app.core.config import settings
from app.db.session import engine

router = APIRouter(tags=["health"])


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

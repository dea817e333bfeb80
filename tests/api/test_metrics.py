"""GET /metrics: counts by route template, in-flight and pool gauges, switches and allow-list."""

import re
from pathlib import Path
from typing import Any

import httpx2
import pytest

from app.main import create_app
from tests.utils.server import run_sh
from tests.utils.utils import Configure


def _value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        label_text, value = line.rsplit(" ", 1)
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0


async def test_metrics_count_requests_by_route_template(client: httpx2.AsyncClient) -> None:
    route = "/api/v1/recipes/{recipe_id}"
    labels = {"method": "GET", "route": route, "status": "404"}
    earlier = (await client.get("/metrics")).text
    before = _value(earlier, "http_requests_total", **labels)
    timed = _value(earlier, "http_request_duration_seconds_count", **labels)
    # Two requests with one label set: the second is counted by the children the first made.
    for recipe_id in (2147483646, 2147483645):
        assert (await client.get(f"/api/v1/recipes/{recipe_id}")).status_code == 404
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    after = _value(text, "http_requests_total", **labels)
    assert after - before == 2
    assert _value(text, "http_request_duration_seconds_count", **labels) - timed == 2
    assert "http_requests_in_flight" in text
    assert "db_pool_connections_in_use" in text


def _app() -> httpx2.AsyncClient:
    app = create_app()
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://test")


@pytest.mark.parametrize(
    ("values", "status"),
    [
        ({"METRICS_ENABLED": False}, 404),
        ({"METRICS_ALLOWED_NETWORKS": "10.0.0.0/8"}, 403),
        ({"METRICS_ALLOWED_NETWORKS": "10.0.0.0/8,127.0.0.0/8"}, 200),
    ],
)
async def test_metrics_can_be_disabled_or_restricted(
    configure: Configure, values: dict[str, Any], status: int
) -> None:
    configure(**values)
    async with _app() as c:
        assert (await c.get("/metrics")).status_code == status


def test_two_workers_report_shared_metrics(fresh_database_url: str, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_12345.db").write_bytes(b"stale")
    requests = 40
    env = {"WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with run_sh(fresh_database_url, **env) as service:
        base_url = service.base_url
        assert not (metrics_dir / "counter_12345.db").exists()
        for _ in range(requests):
            # A new connection each time, so both workers get a share.
            assert httpx2.get(f"{base_url}/healthz", timeout=5).status_code == 200
        text = httpx2.get(f"{base_url}/metrics", timeout=5).text
    # Each worker counts its own; only the multiprocess collector sees all of them.
    assert _value(text, "http_requests_total", route="/healthz", status="200") >= requests

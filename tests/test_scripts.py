"""run.sh and prestart.sh as real processes: serve, reseed, share metrics, drain on SIGTERM."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx2
import pytest

from app.core.config import settings
from tests.api.test_metrics import _value
from tests.utils.server import ROOT, run_sh


def test_run_sh_migrates_seeds_and_serves(fresh_database_url: str) -> None:
    with (
        run_sh(fresh_database_url) as (base_url, env, _),
        httpx2.Client(base_url=base_url, timeout=10) as http,
    ):
        assert http.get("/readyz").status_code == 200
        login = http.post(
            "/api/v1/auth/login",
            data={
                "username": settings.FIRST_SUPERUSER_EMAIL,
                "password": settings.FIRST_SUPERUSER_PASSWORD.get_secret_value(),
            },
        )
        assert login.status_code == 200
        me = http.get(
            "/api/v1/auth/me",
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        )
        assert me.json()["is_superuser"] is True
        labels = [r["label"] for r in http.get("/api/v1/recipes?limit=100").json()["items"]]
        assert "Chicken Vesuvio" in labels

        again = subprocess.run(
            ["bash", "prestart.sh"], cwd=ROOT, env=env, capture_output=True, check=False
        )
        assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()
        relabels = [r["label"] for r in http.get("/api/v1/recipes?limit=100").json()["items"]]
        assert relabels == labels


def test_two_workers_report_shared_metrics(fresh_database_url: str, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_12345.db").write_bytes(b"stale")
    requests = 40
    with run_sh(fresh_database_url, WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)) as (
        base_url,
        _,
        _,
    ):
        assert not (metrics_dir / "counter_12345.db").exists()
        for _ in range(requests):
            # A new connection each time, so both workers get a share.
            assert httpx2.get(f"{base_url}/healthz", timeout=5).status_code == 200
        text = httpx2.get(f"{base_url}/metrics", timeout=5).text
    # Each worker counts its own; only the multiprocess collector sees all of them.
    assert _value(text, "http_requests_total", route="/healthz", status="200") >= requests


def test_sigterm_lets_in_flight_requests_finish(fresh_database_url: str) -> None:
    body = (
        b'{"email": "drain@example.com", "password": "a-long-password", '
        b'"first_name": "D", "surname": "R"}'
    )
    with run_sh(fresh_database_url) as (base_url, _, proc):
        port = int(base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /api/v1/auth/signup HTTP/1.1\r\nHost: test\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:10]
            )
            time.sleep(0.5)  # let the server start on the request before it is told to stop
            os.killpg(proc.pid, signal.SIGTERM)
            time.sleep(0.5)
            # The server no longer accepts new connections...
            with pytest.raises(httpx2.TransportError):
                httpx2.get(f"{base_url}/healthz", timeout=2)
            # ...but the request already in flight is completed.
            sock.sendall(body[10:])
            response = sock.recv(65536).decode()
        assert response.startswith("HTTP/1.1 201"), response
        # uvicorn re-raises the signal after a clean shutdown, so the exit status names it.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        output = proc.stdout.read().decode() if proc.stdout else ""
        assert "shutdown complete" in output


@pytest.mark.parametrize(
    ("trusted", "separate_budgets"), [("127.0.0.1", True), ("10.9.9.9", False)]
)
def test_client_ip_comes_from_forwarded_headers_only_from_trusted_proxies(
    fresh_database_url: str, trusted: str, separate_budgets: bool
) -> None:
    env = {"RATE_LIMIT_DEFAULT": "2/minute", "FORWARDED_ALLOW_IPS": trusted}
    with run_sh(fresh_database_url, **env) as (base_url, _, _):
        statuses = [
            httpx2.get(
                f"{base_url}/api/v1/recipes",
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
                timeout=5,
            ).status_code
            for i in range(3)
        ]
    # Trusted: three clients, one request each. Untrusted: one client (the proxy), over budget.
    assert statuses == ([200, 200, 200] if separate_budgets else [200, 200, 429])

"""run.sh and prestart.sh as real processes: serve, reseed, share metrics, drain on SIGTERM."""

import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from app.core.config import settings
from tests.api.test_metrics import _value
from tests.utils.idea import SUBREDDITS, IdeaStub, Reply
from tests.utils.server import ROOT, run_sh, superuser_headers

SLOW_REQUESTS = 3
UPSTREAM_DELAY_SECONDS = 2.0


def test_run_sh_migrates_seeds_and_serves(fresh_database_url: str) -> None:
    with (
        run_sh(fresh_database_url) as service,
        httpx2.Client(base_url=service.base_url, timeout=10) as http,
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
            ["bash", "prestart.sh"], cwd=ROOT, env=service.env, capture_output=True, check=False
        )
        assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()
        relabels = [r["label"] for r in http.get("/api/v1/recipes?limit=100").json()["items"]]
        assert relabels == labels


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


def test_sigterm_lets_in_flight_requests_finish(
    fresh_database_url: str, idea_stub: IdeaStub
) -> None:
    body = (
        b'{"email": "drain@example.com", "password": "a-long-password", '
        b'"first_name": "D", "surname": "R"}'
    )
    # Slow on the server's side: every upstream answer for the idea feed takes this long.
    for name in SUBREDDITS:
        idea_stub.script(name, *[Reply(delay=UPSTREAM_DELAY_SECONDS)] * SLOW_REQUESTS)
    env = {
        "IDEAS_BASE_URL": idea_stub.url,
        "IDEAS_SUBREDDITS": ",".join(SUBREDDITS),
        "IDEAS_TIMEOUT_SECONDS": "30",
    }
    with run_sh(fresh_database_url, **env) as service, ThreadPoolExecutor(SLOW_REQUESTS) as pool:
        base_url, proc = service.base_url, service.proc
        headers = superuser_headers(base_url)
        slow = [
            pool.submit(httpx2.get, f"{base_url}/api/v1/recipes/ideas", headers=headers, timeout=30)
            for _ in range(SLOW_REQUESTS)
        ]
        port = int(base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /api/v1/auth/signup HTTP/1.1\r\nHost: test\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:10]
            )
            assert idea_stub.wait_in_flight(SLOW_REQUESTS)
            time.sleep(0.5)  # let the server start on the requests before it is told to stop
            os.killpg(proc.pid, signal.SIGTERM)
            time.sleep(0.5)
            # The server no longer accepts new connections...
            with pytest.raises(httpx2.TransportError):
                httpx2.get(f"{base_url}/healthz", timeout=2)
            # ...but the requests already in flight are completed: a slow client's...
            sock.sendall(body[10:])
            response = sock.recv(65536).decode()
        assert response.startswith("HTTP/1.1 201"), response
        # ...and those waiting on a slow upstream.
        answers = [future.result() for future in slow]
        assert [a.status_code for a in answers] == [200] * SLOW_REQUESTS
        assert all(a.json()["ideas"] for a in answers)
        # uvicorn re-raises the signal after a clean shutdown, so the exit status names it.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "shutdown complete" in service.output()


@pytest.mark.parametrize(
    ("trusted", "separate_budgets"), [("127.0.0.1", True), ("10.9.9.9", False)]
)
def test_client_ip_comes_from_forwarded_headers_only_from_trusted_proxies(
    fresh_database_url: str, trusted: str, separate_budgets: bool
) -> None:
    env = {"RATE_LIMIT_DEFAULT": "2/minute", "FORWARDED_ALLOW_IPS": trusted}
    with run_sh(fresh_database_url, **env) as service:
        base_url = service.base_url
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

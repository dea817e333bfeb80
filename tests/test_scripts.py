"""run.sh and prestart.sh as real processes: migrate, seed, serve; prestart twice adds nothing."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from app.core.config import settings

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _script_env(database_url: str, port: int) -> dict[str, str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return os.environ | {
        "DATABASE_URL": database_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "1",
        "PATH": path,
    }


@pytest.fixture
def served(fresh_database_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    """run.sh on a fresh database; yields the base URL once /healthz answers."""
    port = _free_port()
    env = _script_env(fresh_database_url, port)
    proc = subprocess.Popen(
        ["bash", "run.sh"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"run.sh exited with {proc.returncode}:\n{output}")
            try:
                if httpx2.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("run.sh did not serve /healthz in time")
            time.sleep(0.2)
        yield base_url, env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()


def test_run_sh_migrates_seeds_and_serves(served: tuple[str, dict[str, str]]) -> None:
    base_url, env = served
    with httpx2.Client(base_url=base_url, timeout=10) as http:
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

"""The service as a real process: run.sh on a free loopback port, with this suite's settings."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from tests.utils.utils import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60


def script_env(database_url: str, port: int = 0, **extra_env: str) -> dict[str, str]:
    """The environment run.sh and prestart.sh get: this suite's settings, another database."""
    return os.environ | {
        "DATABASE_URL": database_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra_env,
    }


@contextmanager
def run_sh(
    database_url: str, **extra_env: str
) -> Iterator[tuple[str, dict[str, str], "subprocess.Popen[bytes]"]]:
    """run.sh on the given database; yields the base URL once /healthz answers."""
    port = free_port()
    env = script_env(database_url, port, **extra_env)
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
        yield base_url, env, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()

"""The service as a real process: run.sh on a free loopback port, with this suite's settings."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path
from types import ModuleType

import httpx2
import pytest

from app.core.config import settings
from tests.utils.utils import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60


def script(name: str) -> ModuleType:
    """scripts/<name>.py as a module (the scripts are not a package), loaded once."""
    if name in sys.modules:
        return sys.modules[name]
    spec = spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = module_from_spec(spec)
    # Dataclasses look their module up while the class is made.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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


@dataclass(frozen=True)
class Service:
    base_url: str
    env: dict[str, str]
    proc: "subprocess.Popen[bytes]"
    log: Path

    def output(self) -> str:
        """Everything the service has logged so far."""
        return self.log.read_text(errors="replace")


def run_sh(database_url: str, **extra_env: str) -> AbstractContextManager[Service]:
    """run.sh on the given database; yields the service once /healthz answers."""
    return serve(database_url, ("bash", "run.sh"), extra_env=extra_env)


@contextmanager
def serve(
    database_url: str,
    command: Sequence[str],
    *,
    cwd: Path = ROOT,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Service]:
    """command (run.sh, or what runs it) from cwd; yields the service once /healthz answers."""
    port = port or free_port()
    env = script_env(database_url, port, **(extra_env or {}))
    # A file, not a pipe: a pipe nobody reads fills up under load and stalls the server.
    log = Path(tempfile.mkstemp(prefix="recipe-run-", suffix=".log")[1])
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Service(f"http://127.0.0.1:{port}", env, proc, log)
    base_url = service.base_url
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"run.sh exited with {proc.returncode}:\n{service.output()}")
            try:
                if httpx2.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("run.sh did not serve /healthz in time")
            time.sleep(0.2)
        yield service
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            pytest.fail(f"run.sh did not stop on SIGTERM:\n{service.output()[-4000:]}")
        finally:
            log.unlink(missing_ok=True)


def superuser_headers(base_url: str) -> dict[str, str]:
    """Log the seeded superuser in to a running service; its bearer header."""
    login = httpx2.post(
        f"{base_url}/api/v1/auth/login",
        data={
            "username": settings.FIRST_SUPERUSER_EMAIL,
            "password": settings.FIRST_SUPERUSER_PASSWORD.get_secret_value(),
        },
        timeout=10,
    )
    return {"Authorization": f"Bearer {login.json()['access_token']}"}

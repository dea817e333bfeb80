"""run.sh, prestart.sh and scripts/dev.py as real processes: serve, reseed, drain, stop, install."""

import os
import signal
import socket
import subprocess
import sys
import time
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path
from types import ModuleType

import httpx2
import pytest

from app.core.config import settings
from tests.utils.server import ROOT, run_sh, script_env, serve
from tests.utils.utils import free_port


def test_run_sh_migrates_seeds_and_serves(fresh_database_url: str) -> None:
    with (
        run_sh(fresh_database_url) as service,
        httpx2.Client(base_url=service.base_url, timeout=10) as http,
    ):
        assert http.get("/readyz").status_code == 200
        # run.sh became prestart.sh's Python process, which then became the server: one
        # interpreter (and one set of imports) for both, the process a supervisor signals.
        cmdline = Path(f"/proc/{service.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:4] == [b"-m", b"app.prestart", b"uvicorn"], cmdline
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


def test_sigterm_lets_in_flight_requests_finish(fresh_database_url: str) -> None:
    """A slow client's request in flight is completed; requests waiting on a slow upstream are
    proved in tests/api/api_v1/test_idea.py."""
    body = (
        b'{"email": "drain@example.com", "password": "a-long-password", '
        b'"first_name": "D", "surname": "R"}'
    )
    with run_sh(fresh_database_url) as service:
        base_url, proc = service.base_url, service.proc
        port = int(base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /api/v1/auth/signup HTTP/1.1\r\nHost: test\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:10]
            )
            time.sleep(0.5)  # let the server start on the requests before it is told to stop
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


def _process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    ("verb", "banner"), [("run", "Application startup complete"), ("dev", "Will watch")]
)
def test_dev_py_serve_verbs_stop_the_server_on_sigterm(
    fresh_database_url: str, verb: str, banner: str
) -> None:
    command = (sys.executable, "scripts/dev.py", verb)
    with serve(fresh_database_url, command) as service:
        assert banner in service.output()
        # The runner only, as an IDE's stop button or a supervisor sends it: not its group.
        os.kill(service.proc.pid, signal.SIGTERM)
        try:
            service.proc.wait(timeout=30)
            deadline = time.monotonic() + 10
            while _process_group_alive(service.proc.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not _process_group_alive(service.proc.pid), "the server outlived its runner"
        finally:
            if _process_group_alive(service.proc.pid):
                os.killpg(service.proc.pid, signal.SIGKILL)
        with pytest.raises(httpx2.TransportError):
            httpx2.get(f"{service.base_url}/healthz", timeout=2)


def test_run_sh_takes_host_and_port_from_dot_env(fresh_database_url: str, tmp_path: Path) -> None:
    for name in ("app", "alembic", "alembic.ini", "pyproject.toml", "prestart.sh", "run.sh"):
        (tmp_path / name).symlink_to(ROOT / name)
    port = free_port()
    (tmp_path / ".env").write_text(f"# as a newcomer writes it\nHOST=127.0.0.1\nPORT={port}\n")
    # Empty in the environment: unset, so .env decides.
    env = {"HOST": "", "PORT": ""}
    with serve(
        fresh_database_url, ("bash", "run.sh"), cwd=tmp_path, port=port, extra_env=env
    ) as service:
        assert httpx2.get(f"{service.base_url}/healthz", timeout=5).status_code == 200


def test_run_sh_names_a_busy_port_in_one_line(fresh_database_url: str, tmp_path: Path) -> None:
    (tmp_path / "run.sh").symlink_to(ROOT / "run.sh")
    with socket.socket() as busy, socket.socket() as also_busy:
        for sock in (busy, also_busy):
            sock.bind(("127.0.0.1", 0))
            sock.listen()
        env_port, process_port = busy.getsockname()[1], also_busy.getsockname()[1]
        (tmp_path / ".env").write_text(f"PORT={env_port}\n")
        result = subprocess.run(
            ["bash", "run.sh"],
            cwd=tmp_path,
            env=script_env(fresh_database_url, process_port),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode != 0
    # The process environment wins over .env, and the hint is all there is.
    assert result.stderr.splitlines() == [
        f"run.sh: port {process_port} on 127.0.0.1 is already in use (another server still "
        f"running?): stop it, or set another, say PORT={process_port + 1}"
    ]


def _dev_py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, list[str]]:
    """scripts/dev.py on a venv of its own under tmp_path; pip calls are recorded, not run."""
    spec = spec_from_file_location("dev_script", ROOT / "scripts" / "dev.py")
    assert spec is not None
    assert spec.loader is not None
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    venv_dir = tmp_path / ".venv"
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "VENV", venv_dir)
    monkeypatch.setattr(module, "BIN", venv_dir / "bin")
    installed: list[str] = []
    monkeypatch.setattr(module, "_run", lambda *cmd, **_: installed.append(Path(cmd[-1]).name))
    return module, installed


def test_install_makes_the_venv_with_current_pip_and_setuptools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev_py, _ = _dev_py(tmp_path, monkeypatch)
    made: list[dict[str, object]] = []

    class Builder:
        def __init__(self, **options: object) -> None:
            made.append(options)

        def create(self, path: Path) -> None:
            (path / "bin").mkdir(parents=True)
            (path / "bin" / "python").touch()

    monkeypatch.setattr(dev_py.venv, "EnvBuilder", Builder)
    dev_py.install(dev=False)
    assert made == [{"with_pip": True, "upgrade_deps": True}]


def test_run_installs_the_runtime_lock_and_test_only_adds_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev_py, installed = _dev_py(tmp_path, monkeypatch)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").touch()
    dev_py.install(dev=False)
    dev_py.install(dev=False)
    assert installed == ["requirements.txt"]
    dev_py.install(dev=True)
    dev_py.install(dev=True)
    dev_py.install(dev=False)
    assert installed == ["requirements.txt", "requirements-dev.txt"]


def test_run_after_test_installs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dev_py, installed = _dev_py(tmp_path, monkeypatch)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").touch()
    dev_py.install(dev=True)
    dev_py.install(dev=False)
    assert installed == ["requirements-dev.txt"]

"""A real OpenID Provider (the npm package oidc-provider) and this service, each on loopback."""

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests.utils.db import create_database, drop_database, new_database_url
from tests.utils.server import Service, serve
from tests.utils.utils import free_port

HERE = Path(__file__).resolve().parent
PROVIDER_NAME = "local"
START_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_secret: str


@dataclass(frozen=True)
class Stack:
    provider: Provider
    service: Service

    @property
    def base_url(self) -> str:
        return self.service.base_url


@pytest.fixture(scope="session")
def app_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def provider(app_port: int) -> Iterator[Provider]:
    """`node provider.mjs` with this service's callback registered; stopped at the end."""
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(
            "needs Node.js and `npm ci` in tests/sso: run `python3 scripts/dev.py test-sso`"
        )
    port = free_port()
    secret = secrets.token_urlsafe(24)
    redirect_uri = f"http://127.0.0.1:{app_port}/api/v1/auth/sso/{PROVIDER_NAME}/callback"
    env = os.environ | {"PORT": str(port), "REDIRECT_URI": redirect_uri, "CLIENT_SECRET": secret}
    log = Path(tempfile.mkstemp(prefix="oidc-provider-", suffix=".log")[1])
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [node, "provider.mjs"], cwd=HERE, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"oidc-provider exited:\n{log.read_text(errors='replace')}")
            try:
                if httpx2.get(f"{issuer}/.well-known/openid-configuration").status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("oidc-provider did not start in time")
            time.sleep(0.2)
        yield Provider(issuer, secret)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def stack(provider: Provider, app_port: int) -> Iterator[Stack]:
    """run.sh on a database of its own, configured with the provider."""
    config = [
        {
            "name": PROVIDER_NAME,
            "title": "Local IdP",
            "issuer": provider.issuer,
            "client_id": "recipe-service",
            "client_secret": provider.client_secret,
        }
    ]
    url = new_database_url(os.environ.get("TEST_DATABASE_URL"))
    create_database(url)
    try:
        with serve(
            url,
            ("bash", "run.sh"),
            port=app_port,
            extra_env={"SSO_PROVIDERS": json.dumps(config)},
        ) as service:
            yield Stack(provider, service)
    finally:
        drop_database(url)

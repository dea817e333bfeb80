"""Liveness and readiness."""

from pathlib import Path

import httpx2

from app.db.session import make_engine, make_sessionmaker
from app.main import app
from tests.utils.db import new_database_url
from tests.utils.utils import override_sessions


def unreachable_url(database_url: str, tmp_path: Path) -> str:
    """A database URL of the same backend that cannot be opened."""
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path}"  # a directory is not a database file
    return new_database_url("postgresql+asyncpg://postgres@127.0.0.1:1/postgres")


async def test_healthz_is_ok(client: httpx2.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_ok_when_database_answers(client: httpx2.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "up"}


async def test_readyz_503_when_database_is_down(database_url: str, tmp_path: Path) -> None:
    broken = make_engine(unreachable_url(database_url, tmp_path))
    override_sessions(app, make_sessionmaker(broken))
    try:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as c:
            response = await c.get("/readyz")
            listing = await c.get("/api/v1/recipes")
    finally:
        app.dependency_overrides.clear()
        await broken.dispose()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "down"}
    assert listing.status_code == 503
    assert listing.headers["retry-after"].isdigit()
    assert listing.json() == {"detail": "Service temporarily unavailable"}

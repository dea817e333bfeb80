"""Fixtures: a migrated throw-away database, a rolled-back session per test, a client, tokens."""

import os
import secrets

from tests.utils.db import create_database, drop_database, migrate, new_database_url

# Settings are read when app modules are imported, so the environment is fixed first.
TEST_DATABASE_URL = new_database_url(os.environ.get("TEST_DATABASE_URL"))
os.environ.update(
    ENVIRONMENT="test",
    DATABASE_URL=TEST_DATABASE_URL,
    SECRET_KEY=secrets.token_urlsafe(48),
    FIRST_SUPERUSER_EMAIL="admin@example.com",
    FIRST_SUPERUSER_PASSWORD=secrets.token_urlsafe(16),
    ALLOWED_HOSTS="*",
    BACKEND_CORS_ORIGINS="",
    # Off unless a test turns them on; tests/utils/rate_limit.py has the fixture for that.
    RATE_LIMIT_DEFAULT="off",
    RATE_LIMIT_LOGIN_FAILURES="off",
    RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT="off",
    RATE_LIMIT_RECOVERY_PER_ACCOUNT="off",
    RATE_LIMIT_AUTH_PER_IP="off",
    REDIS_URL="",
    SMTP_HOST="",
)

from collections.abc import AsyncIterator, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import fakeredis  # noqa: E402
import httpx2  # noqa: E402
import pytest  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession  # noqa: E402

from app.core import redis as redis_module  # noqa: E402
from app.core.config import Settings, settings  # noqa: E402
from app.core.security import SCOPES  # noqa: E402
from app.db.session import make_engine  # noqa: E402
from app.main import app  # noqa: E402
from app.models import User  # noqa: E402
from tests.utils.user import create_random_user  # noqa: E402
from tests.utils.utils import Configure, auth_headers, serve_session  # noqa: E402

# Fixtures of optional slices' test utilities (tests/utils/*.py), without naming them here.
pytest_plugins = ["tests.utils.slices"]

# Like TEST_DATABASE_URL: unset, Redis is an in-process fake; set, the suite uses that server.
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL") or "redis://fake-redis:6379/0"


@pytest.fixture(autouse=True)
def fake_redis_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    if "TEST_REDIS_URL" in os.environ:
        return

    real = redis_module.create_redis

    def fake_or_real(url: str, *, timeout: float) -> Any:
        """The fake for the suite's own URL; any other URL (say, a closed port) stays real."""
        if url == TEST_REDIS_URL:
            return fakeredis.FakeAsyncRedis.from_url(url)
        return real(url, timeout=timeout)

    monkeypatch.setattr(redis_module, "create_redis", fake_or_real)


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Configure:
    """Change the app's one settings object for this test, validated as at start-up; undone after.

    `configure(RATE_LIMIT_DEFAULT="3/minute")`, then `create_app()` builds from the new values.
    """

    def apply(**values: Any) -> Settings:
        current = {name: getattr(settings, name) for name in Settings.model_fields}
        fresh = Settings(_env_file=None, **(current | values))
        for name in Settings.model_fields:
            if getattr(fresh, name) != getattr(settings, name):
                monkeypatch.setattr(settings, name, getattr(fresh, name))
        return settings

    return apply


@pytest.fixture
def redis_url() -> str:
    return TEST_REDIS_URL


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """The suite's database, built by the migrations themselves, dropped at the end."""
    create_database(TEST_DATABASE_URL)
    try:
        migrate(TEST_DATABASE_URL)
        yield TEST_DATABASE_URL
    finally:
        drop_database(TEST_DATABASE_URL)


@pytest.fixture
def fresh_database_url() -> Iterator[str]:
    """An empty database of its own on the suite's backend, for tests of migrations and scripts."""
    server = TEST_DATABASE_URL if TEST_DATABASE_URL.startswith("postgresql") else None
    url = new_database_url(server)
    create_database(url)
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    test_engine = make_engine(database_url)
    yield test_engine
    await test_engine.dispose()


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session inside a transaction that is rolled back after the test. The session works in
    savepoints of it, so a request's commit or rollback (see serve_session) leaves it open."""
    async with engine.connect() as conn:
        transaction = await conn.begin()
        session = AsyncSession(
            bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


@pytest.fixture
async def client(db: AsyncSession) -> AsyncIterator[httpx2.AsyncClient]:
    # Requests and background tasks all see the test's rolled-back transaction.
    serve_session(app, db)
    transport = httpx2.ASGITransport(app=app)
    try:
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c
    finally:
        app.dependency_overrides.clear()


@pytest.fixture
async def normal_user(db: AsyncSession) -> User:
    return await create_random_user(db)


@pytest.fixture
async def superuser(db: AsyncSession) -> User:
    return await create_random_user(db, is_superuser=True)


@pytest.fixture
def normal_user_token_headers(normal_user: User) -> dict[str, str]:
    return auth_headers(normal_user.id)


@pytest.fixture
def superuser_token_headers(superuser: User) -> dict[str, str]:
    return auth_headers(superuser.id, scopes=SCOPES)

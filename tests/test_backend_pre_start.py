"""Waiting for the database before start-up."""

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app import backend_pre_start
from app.backend_pre_start import wait_for_db
from app.core.config import settings
from app.db.session import make_engine
from tests.api.test_health import unreachable_url
from tests.conftest import TEST_DATABASE_URL
from tests.utils.db import drop_database, new_database_url


async def test_wait_for_db_succeeds_when_database_answers(engine: AsyncEngine) -> None:
    assert await wait_for_db(engine, max_tries=1, wait_seconds=0) is True


async def test_wait_for_db_gives_up_after_bounded_tries(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = make_engine(unreachable_url(database_url, tmp_path))
    try:
        assert await wait_for_db(broken, max_tries=3, wait_seconds=0) is False
    finally:
        await broken.dispose()
    attempts = [r.getMessage() for r in caplog.records if "not ready" in r.getMessage()]
    assert len(attempts) == 3
    assert "attempt 3/3" in attempts[-1]


async def test_main_exit_code_follows_the_database(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend_pre_start, "engine", make_engine(database_url))
    assert await backend_pre_start.main() == 0
    monkeypatch.setattr(
        backend_pre_start, "engine", make_engine(unreachable_url(database_url, tmp_path))
    )
    monkeypatch.setattr(backend_pre_start, "MAX_TRIES", 1)
    monkeypatch.setattr(backend_pre_start, "WAIT_SECONDS", 0)
    assert await backend_pre_start.main() == 1


async def test_wait_for_db_says_when_it_gives_up(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = make_engine(unreachable_url(database_url, tmp_path))
    try:
        assert await wait_for_db(broken, max_tries=2, wait_seconds=0) is False
    finally:
        await broken.dispose()
    assert caplog.records[-1].levelname == "ERROR"
    assert "did not answer after 2 attempts" in caplog.records[-1].getMessage()


# A database that does not exist is a PostgreSQL answer (SQLite creates its file): the
# PostgreSQL leg (TEST_DATABASE_URL=postgresql...) runs these, in CI too.
needs_postgres = pytest.mark.skipif(
    not TEST_DATABASE_URL.startswith("postgresql"),
    reason="a missing database is a PostgreSQL case (TEST_DATABASE_URL=postgresql...)",
)


@pytest.fixture
def missing_database_url() -> Iterator[str]:
    """A database name on the suite's server that nothing has created; dropped afterwards."""
    url = new_database_url(TEST_DATABASE_URL)
    try:
        yield url
    finally:
        drop_database(url)


@needs_postgres
async def test_wait_for_db_creates_a_missing_database_when_allowed(
    missing_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    missing = make_engine(missing_database_url)
    try:
        assert await wait_for_db(missing, max_tries=2, wait_seconds=0, create_missing=True)
    finally:
        await missing.dispose()
    name = make_url(missing_database_url).database
    assert f"created database {name!r}" in caplog.text
    assert "not ready" not in caplog.text


@needs_postgres
async def test_wait_for_db_fails_at_once_naming_a_missing_database(
    missing_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    missing = make_engine(missing_database_url)
    started = time.monotonic()
    try:
        assert await wait_for_db(missing, max_tries=60, wait_seconds=1) is False
    finally:
        await missing.dispose()
    assert time.monotonic() - started < 5  # one attempt, not sixty
    name = make_url(missing_database_url).database
    [error] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert f"database {name!r} does not exist" in error
    assert f"createdb -h 127.0.0.1 -p {make_url(missing_database_url).port or 5432}" in error


@needs_postgres
async def test_wait_for_db_names_the_database_when_the_server_refuses_to_create_it(
    missing_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A role that may log in but not create databases, as on many shared servers.
    role = f"nocreate_{secrets.token_hex(4)}"
    admin_url = make_url(TEST_DATABASE_URL).set(drivername="postgresql", database="postgres")
    admin = await asyncpg.connect(admin_url.render_as_string(hide_password=False))
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN NOCREATEDB')
        url = make_url(missing_database_url).set(username=role, password=None)
        missing = make_engine(url.render_as_string(hide_password=False))
        try:
            assert not await wait_for_db(missing, max_tries=60, wait_seconds=1, create_missing=True)
        finally:
            await missing.dispose()
    finally:
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()
    [error] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert f"database {url.database!r} does not exist and could not be created" in error
    assert f"-U {role} {url.database}" in error


async def test_main_creates_the_database_only_in_local_mode(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[bool] = []

    async def fake_wait(*_: object, create_missing: bool = False) -> bool:
        asked.append(create_missing)
        return True

    monkeypatch.setattr(backend_pre_start, "wait_for_db", fake_wait)
    for environment in ("local", "production"):
        monkeypatch.setattr(settings, "ENVIRONMENT", environment)
        monkeypatch.setattr(backend_pre_start, "engine", make_engine(database_url))
        assert await backend_pre_start.main() == 0
    assert asked == [True, False]

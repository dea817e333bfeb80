"""Engine set-up per backend: SQLite pragmas on every connection, a checked PostgreSQL pool."""

from pathlib import Path

import httpx2
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.pool import QueuePool

from app.core.config import settings
from app.db import session as session_module
from app.db.session import (
    engine,
    get_db,
    get_read_db,
    make_engine,
    make_read_sessionmaker,
    write_intent,
)
from app.main import app


async def test_sqlite_connections_get_pragmas(tmp_path: Path) -> None:
    # The directory is made at start-up (Settings.prepare_files), not by the engine.
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/app.db")
    try:
        async with engine.connect() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("foreign_keys", "journal_mode", "busy_timeout")
            }
    finally:
        await engine.dispose()
    assert pragmas == {
        "foreign_keys": 1,
        "journal_mode": "wal",
        "busy_timeout": settings.SQLITE_BUSY_TIMEOUT_MS,
    }
    assert (tmp_path / "app.db").exists()


def test_postgres_engine_has_a_sized_pre_pinged_pool() -> None:
    engine = make_engine("postgresql+asyncpg://user@127.0.0.1:5432/db")
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    assert pool.size() == settings.DB_POOL_SIZE
    assert pool._pre_ping is True


async def test_get_db_yields_a_working_session(database_url: str) -> None:
    assert database_url == settings.DATABASE_URL
    sessions = get_db()
    session = await anext(sessions)
    try:
        assert (await session.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await sessions.aclose()


class LostConnectionSession(AsyncSession):
    """Closing fails, as it does when the connection died under the session."""

    async def close(self) -> None:
        await super().close()
        raise sa_exc.OperationalError("ROLLBACK", None, ConnectionResetError("connection lost"))


async def test_session_close_failure_is_logged_not_raised(
    database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert database_url == settings.DATABASE_URL
    failing = async_sessionmaker(engine, class_=LostConnectionSession)
    monkeypatch.setattr(session_module, "SessionLocal", failing)
    monkeypatch.setattr(session_module, "ReadSessionLocal", failing)
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        first = await client.get("/api/v1/recipes")
        second = await client.get("/api/v1/recipes")
    assert (first.status_code, second.status_code) == (200, 200)
    assert any("closing the session failed" in r.getMessage() for r in caplog.records)


async def test_write_intent_takes_the_sqlite_write_lock_at_begin(tmp_path: Path) -> None:
    engine = make_engine(
        f"sqlite+aiosqlite:///{tmp_path}/app.db",
        settings.model_copy(update={"SQLITE_BUSY_TIMEOUT_MS": 0}),
    )
    token = write_intent.set(True)
    try:
        async with engine.connect() as writer, engine.connect() as other:
            await writer.begin()
            # A second writer is turned away at BEGIN, before it has read anything...
            with pytest.raises(sa_exc.OperationalError, match="database is locked"):
                await other.begin()
            await other.rollback()
            write_intent.set(False)
            # ...while a reader begins as usual.
            await other.begin()
            assert (await other.execute(text("SELECT 1"))).scalar() == 1
    finally:
        write_intent.reset(token)
        await engine.dispose()


async def test_get_read_db_yields_a_working_session() -> None:
    sessions = get_read_db()
    session = await anext(sessions)
    try:
        assert (await session.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await sessions.aclose()


async def test_read_sessions_autocommit_on_postgres_only(tmp_path: Path) -> None:
    postgres = make_engine("postgresql+asyncpg://user@127.0.0.1:5432/db")
    sqlite = make_engine(f"sqlite+aiosqlite:///{tmp_path}/app.db")
    try:
        read_pg = make_read_sessionmaker(postgres).kw["bind"]
        read_sqlite = make_read_sessionmaker(sqlite).kw["bind"]
        assert read_pg.get_execution_options()["isolation_level"] == "AUTOCOMMIT"
        # SQLite begins its own transactions (see _sqlite_setup): the engine is used as it is.
        assert read_sqlite is sqlite
    finally:
        await postgres.dispose()
        await sqlite.dispose()

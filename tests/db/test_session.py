"""Engine set-up per backend: SQLite pragmas on every connection, a checked PostgreSQL pool."""

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from app.core.config import settings
from app.db.session import get_db, get_read_db, make_engine, make_read_sessionmaker


async def test_sqlite_connections_get_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/nested/dir/app.db")
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
    assert (tmp_path / "nested" / "dir" / "app.db").exists()


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

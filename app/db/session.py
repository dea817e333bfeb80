"""The async engine and session factory, tuned per backend."""

import logging
from collections.abc import AsyncGenerator
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.config import Settings, settings

logger = logging.getLogger(__name__)

# Execution option: begin SQLite transactions holding the write lock (see exclusive_session).
SQLITE_IMMEDIATE = "sqlite_immediate"
# True while serving a request that may write (any method but GET, HEAD, OPTIONS): on SQLite its
# transactions begin holding the write lock, so a read that later writes waits its turn at BEGIN
# (up to SQLITE_BUSY_TIMEOUT_MS) instead of failing when another writer committed in between.
write_intent: ContextVar[bool] = ContextVar("write_intent", default=False)


def _sqlite_setup(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin, so that
        # SAVEPOINT and rollback behave as they do on PostgreSQL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front; a read that later writes could not wait for it.
        immediate = conn.get_execution_options().get(SQLITE_IMMEDIATE, False) or write_intent.get()
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, config: Settings = settings) -> AsyncEngine:
    """Create an engine for a URL: SQLite gets pragmas on every connection, PostgreSQL a pool."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # The data directory is made at start-up (Settings.prepare_files), not here at import.
        engine = create_async_engine(url)
        _sqlite_setup(engine, config.SQLITE_BUSY_TIMEOUT_MS)
        return engine
    return create_async_engine(
        url,
        pool_size=config.DB_POOL_SIZE,
        max_overflow=config.DB_MAX_OVERFLOW,
        pool_timeout=config.DB_POOL_TIMEOUT,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def make_sessionmaker(bind: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)


def make_read_sessionmaker(bind: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for one-statement reads. On PostgreSQL they run in autocommit: no BEGIN and
    ROLLBACK round trips around the one SELECT. Never write through them."""
    if bind.dialect.name == "postgresql":
        bind = bind.execution_options(isolation_level="AUTOCOMMIT")
    return make_sessionmaker(bind)


engine = make_engine(settings.DATABASE_URL)
SessionLocal = make_sessionmaker(engine)
ReadSessionLocal = make_read_sessionmaker(engine)


async def _serve(factory: async_sessionmaker[AsyncSession]) -> AsyncGenerator[AsyncSession]:
    session = factory()
    try:
        yield session
    finally:
        try:
            await session.close()
        except Exception as exc:
            # This runs after the response went out: raising would only make the server drop
            # the client's keep-alive connection. A connection lost here is discarded by the pool.
            logger.warning("closing the session failed: %s", type(exc).__name__)


async def get_db() -> AsyncGenerator[AsyncSession]:
    """One session per request; CRUD methods commit their own writes."""
    async for session in _serve(SessionLocal):
        yield session


async def get_read_db() -> AsyncGenerator[AsyncSession]:
    """A read-only session for routes that run a single SELECT (see make_read_sessionmaker)."""
    async for session in _serve(ReadSessionLocal):
        yield session

"""The async engine, the session factories tuned per backend, and the request's transaction."""

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy import ScalarResult, Select, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.config import Settings, settings
from app.db.folding import register_casefold

logger = logging.getLogger(__name__)

T = TypeVar("T")

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
        register_casefold(dbapi_connection)

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


@asynccontextmanager
async def request_transaction(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """The request's one transaction: committed if the work succeeds, rolled back if it raises."""
    try:
        yield session
    except BaseException:
        await session.rollback()
        raise
    await session.commit()


async def commit_early(session: AsyncSession) -> None:
    """End the request's transaction now: before slow work (hashing a password, awaiting
    another service), or to keep a write (a revocation) that the error answer to follow would
    roll back. The one place besides the request's end where a transaction commits.

    While the work runs the session then holds no pooled connection (PostgreSQL) and no write
    lock (SQLite); the objects it loaded stay usable (expire_on_commit=False), and its next
    statement begins a new transaction, which the request commits as usual.
    """
    if session.in_transaction():
        await session.commit()


class ReadSession:
    """A session that can only read: it takes SELECTs and primary keys, so passing it to code
    that writes is a type error. Served for routes that run one SELECT."""

    __slots__ = ("_session",)

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, entity: type[T], ident: int) -> T | None:
        return await self._session.get(entity, ident)

    async def scalar(self, statement: Select[T]) -> T | None:
        return await self._session.scalar(statement)

    async def scalars(self, statement: Select[T]) -> ScalarResult[T]:
        return await self._session.scalars(statement)


# What read-only data access accepts: a read session, or a request's read-write one.
Reader = AsyncSession | ReadSession


@asynccontextmanager
async def _closing(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    try:
        yield session
    finally:
        try:
            await session.close()
        except Exception as exc:
            # The transaction has ended, so the answer is decided: raising would only turn it
            # into a 500. A connection lost here is discarded by the pool.
            logger.warning("closing the session failed: %s", type(exc).__name__)


@asynccontextmanager
async def session_scope() -> AsyncIterator[AsyncSession]:
    """A new session and its transaction (see request_transaction), closed afterwards."""
    async with _closing(SessionLocal()) as session, request_transaction(session):
        yield session


async def get_db() -> AsyncGenerator[AsyncSession]:
    """The request's session; declared with scope="function", so that its transaction is
    committed, or rolled back, before the response is sent."""
    async with session_scope() as session:
        yield session


async def get_read_db() -> AsyncGenerator[ReadSession]:
    """A read-only session for routes that run a single SELECT (see make_read_sessionmaker)."""
    async with _closing(ReadSessionLocal()) as session:
        yield ReadSession(session)

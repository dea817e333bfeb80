"""The async engine, the session factories tuned per backend, and the request's transaction."""

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from functools import cache, lru_cache
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Insert,
    ScalarResult,
    Select,
    Table,
    bindparam,
    event,
    insert,
    select,
)
from sqlalchemy.engine import Dialect, Result, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.config import Settings, settings
from app.db.direct import (
    PLAN_CACHE_SIZE,
    DirectReader,
    DirectReadFailed,
    DirectWriteFailed,
    InsertPlan,
    compile_insert,
    direct_inserts,
    insert_on,
)
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
    # No pre-ping: it cost three round trips per checkout (asyncpg pings inside a transaction).
    # A connection found dead is invalidated with every older one in the pool; a read then
    # retries once on a fresh connection (ReadSession), a write answers 503 (app.api.errors).
    return create_async_engine(
        url,
        pool_size=config.DB_POOL_SIZE,
        max_overflow=config.DB_MAX_OVERFLOW,
        pool_timeout=config.DB_POOL_TIMEOUT,
        pool_pre_ping=False,
        pool_recycle=1800,
    )


def make_sessionmaker(bind: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)


def make_read_engine(bind: AsyncEngine) -> AsyncEngine:
    """The engine one-statement reads run on. On PostgreSQL in autocommit: no BEGIN and
    ROLLBACK round trips around the one SELECT. Never write through it."""
    if bind.dialect.name == "postgresql":
        return bind.execution_options(isolation_level="AUTOCOMMIT")
    return bind


engine = make_engine(settings.DATABASE_URL)
SessionLocal = make_sessionmaker(engine)
read_engine = make_read_engine(engine)


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


@cache
def _by_primary_key(table: Table) -> Select[Any]:
    # Built once per table; SQLAlchemy caches its compiled form.
    (key,) = table.primary_key.columns
    return select(*table.columns).where(key == bindparam("ident"))


@lru_cache(maxsize=PLAN_CACHE_SIZE)
def _as_rows(statement: Select[Any]) -> Select[Any] | None:
    """For a select of one entity, the same select of its table's columns; else None. Kept per
    statement: finding the entity costs more than the read, and a statement built once then
    stays one statement for the direct reader."""
    table = _entity(statement)
    return None if table is None else statement.with_only_columns(*table.columns)


def _entity(statement: Select[Any]) -> Table | None:
    """The table of a one-entity ORM select (`select(Model)...`), else None."""
    if len(statement.column_descriptions) != 1:
        return None
    description = statement.column_descriptions[0]
    entity = description.get("entity")
    if entity is None or description.get("expr") is not entity:
        return None
    table = getattr(entity, "__table__", None)
    return table if isinstance(table, Table) else None


class ReadSession:
    """Reads that can only read: it takes SELECTs and primary keys, so passing it to code that
    writes is a type error. Served for routes that run one SELECT.

    On the app's engine each read is one statement on a pooled connection, with no ORM session,
    identity map or transaction begun. An entity (`get`, or a select of one model) then comes
    back as a row with the model's columns as attributes, not as a model object: read-only, no
    relationships. On PostgreSQL such reads run straight on the asyncpg driver (app.db.direct),
    each statement compiled once: build statements once, with bindparam() for what changes.
    Anything else runs through SQLAlchemy Core. A connection found dead is retried once on a
    fresh one. Over an AsyncSession (tests) it reads through that session instead, as model
    objects; `reads_in` gives rows read the same way on a session's own connection.
    """

    __slots__ = ("_bind", "_direct", "_rows")

    def __init__(self, bind: AsyncSession | AsyncEngine, *, rows: bool = False) -> None:
        self._bind = bind
        engine = bind.bind if isinstance(bind, AsyncSession) else bind
        self._rows = rows or not isinstance(bind, AsyncSession)
        self._direct = (
            _direct_reader(engine)
            if self._rows and isinstance(engine, AsyncEngine) and engine.dialect.driver == "asyncpg"
            else None
        )

    async def _execute(
        self, statement: Select[Any], params: Mapping[str, Any] | None = None
    ) -> Result[Any]:
        result: Result[Any]
        if isinstance(self._bind, AsyncSession):
            result = await self._bind.execute(statement, params)
            return result
        try:
            # The async driver buffers every row, so the result outlives the connection.
            async with self._bind.connect() as conn:
                result = await conn.execute(statement, params)
            return result
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        # The pool has dropped that connection and every one opened before it: one retry.
        async with self._bind.connect() as conn:
            result = await conn.execute(statement, params)
        return result

    async def _entity_rows(
        self, statement: Select[Any], params: Mapping[str, Any] | None
    ) -> Sequence[Any]:
        """Rows of a select of whole rows' columns, directly when the statement allows it."""
        if self._direct is not None and (plan := self._direct.plan(statement)) is not None:
            try:
                if isinstance(self._bind, AsyncSession):
                    connection = await self._bind.connection()
                    return await DirectReader.fetch_on(connection, plan, params)
                return await self._direct.fetch(plan, params)
            except DirectReadFailed:
                pass  # SQLAlchemy tells a dead connection from a bad statement, and retries
        return (await self._execute(statement, params)).all()

    async def get(self, entity: type[T], ident: int) -> T | None:
        if not self._rows:
            return await cast(AsyncSession, self._bind).get(entity, ident)
        table = cast(Table, entity.__table__)  # type: ignore[attr-defined]
        rows = await self._entity_rows(_by_primary_key(table), {"ident": ident})
        return cast(T | None, rows[0] if rows else None)

    async def _rows_of(
        self, statement: Select[Any], params: Mapping[str, Any] | None = None
    ) -> Sequence[Any]:
        if not self._rows:
            return (await cast(AsyncSession, self._bind).scalars(statement, params)).all()
        rows = _as_rows(statement)
        if rows is None:
            return (await self._execute(statement, params)).scalars().all()
        return await self._entity_rows(rows, params)

    async def scalar(
        self, statement: Select[T], params: Mapping[str, Any] | None = None
    ) -> T | None:
        rows = await self._rows_of(statement, params)
        return cast(T | None, rows[0] if rows else None)

    async def scalars(
        self, statement: Select[T], params: Mapping[str, Any] | None = None
    ) -> ScalarResult[T]:
        # Answers .all() and .first() as the ScalarResult of an AsyncSession does.
        return cast(ScalarResult[T], _Rows(await self._rows_of(statement, params)))


def reads_in(session: AsyncSession) -> ReadSession:
    """Reads on the session's own connection, in its transaction, that give rows as ReadSession
    does: for a write route's checks, which need no model object to change (on PostgreSQL they
    run on the driver directly, see DirectReader.fetch_on)."""
    return ReadSession(session, rows=True)


@lru_cache(maxsize=8)
def _direct_reader(engine: AsyncEngine) -> DirectReader:
    # One per engine, so its compiled statements serve every ReadSession over it.
    return DirectReader(engine)


class _Rows(list[Any]):
    def all(self) -> list[Any]:
        return self

    def first(self) -> Any:
        return self[0] if self else None


@lru_cache(maxsize=PLAN_CACHE_SIZE)
def _insert_plan(dialect: Dialect, model: Any, keys: frozenset[str]) -> InsertPlan | None:
    return compile_insert(model.__table__, keys, dialect)


@cache
def _insert_returning(model: Any) -> Insert:
    # Core's insert of the table, as before the direct path: not the ORM's bulk insert.
    table = model.__table__
    return insert(table).returning(*table.columns)


async def insert_row(session: AsyncSession, model: type[Any], values: Mapping[str, Any]) -> Any:
    """Insert one row in the session's transaction and return it as stored (defaults filled
    in): a row with the model's columns as attributes, as ReadSession gives, not a model
    object to change.

    One INSERT ... RETURNING, without the ORM's unit of work. On PostgreSQL it runs straight on
    the asyncpg driver (app.db.direct), compiled once per table and set of keys: SQLAlchemy's
    execution context and Result cost more than the statement. Anything else, and a statement
    the direct path cannot run, goes through SQLAlchemy Core.
    """
    entity: Any = model  # a mapped class: hashable, whatever its annotations say
    connection = await session.connection()
    dialect = connection.dialect
    plan = _insert_plan(dialect, entity, frozenset(values)) if direct_inserts(dialect) else None
    if plan is not None:
        try:
            return await insert_on(connection, plan, values)
        except DirectWriteFailed:
            pass  # SQLAlchemy's own run finds the connection dead and reports it as usual
    return (await session.execute(_insert_returning(entity), dict(values))).one()


# What read-only data access accepts: a read session, or a request's read-write one.
Reader = AsyncSession | ReadSession


async def _close(session: AsyncSession) -> None:
    try:
        await session.close()
    except Exception as exc:
        # The transaction has ended, so the answer is decided: raising would only turn it
        # into a 500. A connection lost here is discarded by the pool.
        logger.warning("closing the session failed: %s", type(exc).__name__)


async def get_db() -> AsyncGenerator[AsyncSession]:
    """The request's session in its request_transaction. Declared with scope="function", so
    that the transaction ends before the response is sent. One generator around it, not a
    context manager for each step: every request that writes passes through it."""
    session = SessionLocal()
    try:
        async with request_transaction(session):
            yield session
    except BaseException:
        await _close(session)
        raise
    # The commit gave the connection back to the pool, which is all a close would still do
    # here but forget the session's objects, as dropping it does.


# The same for work outside a request (a background task): a new session and its transaction.
session_scope = asynccontextmanager(get_db)


_reads = ReadSession(read_engine)


async def get_read_db() -> ReadSession:
    """Read-only access for routes that run a single SELECT (see make_read_engine). Each read
    takes a pooled connection for its statement only, so there is nothing to close."""
    return _reads

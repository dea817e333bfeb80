"""Reads of whole rows and one-row inserts straight on the asyncpg driver: each statement
compiled once, then run without SQLAlchemy's execution machinery (its Connection, execution
context and Result cost about three times the query itself). ReadSession and
app.db.session.insert_row use it; nothing else should."""

from collections import OrderedDict, namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import ColumnDefault, Numeric, Select, TableClause, insert
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.util import greenlet_spawn

# Compiled statements kept, by statement object: the repositories build theirs once, so this
# holds each of them; a statement built per call is compiled per call and evicted first.
PLAN_CACHE_SIZE = 512


class DirectReadFailed(Exception):
    """The direct read could not run; the caller reads through SQLAlchemy instead, which
    reports (or retries) the error as usual."""


@dataclass(frozen=True, slots=True)
class Plan:
    """One statement compiled for asyncpg: its SQL, its bind names in positional order, the
    values its literals bind, and how to turn a record into a row."""

    sql: str
    names: tuple[str, ...]
    literals: Mapping[str, Any]
    make: Callable[[Sequence[Any]], tuple[Any, ...]]

    def arguments(self, params: Mapping[str, Any] | None) -> list[Any]:
        values = {**self.literals, **params} if params else self.literals
        return [values[name] for name in self.names]


def _row_maker(
    keys: list[str], processors: Sequence[Callable[[Any], Any] | None]
) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    row = namedtuple("Row", keys)  # type: ignore[misc]
    converting = [(i, p) for i, p in enumerate(processors) if p is not None]
    if not converting:
        return row._make

    def make(record: Sequence[Any]) -> tuple[Any, ...]:
        values = list(record)
        for i, process in converting:
            values[i] = process(values[i])
        return row._make(values)

    return make


def _result_processors(
    columns: Sequence[ColumnElement[Any]], dialect: Dialect
) -> list[Callable[[Any], Any] | None] | None:
    """Each column's conversion of a value read, or None if one depends on the column's
    database type, which only SQLAlchemy's execution knows (Numeric)."""
    processors: list[Callable[[Any], Any] | None] = []
    for column in columns:
        impl = column.type.dialect_impl(dialect)
        if isinstance(impl, Numeric):
            return None
        processors.append(impl.result_processor(dialect, None))
    return processors


def compile_plan(statement: Select[Any], dialect: Dialect) -> Plan | None:
    """The plan of a SELECT of plain columns, or None when it needs what only SQLAlchemy's
    execution does (parameters expanded at run time, types converted on the way in, or a
    result type whose conversion depends on the column's database type)."""
    columns = list(statement.selected_columns)
    processors = _result_processors(columns, dialect)
    if processors is None:
        return None
    compiled = statement.compile(dialect=dialect)
    if (
        compiled.positiontup is None
        or compiled.escaped_bind_names
        or "POSTCOMPILE" in compiled.string
    ):
        return None
    for bind in compiled.binds.values():
        if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
            return None
    # What the statement binds itself (a LIMIT, a value compared with); the rest come per call.
    literals = {
        name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
    }
    return Plan(
        compiled.string,
        tuple(compiled.positiontup),
        literals,
        _row_maker([str(column.key) for column in columns], processors),
    )


class DirectReader:
    """Runs plans on connections checked out of the engine's own pool, so reads and writes
    share one pool and its limits."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._plans: OrderedDict[int, tuple[Select[Any], Plan | None]] = OrderedDict()

    def plan(self, statement: Select[Any]) -> Plan | None:
        key = id(statement)
        cached = self._plans.get(key)
        # The statement is kept with its plan, so its id cannot be reused while cached.
        if cached is not None and cached[0] is statement:
            self._plans.move_to_end(key)
            return cached[1]
        plan = compile_plan(statement, self.engine.dialect)
        self._plans[key] = (statement, plan)
        if len(self._plans) > PLAN_CACHE_SIZE:
            self._plans.popitem(last=False)
        return plan

    async def fetch(self, plan: Plan, params: Mapping[str, Any] | None) -> list[tuple[Any, ...]]:
        """The rows, or DirectReadFailed (the connection, suspect now, is discarded)."""
        arguments = plan.arguments(params)
        try:
            pooled = await self.engine.raw_connection()
        except Exception as exc:
            raise DirectReadFailed from exc  # SQLAlchemy's own path reports it as usual
        try:
            driver: Any = pooled.driver_connection
            records = await driver.fetch(plan.sql, *arguments)
        except BaseException as exc:
            # Dead, or left mid-statement by a cancellation: never hand it out again.
            pooled.invalidate(exc if isinstance(exc, Exception) else None)
            await greenlet_spawn(pooled.close)
            if isinstance(exc, Exception):
                raise DirectReadFailed from exc
            raise
        # Back to the pool without a greenlet: its reset would only roll back a transaction
        # SQLAlchemy began, and none was (the driver ran the one statement in autocommit).
        pooled.close()
        return [plan.make(record) for record in records]

    @staticmethod
    async def fetch_on(
        connection: AsyncConnection, plan: Plan, params: Mapping[str, Any] | None
    ) -> list[tuple[Any, ...]]:
        """The rows, read on a connection a session holds; DirectReadFailed if the read failed
        (the caller then reads through the connection, which reports a dead one as usual).

        SQLAlchemy's driver adapter sends BEGIN with the connection's first statement of its
        own, so a read before any lands outside the transaction: the same rows under READ
        COMMITTED, where each statement sees what was committed before it."""
        arguments = plan.arguments(params)
        try:
            driver: Any = (await connection.get_raw_connection()).driver_connection
            records = await driver.fetch(plan.sql, *arguments)
        except Exception as exc:
            raise DirectReadFailed from exc
        return [plan.make(record) for record in records]


def direct_inserts(dialect: Dialect) -> bool:
    """Whether inserts can run straight on this dialect's driver: asyncpg, whose SQLAlchemy
    adapter has the methods insert_on begins transactions and translates errors with (a
    release without them inserts through SQLAlchemy Core instead)."""
    return dialect.driver == "asyncpg" and _asyncpg_adapter_fits()


# Cached once per process, not per dialect: a cache keyed by dialects would keep every engine's
# dialect alive.
@cache
def _asyncpg_adapter_fits() -> bool:
    # Loaded with the dialect already; imported here so that other backends never load it.
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

    return all(
        hasattr(AsyncAdapt_asyncpg_connection, name)
        for name in ("_transaction", "_start_transaction", "_handle_exception")
    )


class DirectWriteFailed(Exception):
    """The connection was lost under a direct insert; the caller runs it through SQLAlchemy,
    which finds the connection dead and reports it (dropping the pool's older connections)."""


class _DefaultContext:
    """What a column default that takes a context reads of it: the row's values so far."""

    __slots__ = ("current_parameters",)

    def __init__(self, values: dict[str, Any]) -> None:
        self.current_parameters = values

    def get_current_parameters(self, isolate_multiinsert_groups: bool = True) -> dict[str, Any]:  # noqa: ARG002
        return self.current_parameters


@dataclass(frozen=True, slots=True)
class InsertPlan:
    """An INSERT ... RETURNING of every column for one set of given keys, compiled for the
    dialect: its SQL, its bind names in positional order, the Python-side defaults of the
    columns not given, each bind's conversion, and how to turn the row into a named tuple."""

    sql: str
    names: tuple[str, ...]
    defaults: tuple[tuple[str, ColumnDefault], ...]
    binds: tuple[Callable[[Any], Any] | None, ...]
    make: Callable[[Sequence[Any]], tuple[Any, ...]]

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        row = dict(values)
        for name, default in self.defaults:
            row[name] = default.arg if default.is_scalar else default.arg(_DefaultContext(row))
        return [
            row[name] if bind is None else bind(row[name])
            for name, bind in zip(self.names, self.binds, strict=True)
        ]


def compile_insert(table: TableClause, keys: frozenset[str], dialect: Dialect) -> InsertPlan | None:
    """The plan of inserting a row of these keys, or None when it needs what only SQLAlchemy's
    execution does (a key that is no column, a value converted by the database's column type,
    parameters expanded at run time). Defaults written in SQL stay in the statement; Python
    ones are run per row."""
    if not keys <= set(table.columns.keys()):
        return None
    columns = list(table.columns)
    processors = _result_processors(columns, dialect)
    if processors is None:
        return None
    compiled = insert(table).returning(*columns).compile(dialect=dialect, column_keys=sorted(keys))
    if (
        compiled.positiontup is None
        or compiled.escaped_bind_names
        or "POSTCOMPILE" in compiled.string
    ):
        return None
    defaults = []
    for column in compiled.insert_prefetch:
        default = column.default
        if not isinstance(default, ColumnDefault) or not (default.is_scalar or default.is_callable):
            return None
        defaults.append((column.key, default))
    names = tuple(compiled.positiontup)
    if set(names) != keys | {name for name, _ in defaults}:
        return None
    return InsertPlan(
        compiled.string,
        names,
        tuple(defaults),
        tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in names
        ),
        _row_maker([str(column.key) for column in columns], processors),
    )


async def insert_on(
    connection: AsyncConnection, plan: InsertPlan, values: Mapping[str, Any]
) -> tuple[Any, ...]:
    """Insert the row on an asyncpg connection a session holds, in its transaction, and return
    it as stored. A database's refusal is raised as SQLAlchemy raises it (an IntegrityError for
    a clash); a lost connection as DirectWriteFailed."""
    arguments = plan.arguments(values)
    dialect = connection.dialect
    pooled = await connection.get_raw_connection()
    # SQLAlchemy's asyncpg adapter: it begins the transaction with the connection's first
    # statement and ends it on the session's commit or rollback. Begun here as it begins it,
    # so the row is in the request's transaction; driver errors are translated as it does.
    adapter: Any = pooled.dbapi_connection
    driver: Any = pooled.driver_connection
    try:
        if adapter._transaction is None:
            await adapter._start_transaction()
        try:
            record = await driver.fetchrow(plan.sql, *arguments)
        except Exception as exc:
            adapter._handle_exception(exc)  # raises it as its DBAPI error
            raise
    except dialect.loaded_dbapi.Error as exc:
        if dialect.is_disconnect(exc, adapter, None):
            raise DirectWriteFailed from exc
        raise sa_exc.DBAPIError.instance(
            plan.sql, arguments, exc, dialect.loaded_dbapi.Error, hide_parameters=True
        ) from exc
    return plan.make(record)

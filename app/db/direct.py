"""Reads of whole rows straight on the asyncpg driver: each statement compiled once, then run
without SQLAlchemy's execution machinery (its Connection, execution context and Result cost
about three times the query itself). ReadSession uses it on PostgreSQL; nothing else should."""

from collections import OrderedDict, namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Numeric, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
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


def compile_plan(statement: Select[Any], dialect: Dialect) -> Plan | None:
    """The plan of a SELECT of plain columns, or None when it needs what only SQLAlchemy's
    execution does (parameters expanded at run time, types converted on the way in, or a
    result type whose conversion depends on the column's database type)."""
    columns = list(statement.selected_columns)
    processors: list[Callable[[Any], Any] | None] = []
    for column in columns:
        impl = column.type.dialect_impl(dialect)
        if isinstance(impl, Numeric):
            return None
        processors.append(impl.result_processor(dialect, None))
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

"""Unicode-aware "any case" matching on every backend: SQLite's own LIKE folds ASCII only."""

from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Boolean

# The SQL name of the function registered on every SQLite connection.
CASEFOLD = "casefold"


def _casefold(value: str | None) -> str | None:
    return None if value is None else value.casefold()


def register_casefold(dbapi_connection: Any) -> None:
    """Give a SQLite connection `casefold(text)`, Python's full Unicode case folding. It runs
    in the driver's thread, off the event loop; deterministic, so SQLite may index on it."""
    dbapi_connection.create_function(CASEFOLD, 1, _casefold, deterministic=True)


class any_case_like(FunctionElement[bool]):
    """`any_case_like(column, pattern)`: the column matches the LIKE pattern (escape `\\`) in
    any case, Unicode included. PostgreSQL's ILIKE, which a trigram index serves; on SQLite,
    LIKE between both sides folded by the registered `casefold`."""

    type = Boolean()
    inherit_cache = True
    name = "any_case_like"


@compiles(any_case_like)
def _ilike(element: any_case_like, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern = element.clauses
    return compiler.process(column.ilike(pattern, escape="\\"), **kw)


@compiles(any_case_like, "sqlite")
def _folded_like(element: any_case_like, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern = element.clauses
    folded = getattr(func, CASEFOLD)
    return compiler.process(folded(column).like(folded(pattern), escape="\\"), **kw)

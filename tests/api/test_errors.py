"""Exception handlers: which database errors mean "unavailable" (503) and which are bugs (500)."""

import json

import asyncpg
import httpx2
import pytest
from sqlalchemy import exc as sa_exc

from app.main import create_app


def _dbapi_error(orig: Exception, *, invalidated: bool = False) -> sa_exc.DBAPIError:
    error = sa_exc.DBAPIError("SELECT 1", None, orig, connection_invalidated=invalidated)
    assert type(error) is sa_exc.DBAPIError  # none of the subclasses handled by type
    return error


class DriverError(Exception):
    """What SQLAlchemy's asyncpg adapter wraps a PostgreSQL error in: it carries the SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # PostgreSQL starting up, shutting down, gone, out of slots: retry later.
        (_dbapi_error(DriverError(asyncpg.CannotConnectNowError.sqlstate)), 503),
        (_dbapi_error(DriverError(asyncpg.AdminShutdownError.sqlstate)), 503),
        (_dbapi_error(DriverError(asyncpg.CrashShutdownError.sqlstate)), 503),
        (_dbapi_error(DriverError(asyncpg.TooManyConnectionsError.sqlstate)), 503),
        (_dbapi_error(DriverError("08006")), 503),
        (_dbapi_error(RuntimeError("connection lost"), invalidated=True), 503),
        # A bad query is a bug, not an outage.
        (_dbapi_error(DriverError(asyncpg.UndefinedTableError.sqlstate)), 500),
        (_dbapi_error(RuntimeError("no sqlstate")), 500),
    ],
    ids=[
        "starting",
        "admin-shutdown",
        "crash",
        "no-slots",
        "conn-failure",
        "invalidated",
        "undefined-table",
        "unknown",
    ],
)
async def test_dbapi_error_is_503_only_when_the_database_is_unavailable(
    error: sa_exc.DBAPIError, expected: int
) -> None:
    app = create_app()

    async def fail() -> None:
        raise error

    app.add_api_route("/fail", fail)
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as c:
        response = await c.get("/fail")
    assert response.status_code == expected
    if expected == 503:
        assert response.json() == {"detail": "Service temporarily unavailable"}
        assert response.headers["retry-after"] == "5"
    else:
        assert response.json()["detail"] == "Internal Server Error"


async def test_validation_error_body_is_compact_like_every_other(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.post("/api/v1/auth/signup", json={"email": "not an email"})
    assert response.status_code == 422
    compact = json.dumps(response.json(), separators=(",", ":"), ensure_ascii=True)
    assert response.content == compact.encode()

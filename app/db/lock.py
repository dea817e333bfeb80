"""Start-up work that replicas starting together must do one at a time. No HTTP here."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.session import SQLITE_IMMEDIATE

# Any 64-bit number no other code uses; PostgreSQL scopes advisory locks to one database.
PRESTART_LOCK_ID = 0x5265_6369_7065_0001
# How long a SQLite replica waits for another one's start-up work before giving up.
SQLITE_PRESTART_WAIT_MS = 600_000


@asynccontextmanager
async def exclusive_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session whose work is one transaction that one process at a time may hold.

    The others wait at the start: for an advisory lock on PostgreSQL, for the write lock on
    SQLite (up to SQLITE_PRESTART_WAIT_MS). Repositories only flush, so everything commits
    together at the end, or nothing does.
    """
    async with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Waiting here is expected, so wait longer than a request would; the connection
            # is closed afterwards rather than pooled with that setting.
            await conn.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_PRESTART_WAIT_MS}")
            await conn.commit()
        try:
            await conn.execution_options(**{SQLITE_IMMEDIATE: True})
            async with conn.begin():
                if not sqlite:
                    await conn.execute(select(func.pg_advisory_xact_lock(PRESTART_LOCK_ID)))
                async with AsyncSession(bind=conn, expire_on_commit=False) as session:
                    yield session
                    await session.flush()
        finally:
            if sqlite:
                await conn.invalidate()

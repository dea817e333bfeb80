"""Wait until the database answers, with bounded retries: `python -m app.backend_pre_start`."""

import asyncio
import logging
import sys

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from app.core.config import settings
from app.db.session import engine

logger = logging.getLogger("app.backend_pre_start")

MAX_TRIES = 60
WAIT_SECONDS = 1.0
# PostgreSQL's invalid_catalog_name: the server answers, the database is not there.
MISSING_DATABASE = "3D000"


def _is_missing_database(exc: Exception) -> bool:
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == MISSING_DATABASE


def _createdb_hint(url: URL) -> str:
    user = f" -U {url.username}" if url.username else ""
    return f"createdb -h {url.host or '127.0.0.1'} -p {url.port or 5432}{user} {url.database}"


async def create_database(url: URL) -> bool:
    """CREATE DATABASE through the server's `postgres` database; False if the server refuses."""
    admin = create_async_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        async with admin.connect() as conn:
            name = conn.dialect.identifier_preparer.quote(str(url.database))
            await conn.execute(text(f"CREATE DATABASE {name}"))
    except (DBAPIError, OSError) as exc:
        logger.error(
            "database %r does not exist and could not be created (%s); create it: %s",
            url.database, str(exc).splitlines()[0], _createdb_hint(url),
        )  # fmt: skip
        return False
    finally:
        await admin.dispose()
    logger.info("created database %r (it did not exist)", url.database)
    return True


async def wait_for_db(
    db_engine: AsyncEngine,
    max_tries: int = MAX_TRIES,
    wait_seconds: float = WAIT_SECONDS,
    create_missing: bool = False,
) -> bool:
    """True once `SELECT 1` succeeds; False after max_tries failed attempts, or at once when the
    server says the database does not exist (created first if create_missing and allowed)."""
    for attempt in range(1, max_tries + 1):
        try:
            async with db_engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            if _is_missing_database(exc):
                # Waiting cannot fix this one: create it, or say what to run.
                url = db_engine.url
                if create_missing and await create_database(url):
                    create_missing = False
                    continue
                if not create_missing:
                    logger.error(
                        "database %r does not exist on %s:%s; create it (%s) or fix DATABASE_URL",
                        url.database, url.host, url.port or 5432, _createdb_hint(url),
                    )  # fmt: skip
                return False
            # Any other failure here is "not up yet"; the loop is bounded, so nothing waits forever.
            logger.warning(
                "database not ready (attempt %d/%d): %s: %s",
                attempt, max_tries, type(exc).__name__, exc,
            )  # fmt: skip
            await asyncio.sleep(wait_seconds)
        else:
            logger.info("database is ready (attempt %d/%d)", attempt, max_tries)
            return True
    logger.error("the database did not answer after %d attempts; giving up", max_tries)
    return False


async def main() -> int:
    try:
        # Only a developer's own server gets a database made for it; elsewhere that is deploy's job.
        local = settings.ENVIRONMENT == "local"
        return 0 if await wait_for_db(engine, MAX_TRIES, WAIT_SECONDS, create_missing=local) else 1
    finally:
        await engine.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(main()))

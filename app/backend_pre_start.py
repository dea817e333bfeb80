"""Wait until the database answers, with bounded retries: `python -m app.backend_pre_start`."""

import asyncio
import logging
import sys

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.session import engine

logger = logging.getLogger("app.backend_pre_start")

MAX_TRIES = 60
WAIT_SECONDS = 1.0


async def wait_for_db(
    db_engine: AsyncEngine, max_tries: int = MAX_TRIES, wait_seconds: float = WAIT_SECONDS
) -> bool:
    """True once `SELECT 1` succeeds; False after max_tries failed attempts."""
    for attempt in range(1, max_tries + 1):
        try:
            async with db_engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            # Any failure here is "not up yet"; the loop is bounded, so nothing waits forever.
            logger.warning(
                "database not ready (attempt %d/%d): %s: %s",
                attempt, max_tries, type(exc).__name__, exc,
            )  # fmt: skip
            await asyncio.sleep(wait_seconds)
        else:
            logger.info("database is ready (attempt %d/%d)", attempt, max_tries)
            return True
    return False


async def main() -> int:
    try:
        return 0 if await wait_for_db(engine, MAX_TRIES, WAIT_SECONDS) else 1
    finally:
        await engine.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(main()))

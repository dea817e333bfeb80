"""Seed the database (first superuser, resources' sample rows): `python -m app.initial_data`."""

import asyncio
import logging

from app.db.init_db import init_db
from app.db.lock import exclusive_session
from app.db.session import engine

logger = logging.getLogger("app.initial_data")


async def main() -> None:
    try:
        # Replicas that start together seed one after the other; the later ones find it done.
        async with exclusive_session(engine) as db:
            await init_db(db)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logger.info("creating initial data")
    asyncio.run(main())
    logger.info("initial data created")

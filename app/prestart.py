"""Everything prestart.sh does, in one Python process: wait for the database, migrate, seed."""

import asyncio
import logging
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from app import backend_pre_start, initial_data
from app.core.config import is_placeholder, settings

logger = logging.getLogger("app.prestart")

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def main(config: Config | None = None) -> int:
    # One interpreter instead of three: each would import the app again (most of start-up).
    settings.prepare_files()
    if asyncio.run(backend_pre_start.main()) != 0:
        return 1
    if config is None:
        config = Config(str(ALEMBIC_INI))
        # Logging is already set up here; alembic.ini's would raise the root level to WARNING.
        config.attributes["configure_logger"] = False
    # Alembic's env.py runs its own event loop, so it runs between the two, not inside one.
    command.upgrade(config, "head")
    logger.info("creating initial data")
    asyncio.run(initial_data.main())
    logger.info("initial data created")
    # Said here, once per start and formatted, not by every process that reads the settings.
    if is_placeholder(settings.FIRST_SUPERUSER_PASSWORD.get_secret_value()):
        logger.warning(
            "%s has the placeholder password FIRST_SUPERUSER_PASSWORD: fine locally only",
            settings.FIRST_SUPERUSER_EMAIL,
        )
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())

"""First data: the superuser from settings and each resource's sample rows. Safe to run again."""

import logging

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.core.config import Settings, settings
from app.core.security import get_password_hash
from app.crud.base import Repository
from app.models import User
from app.schemas.common import normalize_email

logger = logging.getLogger(__name__)


async def _create_superuser(db: AsyncSession, config: Settings, email: str) -> User:
    """The first superuser, or the account that took its email meanwhile."""
    hashed_password = await get_password_hash(config.FIRST_SUPERUSER_PASSWORD.get_secret_value())
    superuser = User(
        email=email,
        first_name="Admin",
        surname="User",
        hashed_password=hashed_password,
        is_superuser=True,
    )
    try:
        # A savepoint: if a sign-up (or a prestart outside exclusive_session) won the race for
        # the email, only this insert is undone.
        async with db.begin_nested():
            await crud.user.add(db, superuser)
    except IntegrityError:
        existing = await crud.user.get_by_email(db, email=email)
        if existing is None:
            raise
        return existing
    logger.info("created the first superuser %s", superuser.email)
    return superuser


async def init_db(db: AsyncSession, config: Settings = settings) -> User:
    """Create what is missing and nothing else, in the caller's transaction; return the first
    superuser.

    Replicas starting together run it inside `exclusive_session`, one at a time, so the
    sample rows (which no unique key guards) are added once.
    """
    email = normalize_email(config.FIRST_SUPERUSER_EMAIL)
    superuser = await crud.user.get_by_email(db, email=email)
    if superuser is None:
        superuser = await _create_superuser(db, config, email)
    # app.crud imports every repository module, so each resource seeds its own sample rows.
    for repository in Repository.made:
        await repository.seed(db, owner_id=superuser.id)
    return superuser

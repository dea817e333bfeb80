"""User factories."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import get_password_hash
from app.models import User
from tests.utils.utils import random_email, random_lower_string

DEFAULT_PASSWORD = "a-long-test-password"
_hash_cache: dict[str, str] = {}


async def _hashed(password: str) -> str:
    # Argon2 costs ~0.1 s by design; hash each distinct test password once per run.
    if password not in _hash_cache:
        _hash_cache[password] = await get_password_hash(password)
    return _hash_cache[password]


async def create_random_user(
    db: AsyncSession,
    *,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    is_superuser: bool = False,
    is_active: bool = True,
) -> User:
    user = User(
        email=email or random_email(),
        first_name=random_lower_string(8),
        surname=random_lower_string(8),
        hashed_password=await _hashed(password),
        is_superuser=is_superuser,
        is_active=is_active,
    )
    db.add(user)
    await db.flush()
    return user

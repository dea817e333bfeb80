"""Logins and their refresh tokens: scope negotiation, rotation with reuse detection, logout,
password reset. No HTTP here."""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.core.security import entitled_scopes, get_password_hash, scope_string
from app.db.session import commit_early
from app.models import User
from app.services import user as users
from app.services.errors import (
    IncorrectLogin,
    InvalidRefreshToken,
    InvalidResetToken,
    ScopeNotAllowed,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a login or a refresh hands out: the raw refresh token is shown only here."""

    user_id: int
    scope: str
    refresh_token: str
    # The user's token_version, carried in the access token made from this grant.
    token_version: int


async def login(
    db: AsyncSession, *, email: str, password: str, scopes: Iterable[str], throttle: users.Throttle
) -> Grant:
    """Check the password and open a login with the scopes asked for (default: all the account
    holds); 401 for any wrong credential, 400 for a scope the account may not hold."""
    await throttle.attempt(email)
    user = await users.authenticate(db, email=email, password=password)
    if user is None:
        raise IncorrectLogin
    verified = users.Verified.of(user)
    await throttle.succeeded(email)
    # Locked until the commit, and as the password was checked: a password change, reset or
    # logout-all that committed since then refuses this login instead of missing its token.
    locked = await users.lock_verified(db, user.id, verified)
    if locked is None:
        raise IncorrectLogin
    entitled = entitled_scopes(is_superuser=locked.is_superuser)
    requested = set(scopes)
    if requested - entitled:
        raise ScopeNotAllowed(f"{ScopeNotAllowed.message}: {scope_string(requested - entitled)}")
    scope = scope_string(requested or entitled)
    await crud.refresh_token.purge(db, user_id=locked.id)
    await crud.password_reset_token.purge(db, user_id=locked.id)
    raw, _ = await crud.refresh_token.create_for_user(db, user_id=locked.id, scope=scope)
    return Grant(locked.id, scope, raw, locked.token_version)


async def _revoke_reused(db: AsyncSession, family_id: str) -> InvalidRefreshToken:
    """End the whole login, committed now so the error's rollback cannot undo it."""
    await crud.refresh_token.revoke_family(db, family_id=family_id)
    await commit_early(db)
    return InvalidRefreshToken()


async def refresh(db: AsyncSession, *, token: str) -> Grant:
    """Trade a refresh token for a new one. A used token presented again ends its whole login:
    a copy of it is in someone else's hands."""
    row = await crud.refresh_token.get_by_token(db, token=token)
    if row is None:
        raise InvalidRefreshToken
    family_id, user_id = row.family_id, row.user_id
    if row.replaced_by_id is not None:
        logger.warning("refresh token reused: revoking family %s of user %d", family_id, user_id)
        raise await _revoke_reused(db, family_id)
    if row.revoked_at is not None or row.expires_at <= datetime.now(UTC):
        raise InvalidRefreshToken
    # Locked until the commit: a revocation of this user's tokens (logout, logout-all, a
    # password change) either ends before this rotation, whose claim then fails, or waits for
    # it and revokes the successor too.
    user = await crud.user.lock(db, user_id)
    if user is None or not user.is_active:
        raise InvalidRefreshToken
    # The scopes of the login, less any the user has lost since.
    scope = scope_string(set(row.scope.split()) & entitled_scopes(is_superuser=user.is_superuser))
    raw = await crud.refresh_token.rotate(db, db_obj=row, scope=scope)
    if raw is None:
        # Another request consumed it first: the same reuse, seen a moment earlier.
        logger.warning("refresh token raced: revoking family %s of user %d", family_id, user_id)
        raise await _revoke_reused(db, family_id)
    return Grant(user_id, scope, raw, user.token_version)


async def logout(db: AsyncSession, *, token: str) -> None:
    """End the login this refresh token belongs to; an unknown token is ignored."""
    row = await crud.refresh_token.get_by_token(db, token=token)
    if row is not None:
        # Under the lock refresh takes, so a rotation racing this cannot leave a live successor.
        await crud.user.lock(db, row.user_id)
        await crud.refresh_token.revoke_family(db, family_id=row.family_id)


async def logout_all(db: AsyncSession, user: User) -> None:
    """End every login of the user, access tokens included."""
    await users.end_sessions(db, await users.lock(db, user))


async def reset_password(db: AsyncSession, *, token: str, new_password: str) -> User:
    """Set a new password with a reset token, once; 400 if the token is unknown, used, expired
    or its user inactive. Every session of the user ends in the same transaction."""
    row = await crud.password_reset_token.get_by_token(db, token=token)
    if row is None or row.used_at is not None or row.expires_at <= datetime.now(UTC):
        raise InvalidResetToken
    user = await crud.user.get(db, row.user_id)
    if user is None or not user.is_active:
        raise InvalidResetToken
    users.refuse_weak(new_password, user.email)
    await commit_early(db)
    hashed = await get_password_hash(new_password)
    # Conditional, so two requests racing with one token cannot both win.
    if not await crud.password_reset_token.claim(db, db_obj=row):
        raise InvalidResetToken
    locked = await crud.user.lock(db, user.id)
    if locked is None or await crud.user.update(db, locked, {"hashed_password": hashed}) is None:
        raise InvalidResetToken  # the account was deleted meanwhile
    await users.end_sessions(db, locked)
    return locked


async def issue_reset_token(db: AsyncSession, *, email: str) -> tuple[str, str] | None:
    """A reset token for the active account with this email, and the address to mail it to;
    None if there is no such account."""
    user = await crud.user.get_by_email(db, email=email)
    if user is None or not user.is_active:
        return None
    return await crud.password_reset_token.create_for_user(db, user_id=user.id), user.email

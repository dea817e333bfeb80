"""Accounts: creation, password checks and changes, profile updates, deletion. No HTTP here.

Passwords are hashed outside any transaction (commit_early first), so no pooled connection or
SQLite write lock waits on Argon2.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.core.password_policy import password_problem
from app.core.security import get_password_hash, verify_password
from app.db.session import commit_early
from app.models import User
from app.services.errors import (
    CurrentPasswordRequired,
    EmailTaken,
    IncorrectPassword,
    LastSuperuser,
    SelfDeletion,
    SelfDemotion,
    UserNotFound,
    WeakPassword,
)


class Throttle(Protocol):
    """Counts password attempts per account (the API's LoginThrottle)."""

    async def attempt(self, email: str) -> None: ...

    async def succeeded(self, email: str) -> None: ...


async def _save(db: AsyncSession, user: User, data: Mapping[str, Any]) -> User:
    try:
        updated = await crud.user.update(db, user, data)
    except IntegrityError as exc:
        # A concurrent write took the email after the check: the same conflict, the same body.
        raise EmailTaken from exc
    if updated is None:
        raise UserNotFound  # deleted meanwhile
    return updated


async def create(db: AsyncSession, data: Mapping[str, Any]) -> User:
    """A new user from the fields given, `password` among them; 409 if the email is taken."""
    fields = dict(data)
    if await crud.user.get_by_email(db, email=fields["email"]) is not None:
        raise EmailTaken
    await commit_early(db)
    fields["hashed_password"] = await get_password_hash(fields.pop("password"))
    try:
        return await crud.user.add(db, User(**fields))
    except IntegrityError as exc:
        raise EmailTaken from exc


async def authenticate(db: AsyncSession, *, email: str, password: str) -> User | None:
    """The active user with this email and password, else None. Same cost either way."""
    user = await crud.user.get_by_email(db, email=email)
    await commit_early(db)
    valid, new_hash = await verify_password(password, user.hashed_password if user else None)
    if user is None or not valid or not user.is_active:
        return None
    if new_hash is not None:
        # A legacy or weaker hash: store the Argon2id one now that the password is known.
        await _save(db, user, {"hashed_password": new_hash})
    return user


@dataclass(frozen=True, slots=True)
class Verified:
    """The account as a password check found it. The check and the act on it run in separate
    transactions (no lock is held while hashing), so the act first locks the row and makes sure
    no password change, reset or logout-all committed in between."""

    hashed_password: str
    token_version: int

    @classmethod
    def of(cls, user: User) -> "Verified":
        return cls(user.hashed_password, user.token_version)


async def lock_verified(db: AsyncSession, user_id: int, verified: Verified) -> User | None:
    """The user's row locked for the rest of the transaction, if it is still active and as
    verified; None if it changed or went since the check."""
    locked = await crud.user.lock(db, user_id)
    if locked is None or not locked.is_active or Verified.of(locked) != verified:
        return None
    return locked


async def check_password(
    db: AsyncSession, user: User, password: str, throttle: Throttle
) -> Verified:
    """The user's own password again, counted like a login; 400 if wrong. What it passed
    against, for lock_verified before acting on it."""
    await throttle.attempt(user.email)
    found = await authenticate(db, email=user.email, password=password)
    if found is None:
        raise IncorrectPassword
    verified = Verified.of(found)
    await throttle.succeeded(user.email)
    return verified


async def _lock_verified(db: AsyncSession, user: User, verified: Verified) -> User:
    locked = await lock_verified(db, user.id, verified)
    if locked is None:
        raise IncorrectPassword  # the password was right, but no longer is
    return locked


async def end_sessions(db: AsyncSession, user: User) -> None:
    """End every login of the user: refresh tokens revoked, access tokens outdated by a new
    token_version. Call with the user's row locked (crud.user.lock), so a refresh racing this
    either finishes first, and its new token is revoked here, or waits and finds it revoked."""
    await crud.refresh_token.revoke_all_for_user(db, user_id=user.id)
    await _save(db, user, {"token_version": user.token_version + 1})


async def lock(db: AsyncSession, user: User) -> User:
    """The user's row locked for the rest of the transaction, read again; 404 if deleted."""
    locked = await crud.user.lock(db, user.id)
    if locked is None:
        raise UserNotFound
    return locked


async def update(
    db: AsyncSession, user: User, data: Mapping[str, Any], *, verified: Verified | None = None
) -> User:
    """Apply the fields given, hashing a new `password`. A new password or a deactivation ends
    every session of the user, and a new password or email every unused reset token, in the
    same transaction as the change. With `verified`, 400 unless the account is still as the
    password check found it."""
    fields = dict(data)
    email = fields.get("email")
    new_email = email is not None and email != user.email
    if email is not None and new_email and await crud.user.get_by_email(db, email=email):
        raise EmailTaken
    password = fields.pop("password", None)
    if password is not None:
        await commit_early(db)
        fields["hashed_password"] = await get_password_hash(password)
    ends_sessions = password is not None or fields.get("is_active") is False
    # After the hashing: a lock taken before commit_early would be released by it.
    demoted = fields.get("is_superuser") is False or fields.get("is_active") is False
    if user.is_superuser and demoted:
        await _keep_an_admin(db, user)
    if verified is not None:
        user = await _lock_verified(db, user, verified)
    elif ends_sessions or new_email:
        user = await lock(db, user)
    updated = await _save(db, user, fields)
    if ends_sessions:
        await end_sessions(db, updated)
    if password is not None or new_email:
        await crud.password_reset_token.revoke_all_for_user(db, user_id=user.id)
    return updated


async def update_me(
    db: AsyncSession, user: User, data: Mapping[str, Any], throttle: Throttle
) -> User:
    """Your own profile; a new email needs your current password."""
    fields = dict(data)
    current_password = fields.pop("current_password", None)
    email = fields.get("email")
    verified = None
    if email is not None and email != user.email:
        if current_password is None:
            raise CurrentPasswordRequired
        verified = await check_password(db, user, current_password, throttle)
    return await update(db, user, fields, verified=verified)


def refuse_weak(password: str, email: str) -> None:
    """The policy's checks that need the account: a password containing its email."""
    problem = password_problem(password, email=email)
    if problem:
        raise WeakPassword(problem)


async def change_password(
    db: AsyncSession, user: User, *, current: str, new: str, throttle: Throttle
) -> None:
    verified = await check_password(db, user, current, throttle)
    refuse_weak(new, user.email)
    await update(db, user, {"password": new}, verified=verified)


async def administer(db: AsyncSession, admin: User, user: User, data: Mapping[str, Any]) -> User:
    """A superuser's change to a user. Never to themselves a demotion or deactivation, nor to
    the last active superuser, so there is always an admin left."""
    demoted = data.get("is_superuser") is False or data.get("is_active") is False
    if user.id == admin.id and demoted:
        raise SelfDemotion
    return await update(db, user, data)


async def _keep_an_admin(db: AsyncSession, user: User) -> None:
    """409 unless another active superuser remains once this one goes. The superuser rows stay
    locked until the transaction ends, so two admins removing each other at once are
    serialized and the second sees the first's change."""
    admins = await crud.user.lock_active_superusers(db)
    if not any(admin.id != user.id for admin in admins):
        raise LastSuperuser


async def remove(db: AsyncSession, actor: User, user: User) -> None:
    """Delete an account with what it owns and its sessions; a superuser cannot delete their own,
    nor the last active superuser."""
    if user.id == actor.id and user.is_superuser:
        raise SelfDeletion
    if user.is_superuser:
        await _keep_an_admin(db, user)
    if not await crud.user.remove(db, user):
        raise UserNotFound


async def remove_me(db: AsyncSession, user: User, *, password: str, throttle: Throttle) -> None:
    """Delete your own account; your current password is asked again, so a stolen access token
    alone cannot."""
    verified = await check_password(db, user, password, throttle)
    await remove(db, user, await _lock_verified(db, user, verified))

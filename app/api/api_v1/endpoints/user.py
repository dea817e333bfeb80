"""Users: your own account, and user administration for superusers."""

import logging
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, status
from pydantic import AfterValidator

from app import crud
from app.api.deps import (
    AdministeredUser,
    CurrentSuperuser,
    CurrentUser,
    LoginThrottleDep,
    PageDep,
    SessionDep,
)
from app.api.responses import errors
from app.core import mail
from app.core.config import settings
from app.crud.pagination import Page
from app.models import User
from app.schemas import AccountDeletion, UserCreate, UserPage, UserRead, UserUpdate
from app.schemas.common import storable
from app.schemas.user import UserUpdateMe
from app.services import user as users
from app.services.errors import (
    CurrentPasswordRequired,
    EmailTaken,
    IncorrectPassword,
    LastSuperuser,
    SelfDeletion,
    SelfDemotion,
    UserNotFound,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/users", tags=["users"])


async def _send_email_changed(address: str) -> None:
    """After the response: tell the old address that the account moved away from it."""
    try:
        await mail.send(
            to=address,
            subject=f"{settings.PROJECT_NAME}: your email address was changed",
            text=mail.email_changed_text(),
        )
    except Exception as exc:
        # The response has gone; the log is the only place left to report to.
        logger.error("email change notice failed: %s", type(exc).__name__)


def _notify_email_change(background: BackgroundTasks, old: str, user: User) -> None:
    if user.email != old:
        background.add_task(_send_email_changed, old)


# The /me routes come before /{user_id}, which would otherwise claim the path "me".
@router.get("/me", responses=errors(401))
async def read_me(user: CurrentUser) -> UserRead:
    """Your account."""
    return UserRead.model_validate(user)


@router.patch(
    "/me",
    responses=errors(
        CurrentPasswordRequired, IncorrectPassword, 401, UserNotFound, EmailTaken, 429
    ),
)
async def update_me(
    db: SessionDep,
    user: CurrentUser,
    user_in: UserUpdateMe,
    throttle: LoginThrottleDep,
    background: BackgroundTasks,
) -> UserRead:
    """Change your name or email; a new email needs `current_password`, and the old address
    is told of the change."""
    data = user_in.model_dump(exclude_unset=True)
    old_email = user.email
    updated = await users.update_me(db, user, data, throttle)
    _notify_email_change(background, old_email, updated)
    return UserRead.model_validate(updated)


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(IncorrectPassword, 401, UserNotFound, SelfDeletion, 429),
)
async def delete_me(
    db: SessionDep, user: CurrentUser, body: AccountDeletion, throttle: LoginThrottleDep
) -> None:
    """Delete your account, with everything you own and your sessions; needs `current_password`.
    Superusers cannot."""
    await users.remove_me(db, user, password=body.current_password, throttle=throttle)


@router.get("", responses=errors(401, 403), response_model=UserPage)
async def read_users(
    db: SessionDep,
    _: CurrentSuperuser,
    page: PageDep,
    email: Annotated[
        str | None,
        Query(min_length=1, max_length=320, description="Only emails containing this, any case."),
        AfterValidator(lambda v: v if v is None else storable(v)),
    ] = None,
    is_active: Annotated[bool | None, Query(description="Only active or inactive users.")] = None,
) -> Page[User]:
    """Users, newest first, optionally filtered (superusers only)."""
    return await crud.user.search(db, page, email=email, is_active=is_active)


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(401, 403, EmailTaken))
async def create_user(db: SessionDep, _: CurrentSuperuser, user_in: UserCreate) -> UserRead:
    """Create a user, superuser or not (superusers only)."""
    return UserRead.model_validate(await users.create(db, user_in.model_dump()))


# user_id is read by the AdministeredUser dependency, which ruff's FAST003 cannot see.
@router.get("/{user_id}", responses=errors(401, 403, UserNotFound))  # noqa: FAST003
async def read_user(user: AdministeredUser) -> UserRead:
    """One user by id (superusers only)."""
    return UserRead.model_validate(user)


@router.patch(
    "/{user_id}",  # noqa: FAST003
    responses=errors(401, 403, UserNotFound, EmailTaken, SelfDemotion, LastSuperuser),
)
async def update_user(
    db: SessionDep,
    admin: CurrentSuperuser,
    user: AdministeredUser,
    user_in: UserUpdate,
    background: BackgroundTasks,
) -> UserRead:
    """Change a user (superusers only). A new password or a deactivation ends their sessions; a
    new email is told to the old address. You cannot demote or deactivate yourself, nor the
    last active superuser, so there is always an admin left."""
    data = user_in.model_dump(exclude_unset=True)
    old_email = user.email
    updated = await users.administer(db, admin, user, data)
    _notify_email_change(background, old_email, updated)
    return UserRead.model_validate(updated)


@router.delete(
    "/{user_id}",  # noqa: FAST003
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(401, 403, UserNotFound, SelfDeletion, LastSuperuser),
)
async def delete_user(db: SessionDep, admin: CurrentSuperuser, user: AdministeredUser) -> None:
    """Delete a user with everything they own and their sessions (superusers only; not yourself)."""
    await users.remove(db, admin, user)

"""Users: your own account and recipes, and user administration for superusers."""

from typing import Annotated

from fastapi import APIRouter, Query, status
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
from app.crud.pagination import Page
from app.models import Recipe, User
from app.schemas import RecipePage, UserCreate, UserPage, UserRead, UserUpdate
from app.schemas.common import storable
from app.schemas.user import UserUpdateMe
from app.services import user as users
from app.services.errors import (
    CurrentPasswordRequired,
    EmailTaken,
    IncorrectPassword,
    SelfDeletion,
    SelfDemotion,
    UserNotFound,
)

router = APIRouter(prefix="/users", tags=["users"])


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
    db: SessionDep, user: CurrentUser, user_in: UserUpdateMe, throttle: LoginThrottleDep
) -> UserRead:
    """Change your name or email; a new email needs `current_password`."""
    data = user_in.model_dump(exclude_unset=True)
    return UserRead.model_validate(await users.update_me(db, user, data, throttle))


@router.delete(
    "/me", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401, UserNotFound, SelfDeletion)
)
async def delete_me(db: SessionDep, user: CurrentUser) -> None:
    """Delete your account, with your recipes and sessions. Superusers cannot."""
    await users.remove(db, user, user)


@router.get("/me/recipes", responses=errors(401), response_model=RecipePage)
async def read_my_recipes(db: SessionDep, user: CurrentUser, page: PageDep) -> Page[Recipe]:
    """The recipes you submitted, newest first."""
    return await crud.recipe.paginate_by_submitter(db, page, submitter_id=user.id)


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
    responses=errors(401, 403, UserNotFound, EmailTaken, SelfDemotion),
)
async def update_user(
    db: SessionDep, admin: CurrentSuperuser, user: AdministeredUser, user_in: UserUpdate
) -> UserRead:
    """Change a user (superusers only). A new password or a deactivation ends their sessions.
    You cannot demote or deactivate yourself, so there is always an admin left."""
    data = user_in.model_dump(exclude_unset=True)
    return UserRead.model_validate(await users.administer(db, admin, user, data))


@router.delete(
    "/{user_id}",  # noqa: FAST003
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(401, 403, UserNotFound, SelfDeletion),
)
async def delete_user(db: SessionDep, admin: CurrentSuperuser, user: AdministeredUser) -> None:
    """Delete a user with their recipes and sessions (superusers only; not yourself)."""
    await users.remove(db, admin, user)

"""Users: your own account and recipes, and user administration for superusers."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
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
from app.api.pagination import split_page
from app.api.responses import errors
from app.schemas import RecipePage, RecipeRead, UserCreate, UserPage, UserRead, UserUpdate
from app.schemas.common import storable
from app.schemas.user import UserUpdateMe

router = APIRouter(prefix="/users", tags=["users"])


def _email_taken() -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, detail="A user with this email already exists")


# The /me routes come before /{user_id}, which would otherwise claim the path "me".
@router.get("/me", responses=errors(401))
async def read_me(user: CurrentUser) -> UserRead:
    """Your account."""
    return UserRead.model_validate(user)


@router.patch("/me", responses=errors(400, 401, 409, 429))
async def update_me(
    db: SessionDep, user: CurrentUser, user_in: UserUpdateMe, throttle: LoginThrottleDep
) -> UserRead:
    """Change your name or email; a new email needs `current_password`."""
    data = user_in.model_dump(exclude_unset=True)
    current_password = data.pop("current_password", None)
    email = data.get("email")
    if email is not None and email != user.email:
        if current_password is None:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                detail="current_password is required to change the email",
            )
        await throttle.attempt(user.email)
        if await crud.user.authenticate(db, email=user.email, password=current_password) is None:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="Incorrect password")
        await throttle.succeeded(user.email)
        if await crud.user.get_by_email(db, email=email):
            raise _email_taken()
    return UserRead.model_validate(await crud.user.update(db, db_obj=user, obj_in=data))


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401, 409))
async def delete_me(db: SessionDep, user: CurrentUser) -> None:
    """Delete your account, with your recipes and sessions. Superusers cannot."""
    if user.is_superuser:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="A superuser cannot delete their own account"
        )
    await crud.user.remove(db, db_obj=user)


@router.get("/me/recipes", responses=errors(401))
async def read_my_recipes(db: SessionDep, user: CurrentUser, page: PageDep) -> RecipePage:
    """The recipes you submitted, newest first."""
    rows = await crud.recipe.get_multi_by_submitter(
        db, submitter_id=user.id, before_id=page.before_id, limit=page.limit + 1
    )
    items, next_cursor = split_page(rows, page.limit)
    return RecipePage(items=[RecipeRead.model_validate(r) for r in items], next_cursor=next_cursor)


@router.get("", responses=errors(401, 403))
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
) -> UserPage:
    """Users, newest first, optionally filtered (superusers only)."""
    rows = await crud.user.search(
        db, email=email, is_active=is_active, before_id=page.before_id, limit=page.limit + 1
    )
    items, next_cursor = split_page(rows, page.limit)
    return UserPage(items=[UserRead.model_validate(u) for u in items], next_cursor=next_cursor)


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(401, 403, 409))
async def create_user(db: SessionDep, _: CurrentSuperuser, user_in: UserCreate) -> UserRead:
    """Create a user, superuser or not (superusers only)."""
    if await crud.user.get_by_email(db, email=user_in.email):
        raise _email_taken()
    return UserRead.model_validate(await crud.user.create(db, obj_in=user_in))


# user_id is read by the AdministeredUser dependency, which ruff's FAST003 cannot see.
@router.get("/{user_id}", responses=errors(401, 403, 404))  # noqa: FAST003
async def read_user(user: AdministeredUser) -> UserRead:
    """One user by id (superusers only)."""
    return UserRead.model_validate(user)


@router.patch("/{user_id}", responses=errors(401, 403, 404, 409))  # noqa: FAST003
async def update_user(
    db: SessionDep, admin: CurrentSuperuser, user: AdministeredUser, user_in: UserUpdate
) -> UserRead:
    """Change a user (superusers only). A new password or a deactivation ends their sessions.
    You cannot demote or deactivate yourself, so there is always an admin left."""
    if user.id == admin.id and (user_in.is_superuser is False or user_in.is_active is False):
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="A superuser cannot demote or deactivate themselves"
        )
    email = user_in.email
    if email is not None and email != user.email and await crud.user.get_by_email(db, email=email):
        raise _email_taken()
    return UserRead.model_validate(await crud.user.update(db, db_obj=user, obj_in=user_in))


@router.delete(
    "/{user_id}",  # noqa: FAST003
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(401, 403, 404, 409),
)
async def delete_user(db: SessionDep, admin: CurrentSuperuser, user: AdministeredUser) -> None:
    """Delete a user with their recipes and sessions (superusers only; not yourself)."""
    if user.id == admin.id:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="A superuser cannot delete their own account"
        )
    await crud.user.remove(db, db_obj=user)

"""Users: your own recipes, and user lookup for superusers."""

from fastapi import APIRouter, HTTPException, status

from app import crud
from app.api.deps import CurrentSuperuser, CurrentUser, PageDep, SessionDep, UserId
from app.api.pagination import split_page
from app.api.responses import errors
from app.schemas import RecipePage, RecipeRead, UserPage, UserRead

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me/recipes", responses=errors(401))
async def read_my_recipes(db: SessionDep, user: CurrentUser, page: PageDep) -> RecipePage:
    """The recipes you submitted, newest first."""
    rows = await crud.recipe.get_multi_by_submitter(
        db, submitter_id=user.id, before_id=page.before_id, limit=page.limit + 1
    )
    items, next_cursor = split_page(rows, page.limit)
    return RecipePage(items=[RecipeRead.model_validate(r) for r in items], next_cursor=next_cursor)


@router.get("", responses=errors(401, 403))
async def read_users(db: SessionDep, _: CurrentSuperuser, page: PageDep) -> UserPage:
    """All users, newest first (superusers only)."""
    rows = await crud.user.get_multi(db, before_id=page.before_id, limit=page.limit + 1)
    items, next_cursor = split_page(rows, page.limit)
    return UserPage(items=[UserRead.model_validate(u) for u in items], next_cursor=next_cursor)


@router.get("/{user_id}", responses=errors(401, 403, 404))
async def read_user(db: SessionDep, _: CurrentSuperuser, user_id: UserId) -> UserRead:
    """One user by id (superusers only)."""
    user = await crud.user.get(db, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="User not found")
    return UserRead.model_validate(user)

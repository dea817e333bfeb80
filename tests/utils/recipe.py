"""Recipe factories."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.crud.crud_recipe import recipe as recipes
from app.models.recipe import Recipe
from app.schemas.recipe import RecipeCreate
from tests.utils.utils import random_lower_string


async def create_random_recipe(
    db: AsyncSession, *, submitter_id: int, label: str | None = None
) -> Recipe:
    recipe_in = RecipeCreate.model_validate(
        {
            "label": label or f"Recipe {random_lower_string(8)}",
            "source": "Test Kitchen",
            "url": f"https://example.com/{random_lower_string(10)}",
        }
    )
    return await recipes.add(db, Recipe(**recipe_in.model_dump(), submitter_id=submitter_id))

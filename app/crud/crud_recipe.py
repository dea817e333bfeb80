"""Recipe data access. No HTTP here."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.crud.base import CRUDBase
from app.models import Recipe
from app.schemas import RecipeCreate, RecipeUpdate


def _like_pattern(keyword: str) -> str:
    """A LIKE pattern that matches the keyword literally, wildcards included."""
    escaped = keyword.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class CRUDRecipe(CRUDBase[Recipe, RecipeCreate, RecipeUpdate]):
    async def create_with_submitter(
        self, db: AsyncSession, *, obj_in: RecipeCreate, submitter_id: int
    ) -> Recipe:
        return await self._save(db, Recipe(**obj_in.model_dump(), submitter_id=submitter_id))

    async def get_multi_by_submitter(
        self, db: AsyncSession, *, submitter_id: int, before_id: int | None = None, limit: int = 20
    ) -> Sequence[Recipe]:
        query = select(Recipe).where(Recipe.submitter_id == submitter_id)
        return await self._newest_first(db, query, before_id=before_id, limit=limit)

    async def search(
        self, db: AsyncSession, *, keyword: str, before_id: int | None = None, limit: int = 10
    ) -> Sequence[Recipe]:
        """Case-insensitive substring match on the label, newest first, filtered in the database."""
        query = select(Recipe).where(Recipe.label.ilike(_like_pattern(keyword), escape="\\"))
        return await self._newest_first(db, query, before_id=before_id, limit=limit)

    async def get_by_url(self, db: AsyncSession, *, submitter_id: int, url: str) -> Recipe | None:
        query = select(Recipe).where(Recipe.submitter_id == submitter_id, Recipe.url == url)
        return (await db.scalars(query.limit(1))).first()


recipe = CRUDRecipe(Recipe)

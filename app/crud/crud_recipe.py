"""Recipe data access. No HTTP here."""

from sqlalchemy import select

from app.crud.base import Repository, like_pattern
from app.crud.pagination import Page, PageParams
from app.db.folding import any_case_like
from app.db.session import Reader
from app.models import Recipe


class RecipeRepository(Repository[Recipe]):
    async def paginate_by_submitter(
        self, db: Reader, page: PageParams, *, submitter_id: int
    ) -> Page[Recipe]:
        query = select(Recipe).where(Recipe.submitter_id == submitter_id)
        return await self.paginate(db, page, query)

    async def search(self, db: Reader, page: PageParams, *, keyword: str) -> Page[Recipe]:
        """Substring match on the label in any case (Unicode, on every backend), newest first,
        filtered in the database."""
        query = select(Recipe).where(any_case_like(Recipe.label, like_pattern(keyword)))
        return await self.paginate(db, page, query)

    async def get_by_url(self, db: Reader, *, submitter_id: int, url: str) -> Recipe | None:
        query = select(Recipe).where(Recipe.submitter_id == submitter_id, Recipe.url == url)
        return (await db.scalars(query.limit(1))).first()


recipe = RecipeRepository(Recipe)

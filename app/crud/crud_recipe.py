"""Recipe data access and sample recipes. No HTTP here."""

import logging

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.crud.base import Repository, like_pattern
from app.crud.pagination import Page, PageParams
from app.db.folding import any_case_like
from app.db.session import Reader
from app.models.recipe import Recipe

logger = logging.getLogger(__name__)

# Label, source, url: stored as the API would store them (normalized URLs).
SEED_RECIPES = [
    ("Chicken Vesuvio", "Serious Eats", "http://www.seriouseats.com/recipes/2011/12/chicken-vesuvio-recipe.html"),
    ("Chicken Paprikash", "No Recipes", "http://norecipes.com/recipe/chicken-paprikash/"),
    ("Cauliflower and Tofu Curry Recipe", "Serious Eats", "http://www.seriouseats.com/recipes/2011/02/cauliflower-and-tofu-curry-recipe.html"),
    ("Traditional Shakshuka", "The Mediterranean Dish", "https://www.themediterraneandish.com/shakshuka-recipe/"),
    ("Classic Margherita Pizza", "BBC Good Food", "https://www.bbcgoodfood.com/recipes/pizza-margherita-4-easy-steps"),
    ("Pad Thai", "Hot Thai Kitchen", "https://hot-thai-kitchen.com/pad-thai/"),
]  # fmt: skip


# Built once, with bind parameters for what varies, so each compiles once.
BY_SUBMITTER = select(Recipe).where(Recipe.submitter_id == bindparam("submitter_id"))
LABEL_LIKE = select(Recipe).where(any_case_like(Recipe.label, bindparam("pattern")))


class RecipeRepository(Repository[Recipe]):
    async def paginate_by_submitter(
        self, db: Reader, page: PageParams, *, submitter_id: int
    ) -> Page[Recipe]:
        return await self.paginate(db, page, BY_SUBMITTER, submitter_id=submitter_id)

    async def search(self, db: Reader, page: PageParams, *, keyword: str) -> Page[Recipe]:
        """Substring match on the label in any case (Unicode, on every backend), newest first,
        filtered in the database."""
        return await self.paginate(db, page, LABEL_LIKE, pattern=like_pattern(keyword))

    async def get_by_url(self, db: Reader, *, submitter_id: int, url: str) -> Recipe | None:
        query = select(Recipe).where(Recipe.submitter_id == submitter_id, Recipe.url == url)
        return (await db.scalars(query.limit(1))).first()

    async def seed(self, db: AsyncSession, *, owner_id: int) -> None:
        # No unique key guards these, so init_db runs one seeding at a time.
        for label, source, url in SEED_RECIPES:
            if await self.get_by_url(db, submitter_id=owner_id, url=url) is None:
                await self.add(
                    db, Recipe(label=label, source=source, url=url, submitter_id=owner_id)
                )
                logger.info("seeded recipe %r", label)


recipe = RecipeRepository(Recipe)

"""First data: the superuser from settings and a few classic recipes. Safe to run again."""

import logging

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.core.config import Settings, settings
from app.models import User
from app.schemas import RecipeCreate, UserCreate

logger = logging.getLogger(__name__)

SEED_RECIPES = [
    ("Chicken Vesuvio", "Serious Eats", "http://www.seriouseats.com/recipes/2011/12/chicken-vesuvio-recipe.html"),
    ("Chicken Paprikash", "No Recipes", "http://norecipes.com/recipe/chicken-paprikash/"),
    ("Cauliflower and Tofu Curry Recipe", "Serious Eats", "http://www.seriouseats.com/recipes/2011/02/cauliflower-and-tofu-curry-recipe.html"),
    ("Traditional Shakshuka", "The Mediterranean Dish", "https://www.themediterraneandish.com/shakshuka-recipe/"),
    ("Classic Margherita Pizza", "BBC Good Food", "https://www.bbcgoodfood.com/recipes/pizza-margherita-4-easy-steps"),
    ("Pad Thai", "Hot Thai Kitchen", "https://hot-thai-kitchen.com/pad-thai/"),
]  # fmt: skip


async def _create_superuser(db: AsyncSession, config: Settings) -> User:
    """The first superuser, or the account that took its email meanwhile."""
    try:
        superuser = await crud.user.create(
            db,
            obj_in=UserCreate(
                email=config.FIRST_SUPERUSER_EMAIL,
                password=config.FIRST_SUPERUSER_PASSWORD.get_secret_value(),
                first_name="Admin",
                surname="User",
                is_superuser=True,
            ),
        )
    except IntegrityError:
        # A sign-up, or a prestart outside exclusive_session, won the race for the email.
        await db.rollback()
        existing = await crud.user.get_by_email(db, email=config.FIRST_SUPERUSER_EMAIL)
        if existing is None:
            raise
        return existing
    logger.info("created the first superuser %s", superuser.email)
    return superuser


async def init_db(db: AsyncSession, config: Settings = settings) -> User:
    """Create what is missing and nothing else; return the first superuser.

    Replicas starting together run it inside `exclusive_session`, one at a time, so the
    seed recipes (which no unique key guards) are added once.
    """
    superuser = await crud.user.get_by_email(db, email=config.FIRST_SUPERUSER_EMAIL)
    if superuser is None:
        superuser = await _create_superuser(db, config)
    for label, source, url in SEED_RECIPES:
        recipe_in = RecipeCreate.model_validate({"label": label, "source": source, "url": url})
        stored_url = recipe_in.model_dump()["url"]
        if await crud.recipe.get_by_url(db, submitter_id=superuser.id, url=stored_url) is None:
            await crud.recipe.create_with_submitter(db, obj_in=recipe_in, submitter_id=superuser.id)
            logger.info("seeded recipe %r", label)
    return superuser

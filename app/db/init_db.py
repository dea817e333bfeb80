"""First data: the superuser from settings and a few classic recipes. Safe to run again."""

import logging

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.core.config import Settings, settings
from app.core.security import get_password_hash
from app.models import Recipe, User
from app.schemas import RecipeCreate
from app.schemas.common import normalize_email

logger = logging.getLogger(__name__)

SEED_RECIPES = [
    ("Chicken Vesuvio", "Serious Eats", "http://www.seriouseats.com/recipes/2011/12/chicken-vesuvio-recipe.html"),
    ("Chicken Paprikash", "No Recipes", "http://norecipes.com/recipe/chicken-paprikash/"),
    ("Cauliflower and Tofu Curry Recipe", "Serious Eats", "http://www.seriouseats.com/recipes/2011/02/cauliflower-and-tofu-curry-recipe.html"),
    ("Traditional Shakshuka", "The Mediterranean Dish", "https://www.themediterraneandish.com/shakshuka-recipe/"),
    ("Classic Margherita Pizza", "BBC Good Food", "https://www.bbcgoodfood.com/recipes/pizza-margherita-4-easy-steps"),
    ("Pad Thai", "Hot Thai Kitchen", "https://hot-thai-kitchen.com/pad-thai/"),
]  # fmt: skip


async def _create_superuser(db: AsyncSession, config: Settings, email: str) -> User:
    """The first superuser, or the account that took its email meanwhile."""
    hashed_password = await get_password_hash(config.FIRST_SUPERUSER_PASSWORD.get_secret_value())
    superuser = User(
        email=email,
        first_name="Admin",
        surname="User",
        hashed_password=hashed_password,
        is_superuser=True,
    )
    try:
        # A savepoint: if a sign-up (or a prestart outside exclusive_session) won the race for
        # the email, only this insert is undone.
        async with db.begin_nested():
            await crud.user.add(db, superuser)
    except IntegrityError:
        existing = await crud.user.get_by_email(db, email=email)
        if existing is None:
            raise
        return existing
    logger.info("created the first superuser %s", superuser.email)
    return superuser


async def init_db(db: AsyncSession, config: Settings = settings) -> User:
    """Create what is missing and nothing else, in the caller's transaction; return the first
    superuser.

    Replicas starting together run it inside `exclusive_session`, one at a time, so the
    seed recipes (which no unique key guards) are added once.
    """
    email = normalize_email(config.FIRST_SUPERUSER_EMAIL)
    superuser = await crud.user.get_by_email(db, email=email)
    if superuser is None:
        superuser = await _create_superuser(db, config, email)
    for label, source, url in SEED_RECIPES:
        data = RecipeCreate.model_validate({"label": label, "source": source, "url": url})
        fields = data.model_dump()
        if await crud.recipe.get_by_url(db, submitter_id=superuser.id, url=fields["url"]) is None:
            await crud.recipe.add(db, Recipe(**fields, submitter_id=superuser.id))
            logger.info("seeded recipe %r", label)
    return superuser

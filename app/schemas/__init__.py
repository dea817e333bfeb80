"""Pydantic models at the API's edges. No ORM queries here."""

from app.schemas.common import ErrorDetail, Page
from app.schemas.health import Readiness
from app.schemas.recipe import (
    RecipeCreate,
    RecipePage,
    RecipeRead,
    RecipeSearchResults,
    RecipeUpdate,
)
from app.schemas.token import Token
from app.schemas.user import UserCreate, UserPage, UserRead, UserRegister

__all__ = [
    "ErrorDetail",
    "Page",
    "Readiness",
    "RecipeCreate",
    "RecipePage",
    "RecipeRead",
    "RecipeSearchResults",
    "RecipeUpdate",
    "Token",
    "UserCreate",
    "UserPage",
    "UserRead",
    "UserRegister",
]

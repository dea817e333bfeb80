"""The v1 router: one include_router line per endpoints module."""

from importlib import import_module

from fastapi import APIRouter

from app.api.api_v1.endpoints import auth, recipe, user

# Included before recipe, whose /recipes/{recipe_id} would otherwise capture /recipes/ideas.
OPTIONAL_SLICES: list[str] = [
    # One line per optional slice; `python3 scripts/dev.py trim NAME` deletes it and the files.
    "app.api.api_v1.endpoints.idea",
]

api_router = APIRouter()
api_router.include_router(auth.router)
for module in OPTIONAL_SLICES:
    api_router.include_router(import_module(module).router)
api_router.include_router(recipe.router)
api_router.include_router(user.router)

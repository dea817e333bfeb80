"""The v1 router: one include_router line per endpoints module."""

from fastapi import APIRouter

from app.api.api_v1.endpoints import auth, idea, recipe, sso, user

api_router = APIRouter()
api_router.include_router(auth.router)
api_router.include_router(sso.router)
# Before recipe: its /recipes/{recipe_id} would otherwise capture /recipes/ideas.
api_router.include_router(idea.router)
api_router.include_router(recipe.router)
api_router.include_router(user.router)

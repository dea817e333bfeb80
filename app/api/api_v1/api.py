"""The v1 router: one include_router line per endpoints module."""

from fastapi import APIRouter

from app.api.api_v1.endpoints import auth, idea, recipe, user

api_router = APIRouter()
api_router.include_router(auth.router)
# Before the routes whose /{id} would otherwise capture its static paths.
api_router.include_router(idea.router)
api_router.include_router(recipe.router)
api_router.include_router(user.router)

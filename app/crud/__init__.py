"""Every query as a named method, with explicit commits. No HTTP here."""

from app.crud.crud_recipe import recipe
from app.crud.crud_user import user

__all__ = ["recipe", "user"]

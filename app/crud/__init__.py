"""Every query as a named method on a repository; repositories flush, never commit. No HTTP here.

Importing this package imports every repository module in it, so each one is made (and seeds
its sample rows, see app.db.init_db) with no list to edit; the account repositories are
re-exported for the many modules that use them.
"""

import importlib
import pkgutil

from app.crud.crud_idempotency_key import idempotency_key
from app.crud.crud_token import password_reset_token, refresh_token
from app.crud.crud_user import user

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["idempotency_key", "password_reset_token", "refresh_token", "user"]

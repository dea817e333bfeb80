"""What the HTML pages slice adds to the shared tests (see tests/utils/slices.py)."""

from tests.utils.utils import AuthorizationRow

PUBLIC = (200, 200, 200, 200, 200, 200)

# The pages are public: (method, path, statuses per principal, the request from the World).
AUTHORIZATION_ROWS: list[AuthorizationRow] = [
    ("GET", "/", PUBLIC, lambda _: ("/", {})),
    ("GET", "/favicon.ico", PUBLIC, lambda _: ("/favicon.ico", {})),
    ("GET", "/recipes/{recipe_id}", PUBLIC, lambda w: (f"/recipes/{w.recipe.id}", {})),
]

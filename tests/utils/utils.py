"""Small random values and header builders."""

import secrets

from app.core.security import create_access_token


def random_lower_string(length: int = 16) -> str:
    return secrets.token_hex(length)[:length]


def random_email() -> str:
    return f"{random_lower_string(12)}@example.com"


def auth_headers(user_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_access_token(user_id)}"}

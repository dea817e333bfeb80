"""Small random values and header builders."""

import secrets
import socket
from collections.abc import Iterable

from app.core.security import SCOPE_RECIPES_WRITE, create_access_token


def random_lower_string(length: int = 16) -> str:
    return secrets.token_hex(length)[:length]


def random_email() -> str:
    return f"{random_lower_string(12)}@example.com"


def auth_headers(user_id: int, scopes: Iterable[str] = (SCOPE_RECIPES_WRITE,)) -> dict[str, str]:
    """A bearer header; an ordinary user's scopes unless told (superusers: scopes=SCOPES)."""
    return {"Authorization": f"Bearer {create_access_token(user_id, scopes=scopes)}"}


def free_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

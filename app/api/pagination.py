"""Opaque keyset cursors and the page envelope built from one extra row."""

import base64
import binascii
from collections.abc import Sequence
from typing import Protocol, TypeVar

# Ids are 32-bit integers on PostgreSQL; a larger value is a client error, not a database error.
MAX_ID = 2**31 - 1


class HasId(Protocol):
    @property
    def id(self) -> int: ...


RowT = TypeVar("RowT", bound=HasId)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor points below; ValueError for anything this API did not hand out."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("invalid cursor") from exc
    if not text.isdigit() or not 1 <= int(text) <= MAX_ID:
        raise ValueError("invalid cursor")
    return int(text)


def split_page(rows: Sequence[RowT], limit: int) -> tuple[Sequence[RowT], str | None]:
    """Rows were fetched with limit + 1: the extra one only says that a next page exists."""
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1].id)
    return rows, None

"""Keyset paging: opaque cursors, the page asked for and the page returned. No HTTP here."""

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

# Ids are 32-bit integers on PostgreSQL; a larger value is a client error, not a database error.
MAX_ID = 2**31 - 1

ItemT = TypeVar("ItemT")


@dataclass(frozen=True, slots=True)
class PageParams:
    """Which page: at most `limit` rows with ids below `before_id` (None: from the newest)."""

    limit: int = 20
    before_id: int | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[ItemT]):
    """A page of rows, newest first; handlers return it as is (read by attribute)."""

    items: Sequence[ItemT]
    next_cursor: str | None


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

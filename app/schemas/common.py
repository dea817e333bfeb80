"""Types shared by the schemas: safe text and the cursor page envelope."""

import re
import unicodedata
from typing import Annotated, Generic, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    UrlConstraints,
    model_validator,
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Characters that reorder or hide text where it is shown ("Safe \u202egnp.exe" reads as
# "Safe exe.png"): bidi embeddings, overrides and isolates, the Arabic letter mark, and the
# invisible zero-width space, word joiner and BOM. Zero-width (non-)joiners stay: emoji
# sequences and several scripts need them.
HIDDEN = re.compile("[\u202a-\u202e\u2066-\u2069\u061c\u200b\u2060\ufeff\u180e]")


def storable(value: str) -> str:
    """Refuse what a database cannot store (NUL, lone surrogates) with a 422, not a 500."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text") from exc
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def normalize_email(value: str) -> str:
    """The one spelling of an email: NFKC (a fullwidth letter is its ASCII twin), trimmed and
    lower-case, so each address names one account."""
    return unicodedata.normalize("NFKC", value).strip().lower()


def single_line(value: str) -> str:
    if _CONTROL.search(storable(value)):
        raise ValueError("must not contain control characters")
    hidden = HIDDEN.search(value)
    if hidden:
        raise ValueError(
            f"must not contain bidi controls or invisible characters (U+{ord(hidden[0]):04X})"
        )
    return value


# One-line text types. Surrounding spaces are dropped, so "  " is not a non-empty value.
Text100 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(single_line),
]
Text256 = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=256),
    AfterValidator(single_line),
]


class ReadModel(BaseModel):
    """Base of response schemas: built from ORM objects by attribute."""

    model_config = ConfigDict(from_attributes=True)


class WriteModel(BaseModel):
    """Base of request bodies: unknown fields are refused, so none is silently applied."""

    model_config = ConfigDict(extra="forbid")


class UpdateModel(WriteModel):
    """Base of PATCH bodies: send only the fields to change. null is not a value for any."""

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        nulls = sorted(f for f in self.model_fields_set if getattr(self, f) is None)
        if nulls:
            raise ValueError(f"fields cannot be null: {', '.join(nulls)}")
        return self


ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page.",
        examples=[None],
    )


class ErrorDetail(BaseModel):
    """The body of every 4xx and 5xx answer (422 keeps FastAPI's list of errors)."""

    detail: str = Field(examples=["User not found"])


URL_MAX_LENGTH = 2048


def _fits_column(url: HttpUrl) -> HttpUrl:
    # Normalizing percent-encodes (a space becomes %20), so a URL within the limit as sent can
    # outgrow the column; PostgreSQL would then refuse the row with a 500.
    if len(str(url)) > URL_MAX_LENGTH:
        raise ValueError(f"URL should have at most {URL_MAX_LENGTH} characters once normalized")
    return url


# An http(s) URL that fits a 2048-character column once normalized.
WebUrl = Annotated[
    HttpUrl,
    UrlConstraints(max_length=URL_MAX_LENGTH, allowed_schemes=["http", "https"]),
    AfterValidator(_fits_column),
]

"""Recipe request and response bodies."""

from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    Field,
    HttpUrl,
    UrlConstraints,
    field_serializer,
)

from app.schemas.common import Page, ReadModel, Text256, UpdateModel, WriteModel

URL_MAX_LENGTH = 2048


def _fits_column(url: HttpUrl) -> HttpUrl:
    # Normalizing percent-encodes (a space becomes %20), so a URL within the limit as sent can
    # outgrow the column; PostgreSQL would then refuse the row with a 500.
    if len(str(url)) > URL_MAX_LENGTH:
        raise ValueError(f"URL should have at most {URL_MAX_LENGTH} characters once normalized")
    return url


Label = Annotated[Text256, Field(examples=["Chicken Vesuvio"])]
Source = Annotated[Text256, Field(examples=["Serious Eats"])]
RecipeUrl = Annotated[
    HttpUrl,
    UrlConstraints(max_length=URL_MAX_LENGTH, allowed_schemes=["http", "https"]),
    AfterValidator(_fits_column),
    Field(examples=["https://www.seriouseats.com/chicken-vesuvio"]),
]


class RecipeCreate(WriteModel):
    label: Label
    source: Source
    url: RecipeUrl

    @field_serializer("url")
    def _url_text(self, url: HttpUrl) -> str:
        return str(url)


class RecipeUpdate(UpdateModel):
    """Partial update: send only the fields to change. null is not a value for any of them."""

    label: Label | None = None
    source: Source | None = None
    url: RecipeUrl | None = None

    @field_serializer("url")
    def _url_text(self, url: HttpUrl | None) -> str | None:
        return None if url is None else str(url)


class RecipeRead(ReadModel):
    id: int
    label: str
    source: str
    url: str
    submitter_id: int
    created_at: datetime
    updated_at: datetime


RecipePage = Page[RecipeRead]


class RecipeSearchResults(ReadModel):
    results: list[RecipeRead]

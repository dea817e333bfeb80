"""Recipe request and response bodies."""

from datetime import datetime
from typing import Annotated

from pydantic import (
    Field,
    HttpUrl,
    field_serializer,
)

from app.schemas.common import Page, ReadModel, Text256, UpdateModel, WebUrl, WriteModel

Label = Annotated[Text256, Field(examples=["Chicken Vesuvio"])]
Source = Annotated[Text256, Field(examples=["Serious Eats"])]
RecipeUrl = Annotated[WebUrl, Field(examples=["https://www.seriouseats.com/chicken-vesuvio"])]


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

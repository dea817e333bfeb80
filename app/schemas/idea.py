"""Idea bodies: ideas read from other services, and the request to import one."""

from pydantic import BaseModel, Field

from app.schemas.common import WebUrl, WriteModel


class IdeaRead(BaseModel):
    title: str = Field(examples=["Crispy chickpea salad"])
    url: str = Field(examples=["https://www.example.com/crispy-chickpea-salad"])
    score: int = Field(description="Upvotes upstream.", examples=[1234])


class IdeaFeed(BaseModel):
    ideas: dict[str, list[IdeaRead]] = Field(
        description="Top ideas per source that answered, best first."
    )
    errors: dict[str, str] = Field(
        description="Why each source that failed did so; empty when all answered.",
        examples=[{"soup": "upstream timed out"}],
    )


class IdeaImport(WriteModel):
    url: WebUrl = Field(description="The `url` of an idea from the ideas feed.")

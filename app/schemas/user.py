"""User request and response bodies. No schema here ever carries a password hash."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, EmailStr, Field, StringConstraints, field_validator

from app.schemas.common import Page, ReadModel, Text100, WriteModel, storable

Password = Annotated[
    str,
    StringConstraints(min_length=8, max_length=128),
    AfterValidator(storable),
    Field(examples=["correct horse battery staple"]),
]


class UserRegister(WriteModel):
    """Public sign-up: is_superuser and is_active are not fields here, so no one can set them."""

    email: EmailStr = Field(max_length=320, examples=["cook@example.com"])
    password: Password
    first_name: Text100 = Field(examples=["Ada"])
    surname: Text100 = Field(examples=["Lovelace"])

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class UserCreate(UserRegister):
    """Used by trusted code (seeding, administration), which may create superusers."""

    is_superuser: bool = False


class UserRead(ReadModel):
    id: int
    email: str
    first_name: str
    surname: str
    is_active: bool
    is_superuser: bool
    created_at: datetime


UserPage = Page[UserRead]

"""User request and response bodies. No schema here ever carries a password hash."""

from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BeforeValidator,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from app.core.password_policy import password_problem
from app.schemas.common import Page, ReadModel, Text100, WriteModel, normalize_email, storable


def acceptable(password: str) -> str:
    """Refuse common and patterned passwords; the email check needs the account (see below)."""
    problem = password_problem(password)
    if problem:
        raise ValueError(problem)
    return password


# A password to set: register, change, reset and administration.
Password = Annotated[
    str,
    StringConstraints(min_length=8, max_length=128),
    AfterValidator(storable),
    AfterValidator(acceptable),
    Field(examples=["correct horse battery staple"]),
]
# A password to check, not to set: any stored one fits these bounds.
CurrentPassword = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(storable)
]
# Normalized before it is validated, so the stored form is a valid address too.
Email = Annotated[
    EmailStr,
    BeforeValidator(lambda v: normalize_email(v) if isinstance(v, str) else v),
    Field(max_length=320, examples=["cook@example.com"]),
]


class PartialUpdate(WriteModel):
    """Fields left out stay as they are; null is not a value for any of them."""

    # Per field, so an error names the field and never echoes the rest of the body.
    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null")
        return value


class UserRegister(WriteModel):
    """Public sign-up: is_superuser and is_active are not fields here, so no one can set them."""

    email: Email
    password: Password
    first_name: Text100 = Field(examples=["Ada"])
    surname: Text100 = Field(examples=["Lovelace"])

    @field_validator("password")
    @classmethod
    def _not_the_email(cls, value: str, info: ValidationInfo) -> str:
        # email is declared first, so it has been validated (or has failed) by now.
        problem = password_problem(value, email=info.data.get("email"))
        if problem:
            raise ValueError(problem)
        return value


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


class UserUpdateMe(PartialUpdate):
    """Change your own profile; a new email needs `current_password`."""

    email: Email | None = None
    first_name: Text100 | None = None
    surname: Text100 | None = None
    current_password: CurrentPassword | None = None


class UserUpdate(PartialUpdate):
    """Administration: any subset of a user's fields. A new password ends their sessions."""

    email: Email | None = None
    password: Password | None = None
    first_name: Text100 | None = None
    surname: Text100 | None = None
    is_active: bool | None = None
    is_superuser: bool | None = None


class PasswordChange(WriteModel):
    current_password: CurrentPassword
    new_password: Password


class AccountDeletion(WriteModel):
    """Deleting your account asks for your password again: an access token alone is not enough."""

    current_password: CurrentPassword

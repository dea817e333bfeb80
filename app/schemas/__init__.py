"""Pydantic models at the API's edges. No ORM queries here."""

from app.schemas.common import ErrorDetail, Page
from app.schemas.health import Readiness
from app.schemas.token import Message, PasswordRecovery, PasswordReset, Token, TokenRefresh
from app.schemas.user import (
    AccountDeletion,
    PasswordChange,
    UserCreate,
    UserPage,
    UserRead,
    UserRegister,
    UserUpdate,
    UserUpdateMe,
)

__all__ = [
    "AccountDeletion",
    "ErrorDetail",
    "Message",
    "Page",
    "PasswordChange",
    "PasswordRecovery",
    "PasswordReset",
    "Readiness",
    "Token",
    "TokenRefresh",
    "UserCreate",
    "UserPage",
    "UserRead",
    "UserRegister",
    "UserUpdate",
    "UserUpdateMe",
]

"""The domain errors: each carries its status code, message and headers; one handler in
app.api.errors answers {"detail": message}, and routes list them in `responses=`."""

from collections.abc import Mapping
from typing import ClassVar


class AppError(Exception):
    status_code: ClassVar[int] = 400
    message: ClassVar[str] = "Bad request"
    headers: ClassVar[Mapping[str, str] | None] = None

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.message
        super().__init__(self.detail)


class BadRequest(AppError):
    pass


class Unauthorized(AppError):
    status_code = 401
    message = "Could not validate credentials"
    headers: ClassVar[Mapping[str, str] | None] = {"WWW-Authenticate": "Bearer"}


class NotFound(AppError):
    status_code = 404
    message = "Not found"


class Conflict(AppError):
    status_code = 409
    message = "The request conflicts with existing data"


class IncorrectLogin(Unauthorized):
    # One answer for an unknown email, a wrong password and an inactive account.
    message = "Incorrect email or password"


class InvalidRefreshToken(Unauthorized):
    message = "Invalid refresh token"


class IncorrectPassword(BadRequest):
    message = "Incorrect password"


class CurrentPasswordRequired(BadRequest):
    message = "current_password is required to change the email"


class ScopeNotAllowed(BadRequest):
    message = "Scope not allowed for this account"


class WeakPassword(AppError):
    """A new password the policy refuses; answered in FastAPI's 422 shape, on `field`."""

    status_code = 422
    message = "Password refused by the password policy"

    def __init__(self, detail: str | None = None, *, field: str = "new_password") -> None:
        super().__init__(detail)
        self.field = field


class InvalidResetToken(BadRequest):
    message = "Invalid or expired password reset token"


class UserNotFound(NotFound):
    message = "User not found"


class EmailTaken(Conflict):
    message = "A user with this email already exists"


class SelfDemotion(Conflict):
    message = "A superuser cannot demote or deactivate themselves"


class SelfDeletion(Conflict):
    message = "A superuser cannot delete their own account"


class LastSuperuser(Conflict):
    message = "The last active superuser cannot be demoted, deactivated or deleted"


class IdempotencyKeyInFlight(Conflict):
    message = "A request with this Idempotency-Key is still being processed; retry later"


class IdempotencyKeyReused(AppError):
    status_code = 422
    message = "This Idempotency-Key was used for a different request"

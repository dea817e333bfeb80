"""Sign-up, login, token refresh and logout, password change and reset, the current user."""

import logging
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, status
from fastapi.security import OAuth2PasswordRequestForm

from app.api.deps import (
    AuthRateLimit,
    ClientWatch,
    CurrentUser,
    LoginThrottleDep,
    RateLimiterDep,
    SessionDep,
    SessionFactory,
    SessionFactoryDep,
    email_digest,
)
from app.api.responses import errors
from app.core.config import settings
from app.core.email import password_reset_text, send_email
from app.core.rate_limit import RateLimiter
from app.core.redis import RedisStore
from app.core.security import create_access_token
from app.schemas import (
    Message,
    PasswordChange,
    PasswordRecovery,
    PasswordReset,
    Token,
    TokenRefresh,
    UserRead,
    UserRegister,
)
from app.schemas.common import normalize_email
from app.services import auth
from app.services import user as users
from app.services.errors import (
    EmailTaken,
    IncorrectLogin,
    IncorrectPassword,
    InvalidRefreshToken,
    InvalidResetToken,
    ScopeNotAllowed,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/auth", tags=["auth"], dependencies=[ClientWatch])

RECOVERY_MESSAGE = "If an active account uses this email, a reset token is on its way."


def _token(grant: auth.Grant) -> Token:
    return Token(
        access_token=create_access_token(
            grant.user_id, scopes=grant.scope.split(), version=grant.token_version
        ),
        expires_in=settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60,
        refresh_token=grant.refresh_token,
        scope=grant.scope,
    )


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    responses=errors(EmailTaken, 413, 429),
    dependencies=[AuthRateLimit],
)
async def signup(db: SessionDep, user_in: UserRegister) -> UserRead:
    """Create an account. New accounts are ordinary, active users."""
    return UserRead.model_validate(await users.create(db, user_in.model_dump()))


@router.post(
    "/login",
    responses=errors(ScopeNotAllowed, IncorrectLogin, 413, 429),
    dependencies=[AuthRateLimit],
)
async def login(
    db: SessionDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    throttle: LoginThrottleDep,
) -> Token:
    """OAuth2 password flow: `username` is the email; `scope` may ask for fewer scopes than the
    account holds (default: all of them). Returns an access token and a refresh token."""
    grant = await auth.login(
        db,
        email=normalize_email(form.username),
        password=form.password,
        scopes=form.scopes,
        throttle=throttle,
    )
    return _token(grant)


@router.post("/refresh", responses=errors(InvalidRefreshToken, 429), dependencies=[AuthRateLimit])
async def refresh(db: SessionDep, body: TokenRefresh) -> Token:
    """Trade a refresh token for a new pair. Each refresh token works once: presenting a used
    one again ends that whole login, since a copy of it is in someone else's hands."""
    return _token(await auth.refresh(db, token=body.refresh_token))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(db: SessionDep, body: TokenRefresh) -> None:
    """End the login this refresh token belongs to. Unknown tokens are ignored."""
    await auth.logout(db, token=body.refresh_token)


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401))
async def logout_all(db: SessionDep, user: CurrentUser) -> None:
    """End every login of the caller: refresh tokens and access tokens alike."""
    await auth.logout_all(db, user)


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(IncorrectPassword, 401, 429),
)
async def change_password(
    db: SessionDep, user: CurrentUser, body: PasswordChange, throttle: LoginThrottleDep
) -> None:
    """Change your password. Every token of yours stops working, and any unused reset token."""
    await users.change_password(
        db, user, current=body.current_password, new=body.new_password, throttle=throttle
    )


async def _recovery_allowed(limiter: RateLimiter, email: str) -> bool:
    """Whether this address may get another recovery email (RATE_LIMIT_RECOVERY_PER_ACCOUNT),
    counted for any address, known or not."""
    limit = settings.RATE_LIMIT_RECOVERY_PER_ACCOUNT
    if limit is None:
        return True
    # After the response, whose Redis budget is spent: a fresh one.
    async with RedisStore.budget():
        result = await limiter.hit(f"recovery:{email_digest(email)}", limit)
    return result.allowed


async def _send_password_reset(sessions: SessionFactory, limiter: RateLimiter, email: str) -> None:
    """After the response: email a reset token to an active account, and nothing otherwise;
    nothing either once the address has had its share, so its mailbox cannot be flooded."""
    try:
        if not await _recovery_allowed(limiter, email):
            logger.info("password recovery over its limit for one address")
            return
        async with sessions() as db:
            issued = await auth.issue_reset_token(db, email=email)
        if issued is None:
            logger.info("password recovery asked for no active account")
            return
        token, address = issued
        await send_email(
            to=address,
            subject=f"{settings.PROJECT_NAME}: reset your password",
            text=password_reset_text(
                token=token, expire_minutes=settings.PASSWORD_RESET_EXPIRE_MINUTES
            ),
        )
    except Exception as exc:
        # The response has gone; the log is the only place left to report to.
        logger.error("password reset email failed: %s", type(exc).__name__)


@router.post(
    "/password-recovery",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(429),
    dependencies=[AuthRateLimit],
)
async def recover_password(
    body: PasswordRecovery,
    background: BackgroundTasks,
    sessions: SessionFactoryDep,
    limiter: RateLimiterDep,
) -> Message:
    """Email a single-use reset token. The answer is the same whether or not the account
    exists or has had its share of emails, and comes before any lookup, so neither its body
    nor its timing tells."""
    background.add_task(_send_password_reset, sessions, limiter, body.email)
    return Message(message=RECOVERY_MESSAGE)


@router.post(
    "/password-reset",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(InvalidResetToken, 429),
    dependencies=[AuthRateLimit],
)
async def reset_password(db: SessionDep, body: PasswordReset, throttle: LoginThrottleDep) -> None:
    """Set a new password with an emailed token. The token works once; every token of the
    account stops working."""
    user = await auth.reset_password(db, token=body.token, new_password=body.new_password)
    await throttle.succeeded(user.email)


@router.get("/me", responses=errors(401))
async def read_me(user: CurrentUser) -> UserRead:
    """The logged-in user."""
    return UserRead.model_validate(user)

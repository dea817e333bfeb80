"""Sign-up, login, token refresh and logout, password change and reset, the current user."""

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordRequestForm

from app import crud
from app.api.deps import (
    AuthRateLimit,
    ClientWatch,
    CurrentUser,
    LoginThrottleDep,
    SessionDep,
    SessionFactory,
    SessionFactoryDep,
)
from app.api.responses import errors
from app.core.config import settings
from app.core.email import password_reset_text, send_email
from app.core.password_policy import password_problem
from app.core.security import create_access_token, entitled_scopes, scope_string
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

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/auth", tags=["auth"], dependencies=[ClientWatch])

RECOVERY_MESSAGE = "If an active account uses this email, a reset token is on its way."


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def _refuse_password_with_email(password: str, email: str) -> None:
    """The 422 the body's own validation would give, for a check that needs the account."""
    problem = password_problem(password, email=email)
    if problem:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "new_password"), "msg": problem}]
        )


def _token(user_id: int, scope: str, refresh_token: str) -> Token:
    return Token(
        access_token=create_access_token(user_id, scopes=scope.split()),
        expires_in=settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60,
        refresh_token=refresh_token,
        scope=scope,
    )


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 413, 429),
    dependencies=[AuthRateLimit],
)
async def signup(db: SessionDep, user_in: UserRegister) -> UserRead:
    """Create an account. New accounts are ordinary, active users."""
    if await crud.user.get_by_email(db, email=user_in.email):
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="A user with this email already exists"
        )
    return UserRead.model_validate(await crud.user.create(db, obj_in=user_in))


@router.post("/login", responses=errors(400, 401, 413, 429), dependencies=[AuthRateLimit])
async def login(
    db: SessionDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    throttle: LoginThrottleDep,
) -> Token:
    """OAuth2 password flow: `username` is the email; `scope` may ask for fewer scopes than the
    account holds (default: all of them). Returns an access token and a refresh token."""
    email = form.username.strip()
    await throttle.attempt(email)
    user = await crud.user.authenticate(db, email=email, password=form.password)
    if user is None:
        # One answer for an unknown email, a wrong password and an inactive account.
        raise _unauthorized("Incorrect email or password")
    await throttle.succeeded(email)
    entitled = entitled_scopes(is_superuser=user.is_superuser)
    requested = set(form.scopes)
    if requested - entitled:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"Scope not allowed for this account: {scope_string(requested - entitled)}",
        )
    scope = scope_string(requested or entitled)
    await crud.refresh_token.remove_expired(db, user_id=user.id)
    refresh_token, _ = await crud.refresh_token.create_for_user(db, user_id=user.id, scope=scope)
    return _token(user.id, scope, refresh_token)


@router.post("/refresh", responses=errors(401, 429), dependencies=[AuthRateLimit])
async def refresh(db: SessionDep, body: TokenRefresh) -> Token:
    """Trade a refresh token for a new pair. Each refresh token works once: presenting a used
    one again ends that whole login, since a copy of it is in someone else's hands."""
    token = await crud.refresh_token.get_by_token(db, token=body.refresh_token)
    if token is None:
        raise _unauthorized("Invalid refresh token")
    family_id, user_id = token.family_id, token.user_id
    if token.replaced_by_id is not None:
        logger.warning("refresh token reused: revoking family %s of user %d", family_id, user_id)
        await crud.refresh_token.revoke_family(db, family_id=family_id)
        raise _unauthorized("Invalid refresh token")
    if token.revoked_at is not None or token.expires_at <= datetime.now(UTC):
        raise _unauthorized("Invalid refresh token")
    user = await crud.user.get(db, user_id)
    if user is None or not user.is_active:
        raise _unauthorized("Invalid refresh token")
    # The scopes of the login, less any the user has lost since.
    scope = scope_string(set(token.scope.split()) & entitled_scopes(is_superuser=user.is_superuser))
    new_refresh_token = await crud.refresh_token.rotate(db, db_obj=token, scope=scope)
    if new_refresh_token is None:
        # Another request consumed it first: the same reuse, seen a moment earlier.
        logger.warning("refresh token raced: revoking family %s of user %d", family_id, user_id)
        await crud.refresh_token.revoke_family(db, family_id=family_id)
        raise _unauthorized("Invalid refresh token")
    return _token(user_id, scope, new_refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(db: SessionDep, body: TokenRefresh) -> None:
    """End the login this refresh token belongs to. Unknown tokens are ignored."""
    token = await crud.refresh_token.get_by_token(db, token=body.refresh_token)
    if token is not None:
        await crud.refresh_token.revoke_family(db, family_id=token.family_id)


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401))
async def logout_all(db: SessionDep, user: CurrentUser) -> None:
    """End every login of the caller; access tokens already issued run out on their own."""
    await crud.refresh_token.revoke_all_for_user(db, user_id=user.id)


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT, responses=errors(400, 401, 429))
async def change_password(
    db: SessionDep, user: CurrentUser, body: PasswordChange, throttle: LoginThrottleDep
) -> None:
    """Change your password. Every refresh token of yours stops working."""
    await throttle.attempt(user.email)
    if await crud.user.authenticate(db, email=user.email, password=body.current_password) is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="Incorrect password")
    await throttle.succeeded(user.email)
    _refuse_password_with_email(body.new_password, user.email)
    await crud.user.update(db, db_obj=user, obj_in={"password": body.new_password})


async def _send_password_reset(sessions: SessionFactory, email: str) -> None:
    """After the response: email a reset token to an active account, and nothing otherwise."""
    try:
        async with sessions() as db:
            user = await crud.user.get_by_email(db, email=email)
            if user is None or not user.is_active:
                logger.info("password recovery asked for no active account")
                return
            token = await crud.password_reset_token.create_for_user(db, user_id=user.id)
            address = user.email
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
    body: PasswordRecovery, background: BackgroundTasks, sessions: SessionFactoryDep
) -> Message:
    """Email a single-use reset token. The answer is the same whether or not the account
    exists, and comes before any lookup, so neither its body nor its timing tells."""
    background.add_task(_send_password_reset, sessions, body.email)
    return Message(message=RECOVERY_MESSAGE)


@router.post(
    "/password-reset",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(400, 429),
    dependencies=[AuthRateLimit],
)
async def reset_password(db: SessionDep, body: PasswordReset, throttle: LoginThrottleDep) -> None:
    """Set a new password with an emailed token. The token works once; every refresh token of
    the account stops working."""
    pending = await crud.password_reset_token.get_by_token(db, token=body.token)
    owner = await crud.user.get(db, pending.user_id) if pending is not None else None
    if owner is not None:
        _refuse_password_with_email(body.new_password, owner.email)
    user = await crud.password_reset_token.redeem(
        db, token=body.token, new_password=body.new_password
    )
    if user is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="Invalid or expired password reset token"
        )
    await throttle.succeeded(user.email)


@router.get("/me", responses=errors(401))
async def read_me(user: CurrentUser) -> UserRead:
    """The logged-in user."""
    return UserRead.model_validate(user)

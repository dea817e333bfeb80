"""Sign-up, login and the current user."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from app import crud
from app.api.deps import CurrentUser, SessionDep
from app.api.responses import errors
from app.core.security import create_access_token
from app.schemas import Token, UserRead, UserRegister

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 413),
)
async def signup(db: SessionDep, user_in: UserRegister) -> UserRead:
    """Create an account. New accounts are ordinary, active users."""
    if await crud.user.get_by_email(db, email=user_in.email):
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="A user with this email already exists"
        )
    return UserRead.model_validate(await crud.user.create(db, obj_in=user_in))


@router.post("/login", responses=errors(401, 413))
async def login(db: SessionDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    """OAuth2 password flow: `username` is the email. Returns a bearer access token."""
    user = await crud.user.authenticate(db, email=form.username.strip(), password=form.password)
    if user is None:
        # One answer for an unknown email, a wrong password and an inactive account.
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Incorrect email or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Token(access_token=create_access_token(user.id))


@router.get("/me", responses=errors(401))
async def read_me(user: CurrentUser) -> UserRead:
    """The logged-in user."""
    return UserRead.model_validate(user)

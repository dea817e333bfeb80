"""Every exception handler: domain errors, 409 for clashes, 503 for an unreachable database, safe
422 and 500."""

import json
import logging
import math

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

from app.core.security import HASH_RETRY_AFTER_SECONDS, HashingBusyError
from app.services.errors import AppError, WeakPassword

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "5"
# Errors that mean "the database cannot be reached now", not "this request is wrong".
DB_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    ConnectionError,
    TimeoutError,
)
# SQLSTATEs of other DBAPI errors that mean the same: connection exceptions (08...), the server
# shutting down, crashed or still starting (57P01-57P03), and no connection slot left.
UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


class SafeJSONResponse(JSONResponse):
    """JSON that stays valid for any input echoed back: lone surrogates escaped, no NaN."""

    def render(self, content: object) -> bytes:
        # Compact, like every other body the app sends.
        return json.dumps(
            content, ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode("ascii")


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def internal_error_response(request_id: str) -> JSONResponse:
    return JSONResponse(
        {"detail": "Internal Server Error", "request_id": request_id},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


async def validation_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 body, minus echoed passwords, and renderable whatever the client sent."""
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in jsonable_encoder(exc.errors()):
        if any("password" in str(part) for part in error.get("loc", ())):
            error.pop("input", None)
        errors.append(error)
    return SafeJSONResponse(
        {"detail": _json_safe(errors)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


async def app_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """A domain error (app.services.errors): its status code, message and headers."""
    assert isinstance(exc, AppError)
    return JSONResponse(
        {"detail": exc.detail}, status_code=exc.status_code, headers=dict(exc.headers or {})
    )


async def weak_password_handler(_: Request, exc: Exception) -> JSONResponse:
    """A policy refusal that needed the account (its email): the 422 body validation gives."""
    assert isinstance(exc, WeakPassword)
    error = {"type": "value_error", "loc": ["body", exc.field], "msg": exc.detail}
    return JSONResponse({"detail": [error]}, status_code=exc.status_code)


async def integrity_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """A uniqueness or foreign-key clash that a check before the write could not rule out."""
    logger.info("integrity error: %s", type(getattr(exc, "orig", exc)).__name__)
    return JSONResponse(
        {"detail": "The request conflicts with existing data"},
        status_code=status.HTTP_409_CONFLICT,
    )


async def db_unavailable_handler(_: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable: %s", type(exc).__name__)
    return JSONResponse(
        {"detail": "Service temporarily unavailable"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


async def dbapi_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """503 for a database error that means "unavailable now" (PostgreSQL starting up or shutting
    down, a lost connection); any other is a bug and goes on to the last-resort 500."""
    assert isinstance(exc, sa_exc.DBAPIError)
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    if exc.connection_invalidated or sqlstate.startswith(UNAVAILABLE_SQLSTATES):
        return await db_unavailable_handler(request, exc)
    raise exc


async def hashing_busy_handler(_: Request, exc: Exception) -> JSONResponse:
    """A full password-hashing queue sheds load instead of growing memory and waits."""
    logger.warning("password hash refused: %s", exc)
    return JSONResponse(
        {"detail": "Too many sign-ins at once; retry shortly"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(HASH_RETRY_AFTER_SECONDS)},
    )


def register_exception_handlers(app: FastAPI) -> None:
    """Anything not handled here becomes a 500 in RequestContextMiddleware, with a request id."""
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(AppError, app_error_handler)
    app.add_exception_handler(WeakPassword, weak_password_handler)
    app.add_exception_handler(sa_exc.IntegrityError, integrity_error_handler)
    app.add_exception_handler(HashingBusyError, hashing_busy_handler)
    for exc_type in DB_UNAVAILABLE:
        app.add_exception_handler(exc_type, db_unavailable_handler)
    # The handlers above are more specific, so this one sees only the other DBAPI errors.
    app.add_exception_handler(sa_exc.DBAPIError, dbapi_error_handler)

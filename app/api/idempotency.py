"""`@idempotent`: a write route honours the Idempotency-Key header (the IETF draft's semantics).

A retry with the same key and body gets the first answer (status and body) and writes nothing
again; the same key with another body is 422; while the first request runs, 409. Keys are per
user and per route and expire after IDEMPOTENCY_KEY_EXPIRE_HOURS. The answer is stored in the
write's own transaction, so a write committed whose answer was lost is found on retry.
"""

import functools
import hashlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, ParamSpec, TypeVar

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import SessionDep, TokenDep, token_user_id
from app.services import idempotency
from app.services.errors import IdempotencyKeyReused

P = ParamSpec("P")
R = TypeVar("R")

HEADER = "Idempotency-Key"
_PARAM = "idempotent_request"


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    db: AsyncSession
    # Headers other dependencies set (RateLimit-*), which a returned Response would drop.
    sub_response: Response
    # None when the request carries no key: the route runs as usual.
    attempt: idempotency.Attempt | None
    # The route's success status, for answers returned as models.
    status_code: int


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def get_idempotent_request(
    request: Request,
    response: Response,
    db: SessionDep,
    # Not the user: the route checks it already, under its own scopes (a second check would
    # run again, as FastAPI caches a dependency per scope set). The key needs only the id.
    token: TokenDep,
    key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            min_length=1,
            max_length=255,
            pattern=r"^[\x20-\x7e]+$",
            description="A unique value per intended write (say, a UUID), sent again on every "
            "retry of it: a retry with the same key and body gets the first answer instead of "
            "a second write; the same key with another body is 422; while the first request "
            "runs, 409. Per user and route; kept for IDEMPOTENCY_KEY_EXPIRE_HOURS.",
            examples=['"8e03978e-40d5-43e8-bc93-6894a57f9324"'],
        ),
    ] = None,
) -> IdempotentRequest:
    route = request.scope["route"]
    status_code = route.status_code or 200
    if key is None:
        return IdempotentRequest(db, response, None, status_code)
    # The draft sends the key as a structured-field string: quoted; a bare one is the same.
    key = key.removeprefix('"').removesuffix('"')
    attempt = idempotency.Attempt(
        user_id=token_user_id(token),
        key_hash=_sha256(f"{request.method} {route.path}\0{key}".encode()),
        request_hash=_sha256(await request.body()),
    )
    return IdempotentRequest(db, response, attempt, status_code)


def idempotent(
    handler: Callable[P, Awaitable[R]],
) -> Callable[..., Awaitable[R | Response]]:
    """Make a route honour Idempotency-Key: `@idempotent` under the route's decorator, on a route
    whose own dependencies check the user (the key is theirs)."""

    @functools.wraps(handler)
    async def endpoint(*args: Any, **kwargs: Any) -> R | Response:
        req: IdempotentRequest = kwargs.pop(_PARAM)
        if req.attempt is None:
            return await handler(*args, **kwargs)
        try:
            first = await idempotency.begin(req.db, req.attempt)
        except IdempotencyKeyReused as exc:
            # In validation's 422 shape, as OpenAPI declares every 422 of the route.
            error = {"type": "value_error", "loc": ("header", HEADER), "msg": exc.detail}
            raise RequestValidationError([error]) from exc
        if first is not None:
            answer = Response(
                first.response_body, status_code=first.status_code, media_type="application/json"
            )
        else:
            result = await handler(*args, **kwargs)
            answer = (
                result
                if isinstance(result, Response)
                else JSONResponse(jsonable_encoder(result), status_code=req.status_code)
            )
            body = bytes(answer.body).decode()
            await idempotency.finish(req.db, req.attempt, status_code=answer.status_code, body=body)
        answer.headers.raw.extend(req.sub_response.headers.raw)
        return answer

    signature = inspect.signature(handler)
    extra = inspect.Parameter(
        _PARAM,
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[IdempotentRequest, Depends(get_idempotent_request)],
    )
    endpoint.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), extra]
    )
    return endpoint

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
from typing import Annotated, Any, ParamSpec, TypeVar, get_args, get_origin

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import StringConstraints, TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import oauth2_scheme, token_user_id
from app.services import idempotency
from app.services.errors import IdempotencyKeyReused

P = ParamSpec("P")
R = TypeVar("R")

HEADER = "Idempotency-Key"
# Parameter names the decorator adds to the route.
_REQUEST = "idempotency_request"
_RESPONSE = "idempotency_response"

# Read from the request, not declared as a header parameter: FastAPI would look for and validate
# it on every request, sent or not. OpenAPI still documents it (openapi_parameters below).
_KEY = TypeAdapter(
    Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\x20-\x7e]+$")]
)
_DESCRIPTION = (
    "A unique value per intended write (say, a UUID), sent again on every retry of it: a retry "
    "with the same key and body gets the first answer instead of a second write; the same key "
    "with another body is 422; while the first request runs, 409. Per user and route; kept for "
    "IDEMPOTENCY_KEY_EXPIRE_HOURS."
)
PARAMETER = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": _DESCRIPTION,
    "schema": {**_KEY.json_schema(), "title": HEADER},
    # The draft's form, a structured-field string; a bare value is read the same.
    "example": '"8e03978e-40d5-43e8-bc93-6894a57f9324"',
}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(request: Request) -> str | None:
    """The header's value, if sent; a malformed one is 422, in the shape FastAPI gives a header
    it validates itself."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    try:
        return _KEY.validate_python(key)
    except ValidationError as exc:
        errors = [{**error, "loc": ("header", HEADER)} for error in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from exc


async def _attempt(request: Request, key: str) -> idempotency.Attempt:
    # The route's own dependencies have checked the token by now; the key needs only its user.
    token = await oauth2_scheme(request)
    # The draft sends the key as a structured-field string: quoted; a bare one is the same.
    key = key.removeprefix('"').removesuffix('"')
    return idempotency.Attempt(
        user_id=token_user_id(token),
        key_hash=_sha256(f"{request.method} {request.scope['route'].path}\0{key}".encode()),
        request_hash=_sha256(await request.body()),
    )


def _param_of(signature: inspect.Signature, kind: type) -> str | None:
    """The name of the handler's parameter of that type (plain or Annotated), if any."""
    for name, param in signature.parameters.items():
        annotation = param.annotation
        if annotation is kind or (
            get_origin(annotation) is Annotated and get_args(annotation)[0] is kind
        ):
            return name
    return None


def idempotent(
    handler: Callable[P, Awaitable[R]],
) -> Callable[..., Awaitable[R | Response]]:
    """Make a route honour Idempotency-Key: `@idempotent` under the route's decorator, on a route
    whose own dependencies check the user (the key is theirs) and that takes the request's
    session (SessionDep), in whose transaction the answer is kept.

    The request and the response are parameters of the route itself, not a dependency of its
    own: FastAPI solves every dependency afresh on each request, even a cached one. The key is
    read from the request."""
    # Annotations as FastAPI reads them, written as strings or not.
    signature = inspect.signature(handler, eval_str=True)
    db_name = _param_of(signature, AsyncSession)
    if db_name is None:
        raise TypeError(f"@idempotent: {handler.__name__} takes no session (SessionDep)")
    # FastAPI gives the Request and the Response to one parameter each: the handler's own if it
    # declares one.
    request_name = _param_of(signature, Request)
    response_name = _param_of(signature, Response)
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind)
        for name, kind, own in (
            (_REQUEST, Request, request_name),
            (_RESPONSE, Response, response_name),
        )
        if own is None
    ]

    @functools.wraps(handler)
    async def endpoint(*args: Any, **kwargs: Any) -> R | Response:
        request: Request = kwargs[request_name] if request_name else kwargs.pop(_REQUEST)
        response: Response = kwargs[response_name] if response_name else kwargs.pop(_RESPONSE)
        key = _key(request)
        if key is None:
            return await handler(*args, **kwargs)
        attempt = await _attempt(request, key)
        db: AsyncSession = kwargs[db_name]
        try:
            first = await idempotency.begin(db, attempt)
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
                else JSONResponse(
                    jsonable_encoder(result), status_code=request.scope["route"].status_code or 200
                )
            )
            body = bytes(answer.body).decode()
            await idempotency.finish(db, attempt, status_code=answer.status_code, body=body)
        # Headers other dependencies set (RateLimit-*), which a returned Response would drop.
        answer.headers.raw.extend(response.headers.raw)
        return answer

    endpoint.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *extra]
    )
    endpoint.openapi_parameters = [PARAMETER]  # type: ignore[attr-defined]
    return endpoint

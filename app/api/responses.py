"""Error responses declared on routes, so the OpenAPI document shows what each can return."""

from typing import Any

from app.schemas import ErrorDetail


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorDetail, "description": DESCRIPTIONS[code]} for code in codes}


DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, invalid or expired credentials",
    403: "Not allowed for this user",
    404: "Not found",
    409: "Conflicts with existing data",
    429: "Too many requests; wait the seconds in `Retry-After`",
    503: "The database is unavailable; retry later",
}

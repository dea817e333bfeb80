"""Error responses declared on routes, so the OpenAPI document shows what each can return."""

from typing import Any

from app.schemas import ErrorDetail
from app.services.errors import AppError


def errors(*raised: int | type[AppError]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the status codes and domain errors a route may answer with; a domain
    error's message is its description."""
    described: dict[int, list[str]] = {}
    for item in raised:
        code, text = (
            (item, DESCRIPTIONS[item])
            if isinstance(item, int)
            else (
                item.status_code,
                item.message,
            )
        )
        if text not in described.setdefault(code, []):
            described[code].append(text)
    return {
        code: {"model": ErrorDetail, "description": "; ".join(texts)}
        for code, texts in sorted(described.items())
    }


DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, invalid or expired credentials",
    403: "Not allowed for this user",
    404: "Not found",
    409: "Conflicts with existing data",
    413: "Request body too large",
    429: "Too many requests; retry after the Retry-After seconds",
    502: "The services this answer depends on failed",
    503: "The database is unavailable; retry later",
}

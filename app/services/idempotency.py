"""Idempotent writes (the IETF Idempotency-Key draft): a retry gets the first answer. No HTTP
here."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.core.config import settings
from app.models import IdempotencyKey
from app.services.errors import IdempotencyKeyInFlight, IdempotencyKeyReused


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request under a key: whose, which key (hashed with its route), what body (hashed)."""

    user_id: int
    key_hash: str
    request_hash: str


async def begin(db: AsyncSession, attempt: Attempt) -> IdempotencyKey | None:
    """The first answer given for this key, or None when the write is to run now, with the key
    held until the transaction ends. 409 while another request with the key runs; 422 if the
    key came with another request before."""
    user_id, key_hash = attempt.user_id, attempt.key_hash
    if not await crud.idempotency_key.hold(db, user_id=user_id, key_hash=key_hash):
        raise IdempotencyKeyInFlight
    await crud.idempotency_key.purge(db, user_id=user_id)
    found = await crud.idempotency_key.get_by_key(db, user_id=user_id, key_hash=key_hash)
    if found is not None and found.request_hash != attempt.request_hash:
        raise IdempotencyKeyReused
    return found


async def finish(db: AsyncSession, attempt: Attempt, *, status_code: int, body: str) -> None:
    """Keep the answer in the write's own transaction: stored if and only if the write is."""
    expires_at = datetime.now(UTC) + timedelta(hours=settings.IDEMPOTENCY_KEY_EXPIRE_HOURS)
    row = IdempotencyKey(
        user_id=attempt.user_id,
        key_hash=attempt.key_hash,
        request_hash=attempt.request_hash,
        status_code=status_code,
        response_body=body,
        expires_at=expires_at,
    )
    await crud.idempotency_key.add(db, row)

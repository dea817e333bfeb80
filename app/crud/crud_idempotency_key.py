"""Idempotency key data access: find a key's stored answer, hold a key while its write runs.
No HTTP here."""

import hashlib
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.crud.base import Repository
from app.models import IdempotencyKey


class IdempotencyKeyRepository(Repository[IdempotencyKey]):
    async def get_by_key(
        self, db: AsyncSession, *, user_id: int, key_hash: str
    ) -> IdempotencyKey | None:
        query = select(IdempotencyKey).where(
            IdempotencyKey.user_id == user_id, IdempotencyKey.key_hash == key_hash
        )
        return await db.scalar(query)

    async def hold(self, db: AsyncSession, *, user_id: int, key_hash: str) -> bool:
        """Hold the key until the transaction ends; False if another transaction holds it now.

        On PostgreSQL a transaction-scoped advisory lock, taken without waiting, so a
        concurrent duplicate is told at once instead of queueing behind the first. SQLite's
        writing transactions already hold the database's write lock: a duplicate waits for it
        and then finds the stored answer."""
        if db.get_bind().dialect.name != "postgresql":
            return True
        digest = hashlib.sha256(f"idempotency:{user_id}:{key_hash}".encode()).digest()
        lock_id = int.from_bytes(digest[:8], "big", signed=True)
        return bool(await db.scalar(select(func.pg_try_advisory_xact_lock(lock_id))))

    async def purge(self, db: AsyncSession, *, user_id: int) -> None:
        """Delete the user's expired keys: a retry after expiry is a new request."""
        await db.execute(
            delete(IdempotencyKey)
            .where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.expires_at <= datetime.now(UTC)
            )
            .execution_options(synchronize_session=False)
        )


idempotency_key = IdempotencyKeyRepository(IdempotencyKey)

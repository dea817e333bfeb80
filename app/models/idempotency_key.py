"""The idempotency_key table: a write's first answer, kept for retries with the same key."""

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base_class import Base, UTCDateTime, utcnow


class IdempotencyKey(Base):
    """Stored in the transaction of the write it answers for, so it exists exactly when the
    write does. The client's key is kept only as a hash, with the route it was sent to."""

    __tablename__ = "idempotency_key"
    __table_args__ = (
        UniqueConstraint("user_id", "key_hash"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    # sha256 of the route and the client's key.
    key_hash: Mapped[str] = mapped_column(String(64))
    # sha256 of the request body: the same key with another body is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

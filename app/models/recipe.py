"""The Recipe table."""

from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base_class import Base, TimestampMixin

if TYPE_CHECKING:
    from app.models.user import User


class Recipe(TimestampMixin, Base):
    __tablename__ = "recipe"
    __table_args__ = (
        # Serves the foreign key and the keyset-paged "recipes of one submitter" listing.
        Index("ix_recipe_submitter_id_id", "submitter_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(256))
    url: Mapped[str] = mapped_column(String(2048))
    submitter_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))

    # One-way, so the user model names no resource; the database's ON DELETE CASCADE removes a
    # user's recipes. lazy="raise": under async a lazy load would be hidden I/O.
    submitter: Mapped["User"] = relationship(lazy="raise")

"""The User table."""

from typing import TYPE_CHECKING

from sqlalchemy import Boolean, Integer, String, false, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base_class import Base, TimestampMixin

if TYPE_CHECKING:
    from app.models.recipe import Recipe


class User(TimestampMixin, Base):
    __tablename__ = "user"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    first_name: Mapped[str] = mapped_column(String(100))
    surname: Mapped[str] = mapped_column(String(100))
    hashed_password: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Carried in access tokens; raised to end every access token already issued (logout-all,
    # a password change or reset).
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    # lazy="raise": under async a lazy load would do hidden I/O, so every load is explicit.
    recipes: Mapped[list["Recipe"]] = relationship(
        back_populates="submitter", lazy="raise", passive_deletes=True
    )

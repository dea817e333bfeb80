"""Any-case matching: ILIKE (trigram-indexable) on PostgreSQL, folded LIKE on SQLite."""

from sqlalchemy import make_url, select

from app.db.folding import any_case_like
from app.models import Recipe


def _sql(url: str) -> str:
    query = select(Recipe.id).where(any_case_like(Recipe.label, "%crème%"))
    return str(query.compile(dialect=make_url(url).get_dialect()()))


def test_any_case_like_is_a_plain_ilike_on_postgresql() -> None:
    # The trigram index serves ILIKE on the bare column; a function around it would not.
    sql = _sql("postgresql+asyncpg://")
    assert "WHERE recipe.label ILIKE $1::VARCHAR ESCAPE" in sql
    assert "casefold" not in sql


def test_any_case_like_folds_both_sides_on_sqlite() -> None:
    sql = _sql("sqlite+aiosqlite://")
    assert "casefold(recipe.label) LIKE casefold(?) ESCAPE '\\'" in sql

"""Bulk seeding for the benchmark: COPY into PostgreSQL, executemany into SQLite; never the API."""

import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

USERS = 1000
# The login and write user of the benchmark (user 1 of the seeded users, active, no superuser).
BENCH_EMAIL = "cook1@bench.example.com"
BENCH_PASSWORD = "bench-password-1"

ADJECTIVES = [
    "Classic",
    "Spicy",
    "Smoky",
    "Crispy",
    "Creamy",
    "Quick",
    "Rustic",
    "Lemon",
    "Garlic",
    "Herbed",
    "Sticky",
    "Roasted",
    "Grilled",
    "Braised",
    "Sweet",
    "Tangy",
]
PROTEINS = [
    "Chicken",
    "Beef",
    "Pork",
    "Tofu",
    "Salmon",
    "Shrimp",
    "Lamb",
    "Mushroom",
    "Chickpea",
    "Lentil",
    "Duck",
    "Turkey",
    "Cod",
    "Egg",
    "Halloumi",
    "Tempeh",
]
DISHES = [
    "Curry",
    "Stew",
    "Tacos",
    "Salad",
    "Pie",
    "Risotto",
    "Noodles",
    "Skewers",
    "Soup",
    "Bake",
    "Burger",
    "Stir-Fry",
    "Pasta",
    "Sandwich",
    "Casserole",
    "Dumplings",
]
SOURCES = ["Serious Eats", "BBC Good Food", "No Recipes", "Hot Thai Kitchen", "Bon Appetit"]
# One label in RARE_EVERY carries the rare word, so a search for it must find rows far apart.
RARE_WORD = "Vesuvio"
RARE_EVERY = 5000
COMMON_KEYWORD = "chicken"
RARE_KEYWORD = RARE_WORD.lower()


def label(i: int, rng: random.Random) -> str:
    words = [rng.choice(ADJECTIVES), rng.choice(PROTEINS), rng.choice(DISHES)]
    if i % RARE_EVERY == 0:
        words.insert(1, RARE_WORD)
    return f"{' '.join(words)} No. {i}"


def recipe_rows(count: int, users: int, seed: int = 8) -> Iterator[tuple[Any, ...]]:
    """(label, source, url, submitter_id, created_at, updated_at), oldest first."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(seconds=count)
    for i in range(1, count + 1):
        created = start + timedelta(seconds=i, microseconds=rng.randrange(1, 999_999))
        yield (
            label(i, rng),
            rng.choice(SOURCES),
            f"https://recipes.bench.example.com/{i}",
            rng.randrange(1, users + 1),
            created,
            created,
        )


def user_rows(users: int, hashed: str) -> Iterator[tuple[Any, ...]]:
    """(email, first_name, surname, hashed_password, is_active, is_superuser, created, updated)."""
    now = datetime.now(UTC)
    for i in range(1, users + 1):
        yield (f"cook{i}@bench.example.com", "Cook", f"No. {i}", hashed, True, False, now, now)


USER_COLUMNS = [
    "email",
    "first_name",
    "surname",
    "hashed_password",
    "is_active",
    "is_superuser",
    "created_at",
    "updated_at",
]
RECIPE_COLUMNS = ["label", "source", "url", "submitter_id", "created_at", "updated_at"]


async def seed_postgres(dsn: str, recipes: int, hashed: str, users: int = USERS) -> None:
    """COPY the users, then the recipes, into a migrated, empty database."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "user", records=list(user_rows(users, hashed)), columns=USER_COLUMNS
        )
        batch: list[tuple[Any, ...]] = []
        for row in recipe_rows(recipes, users):
            batch.append(row)
            if len(batch) == 100_000:
                await conn.copy_records_to_table("recipe", records=batch, columns=RECIPE_COLUMNS)
                batch = []
        if batch:
            await conn.copy_records_to_table("recipe", records=batch, columns=RECIPE_COLUMNS)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def seed_sqlite(path: str, recipes: int, hashed: str, users: int = USERS) -> None:
    """Multi-row inserts in one transaction into a migrated, empty SQLite file."""

    def iso(row: tuple[Any, ...]) -> tuple[Any, ...]:
        # SQLAlchemy's SQLite DateTime stores "YYYY-MM-DD HH:MM:SS.ffffff" without an offset.
        return tuple(
            v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v
            for v in row
        )

    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executemany(
                f'INSERT INTO "user" ({", ".join(USER_COLUMNS)}) VALUES ({", ".join("?" * 8)})',
                (iso(r) for r in user_rows(users, hashed)),
            )
            conn.executemany(
                f"INSERT INTO recipe ({', '.join(RECIPE_COLUMNS)}) VALUES ({', '.join('?' * 6)})",
                (iso(r) for r in recipe_rows(recipes, users)),
            )
        conn.execute("ANALYZE")
    finally:
        conn.close()

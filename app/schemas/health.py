"""Health probe response bodies."""

from typing import Literal

from pydantic import BaseModel, Field

Check = Literal["up", "down"]


class Readiness(BaseModel):
    """What /readyz answers: ready (200) or not (503), by the database alone."""

    status: Literal["ok", "unavailable"]
    database: Check
    redis: Literal["up", "degraded"] | None = Field(
        default=None,
        description="Only when REDIS_URL is set; degraded (caches miss, limits count in memory) "
        "does not make the instance unready.",
    )

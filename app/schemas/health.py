"""Health probe response bodies."""

from typing import Literal

from pydantic import BaseModel, Field

Check = Literal["up", "down"]


class Readiness(BaseModel):
    """What /readyz answers, ready (200) or not (503)."""

    status: Literal["ok", "unavailable"]
    database: Check
    redis: Check | None = Field(default=None, description="Only when REDIS_URL is set.")

"""Faults under load, against the real service on loopback: duplicate sign-ups racing."""

import asyncio
from collections import Counter

import httpx2

from tests.utils.server import run_sh

SIGNUP = "/api/v1/auth/signup"
RACERS = 20


async def _race_signups(base_url: str, email: str) -> Counter[int]:
    body = {"email": email, "password": "a-long-password", "first_name": "R", "surname": "C"}
    limits = httpx2.Limits(max_connections=RACERS)
    async with httpx2.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        responses = await asyncio.gather(*(http.post(SIGNUP, json=body) for _ in range(RACERS)))
    return Counter(r.status_code for r in responses)


def test_concurrent_signups_with_one_email_create_one_account(fresh_database_url: str) -> None:
    with run_sh(fresh_database_url) as (base_url, _, _):
        statuses = asyncio.run(_race_signups(base_url, "racer@example.com"))
        users = httpx2.get(f"{base_url}/readyz", timeout=5)
    assert users.status_code == 200
    assert statuses == Counter({201: 1, 409: RACERS - 1})

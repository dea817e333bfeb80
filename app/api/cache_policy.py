"""Public caching as a property a route declares, read by the cache middleware from the route."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.types import Scope

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """Shared caches may keep the route's anonymous 200 answers for `max_age()` seconds.

    A callable, so the value follows the settings at request time, as tests change them.
    """

    max_age: Callable[[], int]


def public_cache(max_age: Callable[[], int]) -> Callable[[Endpoint], Endpoint]:
    """Marks an endpoint's anonymous reads as publicly cacheable; any other stays private."""

    def mark(endpoint: Endpoint) -> Endpoint:
        endpoint.cache_policy = CachePolicy(max_age)  # type: ignore[attr-defined]
        return endpoint

    return mark


def route_cache_policy(scope: Scope) -> CachePolicy | None:
    """The policy the matched route declares; None for undeclared or unmatched routes."""
    endpoint = getattr(scope.get("route"), "endpoint", None)
    policy = getattr(endpoint, "cache_policy", None)
    return policy if isinstance(policy, CachePolicy) else None

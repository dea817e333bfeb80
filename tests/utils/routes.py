"""What tests derive from the app's own routes: who may call each one, and a valid call to it.

Access comes from route metadata: the security scopes a route's dependencies declare, the
ownership marker `owned()` sets (app.api.deps), and the superuser dependency. Rows for path ids
come from each resource's factory, found by convention: `{stem}_id` names the table `stem`, made
by `create_random_{stem}` in tests/utils/{stem}.py. Bodies are the OpenAPI document's examples.
"""

import importlib
import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import Mount, Route

from app.api.cache_policy import CachePolicy
from app.api.deps import (
    Ownership,
    get_caller,
    get_current_superuser,
    get_current_user,
    get_writer,
)
from app.core.config import settings
from app.core.security import entitled_scopes
from app.db.base_class import Base
from app.models import User

# The callers. "user" owns every row the calls work on; the last two hold correctly signed
# access tokens that lack a scope: the user's with none, the superuser's without the ones only
# superusers hold.
PRINCIPALS = ("anonymous", "user", "other", "superuser", "user_no_scope", "admin_no_scope")
Statuses = tuple[int, int, int, int, int, int]

PATH_PARAM = re.compile(r"{(\w+)}")


def public(code: int) -> Statuses:
    return (code, code, code, code, code, code)


def logged_in(code: int) -> Statuses:
    return (401, code, code, code, code, code)


def writer(code: int) -> Statuses:
    """Needs a scope every user may hold, which the superuser's admin-less token still has."""
    return (401, code, code, code, 403, code)


def owner(code: int) -> Statuses:
    """The row's owner or a superuser, with the route's scope; 403 for anyone else."""
    return (401, code, 403, code, 403, code)


def admin(code: int) -> Statuses:
    """Superusers whose token carries the superuser-only scopes."""
    return (401, 403, 403, code, 403, 403)


@dataclass(frozen=True)
class Endpoint:
    """One (method, path) the app serves, with what its route declares."""

    method: str
    path: str
    route: Any
    scopes: frozenset[str] = frozenset()
    login: bool = False
    superuser: bool = False
    ownership: Ownership | None = None
    public_cache: bool = False

    @property
    def is_api(self) -> bool:
        return self.path.startswith(settings.API_V1_STR)

    @property
    def success(self) -> int:
        return getattr(self.route, "status_code", None) or 200

    @property
    def declared(self) -> bool:
        """Whether the route says who may call it; API routes open to all must say so."""
        return self.login or self.public_cache or not self.is_api

    def expect(self) -> Statuses:
        code = self.success
        if self.ownership is not None:
            return owner(code)
        if self.superuser or not self.scopes <= entitled_scopes(is_superuser=False):
            return admin(code)
        if self.scopes:
            return writer(code)
        return logged_in(code) if self.login else public(code)


def _walk(dependant: Dependant) -> tuple[set[Any], set[str]]:
    calls: set[Any] = set()
    scopes: set[str] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        calls.add(current.call)
        scopes.update(current.own_oauth_scopes or ())
        stack.extend(current.dependencies)
    return calls, scopes


def endpoints(application: FastAPI) -> list[Endpoint]:
    """Every (method, path) the app answers, seen through included routers and mounts."""
    found = []
    for context in iter_route_contexts(application.routes):
        route, path = context.original_route, str(context.path)
        if isinstance(route, Mount):
            found.append(Endpoint("GET", path, route))
        elif isinstance(route, APIRoute):
            calls, scopes = _walk(route.dependant)
            marks = [getattr(call, "ownership", None) for call in calls]
            found.extend(
                Endpoint(
                    method,
                    path,
                    route,
                    scopes=frozenset(scopes),
                    login=bool({get_current_user, get_caller, get_writer} & calls),
                    superuser=get_current_superuser in calls,
                    ownership=next((m for m in marks if isinstance(m, Ownership)), None),
                    public_cache=isinstance(
                        getattr(route.endpoint, "cache_policy", None), CachePolicy
                    ),
                )
                for method in sorted(route.methods or ())
            )
        elif isinstance(route, Route):
            found.extend(Endpoint(method, path, route) for method in sorted(route.methods or ()))
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")
    return found


def owners(application: FastAPI) -> dict[type[Any], str]:
    """Each owned model and the column that names its owner, from the ownership markers."""
    return {
        e.ownership.model: e.ownership.owner_attr
        for e in endpoints(application)
        if e.ownership is not None
    }


def _model(table: str) -> type[Any] | None:
    for mapper in Base.registry.mappers:
        if getattr(mapper.local_table, "name", None) == table:
            return mapper.class_
    return None


@dataclass
class Rows:
    """Ids for path parameters, of rows made by each resource's own factory, owned by `owner`."""

    db: AsyncSession
    owner: User
    owned_by: dict[type[Any], str]
    ids: dict[str, int] = field(default_factory=dict)

    async def id_for(self, param: str) -> int:
        if param == "user_id":
            return self.owner.id
        if param not in self.ids:
            stem = param.removesuffix("_id")
            model = _model(stem)
            assert model is not None, f"no table {stem!r} for the path parameter {param!r}"
            factories = importlib.import_module(f"tests.utils.{stem}")
            factory = getattr(factories, f"create_random_{stem}")
            kwargs = {self.owned_by[model]: self.owner.id} if model in self.owned_by else {}
            self.ids[param] = (await factory(self.db, **kwargs)).id
        return self.ids[param]

    async def url(self, path: str) -> str:
        values = {name: await self.id_for(name) for name in PATH_PARAM.findall(path)}
        return path.format(**values)

    async def fill(self, value: Any) -> Any:
        """An example body with every `{stem}_id` field naming a real row."""
        if not isinstance(value, dict):
            return value
        return {
            key: await self.id_for(key) if key.endswith("_id") and _model(key[:-3]) else item
            for key, item in value.items()
        }


def operation(spec: dict[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    return dict(spec["paths"].get(endpoint.path, {}).get(endpoint.method.lower(), {}))


def example_call(spec: dict[str, Any], endpoint: Endpoint) -> tuple[dict[str, Any], Any]:
    """Query parameters and JSON body for a valid call, from the OpenAPI document's examples."""
    op = operation(spec, endpoint)
    query = {
        p["name"]: (p["schema"].get("examples") or ["e"])[0]
        for p in op.get("parameters", [])
        if p["in"] == "query" and p.get("required")
    }
    media = op.get("requestBody", {}).get("content", {}).get("application/json")
    return query, None if media is None else media.get("example")

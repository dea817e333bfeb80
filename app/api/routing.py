"""One flat route table. FastAPI resolves included routers at request time, walking every nested
router (and its version counters) on each request; the app's own router holding each included
route, as included, makes routing one scan, in which a route turns away a path outside its own
literal prefix before FastAPI's matching."""

import copy

from fastapi import FastAPI
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import BaseRoute, Match
from starlette.types import Scope


class PrefixedRoute(APIRoute):
    """An API route that answers "no match" at once to a path not starting with the literal
    text before its first parameter. FastAPI's matching (a regular expression and a lookup of
    the route's context, about 2 µs) then runs only for the routes a request could be for, not
    for the twenty-odd before them in the table."""

    literal: str

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # Under a root path Starlette matches what follows it: left to the full match.
        if not scope.get("root_path") and not scope.get("path", "").startswith(self.literal):
            return Match.NONE, {}
        return super().matches(scope)


def _prefixed(route: APIRoute) -> PrefixedRoute:
    prefixed = PrefixedRoute.__new__(PrefixedRoute)
    prefixed.__dict__.update(vars(route))
    prefixed.literal = route.path.split("{", 1)[0]
    return prefixed


def _flat(context: RouteContext) -> APIRoute:
    """The route as its inclusion made it: a copy of the original whose every attribute the
    inclusion settled (path, tags, dependencies, responses, the handler built for them) takes
    the included value. Nothing is rebuilt, so start-up pays nothing for it."""
    route = copy.copy(context.original_route)
    assert isinstance(route, APIRoute)
    for name in vars(route):
        if hasattr(context, name):  # all but the route's own form limits
            setattr(route, name, getattr(context, name))
    return route


def flatten_routes(app: FastAPI) -> None:
    """Replace each included router whose routes are all API routes by those routes, as
    included, and every API route by its PrefixedRoute. Anything else (mounts, plain routes)
    stays as it is. Call it once every router is included: a route added to an included router
    afterwards would not be seen."""
    routes: list[BaseRoute] = []
    for route in app.router.routes:
        if isinstance(route, APIRoute):
            routes.append(_prefixed(route))
            continue
        contexts = list(iter_route_contexts([route]))
        if all(isinstance(context.original_route, APIRoute) for context in contexts) and not (
            len(contexts) == 1 and contexts[0].original_route is route
        ):
            routes.extend(_prefixed(_flat(context)) for context in contexts)
        else:
            routes.append(route)
    app.router.routes[:] = routes

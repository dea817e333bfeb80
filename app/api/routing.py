"""One flat route table. FastAPI resolves included routers at request time, walking every nested
router (and its version counters) on each request; copying the included routes, with what their
inclusion added, into the app's own router once at start-up makes routing one scan."""

import inspect
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

# Everything an APIRoute is made from besides its path and endpoint; an included route's
# context answers each with the value its inclusion settled on (prefix, tags, dependencies...).
_OPTIONS = [
    name
    for name in inspect.signature(APIRoute.__init__).parameters
    if name not in ("self", "path", "endpoint")
]


def _flat(context: Any) -> APIRoute:
    options = {name: getattr(context, name) for name in _OPTIONS if hasattr(context, name)}
    return APIRoute(context.path, context.endpoint, **options)


def flatten_routes(app: FastAPI) -> None:
    """Replace each included router whose routes are all API routes by those routes, as
    included. Anything else (mounts, plain routes) stays as it is. Call it once every router
    is included: a route added to an included router afterwards would not be seen."""
    routes: list[BaseRoute] = []
    for route in app.router.routes:
        if isinstance(route, APIRoute):
            routes.append(route)
            continue
        contexts = list(iter_route_contexts([route]))
        if all(isinstance(context.original_route, APIRoute) for context in contexts) and not (
            len(contexts) == 1 and contexts[0].original_route is route
        ):
            routes.extend(_flat(context) for context in contexts)
        else:
            routes.append(route)
    app.router.routes[:] = routes

"""The flat route table: the same API as the included routers describe, matched in one scan."""

import json
from typing import Annotated

import httpx2
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Match, Mount, Route

from app import main as main_module
from app.api.routing import PrefixedRoute, flatten_routes
from app.main import app, create_app


def _nested_app() -> FastAPI:
    async def refuse_unless_allowed(allowed: bool = False) -> None:
        if not allowed:
            raise HTTPException(403, "not allowed")

    async def greeting() -> str:
        return "hello"

    inner = APIRouter(prefix="/things", tags=["things"])

    @inner.get("/{thing_id}", responses={404: {"description": "No such thing"}})
    async def read_thing(thing_id: int, word: Annotated[str, Depends(greeting)]) -> dict[str, str]:
        """One thing."""
        return {"id": str(thing_id), "word": word}

    middle = APIRouter()
    middle.include_router(inner)
    made = FastAPI()
    made.include_router(
        middle,
        prefix="/v1",
        dependencies=[Depends(refuse_unless_allowed)],
        responses={429: {"description": "Slow down"}},
        tags=["v1"],
    )
    made.state.greeting = greeting
    return made


def _schema(made: FastAPI) -> str:
    made.openapi_schema = None
    return json.dumps(made.openapi(), sort_keys=True)


def test_flattening_keeps_the_api_as_included() -> None:
    nested, flat = _nested_app(), _nested_app()
    flatten_routes(flat)
    assert _schema(flat) == _schema(nested)
    (route,) = flat.router.routes[-1:]
    assert isinstance(route, APIRoute)
    assert route.path == "/v1/things/{thing_id}"
    assert route.tags == ["v1", "things"]


@pytest.mark.parametrize("flat", [False, True])
async def test_flat_routes_run_their_inclusions_dependencies_and_overrides(flat: bool) -> None:
    made = _nested_app()
    if flat:
        flatten_routes(made)

    async def other_greeting() -> str:
        return "hi"

    transport = httpx2.ASGITransport(app=made)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/v1/things/1")).status_code == 403
        assert (await client.get("/v1/things/x?allowed=true")).status_code == 422
        assert (await client.get("/v1/things/1?allowed=true")).json() == {
            "id": "1",
            "word": "hello",
        }
        made.dependency_overrides[made.state.greeting] = other_greeting
        assert (await client.get("/v1/things/1?allowed=true")).json()["word"] == "hi"


def test_the_apps_api_routes_are_matched_directly() -> None:
    """No API route is left inside an included router, which FastAPI walks on every request."""
    for route in app.router.routes:
        assert all(c.original_route is route for c in iter_route_contexts([route])), route
    paths = {getattr(r, "path", None) for r in app.router.routes}
    assert "/api/v1/recipes/{recipe_id}" in paths


def test_the_apps_document_is_the_one_its_included_routers_describe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flat = create_app()
    monkeypatch.setattr(main_module, "flatten_routes", lambda _: None)
    nested = create_app()
    assert any(not isinstance(route, APIRoute | Route | Mount) for route in nested.router.routes)
    assert _schema(flat) == _schema(nested)


def _scope(path: str, method: str = "GET", root_path: str = "") -> dict[str, object]:
    return {"type": "http", "method": method, "path": path, "root_path": root_path}


def test_each_api_route_turns_away_paths_outside_its_literal_prefix() -> None:
    made = _nested_app()
    flatten_routes(made)
    (route,) = made.router.routes[-1:]
    assert isinstance(route, PrefixedRoute)
    assert route.literal == "/v1/things/"
    assert route.matches(_scope("/v1/things/7"))[0] is Match.FULL
    assert route.matches(_scope("/v1/things/7", "DELETE"))[0] is Match.PARTIAL  # then 405
    assert route.matches(_scope("/v1/other/7"))[0] is Match.NONE
    assert route.matches(_scope("/v1/things"))[0] is Match.NONE
    # Under a root path the full match decides, as Starlette strips the root path first.
    assert route.matches(_scope("/proxy/v1/things/7", root_path="/proxy"))[0] is Match.FULL


def test_every_api_route_of_the_app_is_prefixed() -> None:
    api = [route for route in app.router.routes if isinstance(route, APIRoute)]
    assert api
    assert all(isinstance(route, PrefixedRoute) for route in api)

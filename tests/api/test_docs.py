"""Offline Swagger UI and ReDoc, the DOCS_ENABLED switch, and the OpenAPI contract."""

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx2
import pytest
from fastapi import APIRouter, Form
from openapi_spec_validator import validate
from pydantic import AnyUrl, BaseModel, EmailStr
from sqlalchemy.ext.asyncio import AsyncSession

from app import __version__
from app.api.deps import CurrentUser, SessionDep
from app.main import app, create_app
from tests.utils.utils import Configure, serve_session

ROOT = Path(__file__).resolve().parents[2]
ERROR_REF = "#/components/schemas/ErrorDetail"
DOC_PAGES = ["/docs", "/redoc", "/docs/oauth2-redirect"]
ASSETS = {
    "/docs/static/swagger-ui-bundle.js": "javascript",
    "/docs/static/swagger-ui.css": "text/css",
    "/docs/static/redoc.standalone.js": "javascript",
    "/docs/static/favicon.png": "image/png",
}


ClientFor = Callable[..., httpx2.AsyncClient]


@pytest.fixture
def client_for(db: AsyncSession, configure: Configure) -> ClientFor:
    """A client for an app made with the given settings changed, on the test's session."""

    def make(**values: Any) -> httpx2.AsyncClient:
        configure(**values)
        new_app = create_app()
        serve_session(new_app, db)
        return httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=new_app), base_url="http://test"
        )

    return make


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_docs_pages_load_every_asset_from_this_app(
    client: httpx2.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    urls = re.findall(r'(?:src|href)="([^"]*)"', response.text)
    assert urls
    assert all(url.startswith("/docs/static/") for url in urls), urls
    assert "/openapi.json" in response.text
    assert "//" not in "".join(urls)


async def test_swagger_ui_has_no_validator_badge_and_a_local_oauth2_redirect(
    client: httpx2.AsyncClient,
) -> None:
    page = (await client.get("/docs")).text
    assert '"validatorUrl": null' in page
    assert "'/docs/oauth2-redirect'" in page
    redirect = await client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert "oauth2" in redirect.text


@pytest.mark.parametrize(("path", "content_type"), ASSETS.items())
async def test_docs_assets_are_served(
    client: httpx2.AsyncClient, path: str, content_type: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert content_type in response.headers["content-type"]
    assert len(response.content) > 1000


@pytest.mark.parametrize("path", [*DOC_PAGES, "/openapi.json", *ASSETS])
async def test_docs_disabled_answers_404(client_for: ClientFor, path: str) -> None:
    async with client_for(DOCS_ENABLED=False) as c:
        assert (await c.get(path)).status_code == 404
    async with client_for(DOCS_ENABLED=True) as c:
        assert (await c.get(path)).status_code == 200


async def test_openapi_document_is_a_valid_spec(client: httpx2.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    validate(spec)
    assert spec["openapi"].startswith("3.1")


def test_openapi_info_comes_from_settings_and_the_package_version(configure: Configure) -> None:
    configure(
        PROJECT_NAME="Cookbook",
        PROJECT_DESCRIPTION="All the *recipes*.",
        CONTACT_NAME="Kitchen",
        CONTACT_EMAIL="kitchen@example.com",
        CONTACT_URL="https://example.com/kitchen",
    )
    info = create_app().openapi()["info"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert info == {
        "title": "Cookbook",
        "description": "All the *recipes*.",
        "contact": {
            "name": "Kitchen",
            "email": "kitchen@example.com",
            "url": "https://example.com/kitchen",
        },
        "version": pyproject["project"]["version"],
    }
    assert __version__ == pyproject["project"]["version"]
    configure(CONTACT_NAME=None, CONTACT_EMAIL=None, CONTACT_URL=None)
    bare = create_app().openapi()["info"]
    assert "contact" not in bare


def test_every_operation_has_a_stable_id_summary_and_description() -> None:
    spec = app.openapi()
    operations = _operations(spec)
    assert len(operations) >= 14
    ids = [operation["operationId"] for _, _, operation in operations]
    assert len(ids) == len(set(ids))
    for method, path, operation in operations:
        tag = operation["tags"][0]
        assert re.fullmatch(rf"{tag}_[a-z_]+", operation["operationId"]), (method, path)
        assert operation["summary"].strip(), (method, path)
        assert operation["description"].strip(), (method, path)
    by_id = {operation["operationId"]: (method, path) for method, path, operation in operations}
    assert by_id["recipes_read_recipe"] == ("GET", "/api/v1/recipes/{recipe_id}")
    assert by_id["auth_login"] == ("POST", "/api/v1/auth/login")


def test_every_tag_is_declared_with_a_description() -> None:
    spec = app.openapi()
    declared = {tag["name"]: tag["description"] for tag in spec["tags"]}
    used = {tag for _, _, operation in _operations(spec) for tag in operation["tags"]}
    assert used <= set(declared)
    assert all(description.strip() for description in declared.values())


def test_every_error_response_is_declared_with_the_detail_schema() -> None:
    spec = app.openapi()
    assert spec["components"]["schemas"]["ErrorDetail"]["required"] == ["detail"]
    for method, path, operation in _operations(spec):
        responses = operation["responses"]
        where = (method, path)
        if "security" in operation:
            assert "401" in responses, where
        if "requestBody" in operation:
            assert "413" in responses, where
        if path.startswith("/api/v1/"):
            assert "503" in responses, where
        for code, response in responses.items():
            if code[0] not in "45" or code == "422" or path == "/readyz":
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": ERROR_REF}, (where, code)
    paths = spec["paths"]
    assert "404" in paths["/api/v1/recipes/{recipe_id}"]["get"]["responses"]
    assert {"403", "404"} <= set(paths["/api/v1/recipes/{recipe_id}"]["patch"]["responses"])
    assert "409" in paths["/api/v1/auth/signup"]["post"]["responses"]
    assert "403" in paths["/api/v1/users"]["get"]["responses"]
    assert paths["/readyz"]["get"]["responses"]["503"]["content"]["application/json"]["schema"]


def test_every_request_body_has_an_example() -> None:
    spec = app.openapi()
    bodies = [
        (path, media)
        for _, path, operation in _operations(spec)
        for media in operation.get("requestBody", {}).get("content", {}).values()
    ]
    assert len(bodies) >= 4
    assert all(media.get("example") for _, media in bodies)
    paths = spec["paths"]
    login = paths["/api/v1/auth/login"]["post"]["requestBody"]["content"]
    assert login["application/x-www-form-urlencoded"]["example"] == {
        "username": "cook@example.com",
        "password": "correct horse battery staple",
    }
    create = paths["/api/v1/recipes"]["post"]["requestBody"]["content"]["application/json"]
    assert create["example"]["label"] == "Chicken Vesuvio"


class Step(BaseModel):
    text: str
    then: "Step | None"


class IdeaCreate(BaseModel):
    title: str
    servings: int
    rating: float
    vegetarian: bool
    steps: list[str]
    course: Literal["starter", "main"]
    homepage: AnyUrl
    email: EmailStr
    first_step: Step
    note: str | None = None


def test_openapi_completes_routes_that_declare_nothing() -> None:
    """A route merged later without docstring, tag notes or error responses is completed."""
    new_app = create_app()
    router = APIRouter(prefix="/notes", tags=["notes"])

    async def create_idea(_: SessionDep, __: CurrentUser, idea: IdeaCreate) -> IdeaCreate:
        return idea

    async def rate_idea(rating: Annotated[int, Form()]) -> int:
        return rating

    rate_idea.__module__ = "not.loaded"
    assert "/notes" not in new_app.openapi()["paths"]
    router.add_api_route("", create_idea, methods=["POST"], responses={429: {"description": "x"}})
    router.add_api_route("/rate", rate_idea, methods=["POST"], tags=["ratings"])
    new_app.include_router(router)

    spec = new_app.openapi()
    assert new_app.openapi() is spec
    operation = spec["paths"]["/notes"]["post"]
    assert operation["operationId"] == "notes_create_idea"
    assert operation["description"] == operation["summary"] == "Create Idea"
    assert {"401", "413", "422", "429", "503"} <= set(operation["responses"])
    too_many = operation["responses"]["429"]["content"]["application/json"]["schema"]
    assert too_many == {"$ref": ERROR_REF}
    assert operation["requestBody"]["content"]["application/json"]["example"] == {
        "title": "string",
        "servings": 1,
        "rating": 1.0,
        "vegetarian": True,
        "steps": ["string"],
        "course": "starter",
        "homepage": "https://example.com/",
        "email": "cook@example.com",
        "first_step": {"text": "string", "then": None},
    }
    rate = spec["paths"]["/notes/rate"]["post"]
    assert "503" not in rate["responses"]
    tags = {tag["name"]: tag["description"] for tag in spec["tags"]}
    assert tags["notes"] == __doc__.splitlines()[0]
    assert tags["ratings"] == "Operations on ratings."
    validate(spec)

"""Offline Swagger UI and ReDoc, and an OpenAPI document that every route completes the same way."""

import copy
import sys
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles

from app.api.responses import DESCRIPTIONS
from app.db.session import get_db
from app.schemas import ErrorDetail

# swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js and favicon.png, shipped by the package.
STATIC_DIR = Path(fastapi_offline.__file__).parent / "static"
STATIC_URL = "/docs/static"
SWAGGER_UI_PARAMETERS = {
    # The default validator badge is an image from a third-party host.
    "validatorUrl": None,
    "displayRequestDuration": True,
    "defaultModelsExpandDepth": 0,
}

# A resource's tag needs no entry: its router module's docstring describes it (complete_openapi).
OPENAPI_TAGS = [
    {"name": "auth", "description": "Sign up, log in (OAuth2 password flow) and who you are."},
    {"name": "users", "description": "Your own account and rows, and user lookup for superusers."},
    {"name": "health", "description": "Liveness and readiness probes for orchestrators."},
]

ERROR_SCHEMA_REF = {"$ref": f"#/components/schemas/{ErrorDetail.__name__}"}
# Fields whose schema carries no example, such as those of the OAuth2 login form.
FIELD_EXAMPLES: dict[str, object] = {"username": "cook@example.com"}
FORMAT_EXAMPLES: dict[str, object] = {
    "email": "cook@example.com",
    "password": "correct horse battery staple",
    "uri": "https://example.com/",
}


def operation_id(route: APIRoute) -> str:
    """`users_read_user`: the first tag and the handler, so client methods read cleanly."""
    return f"{route.tags[0]}_{route.name}" if route.tags else route.name


class DocumentedFastAPI(FastAPI):
    """FastAPI whose OpenAPI document is completed for every route, including future ones."""

    _completed: dict[str, Any] | None = None

    def openapi(self) -> dict[str, Any]:
        # FastAPI rebuilds the document when routes change; each new build is completed once.
        schema = super().openapi()
        if schema is not self._completed:
            complete_openapi(schema, self.routes)
            self._completed = schema
        return schema


def complete_openapi(schema: dict[str, Any], routes: list[Any]) -> None:
    """Fill what a route left out: description, error responses, request examples, tag notes."""
    # Route contexts carry what include_router added (prefix, tags, ids), as the document does.
    api_routes = {
        context.operation_id or context.unique_id: context
        for context in iter_route_contexts(routes)
        if isinstance(context.original_route, APIRoute) and context.include_in_schema
    }
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(ErrorDetail.__name__, ErrorDetail.model_json_schema())
    used_tags: dict[str, Any] = {}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            route = api_routes.get(operation.get("operationId", ""))
            for tag in operation.get("tags", []):
                used_tags.setdefault(tag, route)
            operation.setdefault("description", operation.get("summary", ""))
            _complete_parameters(operation, route)
            _complete_responses(operation, route)
            _complete_request_example(operation, schemas)
    declared = {tag["name"] for tag in schema.setdefault("tags", [])}
    for tag, route in used_tags.items():
        if tag not in declared:
            schema["tags"].append({"name": tag, "description": _module_summary(route, tag)})


def _complete_parameters(operation: dict[str, Any], route: Any) -> None:
    """Parameters a handler reads itself and declares as `openapi_parameters` (@idempotent's
    header): FastAPI documents only those it parses."""
    extra = getattr(route.endpoint, "openapi_parameters", ()) if route is not None else ()
    if extra:
        # Copies: the document is the app's to change, the declarations are shared.
        operation.setdefault("parameters", []).extend(copy.deepcopy(extra))


def _complete_responses(operation: dict[str, Any], route: Any) -> None:
    codes = []
    if "security" in operation:
        codes.append(401)
    if "requestBody" in operation:
        codes.append(413)
    if route is not None and _depends_on(route, get_db):
        codes.append(503)
    responses = operation.setdefault("responses", {})
    for code in codes:
        responses.setdefault(str(code), {"description": DESCRIPTIONS[code]})
    for code, response in responses.items():
        if code[0] in "45" and code != "422" and "content" not in response:
            response["content"] = {"application/json": {"schema": ERROR_SCHEMA_REF}}


def _depends_on(route: Any, call: object) -> bool:
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if dependant.call is call:
            return True
        stack.extend(dependant.dependencies)
    return False


def _complete_request_example(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    for media in operation.get("requestBody", {}).get("content", {}).values():
        if "example" not in media and "examples" not in media:
            media["example"] = _example(media.get("schema", {}), schemas)


def _example(
    schema: dict[str, Any],
    schemas: dict[str, Any],
    name: str = "",
    seen: frozenset[str] = frozenset(),
) -> object:
    """A value for a JSON schema: its own example, else one built from its parts."""
    if "$ref" in schema:
        ref = schema["$ref"].rsplit("/", 1)[-1]
        if ref in seen:
            return None  # a model that contains itself ends the example here
        schema, seen = schemas.get(ref, {}), seen | {ref}
    if schema.get("examples"):
        return schema["examples"][0]
    if schema.get("enum"):
        return schema["enum"][0]
    if name in FIELD_EXAMPLES:
        return FIELD_EXAMPLES[name]
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            if option.get("type") != "null":
                return _example(option, schemas, name, seen)
    if schema.get("type") == "object" or "properties" in schema:
        required = set(schema.get("required", []))
        return {
            field: _example(sub, schemas, field, seen)
            for field, sub in schema.get("properties", {}).items()
            if field in required or _has_example(sub, field)
        }
    if schema.get("type") == "array":
        return [_example(schema.get("items", {}), schemas, seen=seen)]
    if schema.get("format") in FORMAT_EXAMPLES:
        return FORMAT_EXAMPLES[schema["format"]]
    return {"integer": 1, "number": 1.0, "boolean": True}.get(schema.get("type", ""), "string")


def _has_example(schema: dict[str, Any], name: str) -> bool:
    options = [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]
    return name in FIELD_EXAMPLES or any(option.get("examples") for option in options)


def _module_summary(route: Any, tag: str) -> str:
    """A tag nobody described gets its endpoints module's one-line docstring."""
    module = sys.modules.get(route.endpoint.__module__) if route is not None else None
    doc = (module.__doc__ or "").strip() if module is not None else ""
    return doc.splitlines()[0] if doc else f"Operations on {tag}."


router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI, with its assets served by this app."""
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
        swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
    )


@router.get("/docs/oauth2-redirect")
async def swagger_ui_redirect() -> HTMLResponse:
    """Where Swagger UI's OAuth2 flows that use a redirect come back to."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc, with its bundle served by this app and no web fonts."""
    root = request.scope.get("root_path", "")
    return get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        with_google_fonts=False,
    )


def install_docs(app: FastAPI, *, enabled: bool) -> None:
    """/docs, /redoc and their assets; when off, they (and /openapi.json, see create_app) 404."""
    app.state.docs_enabled = enabled
    if not enabled:
        return
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="docs-static")
    app.include_router(router)

"""The HTML pages: newest recipes with search and paging, and a page per recipe."""

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from app.api.deps import ReadSessionDep, limit_per_ip
from app.core.sso import sso_settings
from app.crud.crud_recipe import recipe as recipes
from app.crud.pagination import MAX_ID, PageParams, decode_cursor
from app.schemas.common import storable

if TYPE_CHECKING:
    from fastapi.templating import Jinja2Templates

PAGE_SIZE = 20
MAX_QUERY_LENGTH = 100

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
FAVICON = (Path(__file__).resolve().parent.parent / "static" / "favicon.ico").read_bytes()

# The page runs a search per request, so it has a per-IP budget too.
router = APIRouter(
    include_in_schema=False,
    default_response_class=HTMLResponse,
    dependencies=[limit_per_ip("page")],
)


def install(app: FastAPI) -> None:
    """Registers the pages (an optional slice: app/main.py lists it)."""
    app.include_router(router)


@cache
def templates() -> "Jinja2Templates":
    # Made on first use: Jinja2 is the slowest library to load here, and a start (or an
    # API-only instance) renders no page; the first page pays once, a few tens of ms.
    from fastapi.templating import Jinja2Templates

    return Jinja2Templates(directory=TEMPLATES)


class BadPageInput(ValueError):
    """A query parameter the page cannot use; shown to the reader as a 422 page."""


def _render(
    request: Request, template: str, status_code: int = status.HTTP_200_OK, **context: Any
) -> HTMLResponse:
    context |= {
        "project_name": request.app.title,
        "search_label": "Search recipes",
        "docs_enabled": getattr(request.app.state, "docs_enabled", False),
        "sso_providers": sso_settings.enabled_providers,
        "sso_back": request.query_params.get("sso") == "done",
    }
    return templates().TemplateResponse(request, template, context, status_code=status_code)


def _error(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
    return _render(request, "error.html", status_code, title=title, message=message, q="")


def _page_url(text: str, cursor: str | None) -> str:
    params = {name: value for name, value in (("q", text), ("cursor", cursor)) if value}
    return f"/?{urlencode(params)}" if params else "/"


def _search_text(q: str | None) -> str:
    text = (q or "").strip()
    if len(text) > MAX_QUERY_LENGTH:
        raise BadPageInput(f"Search for at most {MAX_QUERY_LENGTH} characters.")
    try:
        return storable(text)
    except ValueError as exc:
        raise BadPageInput("Search text must be plain text.") from exc


def _before_id(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        return decode_cursor(cursor)
    except ValueError as exc:
        raise BadPageInput("That page link is not valid; start again from the first page.") from exc


@router.get("/")
async def index(
    request: Request,
    db: ReadSessionDep,
    q: Annotated[str | None, Query()] = None,
    cursor: Annotated[str | None, Query()] = None,
) -> HTMLResponse:
    """The newest recipes, or those whose label contains `q`, one cursor page at a time."""
    try:
        text = _search_text(q)
        before_id = _before_id(cursor)
    except BadPageInput as exc:
        return _error(request, status.HTTP_422_UNPROCESSABLE_CONTENT, "Bad request", str(exc))
    page = PageParams(limit=PAGE_SIZE, before_id=before_id)
    if text:
        found = await recipes.search(db, page, keyword=text)
    else:
        found = await recipes.paginate(db, page)
    return _render(
        request,
        "index.html",
        recipes=found.items,
        q=text,
        next_url=_page_url(text, found.next_cursor) if found.next_cursor else None,
        first_url=_page_url(text, None) if before_id is not None else None,
    )


@router.get("/recipes/{recipe_id}")
async def recipe_page(request: Request, db: ReadSessionDep, recipe_id: str) -> HTMLResponse:
    """One recipe; anything that is not an existing recipe's id is a 404 page."""
    # The length check keeps int() away from digit strings it refuses to convert.
    digits = recipe_id.isascii() and recipe_id.isdigit() and len(recipe_id) <= len(str(MAX_ID))
    found = digits and 1 <= int(recipe_id) <= MAX_ID
    recipe = await recipes.get(db, int(recipe_id)) if found else None
    if recipe is None:
        return _error(
            request, status.HTTP_404_NOT_FOUND, "Recipe not found", "No recipe has that address."
        )
    return _render(request, "detail.html", recipe=recipe, q="")


@router.get("/favicon.ico")
async def favicon() -> Response:
    """The site icon: browsers ask for it on every first visit, and a 404 is a log line each."""
    return Response(
        FAVICON, media_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"}
    )

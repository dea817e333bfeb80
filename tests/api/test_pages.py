"""The HTML pages: newest recipes, search, cursor paging, the detail page and bad input."""

import html
import re
from contextlib import AsyncExitStack

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.pages import MAX_QUERY_LENGTH, PAGE_SIZE
from app.main import create_app
from app.models import User
from app.models.recipe import Recipe
from tests.utils.recipe import create_random_recipe
from tests.utils.utils import Configure, open_client


def _labels(page: str) -> list[str]:
    """The recipe labels listed on a page, in order, as the reader sees them."""
    links = re.findall(r'<h2><a href="/recipes/\d+">(.*?)</a></h2>', page)
    return [html.unescape(label) for label in links]


def _link(page: str, text: str) -> str:
    match = re.search(rf'<a href="([^"]*)"[^>]*>{text}</a>', page)
    assert match, f"no {text!r} link"
    return html.unescape(match.group(1))


async def test_index_lists_recipes_with_detail_and_original_links(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    recipe = await create_random_recipe(db, submitter_id=normal_user.id, label="Plain Dumplings")
    response = await client.get("/")
    assert response.status_code == 200
    page = response.text
    assert '<html lang="en">' in page
    assert _labels(page) == ["Plain Dumplings"]
    assert f'href="/recipes/{recipe.id}"' in page
    assert f'href="{recipe.url}" rel="external noopener noreferrer"' in page
    assert "from Test Kitchen" in page
    assert '<label for="q">Search recipes</label>' in page
    assert 'id="q" name="q" type="search"' in page
    assert "Next page" not in page


async def test_index_search_narrows_to_matching_labels(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    for label in ("Lemon Tart", "Lemon Curd", "Apple Pie"):
        await create_random_recipe(db, submitter_id=normal_user.id, label=label)
    page = (await client.get("/", params={"q": "  lemon "})).text
    assert _labels(page) == ["Lemon Curd", "Lemon Tart"]
    assert 'value="lemon"' in page
    assert "Recipes matching “lemon”" in page
    everything = (await client.get("/", params={"q": "   "})).text
    assert _labels(everything) == ["Apple Pie", "Lemon Curd", "Lemon Tart"]
    nothing = (await client.get("/", params={"q": "<b>plum</b>"})).text
    assert _labels(nothing) == []
    assert "No recipe label contains “&lt;b&gt;plum&lt;/b&gt;”" in nothing


@pytest.mark.parametrize("q", [None, "stew"])
async def test_index_next_page_follows_the_cursor(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User, q: str | None
) -> None:
    labels = [f"Stew {n:02d}" for n in range(PAGE_SIZE + 2)]
    for label in labels:
        await create_random_recipe(db, submitter_id=normal_user.id, label=label)
    first = (await client.get("/", params={"q": q} if q else None)).text
    newest = labels[::-1]
    assert _labels(first) == newest[:PAGE_SIZE]
    assert "First page" not in first
    next_url = _link(first, "Next page")
    assert ("q=stew" in next_url) is (q is not None)
    second = (await client.get(next_url)).text
    assert _labels(second) == newest[PAGE_SIZE:]
    assert "Next page" not in second
    assert _link(second, "First page") == ("/?q=stew" if q else "/")


async def test_index_escapes_user_content(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    await create_random_recipe(db, submitter_id=normal_user.id, label='<script>alert("x")</script>')
    page = (await client.get("/", params={"q": "<script>"})).text
    assert _labels(page) == ['<script>alert("x")</script>']
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert 'value="&lt;script&gt;"' in page


async def test_a_link_that_is_not_http_is_shown_as_text(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    # Written past the schemas, as an old row or a manual fix might be.
    recipe = Recipe(
        label="Odd", source="Legacy", url="javascript:alert(1)", submitter_id=normal_user.id
    )
    db.add(recipe)
    await db.commit()
    index = (await client.get("/")).text
    detail = (await client.get(f"/recipes/{recipe.id}")).text
    assert 'href="javascript' not in index + detail
    assert "<dd>javascript:alert(1)</dd>" in detail


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "x" * (MAX_QUERY_LENGTH + 1)}, "at most 100 characters"),
        ({"q": "soup\x00"}, "plain text"),
        ({"cursor": "not-a-cursor"}, "page link is not valid"),
        ({"cursor": "MA"}, "page link is not valid"),
        ({"q": "soup", "cursor": "x" * 5000}, "page link is not valid"),
    ],
)
async def test_index_bad_input_is_a_422_page(
    client: httpx2.AsyncClient, params: dict[str, str], message: str
) -> None:
    response = await client.get("/", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert message in response.text
    assert "Traceback" not in response.text
    assert "\x00" not in response.text


async def test_detail_page_shows_one_recipe(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    recipe = await create_random_recipe(db, submitter_id=normal_user.id, label="Fish & <Chips>")
    response = await client.get(f"/recipes/{recipe.id}")
    assert response.status_code == 200
    page = response.text
    assert "<h1>Fish &amp; &lt;Chips&gt;</h1>" in page
    assert "<title>Fish &amp; &lt;Chips&gt; · Recipe Service</title>" in page
    assert f'<a href="{recipe.url}" rel="external noopener noreferrer">' in page
    assert f'datetime="{recipe.created_at.isoformat()}"' in page
    assert '<a href="/">All recipes</a>' in page


@pytest.mark.parametrize("recipe_id", ["0", "2147483648", "9" * 5000, "abc", "-1", "١٢", "1.5"])
async def test_detail_page_for_no_recipe_is_a_404_page(
    client: httpx2.AsyncClient, recipe_id: str
) -> None:
    response = await client.get(f"/recipes/{recipe_id}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Recipe not found</h1>" in response.text


async def test_detail_page_for_a_deleted_recipe_is_a_404_page(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    recipe_id = recipe.id
    await db.delete(recipe)
    await db.commit()
    assert (await client.get(f"/recipes/{recipe_id}")).status_code == 404


async def test_pages_use_no_external_assets_or_scripts(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    recipe = await create_random_recipe(db, submitter_id=normal_user.id)
    for path in ("/", f"/recipes/{recipe.id}", "/recipes/0"):
        response = await client.get(path)
        assert "<script" not in response.text
        assert "<link" not in response.text
        assert "<img" not in response.text
        assert "script-src" not in response.headers["content-security-policy"]


async def test_favicon_is_served_and_cacheable(client: httpx2.AsyncClient) -> None:
    response = await client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/x-icon"
    assert response.headers["cache-control"] == "public, max-age=86400"
    assert response.content.startswith(b"\x00\x00\x01\x00")  # an icon directory, one image


async def test_index_lists_newest_recipes_escaped(
    client: httpx2.AsyncClient, db: AsyncSession, normal_user: User
) -> None:
    await create_random_recipe(db, submitter_id=normal_user.id, label="Plain Dumplings")
    await create_random_recipe(db, submitter_id=normal_user.id, label="<script>alert(1)</script>")
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "Plain Dumplings" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page
    assert page.index("&lt;script&gt;") < page.index("Plain Dumplings")
    # No external assets: every src/href on the page is relative or a recipe link.
    assert "<link" not in page
    assert "<script" not in page


async def test_page_has_a_budget_apart_from_the_api(db: AsyncSession, configure: Configure) -> None:
    configure(RATE_LIMIT_DEFAULT="3/minute")
    async with AsyncExitStack() as stack:
        c = await open_client(stack, create_app(), db)
        pages = [(await c.get("/", params={"q": "soup"})).status_code for _ in range(4)]
        api = await c.get("/api/v1/recipes")
    assert pages == [200, 200, 200, 429]
    assert api.status_code == 200


async def test_page_csp_allows_no_script(client: httpx2.AsyncClient) -> None:
    page = (await client.get("/")).headers["content-security-policy"]
    assert page.startswith("default-src 'none'")
    assert "script-src" not in page


@pytest.mark.parametrize("enabled", [True, False])
async def test_page_links_to_the_docs_only_when_they_are_on(
    db: AsyncSession, configure: Configure, enabled: bool
) -> None:
    configure(DOCS_ENABLED=enabled)
    async with AsyncExitStack() as stack:
        c = await open_client(stack, create_app(), db)
        page = (await c.get("/")).text
    assert ('href="/docs"' in page) is enabled
    assert ('href="/redoc"' in page) is enabled

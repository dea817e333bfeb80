"""A Python client generated from the served OpenAPI document drives the real server."""

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx2
import pytest

from tests.utils.server import run_sh
from tests.utils.utils import random_email

PACKAGE = "recipe_client"


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[Path]:
    """Where the client is generated and imported from; unloaded again afterwards."""
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _generate(spec: dict[str, Any], where: Path) -> None:
    spec_file = where / "openapi.json"
    spec_file.write_text(json.dumps(spec))
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [
            bin_dir / "openapi-python-client", "generate", "--path", spec_file,
            "--output-path", where / PACKAGE, "--meta", "none",
        ],
        cwd=where,
        # The generator formats its output with ruff, from this environment.
        env=os.environ | {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # Any schema the generator could not turn into code is reported as a warning.
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr


def _api(name: str) -> ModuleType:
    tag = name.split("_", 1)[0]
    return importlib.import_module(f"{PACKAGE}.api.{tag}.{name}")


def test_generated_client_signs_up_logs_in_and_manages_a_recipe(
    fresh_database_url: str, generated: Path
) -> None:
    with run_sh(fresh_database_url) as service:
        base_url = service.base_url
        _generate(httpx2.get(f"{base_url}/openapi.json", timeout=10).json(), generated)
        package = importlib.import_module(PACKAGE)
        models = importlib.import_module(f"{PACKAGE}.models")
        email, password = random_email(), "a-long-client-password"

        with package.Client(base_url=base_url) as anonymous:
            signup = _api("auth_signup").sync_detailed(
                client=anonymous,
                body=models.UserRegister(
                    email=email, password=password, first_name="Gen", surname="Client"
                ),
            )
            assert signup.status_code == 201
            assert signup.parsed.email == email
            token = _api("auth_login").sync(
                client=anonymous, body=models.BodyAuthLogin(username=email, password=password)
            )
            assert isinstance(token, models.Token)
            refused = _api("recipes_create_recipe").sync(
                client=anonymous,
                body=models.RecipeCreate(label="x", source="y", url="https://example.com/x"),
            )
            assert isinstance(refused, models.ErrorDetail)
            assert refused.detail == "Not authenticated"

        with package.AuthenticatedClient(base_url=base_url, token=token.access_token) as user:
            me = _api("auth_read_me").sync(client=user)
            assert isinstance(me, models.UserRead)
            assert me.email == email
            created = _api("recipes_create_recipe").sync(
                client=user,
                body=models.RecipeCreate(
                    label="Generated Gazpacho",
                    source="The client",
                    url="https://example.com/gazpacho",
                ),
            )
            assert isinstance(created, models.RecipeRead)
            assert created.submitter_id == me.id

            page = _api("recipes_read_recipes").sync(client=user, limit=100)
            assert isinstance(page, models.PageRecipeRead)
            assert "Generated Gazpacho" in [item.label for item in page.items]
            assert "Chicken Vesuvio" in [item.label for item in page.items]

            updated = _api("recipes_update_recipe").sync(
                client=user, recipe_id=created.id, body=models.RecipeUpdate(label="Cold Gazpacho")
            )
            assert isinstance(updated, models.RecipeRead)
            assert (updated.label, updated.source) == ("Cold Gazpacho", "The client")

            deleted = _api("recipes_delete_recipe").sync_detailed(client=user, recipe_id=created.id)
            assert deleted.status_code == 204
            gone = _api("recipes_read_recipe").sync(client=user, recipe_id=created.id)
            assert isinstance(gone, models.ErrorDetail)
            assert gone.detail == "Recipe not found"

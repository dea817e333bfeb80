"""What optional slices add to the shared tests, found by looking rather than by name, so
deleting a slice's files needs no edit to any shared test.

Each tests/utils module may define pytest fixtures (made visible to the whole suite, since
tests/conftest.py loads this module as a plugin), FAKES (dependency -> stand-in, for the apps
shared tests drive without the slice's lifespan), and AUTHORIZATION_CALLS and SMUGGLES for the
authorization matrix in tests/adversarial/test_authorization.py.
"""

import pkgutil
from collections.abc import Callable
from importlib import import_module
from types import ModuleType
from typing import Any

from _pytest.fixtures import FixtureFunctionDefinition

import tests.utils

MODULES: list[ModuleType] = [
    import_module(f"{tests.utils.__name__}.{info.name}")
    for info in pkgutil.iter_modules(tests.utils.__path__)
    if info.name != __name__.rsplit(".", 1)[1]
]


def collect(name: str) -> list[Any]:
    """Every module's `name` list, joined."""
    return [item for module in MODULES for item in getattr(module, name, ())]


FAKES: dict[Callable[..., Any], Callable[..., Any]] = {
    dependency: fake
    for module in MODULES
    for dependency, fake in getattr(module, "FAKES", {}).items()
}

globals().update(
    {
        name: value
        for module in MODULES
        for name, value in vars(module).items()
        if isinstance(value, FixtureFunctionDefinition)
    }
)

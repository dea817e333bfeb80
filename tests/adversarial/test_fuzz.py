"""Schemathesis over every operation, anonymous, as a user and as a superuser, then stateful."""

import os
import re
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.adversarial.conftest import FUZZ_APP, FuzzApp
from tests.utils.routes import endpoints

# fast: every operation a few times, derandomized, well under a minute on SQLite; the README's
# test command runs it. deep: many more examples and longer stateful runs, for CI's PostgreSQL leg.
PROFILES: dict[str, dict[str, int]] = {
    "fast": {"examples": 4, "stateful_examples": 4, "steps": 10},
    "deep": {"examples": 40, "stateful_examples": 25, "steps": 20},
}
PROFILE_NAME = os.environ.get("FUZZ_PROFILE", "fast")
if PROFILE_NAME not in PROFILES:
    raise pytest.UsageError(f"FUZZ_PROFILE must be one of {sorted(PROFILES)}, not {PROFILE_NAME!r}")
PROFILE = PROFILES[PROFILE_NAME]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
ROLES = ["anonymous", "user", "superuser"]
AnyCase = schemathesis.Case[Any]


def _settings(max_examples: int, **extra: Any) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples,
        # The same examples on every run, and no example database for one run to sway the next.
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        **extra,
    )


schema = schemathesis.openapi.from_dict(
    FUZZ_APP.app.openapi(),
    config=schemathesis.Config.from_dict(
        {"generation": {"mode": "all", "max-examples": PROFILE["examples"]}}
    ),
)
# Requests go to the app in-process; its lifespan is started by the fuzz_app fixture.
schema.app = FUZZ_APP


@pytest.fixture
def fresh_app(fuzz_app: FuzzApp) -> FuzzApp:
    """The fuzz app with only its two users, so no operation sees what an earlier one did (such
    as a superuser deactivating the user) and each run of an operation is the same."""
    fuzz_app.reset()
    return fuzz_app


# One test per role: Schemathesis' parametrization cannot be crossed with pytest's.
@schema.parametrize()
@hypothesis.settings(_settings(PROFILE["examples"]))
def test_operation_conforms_anonymously(case: AnyCase, fresh_app: FuzzApp) -> None:
    case.call_and_validate(headers=fresh_app.headers("anonymous"), checks=CHECKS)


@schema.parametrize()
@hypothesis.settings(_settings(PROFILE["examples"]))
def test_operation_conforms_as_user(case: AnyCase, fresh_app: FuzzApp) -> None:
    case.call_and_validate(headers=fresh_app.headers("user"), checks=CHECKS)


@schema.parametrize()
@hypothesis.settings(_settings(PROFILE["examples"]))
def test_operation_conforms_as_superuser(case: AnyCase, fresh_app: FuzzApp) -> None:
    case.call_and_validate(headers=fresh_app.headers("superuser"), checks=CHECKS)


@pytest.mark.parametrize("role", ROLES)
def test_stateful_sequences_conform_for_role(fuzz_app: FuzzApp, role: str) -> None:
    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            fuzz_app.reset()

        def get_call_kwargs(self, _case: AnyCase) -> dict[str, Any]:
            # Read per call: a reset seeds the users again, under new ids on SQLite.
            return {"headers": fuzz_app.headers(role)}

        def validate_response(
            self, response: schemathesis.Response, case: AnyCase, **_: Any
        ) -> None:
            case.validate_response(response, checks=CHECKS, headers=fuzz_app.headers(role))

    Machine.run(
        settings=_settings(PROFILE["stateful_examples"], stateful_step_count=PROFILE["steps"])
    )


def _label(method: str, path: str) -> str:
    # Schemathesis' name for an operation in its state machine's rules.
    return f"{method}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}_"


def _links() -> list[tuple[str, str]]:
    """Each create route (201) feeding the routes of the one row it made, derived from the
    routes, so a new resource's links are checked with no edit here."""
    served = {(e.method, e.path) for e in endpoints(FUZZ_APP.app)}
    return [
        (f"{_label('POST', path)}__201", _label(verb, item))
        for method, path in sorted(served)
        if method == "POST" and path.startswith("/api/")
        for item in {p for _, p in served if re.fullmatch(rf"{re.escape(path)}/{{\w+_id}}", p)}
        for verb in ("GET", "PATCH", "DELETE")
        if (verb, item) in served
    ]


LINKS = _links()


def test_links_are_derived_for_every_resource() -> None:
    assert ("POST_api_v1_users___201", "GET_api_v1_users_user_id_") in LINKS
    assert len(LINKS) >= 6


@pytest.mark.parametrize(
    ("producer", "consumer"),
    [*LINKS, ("POST_api_v1_auth_signup___201", "PATCH_api_v1_users_user_id_")],
)
def test_state_machine_links_producer_to_consumer(producer: str, consumer: str) -> None:
    # The stateful runs only chain calls where a response feeds a path parameter; this holds
    # while each path parameter is named {resource}_id after the `id` it takes.
    rules = [name for name in dir(schema.as_state_machine()) if name.startswith(producer)]
    assert any(rule.endswith(consumer) for rule in rules), rules

"""The password policy: common passwords, patterns and the account's email are refused."""

import pytest

from app.core.password_policy import password_problem
from tests.utils.user import DEFAULT_PASSWORD


@pytest.mark.parametrize(
    ("password", "email", "says"),
    [
        ("password", None, "most common"),
        ("PassWord", None, "most common"),
        ("12345678", None, "most common"),
        ("qwertyuiop", None, "most common"),
        ("        ", None, "different characters"),
        ("aaaaaaaaaaaa", None, "different characters"),
        ("abababab", None, "different characters"),
        ("xx-cook@example.com-xx", "cook@example.com", "email"),
        ("Chef.Ramsay!2024", "chef.ramsay@example.com", "email"),
    ],
)
def test_password_problem_refuses(password: str, email: str | None, says: str) -> None:
    problem = password_problem(password, email=email)
    assert problem is not None
    assert says in problem


@pytest.mark.parametrize(
    ("password", "email"),
    [
        (DEFAULT_PASSWORD, "cook@example.com"),
        ("correct horse battery staple", None),
        ("changethis", None),  # the local-mode seed password
        ("alpaca-sunrise-41", "al@example.com"),  # a local part this short is no signal
    ],
)
def test_password_problem_accepts(password: str, email: str | None) -> None:
    assert password_problem(password, email=email) is None

"""docs/security.md: one line per OWASP API risk, and every test it cites exists."""

import ast
import re
from pathlib import Path

from tests.utils.server import script

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
CITATION = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_security_doc_covers_each_owasp_api_risk_once_with_a_test() -> None:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| API")]
    assert [row.split()[1] for row in rows] == [f"API{n}" for n in range(1, 11)]
    assert all(CITATION.search(row) for row in rows)


def test_security_doc_cites_only_tests_that_exist() -> None:
    citations = CITATION.findall(DOC.read_text())
    assert citations
    missing = [
        f"{file}::{name}"
        for file, name in citations
        if not (ROOT / file).exists() or name not in _test_names(ROOT / file)
    ]
    # A citation of an optional slice's test goes with the slice when it is trimmed (and only
    # then: untrimmed, every citation must resolve).
    trimmed = script("customize").trimmed
    assert [citation for citation in missing if not trimmed(citation.split("::")[0])] == []


def test_readme_and_policy_link_the_security_doc() -> None:
    assert "(docs/security.md)" in (ROOT / "README.md").read_text()
    assert "(docs/security.md)" in (ROOT / "SECURITY.md").read_text()

"""The README and docs/: the Quickstart that CI reads, and links that lead somewhere."""

import re
import subprocess
from pathlib import Path

import pytest

from tests.utils.server import ROOT

DOCS = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_quickstart_is_the_first_block_with_two_commands_and_ci_finds_the_test() -> None:
    readme = (ROOT / "README.md").read_text()
    quickstart = readme[readme.index("## Quickstart") :]
    first_block = FENCED.search(quickstart)
    assert first_block is not None
    commands = first_block.group().splitlines()[1:-1]
    assert [c.split("#")[0].split() for c in commands] == [
        ["python3", "scripts/dev.py", "run"],
        ["python3", "scripts/dev.py", "test"],
    ]
    # The very awk program .ci/run uses.
    ci = (ROOT / ".ci" / "run").read_text()
    program = re.search(r"test_cmd=\$\(awk '(.*?)' README\.md\)", ci, re.DOTALL)
    assert program is not None
    found = subprocess.run(
        ["awk", program.group(1), "README.md"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "python3 scripts/dev.py test"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_files_and_headings(page: Path) -> None:
    text = FENCED.sub("", page.read_text())
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} leads nowhere"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", FENCED.sub("", linked.read_text()), re.MULTILINE)
            assert anchor in {_anchor(h) for h in headings}, f"{page.name}: no heading #{anchor}"

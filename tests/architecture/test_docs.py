"""The documentation shows the code as it is: each marked example is the source of the classes it names."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLE = re.compile(r"<!-- example: (\S+) ([^>]+?) -->\n```python\n(.*?)```\n<!-- example end -->", re.S)


def examples() -> list[tuple[str, str, list[str], str]]:
    found = []
    for path in sorted(DOCS.glob("*.md")):
        for module, names, code in EXAMPLE.findall(path.read_text(encoding="utf-8")):
            found.append((path.name, module, names.split(), code))
    return found


def test_the_architecture_doc_has_its_example():
    assert any(doc == "architecture.md" for doc, *_ in examples())


@pytest.mark.parametrize("doc, module, names, code", examples())
def test_an_example_is_the_code(doc, module, names, code):
    source = importlib.import_module(module)
    expected = "\n\n".join(inspect.getsource(getattr(source, name)).rstrip("\n") for name in names)
    assert code.rstrip("\n") == expected, f"docs/{doc}: the example of {module} {names} differs from the code"


def test_the_readme_points_at_the_docs():
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    for name in ("architecture.md", "conventions.md", "methods.md", "security.md"):
        assert f"docs/{name}" in readme and (DOCS / name).is_file()

"""Every ```python block in the README and docs/ runs as written.

Blocks fenced as ```text are sketches and are not run. The blocks of one
file run in order in one namespace, in a temporary working directory.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


@pytest.mark.parametrize("path", [p for p in DOC_FILES if python_blocks(p)], ids=lambda p: p.name)
def test_python_examples_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"doc_{path.stem}"}
    for number, code in enumerate(python_blocks(path), start=1):
        try:
            exec(compile(code, f"{path.name} block {number}", "exec"), namespace)
        except Exception as err:  # show which block broke
            pytest.fail(f"{path.name}, python block {number}: {type(err).__name__}: {err}")


def test_docs_have_examples():
    assert any(python_blocks(p) for p in DOC_FILES)

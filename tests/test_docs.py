"""Every ```python block in the README and docs/ runs as written, and every
`sessionbench` command line in their other blocks parses as written.

Blocks fenced as ```text are sketches and are not run. The blocks of one
file run in order in one namespace, in a temporary working directory.
"""

import re
import shlex
from pathlib import Path

import pytest

from harness.cli import build_parser
from harness.models.plugin_template import render

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
#: what may stand before the command on a line: a prompt, variables, a timer, nice, the venv's bin/
COMMAND_PREFIX = re.compile(r"^(\$ |\w+=\S+ +|/usr/bin/time -v +|nice -n \d+ +|\.venv/bin/)*")


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


def command_lines(path: Path) -> list[str]:
    """The `sessionbench ...` lines of a file's non-Python blocks (see :func:`commands_in`)."""
    return commands_in(path.read_text())


def commands_in(markdown: str) -> list[str]:
    """The `sessionbench ...` lines of the non-Python blocks of ``markdown``: continuations joined,
    prompts, variables and comments removed, shell variables ($s) read as 0."""
    blocks, current, language = [], [], None
    for line in markdown.splitlines():
        if line.startswith("```"):
            if language is None:
                language = line[3:].strip()
            else:
                if language != "python":
                    blocks.append("\n".join(current))
                current, language = [], None
        elif language is not None:
            current.append(line)
    lines = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = COMMAND_PREFIX.sub("", line.strip())
            if line.startswith("sessionbench ") and "..." not in line:
                line = re.sub(r"\s#.*$", "", line).strip()
                lines.append(re.sub(r"\$\{?\w+\}?", "0", line))
    return lines


COMMAND_FILES = [p for p in DOC_FILES if command_lines(p)]


def check_commands_parse(name: str, lines: list[str]) -> None:
    for line in lines:
        try:
            build_parser().parse_args(shlex.split(line)[1:])
        except SystemExit:
            pytest.fail(f"{name}: `{line}` does not parse")


@pytest.mark.parametrize("path", COMMAND_FILES, ids=lambda p: p.name)
def test_shell_commands_parse(path):
    """Flags and sub-commands shown to users exist (parsing only: nothing runs)."""
    check_commands_parse(path.name, command_lines(path))


def test_the_plugin_templates_readme_commands_parse():
    """The README that `sessionbench plugin new` writes, with the default names."""
    lines = commands_in(render()["README.md"])
    assert "sessionbench plugin new DIR --package mysessionrec --model repeat" in lines
    assert "sessionbench evaluate --dataset synthetic --model repeat" in lines
    check_commands_parse("the plugin template's README.md", lines)


def test_the_command_check_sees_the_readme_commands():
    assert "sessionbench runs prune reports/yoochoose-100k --yes" in command_lines(ROOT / "README.md")
    assert len(COMMAND_FILES) >= 8

"""The plugin template behind ``sessionbench plugin new``.

The template is package data (``harness/models/templates/plugin/``, read through
:mod:`importlib.resources`), so a wheel carries it as well as a checkout.
Its files end in ``.tmpl`` and hold placeholders, so that nothing in them is
taken for a part of sessionbench (no module to import or fingerprint, no
test for pytest to collect). Writing the template replaces

- ``{{package}}``: the import package (also the distribution's name), and
  the folder ``package/`` is written under that name;
- ``{{model}}``: the name the model is registered under, as plain text;
- ``{{model_string}}``: the same name as a quoted string, valid both as a
  TOML key (the entry point) and as a Python literal.
"""

from __future__ import annotations

import importlib.util
import json
import keyword
import re
import sys
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import ConfigError, quote

if TYPE_CHECKING:  # importlib.resources.abc is new in Python 3.11
    from importlib.resources.abc import Traversable

DEFAULT_PACKAGE = "mysessionrec"
DEFAULT_MODEL = "repeat"
#: the template's folder inside the ``harness`` package
TEMPLATE_DIR = ("templates", "plugin")
SUFFIX = ".tmpl"
#: the template's folder that becomes the import package
PACKAGE_FOLDER = "package"
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_SESSIONBENCH_PACKAGES = ("harness", "baselines", "srgnn")


def template_root() -> Traversable:
    """The template's folder inside the installed ``harness.models`` package."""
    root = files("harness.models")
    for part in TEMPLATE_DIR:
        root = root / part
    return root


def template_sources() -> dict[str, str]:
    """Every template file as ``relative/path.tmpl`` -> its text (sorted by path)."""
    out: dict[str, str] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(SUFFIX):
                out[prefix + entry.name] = entry.read_text(encoding="utf-8")

    walk(template_root(), "")
    return dict(sorted(out.items()))


def render(package: str = DEFAULT_PACKAGE, model: str = DEFAULT_MODEL) -> dict[str, str]:
    """The plugin's files as ``relative/path`` -> text, names filled in (not checked here).

    Each placeholder is replaced in one pass, so a name that itself looks
    like a placeholder is written as it is.
    """
    values = {"package": package, "model": model, "model_string": json.dumps(model)}
    rendered = {}
    for source, text in template_sources().items():
        parts = source[: -len(SUFFIX)].split("/")
        if parts[0] == PACKAGE_FOLDER and len(parts) > 1:
            parts[0] = package
        rendered["/".join(parts)] = _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
    return dict(sorted(rendered.items()))


def check_package_name(name: str) -> None:
    """Refuse a package name that cannot be imported as a new top-level package.

    It must be an ASCII Python identifier (it is also the distribution's
    name, which pip wants in ASCII), not a keyword, and must not shadow a
    module that is already importable (the standard library, sessionbench's
    own packages, any installed package).

    Raises:
        ConfigError: one line naming ``--package`` and what was expected.
    """
    where = f"--package {quote(name)}"
    if not (name.isascii() and name.isidentifier()) or keyword.iskeyword(name):
        hint = re.sub(r"\W", "_", name, flags=re.ASCII) if name else ""  # ASCII: "é" is a word character
        suggestion = f" (e.g. {hint!r})" if hint.isidentifier() and not keyword.iskeyword(hint) else ""
        raise ConfigError(f"{where}: expected a Python identifier: ASCII letters, digits and underscores, "
                          f"not starting with a digit, not a keyword{suggestion}")
    if name in sys.stdlib_module_names or name in _SESSIONBENCH_PACKAGES:
        raise ConfigError(f"{where}: a module of that name is part of "
                          f"{'sessionbench' if name in _SESSIONBENCH_PACKAGES else 'the standard library'}; "
                          "choose another name")
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.origin not in (None, "namespace"):
        raise ConfigError(f"{where}: a module of that name is already importable ({spec.origin}); "
                          "choose another name")


def check_model_name(name: str) -> None:
    """Refuse a model name the registry would refuse, or one already registered
    (a plugin under a taken name is ignored).

    Raises:
        ConfigError: one line naming ``--model`` and the rule it breaks.
    """
    from harness.models.registry import available_models, model_name_problem

    problem = model_name_problem(name)
    if problem is not None:
        raise ConfigError(f"--model {quote(name)}: {problem}")
    known = available_models().get(name)
    if known is not None:
        raise ConfigError(f"--model {quote(name)}: already registered by {known.__module__}.{known.__qualname__} "
                          "(a plugin under a taken name is ignored); choose another name")


def write_plugin(folder: str | Path, *, package: str = DEFAULT_PACKAGE, model: str = DEFAULT_MODEL) -> list[Path]:
    """Write a new plugin package into ``folder`` (created, or empty); returns the files written.

    Nothing is overwritten: a folder that holds anything is refused before
    a file is written, and each file is created exclusively.

    Raises:
        ConfigError: a bad package or model name, or ``folder`` is a file or
            not empty.
    """
    check_package_name(package)
    check_model_name(model)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: is a file; expected a new or empty folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise ConfigError(f"{folder}: the folder is not empty; expected a new or empty folder (nothing was written)")
    written = []
    for relative, text in render(package, model).items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8", newline="\n") as out:
            out.write(text)
        written.append(path)
    return written

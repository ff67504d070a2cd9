"""Code fingerprints: which source files can run in a run, and their hashes.

A run's result depends on more than the file that defines its model class:
the metrics, the evaluation loop, the data pipeline, shared training code and
any helper module a model imports. The fingerprint of a model therefore
covers every ``.py`` file of sessionbench's own packages (``harness``,
``baselines``, ``srgnn``; the report package ``harness/report``, which only
reads stored runs, is left out) and, for a model from elsewhere (a plugin), every
``.py`` file of the top-level package that defines its class (or the single
module file when it is not a package) and of the user code it imports
(:func:`local_imports`: a helper module beside a plugin module, another
package of the user's), and the class the plugin's name resolves to
(an entry point can point the same name at another class of the same
files). Editing the code of any of them changes the fingerprint and so
the run id.

A file is hashed by its *code*, not its bytes (:func:`code_hash`): what
Python compiles from it, without docstrings and line numbers. Comments,
docstrings, blank lines and layout can change no result, so editing them
keeps every run; any change to what runs gives new ids.

Hashes are computed once per process and package (planning a suite with
many runs reads each file once). A run's own process checks that nothing
changed since planning by the files' bytes (:attr:`CodeFingerprint.bytes_digest`,
fast), and compiles them again only when the bytes differ.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import inspect
import site
import subprocess
import sys
import sysconfig
import textwrap
import types
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: sessionbench's own packages: every run may execute any of their modules
BUILTIN_PACKAGES = ("harness", "baselines", "srgnn")

#: folders of those packages whose code never runs inside a run: the report
#: only reads stored runs, so editing it must not make every run stale
OUTSIDE_RUNS = ("harness/report/",)

#: the source checkout these packages run from, when they run from one
REPO_ROOT = Path(__file__).resolve().parents[2]

_CACHE: dict[str, tuple[tuple[str, str, str], ...]] = {}  # top -> (path, bytes sha256, code hash)
_DOCSTRING_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def code_hash(source: bytes) -> str:
    """SHA-256 of what Python runs from a source file: its compiled code
    with every docstring removed and line numbers cleared, so comments,
    docstrings, blank lines and layout do not change it. A file that does
    not compile is hashed by its bytes."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return hashlib.sha256(source).hexdigest()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, _DOCSTRING_OWNERS) and body and _is_docstring(body[0]):
            node.body = body[1:] or [ast.copy_location(ast.Pass(), body[0])]
    code = compile(tree, "<fingerprint>", "exec", dont_inherit=True)
    return hashlib.sha256(_canonical(code).encode()).hexdigest()


def _is_docstring(statement: ast.stmt) -> bool:
    return (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str))  # fmt: skip


#: what a code object's behaviour depends on (not its file name or line numbers)
_CODE_FIELDS = ("co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_nlocals", "co_stacksize", "co_flags",
                "co_name", "co_qualname", "co_names", "co_varnames", "co_freevars", "co_cellvars", "co_code",
                "co_exceptiontable")


def _canonical(value: Any) -> str:
    """A text that is equal for equal compiled constants in any process.
    (``marshal`` output is not: it depends on reference counts, which
    depend on what the process has imported; a frozenset's order depends
    on the string-hash seed.)"""
    if isinstance(value, types.CodeType):
        fields = [f"{name}={_canonical(getattr(value, name))}" for name in _CODE_FIELDS if hasattr(value, name)]
        return f"code({';'.join(fields)};consts={_canonical(value.co_consts)})"
    if isinstance(value, tuple):
        return "(" + ",".join(_canonical(v) for v in value) + ")"
    if isinstance(value, frozenset):
        return "frozenset(" + ",".join(sorted(_canonical(v) for v in value)) + ")"
    return f"{type(value).__name__}:{value!r}"


def _digest(pairs: Iterable[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for path, sha in pairs:
        h.update(f"{path}\0{sha}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class CodeFingerprint:
    """The source files that can run, as sorted ``(path, code hash)`` pairs
    (:func:`code_hash`), and their bytes' SHA-256 (``bytes_files``, same order).

    ``path`` is relative to the folder that holds the top-level package
    (``harness/evaluation/metrics.py``, ``myplugin/helpers.py``); ``digest`` is the
    SHA-256 of the lines ``path\\0hash\\n`` in that order, and
    ``bytes_digest`` the same over the bytes' hashes.
    """

    files: tuple[tuple[str, str], ...]
    bytes_files: tuple[tuple[str, str], ...] = ()

    @property
    def digest(self) -> str:
        return _digest(self.files)

    @property
    def bytes_digest(self) -> str:
        return _digest(self.bytes_files)

    def to_manifest(self) -> dict[str, Any]:
        """``{"digest", "files": [{"path", "code_sha256"}]}`` as stored in a run's manifest."""
        return {"digest": self.digest, "files": [{"path": p, "code_sha256": s} for p, s in self.files]}

    def changed_files(self, other: CodeFingerprint) -> list[str]:
        """Paths whose hash differs between the two fingerprints, or that only one has."""
        mine, theirs = dict(self.files), dict(other.files)
        return sorted(p for p in mine.keys() | theirs.keys() if mine.get(p) != theirs.get(p))


def package_location(top: str) -> tuple[Path, list[Path]]:
    """(base folder, source files) of the top-level module or package ``top``.

    The base is the folder that holds the package (paths are recorded
    relative to it); the files are every ``*.py`` below the package folder(s),
    or the module's own file. Tests replace this function to fingerprint a
    copy of a package tree.
    """
    try:
        spec = importlib.util.find_spec(top)
    except ValueError:  # a module without a spec, e.g. __main__
        spec = None
    if spec is None:
        file = getattr(sys.modules.get(top), "__file__", None)
        if file is None:
            raise ModuleNotFoundError(f"no module named {top!r}")
        return Path(file).parent, [Path(file)]
    if spec.submodule_search_locations:  # a package (regular or namespace)
        roots = [Path(p) for p in spec.submodule_search_locations]
        files = [f for root in roots for f in root.rglob("*.py") if "__pycache__" not in f.parts]
        return roots[0].parent, files
    if spec.origin and spec.origin not in ("built-in", "frozen"):
        origin = Path(spec.origin)
        return origin.parent, [origin]
    return Path("."), []


def _source_files(top: str) -> list[tuple[str, Path]]:
    """Sorted ``(relative path, file)`` of the sources of ``top`` that can run."""
    base, files = package_location(top)
    found = []
    for file in files:
        try:
            rel = file.relative_to(base).as_posix()
        except ValueError:
            rel = f"{top}/{file.name}"
        if not rel.startswith(OUTSIDE_RUNS):
            found.append((rel, file))
    return sorted(found)


def outside_runs_digest() -> str:
    """SHA-256 over the code hashes of sessionbench's files that no run
    executes (:data:`OUTSIDE_RUNS`, the report code), which run ids leave
    out: what a report records of the code that drew it."""
    base, files = package_location("harness")
    report = sorted((f.relative_to(base).as_posix(), f) for f in files)
    return _digest((rel, code_hash(file.read_bytes())) for rel, file in report if rel.startswith(OUTSIDE_RUNS))


def package_files(top: str) -> tuple[tuple[str, str, str], ...]:
    """Sorted ``(relative path, bytes sha256, code hash)`` of the sources of
    ``top`` (cached per process)."""
    cached = _CACHE.get(top)
    if cached is None:
        rows = []
        for rel, file in _source_files(top):
            source = file.read_bytes()
            rows.append((rel, hashlib.sha256(source).hexdigest(), code_hash(source)))
        cached = _CACHE[top] = tuple(rows)
    return cached


def bytes_digest(packages: Iterable[str], extra: tuple[str, str] | None = None) -> str:
    """:attr:`CodeFingerprint.bytes_digest` of the given packages, read afresh
    (no code is compiled): what a run's process compares with its plan's.
    ``extra``: one more ``(path, hash)`` pair (a plugin's class entry)."""
    files: dict[str, str] = dict([extra]) if extra is not None else {}
    for top in dict.fromkeys(packages):
        files.update((rel, hashlib.sha256(file.read_bytes()).hexdigest()) for rel, file in _source_files(top))
    return _digest(sorted(files.items()))


def fingerprint(packages: Iterable[str]) -> CodeFingerprint:
    """The fingerprint of the given top-level packages (duplicates ignored)."""
    rows: dict[str, tuple[str, str]] = {}
    for top in dict.fromkeys(packages):
        rows.update((rel, (raw, code)) for rel, raw, code in package_files(top))
    ordered = sorted(rows.items())
    return CodeFingerprint(tuple((rel, code) for rel, (_, code) in ordered),
                           tuple((rel, raw) for rel, (raw, _) in ordered))


def model_packages(model: str) -> tuple[str, ...]:
    """The top-level packages whose code can run for ``model`` (a registered
    name or ``module:Class``): sessionbench's own, plus, for a plugin, its
    own top-level package or module and the user code it imports
    (:func:`local_imports`)."""
    from harness.models.registry import get_model_class

    top = get_model_class(model).__module__.split(".")[0]
    if top in BUILTIN_PACKAGES:
        return BUILTIN_PACKAGES
    return BUILTIN_PACKAGES + (top,) + local_imports(top)


_IMPORTS_CACHE: dict[str, tuple[str, ...]] = {}


def local_imports(top: str) -> tuple[str, ...]:
    """The top-level modules and packages of user code that ``top`` imports,
    directly or through them: every name of an ``import x`` or ``from x
    import y`` statement in their files that Python finds outside its own
    installation (the standard library and site-packages) and outside
    sessionbench's packages. A plugin module's helper module beside it is
    one. A module loaded at run time by a literal name
    (``importlib.import_module("x")``, ``__import__("x")``) counts too; one
    whose name is computed is not seen. Sorted; cached per process
    (:func:`clear_cache`)."""
    cached = _IMPORTS_CACHE.get(top)
    if cached is None:
        found: set[str] = set()
        pending = [top]
        while pending:
            for name in _imported_names(pending.pop()):
                if name not in found and name != top and name not in BUILTIN_PACKAGES and _is_user_code(name):
                    found.add(name)
                    pending.append(name)
        cached = _IMPORTS_CACHE[top] = tuple(sorted(found))
    return cached


def _imported_names(top: str) -> set[str]:
    """Top-level names of the absolute imports in the source files of ``top``."""
    names: set[str] = set()
    try:
        files = _source_files(top)
    except ModuleNotFoundError:
        return names
    for _, file in files:
        try:
            tree = ast.parse(file.read_bytes())
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Call) and _loads_by_name(node):
                names.add(node.args[0].value.split(".")[0])
    return names


def _loads_by_name(call: ast.Call) -> bool:
    """``importlib.import_module("x")``, ``import_module("x")`` or
    ``__import__("x")`` with a literal, absolute module name."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    first = call.args[0] if call.args else None
    return (name in ("import_module", "__import__") and isinstance(first, ast.Constant)
            and isinstance(first.value, str) and bool(first.value) and not first.value.startswith("."))


@functools.cache
def _installation_folders() -> tuple[Path, ...]:
    """Where the standard library and installed distributions live (fixed for the process)."""
    paths = sysconfig.get_paths()
    folders = [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths]
    folders += site.getsitepackages() if hasattr(site, "getsitepackages") else []
    folders.append(site.getusersitepackages())
    return tuple(Path(folder).resolve() for folder in folders)


def _is_user_code(name: str) -> bool:
    """Whether the top-level module ``name`` has source files outside the
    Python installation (found without importing it)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if spec.submodule_search_locations:
        locations = [Path(p) for p in spec.submodule_search_locations]
    elif spec.origin and spec.origin not in ("built-in", "frozen") and spec.origin.endswith(".py"):
        locations = [Path(spec.origin)]
    else:  # built in, frozen or compiled: not source a user edits
        return False
    installed = _installation_folders()
    return not all(any(loc.resolve().is_relative_to(folder) for folder in installed) for loc in locations)


def _class_entry(model: str) -> tuple[str, str] | None:
    """``("<class module:Qualname>", sha256)`` for a plugin's model, None for
    a built-in one.

    A plugin's name can be pointed at another class of the same files by
    its entry point (package metadata, not code): the class the name
    resolves to is then part of what runs, so it is part of the
    fingerprint. A built-in name is bound in sessionbench's own code, which
    the fingerprint covers already.
    """
    from harness.models.registry import class_path, get_model_class

    cls = get_model_class(model)
    if cls.__module__.split(".")[0] in BUILTIN_PACKAGES:
        return None
    name = f"<class {class_path(cls)}>"
    return name, hashlib.sha256(name.encode()).hexdigest()


def model_fingerprint(model: str) -> CodeFingerprint:
    """The code fingerprint of runs of ``model``: its packages' files and,
    for a plugin, the class its name resolves to (:func:`_class_entry`).

    A model class whose module has no file (defined in an interactive
    session or in code run by ``exec``) is fingerprinted by its class source
    (or its qualified name when even that is unavailable).
    """
    try:
        prints = fingerprint(model_packages(model))
    except ModuleNotFoundError:
        return _fingerprint_without_file(model)
    entry = _class_entry(model)
    if entry is None:
        return prints
    return CodeFingerprint(tuple(sorted((*prints.files, entry))), tuple(sorted((*prints.bytes_files, entry))))


def _fingerprint_without_file(model: str) -> CodeFingerprint:
    """See :func:`model_fingerprint`: the class's source stands for its file."""
    from harness.models.registry import get_model_class

    cls = get_model_class(model)
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        source = f"{cls.__module__}.{cls.__qualname__}"
    own = fingerprint(BUILTIN_PACKAGES)
    name = f"<{cls.__module__}.{cls.__qualname__}>"
    source = textwrap.dedent(source).encode()  # dedent: a class defined inside a function
    return CodeFingerprint(tuple(sorted((*own.files, (name, code_hash(source))))),
                           tuple(sorted((*own.bytes_files, (name, hashlib.sha256(source).hexdigest())))))


def model_bytes_digest(model: str) -> str:
    """:attr:`CodeFingerprint.bytes_digest` of :func:`model_fingerprint`,
    from the files' bytes alone (fast; see :func:`bytes_digest`)."""
    try:
        return bytes_digest(model_packages(model), _class_entry(model))
    except ModuleNotFoundError:  # a class without a file
        return model_fingerprint(model).bytes_digest


def git_commit() -> str | None:
    """The commit of the source checkout the packages run from (``-dirty``
    with uncommitted edits), or None for an installed package: a wheel's
    site-packages may sit inside some other repository (a checkout's
    ``.venv``), whose commit says nothing about the code that ran."""
    if not (REPO_ROOT / "pyproject.toml").is_file() or not (REPO_ROOT / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def clear_cache() -> None:
    """Forget the cached hashes and imports (the next fingerprint re-reads the files)."""
    _CACHE.clear()
    _IMPORTS_CACHE.clear()

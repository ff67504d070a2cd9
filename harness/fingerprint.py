"""Code fingerprints: which source files can run in a run, and their hashes.

A run's result depends on more than the file that defines its model class:
the metrics, the evaluation loop, the data pipeline, shared training code and
any helper module a model imports. The fingerprint of a model therefore
covers every ``.py`` file of sessionbench's own packages (``harness``,
``baselines``, ``srgnn``; the report package ``harness/report``, which only
reads stored runs, is left out) and, for a model from elsewhere (a plugin), every
``.py`` file of the top-level package that defines its class (or the single
module file when it is not a package). Editing any of them changes the
fingerprint and so the run id.

Hashes are computed once per process and package (planning a suite with
many runs reads each file once).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: sessionbench's own packages: every run may execute any of their modules
BUILTIN_PACKAGES = ("harness", "baselines", "srgnn")

#: folders of those packages whose code never runs inside a run: the report
#: only reads stored runs, so editing it must not make every run stale
OUTSIDE_RUNS = ("harness/report/",)

_CACHE: dict[str, tuple[tuple[str, str], ...]] = {}


@dataclass(frozen=True)
class CodeFingerprint:
    """The source files that can run, as sorted ``(path, sha256)`` pairs.

    ``path`` is relative to the folder that holds the top-level package
    (``harness/metrics.py``, ``myplugin/helpers.py``); ``digest`` is the
    SHA-256 of the lines ``path\\0sha256\\n`` in that order.
    """

    files: tuple[tuple[str, str], ...]

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for path, sha in self.files:
            h.update(f"{path}\0{sha}\n".encode())
        return h.hexdigest()

    def to_manifest(self) -> dict[str, Any]:
        """``{"digest", "files": [{"path", "sha256"}]}`` as stored in a run's manifest."""
        return {"digest": self.digest, "files": [{"path": p, "sha256": s} for p, s in self.files]}

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


def package_files(top: str) -> tuple[tuple[str, str], ...]:
    """Sorted ``(relative path, sha256)`` of the sources of ``top`` (cached per process)."""
    cached = _CACHE.get(top)
    if cached is None:
        base, files = package_location(top)
        pairs = []
        for file in files:
            try:
                rel = file.relative_to(base).as_posix()
            except ValueError:
                rel = f"{top}/{file.name}"
            if rel.startswith(OUTSIDE_RUNS):
                continue
            pairs.append((rel, hashlib.sha256(file.read_bytes()).hexdigest()))
        cached = _CACHE[top] = tuple(sorted(pairs))
    return cached


def fingerprint(packages: Iterable[str]) -> CodeFingerprint:
    """The fingerprint of the given top-level packages (duplicates ignored)."""
    files: dict[str, str] = {}
    for top in dict.fromkeys(packages):
        files.update(package_files(top))
    return CodeFingerprint(tuple(sorted(files.items())))


def model_packages(model: str) -> tuple[str, ...]:
    """The top-level packages whose code can run for ``model`` (a registered
    name or ``module:Class``): sessionbench's own, plus the plugin's."""
    from harness.registry import get_model_class

    top = get_model_class(model).__module__.split(".")[0]
    return BUILTIN_PACKAGES + (() if top in BUILTIN_PACKAGES else (top,))


def model_fingerprint(model: str) -> CodeFingerprint:
    """The code fingerprint of runs of ``model``.

    A model class whose module has no file (defined in an interactive
    session or in code run by ``exec``) is fingerprinted by its class source
    (or its qualified name when even that is unavailable).
    """
    try:
        return fingerprint(model_packages(model))
    except ModuleNotFoundError:
        from harness.registry import get_model_class

        cls = get_model_class(model)
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            source = f"{cls.__module__}.{cls.__qualname__}"
        own = fingerprint(BUILTIN_PACKAGES).files
        entry = (f"<{cls.__module__}.{cls.__qualname__}>", hashlib.sha256(source.encode()).hexdigest())
        return CodeFingerprint(tuple(sorted((*own, entry))))


def clear_cache() -> None:
    """Forget the cached hashes (the next fingerprint re-reads the files)."""
    _CACHE.clear()

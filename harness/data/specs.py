"""Dataset specs: declarative YAML files that say how to read and prepare data.

A spec (a preset ``harness/presets/datasets/<name>.yaml``, keys documented in
that folder's ``README.md``, or any file of the same form)
names the raw files, their format and the preprocessing method.
:func:`load_dataset` finds the raw files, prepares the data once and caches
the result as Parquet, keyed by the raw files' content, the normalised spec
and :data:`harness.data.preprocess.PREPROCESS_VERSION`.

Raw files are looked up in the ``data_dir`` argument, else the default data
folder (``$SESSIONBENCH_DATA``, else the user data folder, see
:mod:`harness.paths`); inside that directory at ``<dir>/<file>`` and
``<dir>/<folder>/<file>`` for each of the spec's ``folders`` (default: the
spec's name). Prepared data go to ``cache_dir``, else the default cache folder
(``$SESSIONBENCH_CACHE``, else the user cache folder).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import paths
from harness.data import cache, preprocess, readers
from harness.data.dataset import SessionDataset
from harness.errors import ConfigError, DataError, UnknownNameError, describe, did_you_mean, quote
from harness.limits import MAX_NAME_LENGTH, MAX_SEED
from harness.yamlfile import load_yaml_file

__all__ = [
    "REPO_ROOT",
    "PRESET_DIR",
    "FORMATS",
    "DatasetSpec",
    "list_presets",
    "load_spec",
    "load_dataset",
    "resolve_raw_files",
    "default_data_dir",
    "default_cache_dir",
    "check_data_dir",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
PRESET_DIR = paths.preset_dir()  # package data: read, never written
DATA_ENV = paths.DATA_ENV
CACHE_ENV = paths.CACHE_ENV

#: format -> reader of one file (None: no files, events are generated)
FORMATS: dict[str, Any] = {
    "diginetica": readers.read_diginetica,
    "yoochoose": readers.read_yoochoose,
    "session-rec": readers.read_session_rec,
    "table": readers.read_table,
    "synthetic": None,
}
_SRGNN_FORMATS = ("diginetica", "yoochoose")
_PRESPLIT_ROLES = ("train", "test", "train_tr", "valid")
_TOP_KEYS = ("name", "description", "source", "format", "files", "folders", "read", "generator", "preprocess",
             "download")
_REQUIRED_KEYS = ("name", "description", "source", "format", "preprocess")
_GENERATOR_REQUIRED = ("n_sessions", "n_items", "seed", "days")
#: Upper bounds of generator settings (see docs/datasets.md).
_GENERATOR_LIMITS = {"n_sessions": 10_000_000, "n_items": 10_000_000, "days": 36_500, "max_length": 1_000,
                     "seed": MAX_SEED}


@dataclass(frozen=True)
class DatasetSpec:
    """A validated dataset spec.

    Attributes:
        name: the dataset's name (a preset's file name without ``.yaml``).
        description: one line for listings.
        source: where the public data come from.
        format: how each raw file is read, one of :data:`FORMATS`.
        files: file role (``events``; or ``train``, ``test``, ``train_tr``,
            ``valid``) -> accepted file names, first found wins.
        folders: sub-folders of a data directory also searched.
        preprocess: the method's settings (a :mod:`harness.data.preprocess` config).
        read: the column layout of a ``table`` file.
        generator: keyword arguments of ``harness.data.synthetic.generate_events``.
        path: the spec file, if it came from one.
        download: the public files the raw data come from
            (:class:`harness.data.fetch.RemoteFile`; ``sessionbench datasets fetch``).
    """

    name: str
    description: str
    source: str
    format: str
    preprocess: preprocess.SrgnnConfig | preprocess.StandardConfig | preprocess.PresplitConfig
    files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    folders: tuple[str, ...] = ()
    read: readers.TableLayout | None = None
    generator: Mapping[str, Any] | None = None
    path: Path | None = None
    download: tuple[Any, ...] = ()

    @property
    def method(self) -> str:
        """The preprocessing method's name."""
        return next(name for name, cls in preprocess.METHODS.items() if isinstance(self.preprocess, cls))

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary for listings (``files`` as one readable string)."""
        files = "; ".join(
            f"{role}: {' or '.join(names)}" if len(self.files) > 1 else " or ".join(names)
            for role, names in self.files.items()
        )
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "format": self.format,
            "method": self.method,
            "files": files,
            "spec": None if self.path is None else str(self.path),
        }

    def normalised(self) -> dict[str, Any]:
        """Everything that determines the prepared data, as plain JSON values
        (the cache key hashes this with the raw files' content)."""
        out: dict[str, Any] = {
            "name": self.name,
            "format": self.format,
            "preprocess": {"method": self.method, **preprocess._settings(self.preprocess)},
        }
        if self.read is not None:
            out["read"] = asdict(self.read)
        if self.generator is not None:
            out["generator"] = dict(self.generator)
        return out


# --------------------------------------------------------------------------- #
# loading and validating specs
# --------------------------------------------------------------------------- #


def list_presets() -> list[DatasetSpec]:
    """Every shipped preset (``harness/presets/datasets/``), sorted by name."""
    return [load_spec(path) for path in sorted(PRESET_DIR.glob("*.yaml"))]


def load_spec(name_or_path: str | Path) -> DatasetSpec:
    """A preset by name (``diginetica``) or a spec file by path.

    Raises:
        UnknownNameError: no preset of that name.
        ConfigError: the file is not valid YAML or breaks the schema.
    """
    text = str(name_or_path)
    looks_like_path = isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or os.sep in text
    if looks_like_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(f"{path}: dataset spec file not found")
    else:
        path = PRESET_DIR / f"{text}.yaml"
        if not path.is_file():
            presets = [p.stem for p in sorted(PRESET_DIR.glob("*.yaml"))]
            raise UnknownNameError(
                f"unknown dataset {quote(text)}{did_you_mean(text, presets)}; "
                f"expected a preset ({', '.join(presets)}) or the path to a spec .yaml file"
            )
    return _parse_spec(_read_yaml(path), path)


def _read_yaml(path: Path) -> dict[str, Any]:
    if path.suffix.lower() not in (".yaml", ".yml"):  # a raw data file given where its spec belongs
        raise ConfigError(f"{path}: expected a dataset spec (.yaml); a raw file is read through a spec that names "
                          "it under files: (format table for a generic CSV, see docs/datasets.md)")
    data = load_yaml_file(path, "dataset spec")
    if isinstance(data, dict) and "models" in data and "datasets" in data:
        raise ConfigError(f"{path}: this is a suite (it has datasets and models), not a dataset spec; "
                          "run it with `sessionbench run`")
    if not isinstance(data, dict):
        keys = ", ".join(_TOP_KEYS)
        raise ConfigError(f"{path}: expected a mapping of spec keys ({keys}), got {type(data).__name__}")
    return data


def _parse_spec(data: dict[str, Any], path: Path) -> DatasetSpec:
    _check_keys(data, _TOP_KEYS, path, "")
    for key in _REQUIRED_KEYS:
        if key not in data:
            raise ConfigError(f"{path}: missing key {key!r}")
    name, fmt = _as_str(data["name"], path, "name"), _as_str(data["format"], path, "format")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or len(name) > MAX_NAME_LENGTH:  # it names folders
        raise ConfigError(
            f"{path}: key 'name': expected at most {MAX_NAME_LENGTH} letters, digits, '.', '_' or '-', "
            f"got {quote(name)}"
        )
    if fmt not in FORMATS:
        raise ConfigError(f"{path}: key 'format': expected one of {', '.join(FORMATS)}, got {quote(fmt)}{did_you_mean(fmt, FORMATS)}")
    config = _parse_preprocess(data["preprocess"], path)
    spec = DatasetSpec(
        name=name,
        description=_as_str(data["description"], path, "description").strip(),
        source=_as_str(data["source"], path, "source").strip(),
        format=fmt,
        preprocess=config,
        files=_parse_files(data.get("files"), path),
        folders=_as_str_list(data.get("folders", [name]), path, "folders"),
        read=_parse_layout(data.get("read"), fmt, path),
        generator=_parse_generator(data.get("generator"), fmt, path),
        path=path.resolve(),
        download=_parse_download(data.get("download"), name, path),
    )
    _check_consistency(spec, path)
    return spec


def _parse_download(value: Any, name: str, path: Path) -> tuple[Any, ...]:
    from harness.data.fetch import parse_download  # fetch builds on this module

    return parse_download(value, name, path)


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...] | list[str], path: Path, prefix: str) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{path}: unknown key {quote(prefix + str(key))}{did_you_mean(key, allowed)}; expected one of {', '.join(allowed)}")


def _mapping(value: Any, path: Path, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: key {key!r}: expected a mapping, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    return describe(value)


def _as_str(value: Any, path: Path, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{path}: key {key!r}: expected a non-empty string, got {_shown(value)}")
    return value


def _as_field_text(value: Any, path: Path, key: str) -> str:
    """A text field of a reader's or preprocessing's settings: any non-empty
    string, white space included (``sep: "\\t"`` is a tab)."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: key {key!r}: expected a non-empty string, got {_shown(value)}")
    return value


def _as_str_list(value: Any, path: Path, key: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{path}: key {key!r}: expected a string or a list of strings, got {_shown(value)}")
    return tuple(_as_str(v, path, key) for v in values)


def _as_float(value: Any, path: Path, key: str) -> float:
    # safe_load reads 1e-3 (no dot) as a string, so numeric strings are accepted
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{path}: key {key!r}: expected a number, got {_shown(value)}")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{path}: key {key!r}: expected a number, got {_shown(value)}") from None
    except OverflowError:  # an integer beyond float range
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{path}: key {key!r}: expected a finite number, got {quote(value)}")
    return number


def _as_int(value: Any, path: Path, key: str) -> int:
    number = _as_float(value, path, key)
    if isinstance(value, float | str) and number != int(number) or abs(number) > 2**53:
        raise ConfigError(f"{path}: key {key!r}: expected an integer, got {_shown(value)}")
    return int(value) if isinstance(value, int) else int(number)


def _as_fraction(value: Any, path: Path, key: str) -> Fraction:
    # a fraction is kept exact ("1/64") so that the prefix cut equals int(n / 64)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{path}: key {key!r}: expected a fraction such as 1/64, got {_shown(value)}")
    try:
        return Fraction(value.strip()) if isinstance(value, str) else Fraction(value)
    except (ValueError, ZeroDivisionError, OverflowError):  # OverflowError: .inf
        raise ConfigError(f"{path}: key {key!r}: expected a fraction such as 1/64, got {_shown(value)}") from None


_COERCERS = {float: _as_float, int: _as_int, str: _as_field_text, Fraction: _as_fraction}


def _build(cls: type, data: Mapping[str, Any], path: Path, prefix: str) -> Any:
    """An instance of dataclass ``cls`` from ``data``, each value coerced to
    its field's annotated type; unknown keys and bad values are ConfigErrors."""
    names = [f.name for f in fields(cls)]
    _check_keys(data, names, path, prefix)
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        hint = hints[key]
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        if value is None and type(None) in options:
            values[key] = None
            continue
        base = next(t for t in options if t is not type(None))
        values[key] = _COERCERS[base](value, path, prefix + key)
    try:
        return cls(**values)
    except ValueError as exc:  # range checks of the config classes start with their key
        key, _, reason = str(exc).partition(": ")
        raise ConfigError(f"{path}: key '{prefix}{key}': {reason}") from None


def _parse_preprocess(value: Any, path: Path) -> Any:
    data = dict(_mapping(value, path, "preprocess"))
    method = data.pop("method", None)
    if not isinstance(method, str) or method not in preprocess.METHODS:
        raise ConfigError(
            f"{path}: key 'preprocess.method': expected one of {', '.join(preprocess.METHODS)}, got {quote(method)}"
            f"{did_you_mean(method, preprocess.METHODS)}"
        )
    return _build(preprocess.METHODS[method], data, path, "preprocess.")


def _parse_files(value: Any, path: Path) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    data = _mapping(value, path, "files")
    _check_keys(data, ("events", *_PRESPLIT_ROLES), path, "files.")
    return {role: _as_str_list(names, path, f"files.{role}") for role, names in data.items()}


def _parse_layout(value: Any, fmt: str, path: Path) -> readers.TableLayout | None:
    if value is None:
        return readers.TableLayout() if fmt == "table" else None
    if fmt != "table":
        raise ConfigError(f"{path}: key 'read' applies only to format 'table', not {fmt!r}")
    return _build(readers.TableLayout, _mapping(value, path, "read"), path, "read.")


def _parse_generator(value: Any, fmt: str, path: Path) -> dict[str, Any] | None:
    if value is None:
        if fmt == "synthetic":
            raise ConfigError(f"{path}: missing key 'generator' (required by format 'synthetic')")
        return None
    if fmt != "synthetic":
        raise ConfigError(f"{path}: key 'generator' applies only to format 'synthetic', not {fmt!r}")
    data = dict(_mapping(value, path, "generator"))
    for key in _GENERATOR_REQUIRED:
        if key not in data:
            raise ConfigError(f"{path}: missing key 'generator.{key}'")
    for key in ("n_sessions", "n_items", "seed"):
        data[key] = _as_int(data[key], path, f"generator.{key}")
    data["days"] = _as_float(data["days"], path, "generator.days")
    for key, item in data.items():  # structure parameters: numbers may come as strings ("1e-3")
        if isinstance(item, str):
            try:
                data[key] = float(item)
            except ValueError:
                pass
    for key, limit in _GENERATOR_LIMITS.items():  # a typo must not become hours of generation or 2300 AD
        value = data.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > limit:
            raise ConfigError(f"{path}: key 'generator.{key}': expected at most {limit:,}, got {quote(value)}")
    return data


def _check_consistency(spec: DatasetSpec, path: Path) -> None:
    """Format, method and file roles must fit together."""
    roles, method = set(spec.files), spec.method
    if spec.format == "synthetic":
        if roles:
            raise ConfigError(f"{path}: key 'files': format 'synthetic' reads no files (events are generated)")
        if method != "standard":
            raise ConfigError(f"{path}: key 'preprocess.method': format 'synthetic' needs 'standard', got {method!r}")
        return
    if method == "srgnn" and spec.format not in _SRGNN_FORMATS:
        raise ConfigError(
            f"{path}: key 'preprocess.method': 'srgnn' needs format {' or '.join(_SRGNN_FORMATS)}, got {spec.format!r}"
        )
    if method == "presplit":
        valid_pair = {"train_tr", "valid"} & roles
        if not {"train", "test"} <= roles or "events" in roles or valid_pair not in (set(), {"train_tr", "valid"}):
            raise ConfigError(
                f"{path}: key 'files': method 'presplit' expects roles train and test, optionally both train_tr "
                f"and valid; got {sorted(roles)}"
            )
    elif roles != {"events"}:
        raise ConfigError(f"{path}: key 'files': method {method!r} expects one role 'events', got {sorted(roles)}")
    if spec.format in _SRGNN_FORMATS and method == "presplit":
        raise ConfigError(f"{path}: key 'format': {spec.format!r} is a raw log; use method srgnn or standard")


# --------------------------------------------------------------------------- #
# raw files
# --------------------------------------------------------------------------- #


def default_data_dir() -> Path:
    """``$SESSIONBENCH_DATA`` if set, else the user data folder (:func:`harness.paths.data_dir`)."""
    return paths.data_dir()


def default_cache_dir() -> Path:
    """``$SESSIONBENCH_CACHE`` if set, else the user cache folder (:func:`harness.paths.cache_dir`)."""
    return paths.cache_dir()


def resolve_raw_files(spec: DatasetSpec, data_dir: str | Path | None = None) -> dict[str, Path]:
    """The raw file of each role of ``spec``.

    The data directory is ``data_dir``, else :func:`default_data_dir`. For each accepted name (in the spec's order),
    ``<dir>/<name>`` then ``<dir>/<folder>/<name>`` for each folder; the
    first file found wins. A user's spec file (not a preset) is also searched
    beside itself, after the data directory.

    Raises:
        DataError: a role has no file; the message lists every path tried,
            the expected names and where the public data come from.
    """
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    if spec.files:  # generated data read no folder
        check_data_dir(base)
        if data_dir is not None and not base.exists():  # a mistyped folder: never fall back to other files
            raise DataError(f"the data folder does not exist; expected the folder holding the raw files of "
                            f"dataset {spec.name!r} (--data-dir or a suite's data_dir)", path=base)
    found: dict[str, Path] = {}
    for role, names in spec.files.items():
        tried = [base / sub / name for name in names for sub in ("", *spec.folders)]
        if spec.path is not None and spec.path.parent.resolve() != PRESET_DIR.resolve():
            tried += [spec.path.parent / name for name in names]
        hit = next((p for p in tried if p.is_file()), None)
        if hit is None:
            odd = [f"{p} is {'a folder' if p.is_dir() else 'not a regular file'}" for p in tried
                   if p.exists() and not p.is_file()]
            raise DataError(
                f"raw {role} file of dataset {spec.name!r} not found; expected {' or '.join(names)} "
                f"({spec.format} format); tried {', '.join(map(str, tried))}"
                f"{''.join(f' ({o})' for o in odd)}; the public data come from: "
                f"{spec.source.rstrip('. ')}; put the file there or pass --data-dir / set ${DATA_ENV}"
            )
        found[role] = hit
    return found


def check_data_dir(folder: Path) -> None:
    """Refuse a data folder that is a file (every raw file would be "missing")."""
    if folder.exists() and not folder.is_dir():
        raise DataError(f"the data folder is a file; expected the folder holding the raw files "
                        f"(--data-dir, ${DATA_ENV} or a suite's data_dir)", path=folder)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or type(exc).__name__})", path=path) from None
    return digest.hexdigest()


# --------------------------------------------------------------------------- #
# preparing and caching
# --------------------------------------------------------------------------- #


def load_dataset(
    name_or_path: str | Path | DatasetSpec,
    *,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> SessionDataset:
    """The prepared dataset of a preset, a spec file or a :class:`DatasetSpec`.

    Prepared data are cached; ``meta["cache"]["hit"]`` says whether this call
    read the cache. A changed raw file, spec or preprocessing version gives a
    new cache key and so a fresh preparation.
    """
    spec = name_or_path if isinstance(name_or_path, DatasetSpec) else load_spec(name_or_path)
    raw = resolve_raw_files(spec, data_dir)
    raw_meta = {role: {"path": str(path), "sha256": _sha256(path)} for role, path in raw.items()}
    key = _cache_key(spec, {role: info["sha256"] for role, info in raw_meta.items()})
    folder, label = _cache_location(cache_dir)
    target = folder / f"{spec.name}-{key[:16]}"
    data = cache.load(target)
    if data is not None:
        data.meta["raw_files"] = raw_meta  # where the files are now
        data.meta["cache"] = {"hit": True, "path": str(target), "key": key}
        _check_cached_presplit(data, raw_meta)
        return data
    cache.check_writable(folder, label)  # before preparing, which can take minutes
    data = _prepare(spec, raw)
    meta = {
        **data.meta,
        "dataset": spec.name,
        "spec": spec.normalised(),
        "spec_file": None if spec.path is None else str(spec.path),
        "raw_files": raw_meta,
        "preprocess_version": preprocess.PREPROCESS_VERSION,
    }
    meta = json.loads(json.dumps(meta, default=_json_default))  # what the cache gives back
    data = SessionDataset(
        data.name, data.n_items, data.item_map, data.train, data.train_tr, data.valid, data.test, meta
    )
    cache.store(data, target, label)
    data.meta["cache"] = {"hit": False, "path": str(target), "key": key}
    return data


def _check_cached_presplit(data: SessionDataset, raw_meta: Mapping[str, Mapping[str, str]]) -> None:
    """Presplit data prepared before sessionbench refused files that share
    sessions can still be in a cache: check their prepared splits the same way."""
    if data.meta.get("method") != "presplit":
        return
    sources = {role: info["path"] for role, info in raw_meta.items()}
    pairs = [("train", "test")] + ([("train_tr", "valid")] if {"train_tr", "valid"} <= sources.keys() else [])
    for first, second in pairs:
        preprocess.require_disjoint_sessions(data.split(first).session_ids, data.split(second).session_ids,
                                             first, second, sources)


def _cache_location(cache_dir: str | Path | None) -> tuple[Path, str]:
    """The cache folder and how the user set it (for error messages)."""
    if cache_dir is not None:
        return Path(cache_dir), f"cache_dir {cache_dir}"
    folder = default_cache_dir()
    return folder, (f"${CACHE_ENV}={folder}" if os.environ.get(CACHE_ENV) else f"cache folder {folder}")


def _cache_key(spec: DatasetSpec, hashes: Mapping[str, str]) -> str:
    payload: dict[str, Any] = {
        "preprocess_version": preprocess.PREPROCESS_VERSION,
        "spec": spec.normalised(),
        "raw_sha256": dict(sorted(hashes.items())),
    }
    if spec.format == "synthetic":
        payload["generator_version"] = getattr(_synthetic(), "GENERATOR_VERSION", None)
    text = json.dumps(payload, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Fraction, Path)):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _synthetic() -> types.ModuleType:
    from harness.data import synthetic  # imported late: tests may replace its generator

    return synthetic


def _prepare(spec: DatasetSpec, raw: Mapping[str, Path]) -> SessionDataset:
    """Read the raw files (or generate events) and run the spec's method."""
    if spec.format == "synthetic":
        events, generator_meta = _generate(spec)
        source = f"{spec.path or spec.name} (generated events)"
        data = preprocess.prepare(spec.preprocess, {"events": events}, name=spec.name, sources={"events": source})
        data.meta["generator"] = generator_meta
        return data
    reader = FORMATS[spec.format]
    frames = {
        role: reader(path, spec.read) if spec.format == "table" else reader(path) for role, path in raw.items()
    }
    return preprocess.prepare(
        spec.preprocess, frames, name=spec.name, sources={role: str(path) for role, path in raw.items()}
    )


def _generate(spec: DatasetSpec) -> tuple[pd.DataFrame, dict]:
    params = dict(spec.generator or {})
    try:
        events, meta = _synthetic().generate_events(**params)
    except (ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(f"{spec.path}: key 'generator': {' '.join(str(exc).split())}") from None
    events = events.loc[:, ["session", "item", "time"]].copy()
    events["item"] = events["item"].astype(str)  # raw item ids are strings everywhere
    return events, meta

"""Benchmark suites: YAML files that say what to run.

A suite (a shipped one, ``harness/presets/suites/<name>.yaml``, or any file)::

    name: default                  # optional; defaults to the file name
    description: one line
    data_dir: data                 # optional; relative to this file's folder;
                                   # default: --data-dir, $SESSIONBENCH_DATA, the user data folder
    datasets:                      # preset names, spec paths (relative: beside this
      - synthetic                  # file first, else the current folder), or mappings
      - {name: diginetica, data_dir: /data/diginetica-full}
    models:                        # registered names, module:Class, or mappings
      - pop
      - {name: sknn, params: {k: 100}}
      - {name: sr, label: sr-tuned, grid: {steps: [4, 10]}}
      - {name: gru4rec, seeds: [0, 1, 2]}
    seeds: [0]                     # default seeds of every model
    ks: [5, 10, 20, 50]
    protocols: [next]              # next and/or rest
    batch_size: 500                # prefixes per scoring batch
    exclude_seen: false
    latency: {samples: 200, warmup: 20}
    timeout: {fit: 3600, score: 600}   # optional, seconds; one number for both
    style:                         # optional: how reports draw a label
      my-model: {color: "#117733", marker: "d", hatch: "//"}

A model entry may set its own ``timeout`` (same forms).

It expands into runs: dataset x model (x grid point) x seed x protocol.

Names and labels: the suite ``name`` is letters, digits, ``.``, ``_`` and
``-`` (not starting with a dot) and a model ``label`` letters, digits and
``_.+=,:-``; both at most :data:`~harness.limits.MAX_NAME_LENGTH` characters,
as they name folders. A key, a dataset, a seed or a protocol may be given
only once; ``ks`` go up to :data:`~harness.limits.MAX_K` and seeds up to
2**32 - 1; a grid expands into at most
:data:`~harness.limits.MAX_GRID_POINTS` points.

With a ``grid``, every grid point is first fitted on ``train_tr`` and scored
on ``valid`` (stage ``tune``); the point with the best validation MRR@20 is
then fitted on ``train`` and scored on ``test`` (stage ``test``). The test
split never chooses anything. A ``tune`` section (per model, with suite-wide
defaults under a top-level ``tune``) searches a space with Optuna instead;
see :mod:`harness.run.tuning`.

A model's ``retrieval`` (only for models that declare
``provides_embeddings``) lists ANN index settings, a list value sweeping a
parameter, e.g. ``retrieval: {method: faiss-hnsw, efSearch: [16, 64]}``
(:func:`harness.evaluation.retrieval.parse_settings`); its test run then also
evaluates every setting (docs/retrieval.md).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from harness import paths
from harness.errors import ConfigError, describe, did_you_mean, quote
from harness.limits import (MAX_GRID_LABEL_LENGTH, MAX_GRID_POINTS, MAX_K, MAX_NAME_LENGTH, MAX_SEED,
                            MIN_TIMEOUT_SECONDS)
from harness.evaluation.metrics import DEFAULT_KS
from harness.models.registry import check_class, check_params_together, coerce_params, get_model_class
from harness.yamlfile import finite_float, load_yaml_text, numeric_string, read_text_file

SUITE_DIR = paths.suite_dir()  # the shipped suites (package data)
_TOP_KEYS = ("name", "description", "data_dir", "datasets", "models", "seeds", "ks", "protocols", "batch_size",
             "exclude_seen", "latency", "timeout", "style", "tune")
_DATASET_KEYS = ("name", "data_dir")
_MODEL_KEYS = ("name", "label", "params", "grid", "seeds", "timeout", "retrieval", "tune")
_TIMEOUT_KEYS = ("fit", "score")
_LATENCY_KEYS = ("samples", "warmup")
_MAX_LATENCY = 100_000  # single-session timings per run; more adds time, not precision
_LABEL = re.compile(r"[A-Za-z0-9_.+=,:-]+")
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")  # a folder name inside reports/, never "." or ".."
_GRID_VALUE = re.compile(r"[A-Za-z0-9_.+:-]+")  # printed into the grid point's label and run folder


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset of a suite: preset name or spec path, and where its raw files are."""

    name: str
    data_dir: str | None = None


@dataclass(frozen=True)
class ModelEntry:
    """A model of a suite: what to build, its display label and its seeds."""

    name: str
    label: str
    params: dict[str, Any]
    grid: dict[str, list[Any]]
    seeds: tuple[int, ...]
    timeout: dict[str, float] = field(default_factory=dict)  # phase -> seconds; {} none
    retrieval: tuple[dict[str, Any], ...] = ()  # ANN settings ({"method": ..., **params}), harness.evaluation.retrieval
    tune: Any = None  # harness.run.tuning.TuneConfig: searched with Optuna instead of fixed params

    def grid_points(self) -> list[dict[str, Any]]:
        """Every combination of the grid, merged over ``params`` (one point
        without a grid); with a grid, each point under :func:`fixed_epochs`."""
        if not self.grid:
            return [dict(self.params)]
        keys = sorted(self.grid)
        by_epoch = trains_by_epoch(self.name)
        return [fixed_epochs({**self.params, **dict(zip(keys, values))}, by_epoch)
                for values in itertools.product(*(self.grid[k] for k in keys))]


def trains_by_epoch(model: str) -> bool:
    """Whether the registered ``model`` is trained by epochs under the selection rule."""
    return bool(getattr(get_model_class(model), "trains_by_epoch", False))


def fixed_epochs(params: dict[str, Any], by_epoch: bool) -> dict[str, Any]:
    """The parameters of a run that tunes on the validation split (a grid
    point or a search trial, and the final run of the chosen one): a model
    trained by epochs trains exactly ``epochs`` epochs (``patience`` 0),
    since the validation split is the tuning's objective and cannot also
    pick the epoch."""
    return {**params, "patience": 0} if by_epoch else params


@dataclass(frozen=True)
class Suite:
    """A validated suite."""

    name: str
    description: str
    path: Path | None
    datasets: tuple[DatasetEntry, ...]
    models: tuple[ModelEntry, ...]
    ks: tuple[int, ...] = DEFAULT_KS
    protocols: tuple[str, ...] = ("next",)
    batch_size: int = 500
    exclude_seen: bool = False
    latency: dict[str, int] = field(default_factory=lambda: {"samples": 200, "warmup": 20})
    style: dict[str, dict[str, str]] = field(default_factory=dict)
    timeout: dict[str, float] = field(default_factory=dict)  # phase (fit, score) -> seconds; {} none
    text: str = ""  # the suite file's text (a YAML dump of the mapping when there is no file)


def shipped_suites() -> list[str]:
    """The names of the shipped suites (``harness/presets/suites/<name>.yaml``), sorted."""
    return sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))


def load_suite(name_or_path: str | Path) -> Suite:
    """A shipped suite by name (``harness/presets/suites/<name>.yaml``) or any suite by path; validated."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith((".yaml", ".yml")) or "/" in text):
        path = SUITE_DIR / f"{text}.yaml"
        if not path.is_file():
            shipped = shipped_suites()
            raise ConfigError(f"unknown suite {quote(text)}{did_you_mean(text, shipped)}; "
                              f"expected one of {', '.join(shipped) or 'none'} or the path of a suite .yaml file")
    if not path.is_file():
        raise ConfigError(f"{path}: suite file not found")
    text = read_text_file(path, "suite")
    return replace(parse_suite(load_yaml_text(text, str(path)), path), text=text)


def parse_suite(data: Any, path: Path | None = None) -> Suite:
    """Validate a suite mapping; errors name the file and the key."""
    where = str(path) if path else "suite"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(_TOP_KEYS)}")
    if "format" in data and "preprocess" in data and "models" not in data:
        raise ConfigError(f"{where}: this is a dataset spec (it has format and preprocess), not a suite; list it "
                          "under a suite's datasets, or pass it to `sessionbench evaluate --dataset`")
    _check_keys(data, _TOP_KEYS, where, "")
    for key in ("datasets", "models"):
        if not data.get(key):
            raise ConfigError(f"{where}: key {key!r}: expected a non-empty list")
    seeds = _seeds(data.get("seeds", [0]), where, "seeds")
    suite_dir = data.get("data_dir")
    if suite_dir is not None and not isinstance(suite_dir, str):
        raise ConfigError(f"{where}: key 'data_dir': expected a path string, got {describe(suite_dir)}")
    suite_dir = _relative_to(suite_dir, path)
    datasets = tuple(_dataset(d, where, f"datasets[{i}]", suite_dir) for i, d in enumerate(_list(data, "datasets", where)))
    _unique([d.name for d in datasets], where, "datasets", "dataset")
    models = tuple(_model(m, where, f"models[{i}]", seeds) for i, m in enumerate(_list(data, "models", where)))
    labels = [m.label for m in models]
    dupes = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dupes:
        raise ConfigError(f"{where}: key 'models': labels must be unique, {dupes} repeat; set 'label' to tell them apart")
    protocols = data.get("protocols", ["next"])
    if not isinstance(protocols, list) or not protocols or any(p not in ("next", "rest") for p in protocols):
        raise ConfigError(
            f"{where}: key 'protocols': expected a list of 'next' and/or 'rest', got {describe(protocols)}"
        )
    _unique(protocols, where, "protocols", "protocol")
    protocols = tuple(protocols)
    latency = data.get("latency", {}) or {}
    if not isinstance(latency, dict):
        raise ConfigError(f"{where}: key 'latency': expected a mapping with samples, warmup, got {describe(latency)}")
    _check_keys(latency, _LATENCY_KEYS, where, "latency.")
    exclude_seen = data.get("exclude_seen", False)
    if not isinstance(exclude_seen, bool):
        raise ConfigError(f"{where}: key 'exclude_seen': expected true or false, got {describe(exclude_seen)}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}: key 'description': expected a string, got {describe(description)}")
    ks = tuple(sorted(set(_int_list(data.get("ks", list(DEFAULT_KS)), where, "ks", minimum=1, maximum=MAX_K))))
    models = _tune_sections(data, models, ks, where)
    from harness.report.styles import validate_style_map

    style = validate_style_map(data["style"], where) if "style" in data else {}
    return Suite(
        name=_name(data.get("name", path.stem if path else "suite"), where),
        description=description,
        path=path,
        datasets=datasets,
        models=models,
        ks=ks,
        protocols=protocols,
        batch_size=_int(data.get("batch_size", 500), where, "batch_size", minimum=1),
        exclude_seen=exclude_seen,
        latency={
            "samples": _int(latency.get("samples", 200), where, "latency.samples", minimum=0, maximum=_MAX_LATENCY),
            "warmup": _int(latency.get("warmup", 20), where, "latency.warmup", minimum=0, maximum=_MAX_LATENCY),
        },
        style=style,
        timeout=parse_timeout(data.get("timeout"), where, "timeout"),
        text=yaml.safe_dump(data, sort_keys=False),
    )


def _tune_sections(data: dict, models: tuple[ModelEntry, ...], ks: tuple[int, ...], where: str) -> tuple[ModelEntry, ...]:
    """Each model entry's ``tune`` section, validated and merged over the
    suite's ``tune`` defaults (see :mod:`harness.run.tuning`)."""
    from harness.run.tuning import parse_tune

    entries = data["models"]
    if data.get("tune") is not None and not any(isinstance(e, dict) and e.get("tune") is not None for e in entries):
        # the defaults apply to entries with a tune section only: without one, nothing would be searched
        raise ConfigError(f"{where}: key 'tune': the suite's tune section holds defaults for the model entries "
                          "that have a 'tune' section, and none has one; add tune: default (or a space) to "
                          "the entries to search, or remove it")
    out = []
    for i, model in enumerate(models):
        value = entries[i].get("tune") if isinstance(entries[i], dict) else None
        if value is not None and model.grid:
            raise ConfigError(f"{where}: key models[{i}]: use either 'grid' or 'tune', not both")
        tune = parse_tune(value, data.get("tune"), get_model_class(model.name), model.name, ks, where,
                          f"models[{i}].tune")  # fmt: skip
        out.append(replace(model, tune=tune))
    return tuple(out)


def _dataset(entry: Any, where: str, key: str, suite_dir: str | None) -> DatasetEntry:
    suite_path = Path(where) if where != "suite" else None
    if isinstance(entry, str):
        return DatasetEntry(_spec_beside(entry, suite_path), suite_dir)
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: key {key!r}: expected a dataset name or a mapping with {', '.join(_DATASET_KEYS)}")
    _check_keys(entry, _DATASET_KEYS, where, key + ".")
    data_dir = entry.get("data_dir")
    if data_dir is not None and not isinstance(data_dir, str):
        raise ConfigError(f"{where}: key {key}.data_dir: expected a path string, got {describe(data_dir)}")
    data_dir = suite_dir if data_dir is None else _relative_to(data_dir, suite_path)
    return DatasetEntry(_spec_beside(_str(entry.get("name"), where, key + ".name"), suite_path), data_dir)


def _spec_beside(name: str, suite_path: Path | None) -> str:
    """A relative spec path (``mylog.yaml``) that names a file beside the suite
    file is that file, like a relative ``data_dir``: the suite then runs from
    any folder. Otherwise the name is kept (a preset, an absolute path, or a
    path relative to the current folder)."""
    if suite_path is None or not name.endswith((".yaml", ".yml")) or Path(name).is_absolute():
        return name
    beside = suite_path.parent / name
    try:
        return str(beside.resolve()) if beside.is_file() else name
    except OSError:  # e.g. a name too long for the file system: loading it says what is wrong
        return name


def _relative_to(data_dir: str | None, suite_path: Path | None) -> str | None:
    """A relative ``data_dir`` is relative to the suite file's folder."""
    if data_dir is None or suite_path is None or Path(data_dir).is_absolute():
        return data_dir
    return str((suite_path.parent / data_dir).resolve())


def _model(entry: Any, where: str, key: str, default_seeds: list[int]) -> ModelEntry:
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: key {key!r}: expected a model name or a mapping with {', '.join(_MODEL_KEYS)}")
    _check_keys(entry, _MODEL_KEYS, where, key + ".")
    name = _str(entry.get("name"), where, key + ".name")
    try:
        cls = get_model_class(name)
        check_class(cls)  # a plugin that cannot run stops the suite here, not in each of its runs
    except ConfigError:
        raise
    except Exception as err:
        raise ConfigError(f"{where}: key {key}.name: {err}") from None
    params = entry.get("params", {}) or {}
    grid = entry.get("grid", {}) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: key {key}.params: expected a mapping of hyper-parameters")
    if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
        raise ConfigError(f"{where}: key {key}.grid: expected a mapping of hyper-parameter -> non-empty list")
    params = coerce_params(cls, params, source=f"{where}: key {key}.params")
    grid = {k: [coerce_params(cls, {k: v}, source=f"{where}: key {key}.grid")[k] for v in vs] for k, vs in grid.items()}
    label = _str(entry.get("label", name.rsplit(":", 1)[-1] if ":" in name else name), where, key + ".label")
    if not _LABEL.fullmatch(label) or len(label) > MAX_NAME_LENGTH:
        raise ConfigError(
            f"{where}: key {key}.label: expected at most {MAX_NAME_LENGTH} letters, digits and _.+=,:-, "
            f"got {quote(label)}"
        )
    _check_grid(grid, label, where, key)
    if "tune" not in entry:  # every configuration it runs (a search draws its configurations later)
        for point in itertools.product(*grid.values()):
            check_params_together(cls, {**params, **dict(zip(grid, point))}, f"{where}: key {key}")
    if "patience" in grid and getattr(cls, "trains_by_epoch", False):
        raise ConfigError(f"{where}: key {key}.grid.patience: grid points of a model trained by epochs train "
                          "exactly 'epochs' epochs (patience 0: the validation split scores the grid); "
                          "put 'epochs' in the grid instead")
    seeds = tuple(_seeds(entry.get("seeds", default_seeds), where, key + ".seeds"))
    timeout = parse_timeout(entry.get("timeout"), where, key + ".timeout")
    retrieval = _retrieval(entry, where, key) if "retrieval" in entry else ()
    return ModelEntry(name=name, label=label, params=params, grid=grid, seeds=seeds, timeout=timeout,
                      retrieval=retrieval)


def _retrieval(entry: dict, where: str, key: str) -> tuple[dict[str, Any], ...]:
    from harness.evaluation.retrieval import check_embedding_methods, parse_settings

    cls = get_model_class(entry["name"])
    if not cls.provides_embeddings:
        raise ConfigError(f"{where}: key {key}.retrieval: model {entry['name']!r} does not declare "
                          "provides_embeddings, so it cannot be served by an index")
    check_embedding_methods(cls, where=f"{where}: key {key}.retrieval: ")
    return tuple(s.as_dict() for s in parse_settings(entry["retrieval"], where=f"{where}: key {key}.retrieval"))


def parse_timeout(value: Any, where: str, key: str) -> dict[str, float]:
    """A ``timeout`` value: seconds for both phases, or ``{fit: S, score: S}``
    (either key may be left out); returns phase -> seconds ({} for None)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        _check_keys(value, _TIMEOUT_KEYS, where, key + ".")
        return {phase: _seconds(v, where, f"{key}.{phase}") for phase, v in value.items()}
    seconds = _seconds(value, where, key, mapping_too=True)
    return {phase: seconds for phase in _TIMEOUT_KEYS}


def _seconds(value: Any, where: str, key: str, *, mapping_too: bool = False) -> float:
    seconds = finite_float(value)
    if seconds is None or seconds <= 0:
        also = " or a mapping with fit, score" if mapping_too else ""
        raise ConfigError(f"{where}: key {key!r}: expected a positive number of seconds{also}, "
                          f"got {describe(numeric_string(value))}")
    if seconds < MIN_TIMEOUT_SECONDS:
        raise ConfigError(f"{where}: key {key!r}: expected at least {MIN_TIMEOUT_SECONDS:g} second (limits are "
                          f"checked every 0.1 s), got {seconds:g}")
    return seconds


def _check_grid(grid: dict[str, list[Any]], label: str, where: str, key: str) -> None:
    """A grid names folders (``label[k=v,...]``) and multiplies runs: keep both bounded."""
    points = 1
    for k, values in grid.items():
        _unique([repr(v) for v in values], where, f"{key}.grid.{k}", "value")
        points *= len(values)
        for v in values:
            if not _GRID_VALUE.fullmatch(str(v)):
                raise ConfigError(
                    f"{where}: key {key}.grid.{k}: values are written into folder names, so they must print as "
                    f"letters, digits and _.+:- only, got {quote(v)}"
                )
    if points > MAX_GRID_POINTS:
        raise ConfigError(f"{where}: key {key}.grid: {points} grid points, expected at most {MAX_GRID_POINTS}")
    # label[k1=v1,k2=v2]: the longest value of each key, as the runner writes it
    longest = len(label) + 1 + sum(len(k) + 2 + max(len(str(v)) for v in vs) for k, vs in grid.items()) if grid else 0
    if longest > MAX_GRID_LABEL_LENGTH:
        raise ConfigError(
            f"{where}: key {key}.grid: the grid-point label {label}[key=value,...] reaches {longest} characters, "
            f"expected at most {MAX_GRID_LABEL_LENGTH} (it names a folder); use a shorter label or fewer keys"
        )


def _name(value: Any, where: str) -> str:
    """The suite name: it names the folder ``reports/<name>``, so it cannot leave ``reports/``."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or len(value) > MAX_NAME_LENGTH:
        raise ConfigError(
            f"{where}: key 'name': expected at most {MAX_NAME_LENGTH} letters, digits, '.', '_' or '-', "
            f"not starting with '.', got {describe(value)}"
        )
    return value


def _seeds(value: Any, where: str, key: str) -> list[int]:
    seeds = _int_list(value, where, key, minimum=0, maximum=MAX_SEED)
    _unique(seeds, where, key, "seed")
    return seeds


def _unique(values: list[Any], where: str, key: str, what: str) -> None:
    """Refuse an entry listed twice (it would run everything twice)."""
    seen = set()
    for value in values:
        if value in seen:
            raise ConfigError(f"{where}: key {key!r}: {what} {quote(value)} is listed twice; list each once")
        seen.add(value)


def _check_keys(data: dict, allowed: tuple[str, ...], where: str, prefix: str) -> None:
    for k in data:
        if k not in allowed:
            raise ConfigError(f"{where}: unknown key {quote(prefix + str(k))}{did_you_mean(k, allowed)}; expected one of {', '.join(allowed)}")


def _list(data: dict, key: str, where: str) -> list:
    value = data[key]
    if not isinstance(value, list):
        raise ConfigError(f"{where}: key {key!r}: expected a list, got {describe(value)}")
    return value


def _str(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: key {key!r}: expected a non-empty string, got {describe(value)}")
    return value


def _int(value: Any, where: str, key: str, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum and value > maximum):
        bound = f">= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
        raise ConfigError(f"{where}: key {key!r}: expected an integer {bound}, got {describe(value)}")
    return value


def _int_list(value: Any, where: str, key: str, *, minimum: int, maximum: int | None = None) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: key {key!r}: expected a non-empty list of integers, got {describe(value)}")
    return [_int(v, where, key, minimum=minimum, maximum=maximum) for v in value]

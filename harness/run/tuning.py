"""Hyper-parameter search for every model of a suite (``tune:``).

A suite model entry with a ``tune`` section is searched with Optuna instead
of being run with fixed parameters::

    models:
      - {name: vsknn, tune: default}          # the model's default space
      - name: srgnn
        params: {epochs: 4}
        tune:
          space:
            lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
            step: {type: int, low: 1, high: 3}
            edge_weight: {type: categorical, choices: [binary, count]}
          trials: 20              # budget: finished trials ...
          seconds: 1800           # ... and/or wall time (whichever comes first)
          sampler: tpe            # tpe or random
          seed: 0                 # the sampler's seed
          metric: MRR@20          # objective on the validation split
          pruner: median          # none, median or halving (epoch-trained models)
    tune: {trials: 30}            # suite-wide defaults of every tune section

The protocol of every trial (see :func:`run_study`)::

    trial n:  params ~ sampler(history)            (ask)
              fit on train_tr, score valid         (a stage "tune" run, label "<label>[trial=n]")
              objective = run.metrics[metric]      (tell; failed run: FAIL, pruned: PRUNED)
    finals:   best trial's params, fit on train, score test, once per seed
              (the runner's selection mechanism; recorded in OUT/plan.json)

The test split is never read while tuning: trials are stage-``tune`` runs,
which see the dataset's validation view only. The study lives in
``OUT/tuning/<dataset>-<label>.journal`` (Optuna's journal file storage,
which several processes may append to at once); a search stopped at any
point continues with the same history on the next ``sessionbench run``.
Optuna is imported only when a suite tunes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError, SessionbenchError, describe, did_you_mean, quote
from harness.limits import MAX_SEED
from harness.yamlfile import finite_float, numeric_string

if TYPE_CHECKING:  # pragma: no cover - typing only
    from harness.run.runner import RunSpec
    from harness.run.suites import ModelEntry, Suite

log = logging.getLogger(__name__)

TUNE_KEYS = ("space", "trials", "seconds", "sampler", "seed", "metric", "pruner")
PARAM_KEYS = ("type", "low", "high", "log", "step", "choices", "when")
SAMPLERS = ("tpe", "random")
PRUNERS = ("none", "median", "halving")
DEFAULT_TRIALS = 20
TUNING_DIR = "tuning"

# --------------------------------------------------------------------------- #
# default search spaces
# --------------------------------------------------------------------------- #

#: Default search spaces of the built-in models (``tune: default``). The
#: sources of the ranges are listed per model in docs/tuning.md.
DEFAULT_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "spop": {"tiebreak": {"type": "float", "low": 0.0, "high": 1.0}},
    "markov": {"pruning": {"type": "categorical", "choices": [0, 10, 20, 50]}},
    "ar": {"pruning": {"type": "categorical", "choices": [0, 10, 20, 50]}},
    "sr": {
        "steps": {"type": "int", "low": 1, "high": 20},
        "weighting": {"type": "categorical", "choices": ["div", "linear", "quadratic", "log", "same"]},
        "pruning": {"type": "categorical", "choices": [0, 10, 20, 50]},
    },
    "itemknn": {
        "n_sims": {"type": "categorical", "choices": [50, 100, 200, 500]},
        "regularisation": {"type": "categorical", "choices": [0.0, 10.0, 20.0, 50.0, 100.0]},
        "alpha": {"type": "float", "low": 0.25, "high": 0.75, "step": 0.05},
    },
    "sknn": {
        "k": {"type": "categorical", "choices": [50, 100, 500, 1000, 1500]},
        "sample_size": {"type": "categorical", "choices": [500, 1000, 2500, 5000, 10000]},
        "similarity": {"type": "categorical", "choices": ["cosine", "jaccard"]},
    },
    "vsknn": {
        "k": {"type": "categorical", "choices": [50, 100, 500, 1000, 1500]},
        "sample_size": {"type": "categorical", "choices": [500, 1000, 2500, 5000, 10000]},
        "weighting": {"type": "categorical", "choices": ["same", "div", "linear", "quadratic", "log"]},
        "weighting_score": {"type": "categorical", "choices": ["same", "div", "linear", "quadratic", "log"]},
        "idf_weighting": {"type": "categorical", "choices": [0.0, 1.0, 2.0, 5.0, 10.0]},
    },
    "stan": {
        "k": {"type": "categorical", "choices": [100, 200, 500, 1000, 1500, 2000]},
        "sample_size": {"type": "categorical", "choices": [1000, 2500, 5000, 10000]},
        "lambda_spw": {"type": "float", "low": 1.0e-5, "high": 10.0, "log": True},
        "lambda_snh": {"type": "float", "low": 2.5, "high": 100.0, "log": True},
        "lambda_inh": {"type": "float", "low": 1.0e-5, "high": 10.0, "log": True},
    },
    "vstan": {
        "k": {"type": "categorical", "choices": [100, 200, 500, 1000, 1500, 2000]},
        "sample_size": {"type": "categorical", "choices": [1000, 2500, 5000, 10000]},
        "lambda_spw": {"type": "float", "low": 1.0e-5, "high": 10.0, "log": True},
        "lambda_snh": {"type": "float", "low": 2.5, "high": 100.0, "log": True},
        "lambda_inh": {"type": "float", "low": 1.0e-5, "high": 10.0, "log": True},
        "lambda_ipw": {"type": "float", "low": 1.0e-5, "high": 10.0, "log": True},
        "lambda_idf": {"type": "categorical", "choices": [0.0, 1.0, 2.0, 5.0, 10.0]},
    },
    "gru4rec": {
        "loss": {"type": "categorical", "choices": ["cross-entropy", "bpr-max", "top1-max"]},
        "constrained_embedding": {"type": "categorical", "choices": [True, False]},
        "dropout_hidden": {"type": "float", "low": 0.0, "high": 0.9, "step": 0.1},
        "dropout_embed": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.05},
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
        "momentum": {"type": "float", "low": 0.0, "high": 0.9, "step": 0.1},
        "optimizer": {"type": "categorical", "choices": ["adagrad"]},
        "batch_size": {"type": "categorical", "choices": [32, 64, 128, 256]},
        "bpreg": {"type": "float", "low": 0.0, "high": 2.0, "step": 0.05, "when": {"loss": "bpr-max"}},
        "elu_param": {"type": "categorical", "choices": [0.0, 0.5, 1.0], "when": {"loss": ["bpr-max", "top1-max"]}},
    },
    "narm": {
        "embedding_size": {"type": "categorical", "choices": [50, 100]},
        "hidden_size": {"type": "categorical", "choices": [50, 100]},
        "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
        "dropout_embed": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.05},
        "dropout_context": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.05},
    },
    "stamp": {
        "embedding_size": {"type": "categorical", "choices": [50, 100, 128]},
        "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
        "batch_size": {"type": "categorical", "choices": [128, 256, 512]},
    },
    "sasrec": {
        "hidden_size": {"type": "categorical", "choices": [32, 50, 64, 128]},
        "n_blocks": {"type": "int", "low": 1, "high": 3},
        "n_heads": {"type": "categorical", "choices": [1, 2]},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
        "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
    },
    "bprmf": {
        "factors": {"type": "categorical", "choices": [32, 64, 100, 128]},
        "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
        "l2": {"type": "float", "low": 1.0e-7, "high": 1.0e-3, "log": True},
        "batch_size": {"type": "categorical", "choices": [256, 512, 1024]},
    },
    "fpmc": {
        "factors": {"type": "categorical", "choices": [32, 64, 100, 128]},
        "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
        "l2": {"type": "float", "low": 1.0e-7, "high": 1.0e-3, "log": True},
        "batch_size": {"type": "categorical", "choices": [256, 512, 1024]},
    },
    "srgnn": {
        "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
        "step": {"type": "int", "low": 1, "high": 3},
        "l2": {"type": "float", "low": 1.0e-6, "high": 1.0e-3, "log": True},
        "hidden_size": {"type": "categorical", "choices": [64, 100, 128]},
        "batch_size": {"type": "categorical", "choices": [50, 100, 200]},
    },
}


# --------------------------------------------------------------------------- #
# parsing
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class SearchParam:
    """One dimension of a search space.

    ``kind`` is ``int``, ``float`` or ``categorical``; numbers range over
    ``[low, high]`` (log-uniform with ``log``, on a grid of ``step``);
    ``when`` maps other parameters of the space to the values (a tuple)
    under which this one is searched; otherwise it keeps its fixed value.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The YAML/JSON form (what a suite writes)."""
        out: dict[str, Any] = {"type": self.kind}
        if self.kind == "categorical":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high)
            if self.log:
                out["log"] = True
            if self.step is not None:
                out["step"] = self.step
        if self.when:
            out["when"] = {k: list(v) for k, v in self.when}
        return out


@dataclass(frozen=True)
class TuneConfig:
    """A model's validated ``tune`` section (see the module docstring)."""

    space: tuple[SearchParam, ...]
    trials: int | None = DEFAULT_TRIALS
    seconds: float | None = None
    sampler: str = "tpe"
    seed: int = 0
    metric: str = "MRR@20"
    pruner: str = "none"
    maximize: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The resolved section as JSON (``plan.json``, study identity)."""
        return {"space": {p.name: p.to_dict() for p in self.space}, "trials": self.trials, "seconds": self.seconds,
                "sampler": self.sampler, "seed": self.seed, "metric": self.metric, "pruner": self.pruner,
                "direction": "maximize" if self.maximize else "minimize"}  # fmt: skip


def parse_tune(value: Any, defaults: Any, model_cls: type, model_name: str, ks: tuple[int, ...],
               where: str, key: str) -> TuneConfig | None:  # fmt: skip
    """Validate a model entry's ``tune`` value (None, ``default`` or a
    mapping) merged over the suite's ``tune`` defaults (a mapping without
    ``space``). Errors name ``where`` and the key."""
    if value is None:
        return None
    base = _mapping(defaults, where, "tune") if defaults is not None else {}
    if "space" in base:
        raise ConfigError(f"{where}: key 'tune.space': a search space belongs to a model entry, not the suite")
    if value == "default":
        value = {}
    section = {**base, **_mapping(value, where, key)}
    _check(section, TUNE_KEYS, where, key)
    space_value = section.get("space", "default")
    if space_value == "default":
        if model_name not in DEFAULT_SPACES:
            known = ", ".join(sorted(DEFAULT_SPACES))
            raise ConfigError(f"{where}: key {key}.space: model {model_name!r} has no default search space "
                              f"(models with one: {known}); give a space")  # fmt: skip
        space_value = DEFAULT_SPACES[model_name]
    space = _space(space_value, model_cls, where, f"{key}.space")
    trials = section.get("trials", DEFAULT_TRIALS if section.get("seconds") is None else None)
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise ConfigError(f"{where}: key {key}.trials: expected an integer >= 1, got {trials!r}")
    given = section.get("seconds")
    seconds = None if given is None else finite_float(given)
    if given is not None and not (seconds or 0) > 0:
        raise ConfigError(f"{where}: key {key}.seconds: expected a positive number of seconds, "
                          f"got {quote(numeric_string(given))}")
    sampler = _choice(section.get("sampler", "tpe"), SAMPLERS, where, f"{key}.sampler")
    pruner = _choice(section.get("pruner", "none"), PRUNERS, where, f"{key}.pruner")
    if pruner != "none" and not getattr(model_cls, "trains_by_epoch", False):
        raise ConfigError(f"{where}: key {key}.pruner: {model_name!r} does not train by epoch; use pruner: none")
    seed = section.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{where}: key {key}.seed: expected an integer >= 0 and <= {MAX_SEED}, got {quote(seed)}")
    metric, maximize = _objective(section.get("metric", "MRR@20"), ks, where, f"{key}.metric")
    return TuneConfig(space=space, trials=trials, seconds=seconds,
                      sampler=sampler, seed=seed, metric=metric, pruner=pruner, maximize=maximize)  # fmt: skip


def _objective(metric: Any, ks: tuple[int, ...], where: str, key: str) -> tuple[str, bool]:
    """The objective ``NAME@K`` and whether higher is better. A rank metric
    may take any K from 1 to :data:`~harness.limits.MAX_K`, in the suite's
    ``ks`` or not: a trial's value is computed from its stored ranks
    (:meth:`harness.run.store.RunRecord.metric`); Coverage needs K within the
    stored top lists (:func:`harness.evaluation.evaluate.stored_top_width` of ``ks``).
    The runner refuses a K above the dataset's number of items, as for ``ks``."""
    from harness.evaluation.evaluate import stored_top_width
    from harness.limits import MAX_K
    from harness.evaluation.metrics import parse_metric_key

    if not isinstance(metric, str):
        raise ConfigError(f"{where}: key {key}: expected a metric such as MRR@20, got {metric!r}")
    try:
        spec, k = parse_metric_key(metric)
    except (SessionbenchError, ValueError) as err:  # ValueError: not NAME@K
        raise ConfigError(f"{where}: key {key}: {err}") from None
    if not 1 <= k <= MAX_K:
        raise ConfigError(f"{where}: key {key}: expected a cut-off K >= 1 and <= {MAX_K}, got {quote(metric)}")
    if spec.higher_is_better is None:
        raise ConfigError(f"{where}: key {key}: {spec.name} is neither better high nor low; choose another metric")
    if spec.kind != "rank" and k > stored_top_width(ks):
        raise ConfigError(f"{where}: key {key}: {spec.name}@{k} needs top lists of {k} items, but the runs store "
                          f"{stored_top_width(ks)}; add {k} to the suite's ks {list(ks)}")
    return f"{spec.name}@{k}", bool(spec.higher_is_better)


def _space(value: Any, model_cls: type, where: str, key: str) -> tuple[SearchParam, ...]:
    from harness.models.registry import coerce_params

    space = _mapping(value, where, key)
    if not space:
        raise ConfigError(f"{where}: key {key}: expected a non-empty mapping of hyper-parameter -> range")
    known = model_cls.hyperparameters()
    params = []
    for name, spec in space.items():
        here = f"{key}.{name}"
        if name not in known:
            raise ConfigError(f"{where}: key {here}: {model_cls.__name__} has no hyper-parameter {name!r}"
                              f"{did_you_mean(name, known)}; "
                              f"expected one of {', '.join(known)}")  # fmt: skip
        spec = _mapping(spec, where, here)
        _check(spec, PARAM_KEYS, where, here)
        kind = _choice(spec.get("type"), ("int", "float", "categorical"), where, f"{here}.type")
        default = known[name]
        if kind == "float" and isinstance(default, int) and not isinstance(default, bool):
            # a float trial value would only be refused when the trial runs
            raise ConfigError(f"{where}: key {here}.type: {name} takes an integer (its default is {default!r}), "
                              "so a float range cannot be searched; use type: int")
        when = _when(spec.get("when"), space, name, where, f"{here}.when")
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices or any(isinstance(c, (list, dict)) for c in choices):
                raise ConfigError(f"{where}: key {here}.choices: expected a non-empty list of scalars, got {choices!r}")
            choices = [coerce_params(model_cls, {name: c}, source=f"{where}: key {here}.choices")[name] for c in choices]
            repeated = next((c for i, c in enumerate(choices) if c in choices[:i]), None)
            if repeated is not None:  # a repeated choice would be sampled twice as often, silently
                raise ConfigError(f"{where}: key {here}.choices: {quote(repeated)} is listed twice (as the model "
                                  f"takes them: {quote(choices)}); expected distinct choices")
            params.append(SearchParam(name, kind, choices=tuple(choices), when=when))
            continue
        low, high = (_number(spec.get(b), kind, where, f"{here}.{b}") for b in ("low", "high"))
        log_scale = spec.get("log", False)
        if not isinstance(log_scale, bool):
            raise ConfigError(f"{where}: key {here}.log: expected true or false, got {log_scale!r}")
        step = None if spec.get("step") is None else _number(spec["step"], kind, where, f"{here}.step")
        if low > high or (log_scale and low <= 0) or (step is not None and (step <= 0 or log_scale)):
            raise ConfigError(f"{where}: key {here}: expected low <= high, low > 0 with log, and a positive "
                              f"step without log; got {spec!r}")  # fmt: skip
        if step is not None and high > low and step > high - low:  # only low could ever be drawn
            raise ConfigError(f"{where}: key {here}.step: {step:g} is larger than high - low = {high - low:g}, so "
                              "the search would only try low; expected a step of at most high - low")
        _check_bounds(model_cls, name, low, high, exact=kind == "int" or step is not None, where=where, key=here)
        params.append(SearchParam(name, kind, low, high, log_scale, step, when=when))
    return tuple(params)


def _check_bounds(model_cls: type, name: str, low: float, high: float, *, exact: bool, where: str, key: str) -> None:
    """Both bounds must be values the model takes (its declared range), so that
    no trial fails on a value outside it. A continuous range may end on an
    open end of the model's range (``tiebreak`` in [0, 1): ``high: 1.0``),
    which sampling practically never returns; an integer or stepped range,
    which samples its bounds, may not."""
    from harness.models.registry import coerce_params, hyperparameter_ranges

    declared = hyperparameter_ranges(model_cls).get(name)
    for bound, number in (("low", low), ("high", high)):
        coerce_params(model_cls, {name: number}, source=f"{where}: key {key}.{bound}", check_range=exact)
        if not exact and declared is not None and number not in replace(declared, low_open=False, high_open=False):
            raise ConfigError(f"{where}: key {key}.{bound}: {name}: expected a number {declared}, got {quote(number)}")


def _when(value: Any, space: dict, name: str, where: str, key: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if value is None:
        return ()
    value = _mapping(value, where, key)
    names = list(space)
    out = []
    for other, allowed in value.items():
        if other not in space or names.index(other) >= names.index(name):
            raise ConfigError(f"{where}: key {key}.{other}: a condition must name a parameter listed earlier "
                              f"in the space (listed: {', '.join(names[:names.index(name)]) or 'none'})")  # fmt: skip
        allowed = tuple(allowed) if isinstance(allowed, list) else (allowed,)
        out.append((str(other), allowed))
    return tuple(out)


def _number(value: Any, kind: str, where: str, key: str) -> float:
    """A bound or step: an integer for ``int``, any finite number for ``float``.

    YAML 1.1 reads ``1e-4`` (no dot) as a string, so a float bound may be a
    numeric string, as a float hyper-parameter may (see
    :func:`harness.models.registry.coerce_params`)."""
    if kind == "float":
        value = numeric_string(value)
    ok = isinstance(value, int) if kind == "int" else isinstance(value, (int, float))
    expected = "an integer" if kind == "int" else "a number"
    if isinstance(value, bool) or not ok:
        raise ConfigError(f"{where}: key {key}: expected {expected}, got {describe(value)}")
    if abs(value) > 2**53 or not math.isfinite(value):  # beyond 2**53 no float is exact (nor a sampler's range)
        raise ConfigError(f"{where}: key {key}: expected {expected} between -2**53 and 2**53, got {quote(value)}")
    return value


def _mapping(value: Any, where: str, key: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: key {key}: expected a mapping or 'default', got {quote(value)}")
    return value


def _choice(value: Any, allowed: tuple[str, ...], where: str, key: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{where}: key {key}: expected one of {', '.join(allowed)}, got {quote(value)}")
    return value


def _check(data: dict, allowed: tuple[str, ...], where: str, key: str) -> None:
    for k in data:
        if k not in allowed:
            raise ConfigError(f"{where}: unknown key {quote(f'{key}.{k}')}{did_you_mean(k, allowed)}; "
                              f"expected one of {', '.join(allowed)}")


# --------------------------------------------------------------------------- #
# sampling
# --------------------------------------------------------------------------- #


def suggest(trial: Any, space: tuple[SearchParam, ...]) -> dict[str, Any]:
    """The parameters of an Optuna ``trial`` over ``space``, in order; a
    parameter whose ``when`` does not hold is left out (it keeps the
    model entry's value)."""
    chosen: dict[str, Any] = {}
    for p in space:
        if any(chosen.get(other) not in allowed for other, allowed in p.when):
            continue
        if p.kind == "categorical":
            chosen[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.kind == "int":
            chosen[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            chosen[p.name] = trial.suggest_float(p.name, float(p.low), float(p.high), step=p.step, log=p.log)
    return chosen


def make_sampler(config: TuneConfig, start: int = 0) -> Any:
    """The seeded Optuna sampler of a tune section (TPE, which by default
    treats trials still running as bad, so trials asked together explore
    different points; or uniform random). ``start`` is the number of trials
    the study already holds: a resumed search seeds with ``seed + start``,
    so it does not re-draw the points its first trials drew."""
    import optuna

    seed = (config.seed + start) % (MAX_SEED + 1)  # the samplers' seeds are 32-bit
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(name: str) -> Any:
    """An Optuna pruner by name: ``median`` (stop a trial whose epoch value
    is below the median of earlier trials at that epoch, after 3 trials),
    ``halving`` (asynchronous successive halving) or ``none``."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def journal_storage(path: str | Path) -> Any:
    """Optuna's journal storage over the file ``path`` (appends guarded by a
    lock file, so parallel trial processes can report to one study)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


# --------------------------------------------------------------------------- #
# the trial worker: per-epoch reporting and pruning
# --------------------------------------------------------------------------- #


class TrialPruned(SessionbenchError):
    """Raised inside a trial's ``fit`` when the pruner stops it; the trial's
    run is stored as failed with this message and the trial as pruned."""


class EpochReporter:
    """The epoch observer of a trial (see :func:`harness.models.training.observe_epochs`):
    after each epoch it scores the model on the validation split (the
    validation view's test split), reports the objective to the study and
    raises :class:`TrialPruned` when the pruner says so.

    ``ref`` holds the study's ``storage`` (journal path), ``study``,
    ``trial_id``, ``metric`` and ``pruner``; ``spec`` is the run's dict.
    """

    def __init__(self, ref: dict[str, Any], spec: dict[str, Any]) -> None:
        self.ref, self.spec = ref, spec
        self._trial = None
        self._data = None

    def _open(self) -> None:
        import optuna

        from harness.data.specs import load_dataset

        study = optuna.load_study(study_name=self.ref["study"], storage=journal_storage(self.ref["storage"]),
                                  pruner=make_pruner(self.ref["pruner"]))  # fmt: skip
        self._trial = optuna.trial.Trial(study, self.ref["trial_id"])
        self._data = load_dataset(self.spec["dataset"], data_dir=self.spec["data_dir"]).validation_view()

    def __call__(self, model: Any, epoch: int, phase: str) -> None:
        from harness.evaluation.evaluate import evaluate
        from harness.evaluation.metrics import parse_metric_key

        if self._trial is None:
            self._open()
        _, k = parse_metric_key(self.ref["metric"])
        value = evaluate(model, self._data, ks=(k,), batch_size=self.spec["batch_size"],
                         exclude_seen=self.spec["exclude_seen"]).metrics()[self.ref["metric"]]  # fmt: skip
        self._trial.report(value, epoch)
        last = epoch >= getattr(model, "epochs", epoch + 1)  # nothing left to save: the trial completes
        if not last and self._trial.should_prune():
            self._trial.set_user_attr("pruned_epoch", epoch)
            raise TrialPruned(f"pruned by the {self.ref['pruner']} pruner after epoch {epoch} "
                              f"(valid {self.ref['metric']} {value:.4f})")  # fmt: skip


def trial_worker(spec_dict: dict[str, Any], stage_dir: str, progress: bool, parent_pid: int,
                 ref: dict[str, Any]) -> None:  # fmt: skip
    """A trial's run in its worker process: the runner's worker, with the
    study's epoch reporter watching epoch-trained models."""
    from harness.run.runner import _worker
    from harness.models.training import observe_epochs

    if ref.get("pruner", "none") == "none":
        _worker(spec_dict, stage_dir, progress, parent_pid)
        return
    with observe_epochs(EpochReporter(ref, spec_dict)):
        _worker(spec_dict, stage_dir, progress, parent_pid)


# --------------------------------------------------------------------------- #
# a study
# --------------------------------------------------------------------------- #


def study_path(out: str | Path, dataset_name: str, label: str) -> Path:
    """Where the study of a (dataset, model label) lives: ``OUT/tuning/<dataset>-<label>.journal``."""
    return Path(out) / TUNING_DIR / f"{dataset_name}-{label}.journal"


def trial_label(label: str, number: int) -> str:
    """The run label of trial ``number`` (grid-point style: reports show
    trials like grid points, and ``--only LABEL`` of the tuned model takes
    its trials)."""
    return f"{label}[trial={number:04d}]"


@dataclass
class StudyOutcome:
    """What :func:`run_study` left: every trial run's spec (complete,
    failed or pruned) and the counts of this call."""

    specs: list[Any] = field(default_factory=list)
    asked: int = 0
    restarted: int = 0


def trial_params(model: ModelEntry, sampled: Mapping[str, Any], trains_by_epoch: bool) -> dict[str, Any]:
    """A trial's parameters: the entry's fixed ``params`` under the sampled
    ones, under :func:`harness.run.suites.fixed_epochs` (epoch-trained models
    train exactly ``epochs`` epochs)."""
    from harness.run.suites import fixed_epochs

    return fixed_epochs({**model.params, **sampled}, trains_by_epoch)


def run_study(
    suite: Suite,
    model: ModelEntry,
    entry: Any,
    dataset: tuple[str, str],
    out: Path,
    *,
    jobs: int,
    execute: Callable[[list[RunSpec], Callable[..., None], Callable[[RunSpec], tuple]], None],
    make_spec: Callable[[dict[str, Any], int], RunSpec],
    echo: Callable[[str], None] = lambda line: None,
) -> StudyOutcome:
    """Search ``model``'s space on one dataset until its budget is spent.

    ``dataset`` is (name, content key); ``make_spec(params, number)`` builds
    the stage-``tune`` run of a trial; ``execute(specs, worker, extra)``
    runs specs through the runner (``worker(spec_dict, stage, progress,
    parent_pid, *extra(spec))`` in each run's process). Trials are asked
    ``jobs`` at a time, run in parallel, then told their run's validation
    objective. Trials left running by a killed search are marked failed
    and their parameters asked again first (user attribute ``retry_of``).
    Returns every trial run's spec, for selection.
    """
    from harness.run.suites import trains_by_epoch
    from harness.run.store import load_run, run_path

    try:
        import optuna
    except ImportError:
        raise ConfigError("suites with 'tune' sections need Optuna: pip install 'sessionbench[tune]'") from None
    config: TuneConfig = model.tune
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name, key = dataset
    path = study_path(out, name, model.label)
    storage = journal_storage(path)
    study_name = study_identity(suite, model, dataset)
    study = optuna.create_study(study_name=study_name, storage=storage, sampler=make_sampler(config),
                                pruner=make_pruner(config.pruner), load_if_exists=True,
                                direction="maximize" if config.maximize else "minimize")  # fmt: skip
    if study.get_trials(deepcopy=False):  # resumed: a sampler seeded past the trials it holds
        study = optuna.load_study(study_name=study_name, storage=storage, pruner=make_pruner(config.pruner),
                                  sampler=make_sampler(config, len(study.get_trials(deepcopy=False))))  # fmt: skip
    outcome = StudyOutcome()
    outcome.restarted = _restart_interrupted(study)
    if outcome.restarted:
        echo(f"tune   {name}/{model.label}: {outcome.restarted} trial(s) cut off by an earlier stop marked "
             "failed; their parameters are tried again")  # fmt: skip
    by_epoch = trains_by_epoch(model.name)
    specs = _asked_trial_specs(study, model, make_spec)
    # complete trials' runs are checked (a broken or missing one is run again: a run is a pure
    # function of its spec); failed and pruned ones stay as they are
    complete = [specs[t.number] for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if t.number in specs]  # fmt: skip
    if complete:
        execute(complete, trial_worker, lambda s: ({**_ref(path, study_name, config), "trial_id": None,
                                                    "pruner": "none"},))  # fmt: skip
    spent = float(study.user_attrs.get("seconds_spent", 0.0))
    while True:
        done = _finished(study)
        left = None if config.trials is None else config.trials - done
        if (left is not None and left <= 0) or (config.seconds is not None and spent >= config.seconds):
            break
        start = time.perf_counter()
        batch = [study.ask() for _ in range(min(jobs, left) if left is not None else jobs)]
        round_specs = []
        for trial in batch:
            spec = make_spec(trial_params(model, suggest(trial, config.space), by_epoch), trial.number)
            trial.set_user_attr("run_id", spec.run_id)
            round_specs.append((trial, spec))
        refs = {spec.run_id: {**_ref(path, study_name, config), "trial_id": trial._trial_id}
                for trial, spec in round_specs}  # fmt: skip
        execute([s for _, s in round_specs], trial_worker, lambda s: (refs[s.run_id],))
        for trial, spec in round_specs:
            record = load_run(run_path(out, spec.run_id)) if run_path(out, spec.run_id).is_dir() else None
            _tell(study, trial, record, config.metric)
            specs[trial.number] = spec
        outcome.asked += len(batch)
        spent += time.perf_counter() - start
        study.set_user_attr("seconds_spent", spent)
    # a trial cut off by a stop stored no run; its retry stands for it
    retried = {t.user_attrs.get("retry_of") for t in study.get_trials(deepcopy=False)}
    outcome.specs = [specs[n] for n in sorted(specs) if n not in retried]
    _echo_best(study, model, name, echo)
    return outcome


def _ref(path: Path, study_name: str, config: TuneConfig) -> dict[str, Any]:
    return {"storage": str(path), "study": study_name, "metric": config.metric, "pruner": config.pruner}


def _search_wanted(wanted: Callable[[RunSpec], bool], trial: RunSpec, model: ModelEntry) -> bool:
    """Whether ``--only`` asks for ``model``'s search on this dataset: a
    trial's keys match, or those of one of its finals (``dataset/label/seed``),
    which the search must run before to be chosen."""
    finals = (replace(trial, label=model.label, stage="test", seed=seed) for seed in model.seeds)
    return wanted(trial) or any(wanted(final) for final in finals)


def stored_trial_specs(suite: Suite, model: ModelEntry, dataset: tuple[str, str], out: Path,
                       make_spec: Callable[[dict[str, Any], int], RunSpec]) -> list[RunSpec]:
    """The specs of the trials that ``model``'s study on ``dataset`` has asked
    so far, read from its journal without running anything (none when there
    is no study yet): a search that ``--only`` leaves out keeps them in the
    plan."""
    import optuna

    path = study_path(out, dataset[0], model.label)
    if not path.is_file():
        return []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_identity(suite, model, dataset), storage=journal_storage(path))
    except KeyError:  # the file holds studies of other settings only
        return []
    return list(_asked_trial_specs(study, model, make_spec).values())


def _asked_trial_specs(study: Any, model: ModelEntry,
                       make_spec: Callable[[dict[str, Any], int], RunSpec]) -> dict[int, RunSpec]:
    """Trial number -> run spec of every trial the study has asked and
    given a run (not a waiting one)."""
    import optuna

    from harness.run.suites import trains_by_epoch

    by_epoch = trains_by_epoch(model.name)
    return {t.number: make_spec(trial_params(model, t.params, by_epoch), t.number)
            for t in study.get_trials(deepcopy=False) if t.state != optuna.trial.TrialState.WAITING
            and "run_id" in t.user_attrs}  # fmt: skip


def study_identity(suite: Suite, model: ModelEntry, dataset: tuple[str, str]) -> str:
    """The study's name: label plus a digest of everything a trial's result
    depends on but its parameters (dataset content, model, fixed params,
    space, sampler, seed, objective, pruner, tuning seed, evaluation with
    the stored top-list width, code). A changed suite or code starts a new
    study in the same file; the budget is not part of it (raising ``trials``
    continues the study), nor are the suite's ``ks``: the objective metric
    (with its K) is, and a change of ``ks`` that keeps the top-list width
    (:func:`harness.evaluation.evaluate.stored_top_width`) keeps the trials' runs too."""
    from harness.evaluation.evaluate import stored_top_width
    from harness.run.fingerprint import model_fingerprint
    from harness.run.runner import canonical_json, runtime_versions, sha256_text

    what = {"dataset": list(dataset), "model": model.name, "params": model.params,
            "tune": {k: v for k, v in model.tune.to_dict().items() if k not in ("trials", "seconds")},
            "seed": tuning_seed(model), "top_width": stored_top_width(suite.ks), "batch_size": suite.batch_size,
            "exclude_seen": suite.exclude_seen, "code": model_fingerprint(model.name).digest,
            "runtime": runtime_versions()}  # fmt: skip
    return f"{model.label}-{sha256_text(canonical_json(what))[:12]}"


def tuning_seed(model: ModelEntry) -> int:
    """The seed every trial is fitted with: the entry's first seed (the
    finals then run once per seed)."""
    return model.seeds[0]


def _finished(study: Any) -> int:
    """Trials that count against the budget: finished ones, except failures
    by interruption that were asked again."""
    import optuna

    S = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    return sum(1 for t in trials if t.state in (S.COMPLETE, S.PRUNED, S.FAIL) and t.number not in retried)


def _restart_interrupted(study: Any) -> int:
    """Mark trials still RUNNING (their process was killed with the search;
    the output folder's lock guarantees no live search owns them) as failed
    and enqueue their parameters again; returns how many."""
    import optuna

    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for t in running:
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
    return len(running)


def _tell(study: Any, trial: Any, record: Any, metric: str) -> None:
    import optuna

    S = optuna.trial.TrialState
    if record is not None and record.complete:
        value = record.metric(metric)
        if value is not None and math.isfinite(value):
            study.tell(trial, float(value))
            return
    attrs = study.get_trials(deepcopy=False)[trial.number].user_attrs
    study.tell(trial, state=S.PRUNED if "pruned_epoch" in attrs else S.FAIL)


def _echo_best(study: Any, model: ModelEntry, dataset_name: str, echo: Callable[[str], None]) -> None:
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    n = len(study.get_trials(deepcopy=False))
    if complete:
        best = study.best_trial
        echo(f"tune   {dataset_name}/{model.label}: {n} trial(s), best #{best.number} "
             f"valid {model.tune.metric} {best.value:.4f} with {best.params}")  # fmt: skip
    else:
        echo(f"tune   {dataset_name}/{model.label}: {n} trial(s), none complete")


def trial_history(path: str | Path) -> list[dict[str, Any]]:
    """Every trial of every study in a journal file, as dicts ``{"study",
    "number", "state", "value", "params", "run_id", "intermediate"}``
    (for reports and tests)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = journal_storage(path)
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for t in study.get_trials(deepcopy=False):
            rows.append({"study": summary.study_name, "number": t.number, "state": t.state.name, "value": t.value,
                         "params": dict(t.params), "run_id": t.user_attrs.get("run_id"),
                         "retry_of": t.user_attrs.get("retry_of"),
                         "intermediate": dict(t.intermediate_values)})  # fmt: skip
    return rows


def replace_tune(model: ModelEntry, **changes: Any) -> ModelEntry:
    """``model`` with its tune section changed (tests, tools)."""
    return replace(model, tune=replace(model.tune, **changes))


def run_tuning(
    suite: Suite,
    datasets: dict[str, tuple[str, str]],
    out: Path,
    *,
    jobs: int,
    timeout: dict[str, float] | None,
    wanted: Callable[[RunSpec], bool],
    execute: Callable[[list[RunSpec], Callable[..., None], Callable[[RunSpec], tuple]], None],
    echo: Callable[[str], None] = lambda line: None,
) -> list[RunSpec]:
    """Run the study of every tuned model on every dataset of ``suite``
    (``datasets``: entry name -> (dataset name, content key)); returns the
    specs of every trial run, for the runner's selection of finals. Models
    that ``wanted`` (``--only``) leaves out are not searched."""
    from harness.run.runner import expand

    trials: list[RunSpec] = []
    for entry in suite.datasets:
        for model in suite.models:
            if model.tune is None:
                continue
            one = replace(suite, datasets=(entry,))

            def make_spec(params: dict[str, Any], number: int, model: ModelEntry = model, one: Suite = one) -> RunSpec:
                fixed = replace(model, params=params, grid={}, seeds=(tuning_seed(model),), tune=None)
                (spec,) = expand(replace(one, models=(fixed,)), datasets, stage_of=lambda m: "tune", timeout=timeout)
                return replace(spec, label=trial_label(model.label, number))

            if not _search_wanted(wanted, make_spec(dict(model.params), 0), model):
                # left out by --only: its stored trials stay in the plan (their final too), none is run
                trials.extend(stored_trial_specs(suite, model, datasets[entry.name], out, make_spec))
                continue
            outcome = run_study(suite, model, entry, datasets[entry.name], out, jobs=jobs, execute=execute,
                                make_spec=make_spec, echo=echo)  # fmt: skip
            trials.extend(outcome.specs)
    return trials

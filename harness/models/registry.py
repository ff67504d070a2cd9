"""Finding models by name.

Three ways, in this order of precedence:

1. ``@register("name")`` on a :class:`SessionRecommender` subclass;
2. the entry-point group ``sessionbench.models`` of installed packages: an
   entry point either names a model class (registered under the entry point's
   name) or a module whose ``@register`` decorators run when it is imported
   (this is how sessionbench's own ``baselines`` and ``srgnn`` are found, so
   the harness never imports a model module by name);
3. a ``package.module:ClassName`` string wherever a model name is accepted.

Entry points are loaded lazily, on the first lookup, so importing
``harness`` has no side effects.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
import math
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, ContractError, SessionbenchError, UnknownNameError, did_you_mean, quote
from harness.models.plugin import SessionRecommender
from harness.yamlfile import load_yaml_text

ENTRY_POINT_GROUP = "sessionbench.models"
log = logging.getLogger(__name__)

_REGISTRY: dict[str, type[SessionRecommender]] = {}
_CLASS_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_entry_points_loaded = False


def register(name: str) -> Callable[[type[SessionRecommender]], type[SessionRecommender]]:
    """Class decorator: make a model available under ``name``.

    Refuses a name that is already taken by another class.
    """

    def decorate(cls: type[SessionRecommender]) -> type[SessionRecommender]:
        _add(name, cls, origin=f"@register in {cls.__module__}")
        return cls

    return decorate


def model_name_problem(name: Any) -> str | None:
    """Why ``name`` cannot be a registered model name, or None if it can.

    A name is a non-empty string without ``:`` (which marks a
    ``package.module:ClassName``), ``=`` or a first ``[`` (a plugin's name is
    the name of an entry point, which cannot hold them), and without white
    space or unprintable characters (names are typed on command lines and
    listed in tables).
    """
    if not isinstance(name, str) or not name:
        return "expected a non-empty string"
    if ":" in name or "=" in name:
        return "':' and '=' are not allowed in a model name"
    if not name.isprintable() or any(c.isspace() for c in name):
        return "white space and unprintable characters are not allowed in a model name"
    if name.startswith("["):
        return "a model name cannot start with '['"
    return None


def _add(name: str, cls: Any, *, origin: str) -> None:
    if not (inspect.isclass(cls) and issubclass(cls, SessionRecommender)):
        raise ContractError(f"{origin}: {cls!r} registered as {name!r} is not a SessionRecommender subclass")
    problem = model_name_problem(name)
    if problem is not None:
        raise ContractError(f"{origin}: invalid model name {quote(name)}: {problem}")
    known = _REGISTRY.get(name)
    if known is not None and known is not cls:
        raise ContractError(
            f"{origin}: model name {name!r} is already registered by "
            f"{known.__module__}.{known.__qualname__}; choose another name"
        )
    cls.name = name
    _REGISTRY[name] = cls


#: entry points that could not be registered: name -> why (shown by
#: ``sessionbench models``; using the name raises with this message)
BROKEN_PLUGINS: dict[str, str] = {}


def _load_entry_points() -> None:
    """Import every entry point of the group; a broken one is recorded in
    :data:`BROKEN_PLUGINS` and logged, so that it cannot hide the others."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    # sessionbench's own modules first, so that a plugin cannot take a built-in name
    eps = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                 key=lambda ep: (ep.value.split(":")[0].split(".")[0] not in ("baselines", "srgnn"), ep.name))
    for ep in eps:
        origin = f"plugin entry point {ep.name!r} = {ep.value!r} (group {ENTRY_POINT_GROUP})"
        try:
            obj = ep.load()
            if inspect.isclass(obj):
                _add(ep.name, obj, origin=origin)
        except Exception as err:
            module_name = ep.value.split(":")[0].strip()
            if isinstance(err, ContractError):
                reason = str(err)
            elif _names_a_missing_attribute(ep.value):
                reason = (f"{origin}: module {module_name!r} imports but has no {ep.value.partition(':')[2].strip()!r}; "
                          "if the class was renamed or moved, edit the entry point and reinstall the plugin "
                          "(pip install -e DIR): the installed package metadata keeps the old entry point until then")
            else:
                reason = f"{origin}: {_import_failure(module_name, err)}"
            BROKEN_PLUGINS[ep.name if ep.name not in _REGISTRY else f"{ep.name} ({ep.value})"] = reason
            log.warning("ignoring a broken plugin: %s", reason)


def _names_a_missing_attribute(value: str) -> bool:
    """Whether entry point ``module:attr`` fails only because its module,
    which imports, lacks the attribute (stale metadata after a rename)."""
    module_name, _, attr = (part.strip() for part in value.partition(":"))
    if not attr:
        return False
    try:
        obj = importlib.import_module(module_name)
    except Exception:
        return False
    for part in attr.split("."):
        if not hasattr(obj, part):
            return True
        obj = getattr(obj, part)
    return False


def available_models() -> dict[str, type[SessionRecommender]]:
    """All registered models, by name (sorted)."""
    _load_entry_points()
    return dict(sorted(_REGISTRY.items()))


def _import_class(spec: str) -> type[SessionRecommender]:
    module_name, _, attr = spec.partition(":")
    # Allow the user's own module in the current directory, as `python -m` does.
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and (module_name == err.name or module_name.startswith(err.name + ".")):
            # the module itself (or its package) is missing, not one of its imports
            raise UnknownNameError(
                f"model {spec!r}: cannot import module {module_name!r} ({err}); "
                "is it on the Python path or in the current directory?"
            ) from None
        raise ContractError(f"model {spec!r}: {_import_failure(module_name, err)}") from None
    except Exception as err:  # a syntax error or any exception raised while the module runs
        raise ContractError(f"model {spec!r}: {_import_failure(module_name, err)}") from None
    cls = module
    for part in attr.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            raise UnknownNameError(f"model {spec!r}: module {module_name!r} has no attribute {attr!r}")
    if not (inspect.isclass(cls) and issubclass(cls, SessionRecommender)):
        raise ContractError(f"model {spec!r} is not a subclass of harness.models.plugin.SessionRecommender")
    return cls


#: sessionbench 0.1's flat modules and the sub-packages 0.2 moved them to, so
#: that a plugin written for 0.1 is told where its imports went.
MOVED_MODULES: dict[str, str] = {
    f"harness.{module}": f"harness.{package}.{module}"
    for package, modules in {
        "data": ("cache", "dataset", "fetch", "fullsize", "preprocess", "readers", "specs", "synthetic"),
        "models": ("neural", "plugin", "plugin_template", "registry", "testing", "training"),
        "evaluation": ("evaluate", "metrics", "retrieval", "timing"),
        "run": ("executors", "fingerprint", "lock", "runner", "store", "suites", "tuning", "watchdog"),
    }.items()
    for module in modules
}


def _moved_imports(err: ModuleNotFoundError) -> tuple[str | None, dict[str, str]]:
    """The file whose import of a moved module failed (the innermost frame
    outside the import machinery) and every moved module it names, old ->
    new, so that one error lists them all instead of one per attempt."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not f.filename.startswith("<")]
    file = frames[-1].filename if frames else None
    try:
        source = Path(file).read_text(encoding="utf-8", errors="replace") if file else ""
    except OSError:
        source = ""
    named = {f"harness.{m}" for m in re.findall(r"\bharness\.(\w+)", source)}
    for names in re.findall(r"^\s*from\s+harness\s+import\s+([\w\s,()]+)", source, flags=re.M):
        named |= {f"harness.{n}" for n in re.findall(r"\w+", names)}
    moved = {old: MOVED_MODULES[old] for old in sorted(named | {err.name}) if old in MOVED_MODULES}
    return file, moved


def _import_failure(module_name: str, err: BaseException) -> str:
    """One line: where importing ``module_name`` failed, and how to find out more."""
    if isinstance(err, ModuleNotFoundError) and err.name in MOVED_MODULES:
        file, moved = _moved_imports(err)
        where = f" ({file})" if file else ""
        changes = ", ".join(f"{old} -> {new}" for old, new in moved.items())
        return (f"importing module {module_name!r} failed: it imports modules that sessionbench 0.2 moved into "
                f"sub-packages{where}; change {'these imports' if len(moved) > 1 else 'the import'}: {changes}")
    if isinstance(err, SyntaxError):
        where = f"{err.filename}, line {err.lineno}" if err.filename else "its source"
        what = f"syntax error in {where}: {err.msg}"
    else:
        frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
        where = f" ({frame.filename}, line {frame.lineno})" if frame else ""
        what = f"{type(err).__name__}: {' '.join(str(err).split())}{where}"
    return (f"importing module {module_name!r} failed with {what}; fix the module "
            f"(python -c 'import {module_name}' shows the full traceback)")


def class_path(cls: type) -> str:
    """``module:Qualname``: how a run records the class a model name resolved to."""
    return f"{cls.__module__}:{cls.__qualname__}"


def get_model_class(name: str) -> type[SessionRecommender]:
    """The model class for a registered name or a ``package.module:ClassName``."""
    if ":" in name:
        if not _CLASS_PATH.fullmatch(name):
            raise UnknownNameError(
                f"model {quote(name)}: expected a registered name or package.module:ClassName "
                "(Python identifiers separated by dots)"
            )
        return _import_class(name)
    models = available_models()
    if name not in models and name in BROKEN_PLUGINS:
        raise ContractError(BROKEN_PLUGINS[name])
    if name not in models:
        known = ", ".join(models) or "none"
        raise UnknownNameError(f"unknown model {quote(name)}{did_you_mean(name, models)}; registered models: {known} (or use package.module:ClassName)")
    return models[name]


@dataclass(frozen=True)
class Range:
    """The allowed interval of a numeric hyper-parameter.

    A model declares them in the class attribute ``hyperparameter_ranges``
    (name -> Range); :func:`coerce_params` checks every value given on the
    command line or in a suite against them, so that ``epochs: -1`` stops a
    suite when it is loaded rather than when the run starts::

        hyperparameter_ranges = {"epochs": Range(1), "dropout": Range(0, 1, high_open=True)}

    Attributes:
        low, high: the bounds (``None``: unbounded on that side).
        low_open, high_open: exclude the bound itself.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return True  # the type check of _coerce reports wrong types
        if isinstance(value, float) and math.isnan(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or (value < self.high or (not self.high_open and value == self.high))

    def expected(self) -> str:
        """What a value out of range should have been, for error messages."""
        return f"a number {self}"

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high}"
        return f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"


@dataclass(frozen=True)
class Choice:
    """The allowed values of a hyper-parameter that names one of a few
    options (a loss, a similarity), declared in ``hyperparameter_ranges``
    beside the :class:`Range` of numeric ones, so that a typo in a suite, a
    tuning space's ``choices`` or ``--param`` stops when it is loaded::

        hyperparameter_ranges = {"loss": Choice(("cross-entropy", "bpr-max"))}

    Attributes:
        values: the allowed values.
    """

    values: tuple[str, ...]

    def __contains__(self, value: Any) -> bool:
        return not isinstance(value, str) or value in self.values  # the type check of _coerce reports wrong types

    def expected(self) -> str:
        """What a value not allowed should have been, for error messages."""
        return f"one of {', '.join(map(repr, self.values))}"


def hyperparameter_ranges(cls: type[SessionRecommender]) -> dict[str, Range | Choice]:
    """The ranges ``cls`` and its base classes declare (a subclass's entry
    wins), for the hyper-parameters ``cls`` takes: a base class may declare
    one that only some of its subclasses have (the neural base's
    ``softmax_precision``)."""
    ranges: dict[str, Range | Choice] = {}
    for klass in reversed(cls.__mro__):
        declared = vars(klass).get("hyperparameter_ranges", {})
        if not isinstance(declared, Mapping) or not all(isinstance(v, (Range, Choice)) for v in declared.values()):
            raise ContractError(f"{klass.__module__}.{klass.__qualname__}: hyperparameter_ranges must map "
                                "hyper-parameter names to harness.models.registry.Range or Choice, e.g. "
                                f"{{'alpha': Range(0, 1)}}; got {quote(declared)}")
        ranges.update(declared)
    takes = cls.hyperparameters()
    return {name: allowed for name, allowed in ranges.items() if name in takes}


def coerce_params(cls: type[SessionRecommender], params: Mapping[str, Any], *, source: str = "--param",
                  check_range: bool = True) -> dict[str, Any]:
    """Check hyper-parameter names against ``cls``, coerce values to the
    type of each default and check them against the declared ranges.

    YAML reads ``1e-3`` as a string and ``5`` as an int; a float default
    accepts both, an int default refuses ``0.5``. NaN and infinities
    (``.inf``, ``1e999``) are refused for every hyper-parameter. Unknown names
    are an error, and so is a value outside the model's
    ``hyperparameter_ranges`` (see :class:`Range` and :class:`Choice`) unless ``check_range`` is
    false.
    """
    defaults = cls.hyperparameters()
    ranges = hyperparameter_ranges(cls)
    out = {}
    for key, value in params.items():
        if not isinstance(key, str) or key not in defaults:
            raise ConfigError(
                f"{source}: model {cls.name or cls.__name__!r} has no hyper-parameter {quote(key)}"
                f"{did_you_mean(key, defaults)}; "
                f"it takes: {', '.join(defaults) or 'none'}"
            )
        out[key] = _coerce(value, defaults[key], f"{source}: {key}")
        if check_range and key in ranges and out[key] not in ranges[key]:
            raise ConfigError(f"{source}: {key}: expected {ranges[key].expected()}, got {quote(value)}"
                              f"{did_you_mean(value, getattr(ranges[key], 'values', ()))}")
    return out


def check_params_together(cls: type[SessionRecommender], params: Mapping[str, Any], source: str) -> None:
    """Run the model's own check of a whole configuration (``_check_params``,
    which neural models have: rules across hyper-parameters, such as SASRec's
    hidden size being a multiple of its heads, and the form of ``device``)
    on ``params`` (coerced, see :func:`coerce_params`) over the defaults, so
    that a suite or ``--param`` is refused where it is read rather than when
    its run starts. ``__init__`` only stores, so building the model costs
    nothing."""
    if getattr(cls, "_check_params", None) is None:
        return
    try:
        cls(**params)._check_params()
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def _coerce(value: Any, default: Any, where: str) -> Any:
    value = _finite(_convert(value, default, where), where)
    return value


def _finite(value: Any, where: str) -> Any:
    """Refuse NaN and infinities: no hyper-parameter means anything with them
    (and a learning rate of inf fails deep inside training)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return value


#: Said when YAML turned a word into a boolean where the parameter takes none.
_YAML_BOOLEAN_HINT = " (YAML reads yes, no, on, off, true and false as booleans; quote a word meant as text)"


def _convert(value: Any, default: Any, where: str) -> Any:
    if default is None:
        return value
    if value is None:  # `k:` or `--param k=` with nothing after it: caught here, not in every fit
        expected = ("true or false" if isinstance(default, bool) else
                    {str: "a string", int: "an integer"}.get(type(default), "a number"))
        raise ConfigError(f"{where}: expected {expected}, got null (YAML reads an empty value, ~ and null "
                          f"as null; the default is {quote(default)})")
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {quote(value)}")
    if isinstance(value, bool):
        expected = {str: "a string", int: "an integer"}.get(type(default), "a number")
        raise ConfigError(f"{where}: expected {expected}, got the boolean {value!r}{_YAML_BOOLEAN_HINT}")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63:
            return value  # beyond 64 bits no array, tensor or C library takes it
        raise ConfigError(f"{where}: expected a 64-bit integer, got {quote(value)}")
    if isinstance(default, float):
        try:
            return float(value) if isinstance(value, (int, float)) else float(str(value))
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {quote(value)}") from None
        except OverflowError:  # an integer beyond the range of a float
            raise ConfigError(f"{where}: expected a finite number, got {quote(value)}") from None
    if isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {quote(value)}")
    return value


def parse_param(text: str) -> tuple[str, Any]:
    """Parse one ``key=value`` from the command line; the value is read as a YAML scalar."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ConfigError(f"--param {quote(text)}: expected key=value, e.g. --param alpha=0.5")
    try:
        value = load_yaml_text(raw, "--param") if raw.strip() else None
    except ConfigError as err:  # not YAML, or YAML that reads otherwise than it looks (010 is octal 8)
        reason = str(err).partition(": ")[2]
        raise ConfigError(f"--param {quote(text)}: value {quote(raw)}: {reason}") from None
    if isinstance(value, (dict, list)):
        raise ConfigError(f"--param {quote(text)}: expected a single value, got a YAML {type(value).__name__}")
    return key, value


def make_model(name: str, params: Mapping[str, Any] | None = None, *, source: str = "--param") -> SessionRecommender:
    """Instantiate a model by name with checked, coerced hyper-parameters.

    Raises:
        ContractError: the class's ``__init__`` breaks the plugin contract (a
            hyper-parameter without a default, one it does not store under
            its own name) or raises; the message names the class and the fix.
        ConfigError: a hyper-parameter name or value is invalid.
    """
    cls = get_model_class(name)
    label = check_class(cls)
    kwargs = coerce_params(cls, params or {}, source=source)
    check_params_together(cls, kwargs, source)
    try:
        model = cls(**kwargs)
    except SessionbenchError:
        raise
    except Exception as err:
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ContractError(f"{label}: __init__({shown}) raised {type(err).__name__}: {' '.join(str(err).split())}; "
                            "__init__ should only store its hyper-parameters (check values in _fit)") from None
    unstored = [k for k in cls.hyperparameters() if k not in vars(model)]
    if unstored:
        raise ContractError(f"{label}: __init__ does not store the hyper-parameter {unstored[0]!r}; "
                            f"add `self.{unstored[0]} = {unstored[0]}` to __init__")
    return model


def check_class(cls: type[SessionRecommender]) -> str:
    """Check what the plugin contract says of a model class before any
    instance exists: it implements ``_fit`` and ``_score``, and every
    ``__init__`` argument is a keyword with a default. Returns the label that
    errors about it use.

    Raises:
        ContractError: naming the class and the rule it breaks.
    """
    label = f"model {cls.name or cls.__name__!r} ({cls.__module__}.{cls.__qualname__})"
    if inspect.isabstract(cls):  # instantiating it would blame __init__
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise ContractError(f"{label}: does not implement {missing}; a model implements _fit(self, data, *, seed) "
                            "and _score(self, batch), which the base class's fit and score call")
    _check_signature(cls, label)
    return label


def _check_signature(cls: type[SessionRecommender], label: str) -> None:
    """Every hyper-parameter needs a default, so that the model runs with none given."""
    if cls.__init__ is object.__init__:
        return
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.kind is p.VAR_POSITIONAL:
            raise ContractError(f"{label}: __init__ takes *{p.name}; hyper-parameters are keyword arguments "
                                "with defaults (def __init__(self, *, alpha=0.5))")
        if p.kind is not p.VAR_KEYWORD and p.default is inspect.Parameter.empty:
            raise ContractError(f"{label}: __init__ argument {p.name!r} has no default; every hyper-parameter "
                                f"needs one (def __init__(self, *, {p.name}=...))")

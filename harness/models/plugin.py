"""The plugin API: the one interface every model implements.

A model is a subclass of :class:`SessionRecommender`. Like a scikit-learn
estimator, its ``__init__`` takes keyword hyper-parameters and only stores
them (no seeding, no device choice, no data); ``fit`` learns and returns
``self``; learned state ends in ``_``. Like RecPack's base class, the public
``fit`` and ``score`` are final template methods: they check inputs and
outputs, time the call and seed the random generators, then call the model's
own ``_fit`` / ``_score``. Every plugin gets those checks for free::

    @register("my-model")
    class MyModel(SessionRecommender):
        def __init__(self, *, alpha: float = 0.5):
            self.alpha = alpha

        def _fit(self, data, *, seed):
            self.counts_ = ...

        def _score(self, batch):            # PrefixBatch -> float [B, n_items + 1]
            return ...

Optional capabilities are declared as class attributes (``uses_gpu``,
``provides_embeddings``, ``supports_incremental``, ``trains_by_epoch``), never
detected with ``hasattr``.
"""

from __future__ import annotations

import abc
import inspect
import json
import logging
import math
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from harness.data.dataset import PrefixBatch, SessionDataset
from harness.errors import ContractError, DataError, ModelFailure, SessionbenchError, quote

log = logging.getLogger(__name__)


class NotFittedError(SessionbenchError):
    """``score`` was called before ``fit``."""


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators.

    Done by ``fit`` so that a plugin that draws from a global generator is
    still deterministic under a seed; models should prefer their own
    ``np.random.default_rng(seed)`` / ``torch.Generator``.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class SessionRecommender(abc.ABC):
    """Base class of every session-based recommender.

    Class attributes:
        name: registry key (set by ``@register``).
        uses_gpu: the model moves work to CUDA when it is available.
        provides_embeddings: implements ``embed(batch) -> [B, d]`` and
            ``item_embeddings() -> [n_items + 1, d]`` with
            ``score = embed @ item_embeddings().T``, so that top-K can be
            served by an ANN index.
        supports_incremental: implements ``partial_fit(data)``.
        trains_by_epoch: takes ``epochs``, ``patience`` and ``refit`` and
            follows the selection rule (:mod:`harness.models.training`).

    Fitted attributes (set by ``fit``): ``n_items_``, ``fit_seconds_``.
    """

    name: ClassVar[str] = ""
    uses_gpu: ClassVar[bool] = False
    provides_embeddings: ClassVar[bool] = False
    supports_incremental: ClassVar[bool] = False
    trains_by_epoch: ClassVar[bool] = False

    # -- hyper-parameters ---------------------------------------------------

    @classmethod
    def hyperparameters(cls) -> dict[str, Any]:
        """The keyword hyper-parameters of ``__init__`` and their defaults."""
        if cls.__init__ is object.__init__:
            return {}
        params = {}
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            params[p.name] = None if p.default is inspect.Parameter.empty else p.default
        return params

    def get_params(self) -> dict[str, Any]:
        """The current hyper-parameter values (as stored by ``__init__``)."""
        return {k: getattr(self, k) for k in self.hyperparameters()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- public template methods (final) ------------------------------------

    def fit(self, data: SessionDataset, *, seed: int = 0) -> SessionRecommender:
        """Learn from ``data`` and return ``self``.

        Checks the dataset, seeds the global generators with ``seed``, hands
        ``_fit`` a view without the test split and without file locations
        (:meth:`SessionDataset.without_test`), times it, records ``n_items_``
        and ``fit_seconds_``, and checks ``training_curve_`` if the model set
        one (a malformed curve is dropped with a warning; see
        :func:`training_curve_problem`).
        """
        if not isinstance(data, SessionDataset):
            raise TypeError(f"{self._label()}: fit expects a SessionDataset, got {type(data).__name__}")
        if data.train.n_sessions == 0:
            raise ContractError(f"{self._label()}: cannot fit on a dataset with no training sessions")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"{self._label()}: seed must be an int, got {seed!r}")
        seed_everything(int(seed))
        self.n_items_ = int(data.n_items)
        start = time.perf_counter()
        try:
            self._fit(data.without_test(), seed=int(seed))
        except ContractError as err:
            raise ContractError(f"{self._label()}: {err}") from None
        self.fit_seconds_ = time.perf_counter() - start
        self._check_training_curve()
        return self

    def fit_seconds_before(self) -> float:
        """Seconds that earlier, interrupted fits spent before the one that
        ``fit_seconds_`` times (a run's fit time is their sum): 0.0 here; a
        model that resumes from checkpoints overrides it
        (:class:`harness.models.training.EpochTrainedRecommender`)."""
        return 0.0

    def score(self, batch: PrefixBatch) -> torch.Tensor:
        """Scores of every item for each prefix: float [B, n_items + 1].

        Higher is better; column 0 (padding) is ignored by the evaluator.
        Checks that the model is fitted and that the batch is well formed,
        hands ``_score`` a copy of the batch (:meth:`PrefixBatch.clone`, so
        that the caller's batch cannot be changed), and checks the output
        with :func:`check_scores`.
        """
        if not hasattr(self, "n_items_"):
            raise NotFittedError(f"{self._label()}: call fit() before score()")
        self._check_batch(batch)
        scores = self._score(batch.clone())
        check_scores(scores, len(batch), self.n_items_, self._label())
        return scores

    # -- saving and loading -------------------------------------------------

    #: the files of a saved model's folder
    SAVED_PARAMS: ClassVar[str] = "model.json"
    SAVED_STATE: ClassVar[str] = "state.pt"

    def save(self, path: str | Path) -> Path:
        """Write the fitted model into the folder ``path`` (created) and return it.

        ``model.json`` holds the class (``module:QualName``), the
        hyper-parameters, the torch version and the SHA-256 of ``state.pt``;
        ``state.pt`` every other instance attribute (the fitted state:
        tensors, networks, numpy arrays, sparse matrices, curves), written
        with ``torch.save``, i.e. a pickle: load only models you saved
        yourself (see :meth:`load`).
        """
        from harness.data.fetch import sha256_of

        if not hasattr(self, "n_items_"):
            raise NotFittedError(f"{self._label()}: call fit() before save()")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        params = self.get_params()
        state = {k: v for k, v in vars(self).items() if k not in params}
        torch.save(state, folder / self.SAVED_STATE)
        cls = type(self)
        meta = {"format": 1, "class": f"{cls.__module__}:{cls.__qualname__}", "name": self.name,
                "params": params, "torch": torch.__version__, "state_sha256": sha256_of(folder / self.SAVED_STATE)}
        (folder / self.SAVED_PARAMS).write_text(json.dumps(meta, indent=2, sort_keys=True, default=repr) + "\n")
        return folder

    @classmethod
    def load(cls, path: str | Path) -> SessionRecommender:
        """The model saved by :meth:`save` in folder ``path``, on the CPU.

        Trusted input only: ``state.pt`` is unpickled (``weights_only=False``),
        which can run code. The class named in ``model.json`` must be
        importable and be ``cls`` or a subclass of it, and ``state.pt`` must
        have the SHA-256 that ``model.json`` records (when it records one).

        Raises:
            DataError: a file is missing, unreadable or corrupt, the class
                cannot be imported or takes other hyper-parameters, or
                ``state.pt`` belongs to another saved model; one line naming
                the file.
        """
        meta_path, state_path = Path(path) / cls.SAVED_PARAMS, Path(path) / cls.SAVED_STATE
        meta = _read_saved_meta(meta_path)
        target = _saved_class(meta["class"], cls, meta_path)
        try:
            model = target(**meta["params"])
        except Exception as err:  # a class changed since the save: other hyper-parameters
            raise DataError(f"the saved hyper-parameters do not fit {meta['class']} "
                            f"({type(err).__name__}: {quote(' '.join(str(err).split()))})", path=meta_path) from None
        vars(model).update(_read_saved_state(state_path, meta.get("state_sha256")))
        model._after_load()
        return model

    def _after_load(self) -> None:
        """Adjust a model just loaded onto the CPU (neural models: ``device_``)."""

    # -- what a model implements --------------------------------------------

    @abc.abstractmethod
    def _fit(self, data: SessionDataset, *, seed: int) -> None:
        """Learn from ``data.train`` (or ``train_tr``/``valid`` for selection)."""

    @abc.abstractmethod
    def _score(self, batch: PrefixBatch) -> torch.Tensor:
        """float [B, n_items + 1]; higher is better; column 0 (padding) is ignored."""

    # -- checks -------------------------------------------------------------

    def _label(self) -> str:
        return model_label(self)

    def _check_batch(self, batch: PrefixBatch) -> None:
        if not isinstance(batch, PrefixBatch):
            raise TypeError(f"{self._label()}: score expects a PrefixBatch, got {type(batch).__name__}")
        items, lengths = batch.items, batch.lengths
        if items.dim() != 2 or lengths.dim() != 1 or lengths.shape[0] != items.shape[0]:
            raise ValueError(f"PrefixBatch needs items [B, L] and lengths [B]; got {tuple(items.shape)} and {tuple(lengths.shape)}")
        if items.numel() and (int(items.min()) < 0 or int(items.max()) > self.n_items_):
            raise ValueError(f"PrefixBatch item ids must be in 0..{self.n_items_}")
        if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > items.shape[1]):
            raise ValueError("PrefixBatch lengths must be in 1..L")

    def _check_training_curve(self) -> None:
        curve = getattr(self, "training_curve_", None)
        if curve is None:
            return
        problem = training_curve_problem(curve)
        if problem is not None:
            log.warning("%s: training_curve_ dropped, %s (format: docs/plugins.md)", self._label(), problem,
                        extra={"curve_problem": problem})
            vars(self).pop("training_curve_", None)


def model_label(model: Any) -> str:
    """How messages name a model: ``model 'name' (module.Class)``."""
    cls = type(model)
    name = getattr(model, "name", None) or cls.__name__
    return f"model {name!r} ({cls.__module__}.{cls.__qualname__})"


def check_scores(scores: Any, n_rows: int, n_items: int, label: str) -> None:
    """Check a model's scores: a dense floating-point tensor of shape
    ``[n_rows, n_items + 1]`` with finite values in columns 1..n_items.

    Raises:
        ContractError: names ``label``, what was returned and what was expected.
    """
    expected = (n_rows, n_items + 1)
    if not isinstance(scores, torch.Tensor):
        raise ContractError(
            f"{label}: score must return a torch.Tensor of shape [B, n_items + 1] = {list(expected)}, "
            f"got {type(scores).__name__}"
        )
    if scores.layout != torch.strided or scores.is_meta:
        raise ContractError(f"{label}: score must return a dense tensor with data, got layout {scores.layout} "
                            f"on device {scores.device}")  # fmt: skip
    if tuple(scores.shape) != expected:
        raise ContractError(
            f"{label}: score returned shape {tuple(scores.shape)}, expected [B, n_items + 1] = "
            f"{expected} (one column per item id, column 0 for padding)"
        )
    if not scores.is_floating_point():
        raise ContractError(f"{label}: score must return floating-point scores, got {scores.dtype}")
    body = scores[:, 1:]
    if body.numel() == 0:
        return
    # min and max are finite iff every score is (NaN propagates); many times
    # faster than torch.isfinite on CPU, which runs only to find the row.
    # Over the whole contiguous tensor first: a strided reduction over the
    # columns 1.. is several times slower, and is only needed when column 0
    # (ignored) or a score is not finite.
    whole = scores.is_contiguous()
    low, high = torch.aminmax(scores if whole else body)
    if whole and not (math.isfinite(float(low)) and math.isfinite(float(high))):
        low, high = torch.aminmax(body)
    if not (math.isfinite(float(low)) and math.isfinite(float(high))):
        row = int((~torch.isfinite(body)).any(dim=1).nonzero()[0, 0])
        raise ContractError(
            f"{label}: score returned NaN or infinite scores (first in batch row {row}); "
            "scores must be finite, give unlikely items a low finite score instead"
        )


@contextmanager
def calling_model(model: Any, method: str) -> Iterator[None]:
    """Turn an exception raised by a model's own code into :class:`ModelFailure`
    (naming the model, ``method``, the exception type and message; the
    original is kept as ``__cause__``). Errors of sessionbench's own types
    (a broken contract, a bad hyper-parameter value) keep their type and get
    the model's name in front when their message lacks it."""
    try:
        yield
    except ModelFailure:
        raise
    except SessionbenchError as err:
        label = model_label(model)
        if label not in str(err):
            err.args = (f"{label} in {method}: {err}", *err.args[1:])
        raise
    except Exception as err:
        raise ModelFailure(model_label(model), method, err) from err


#: the phases of a training curve, in the order they may appear
CURVE_PHASES = ("select", "refit", "train")
#: keys every row of a training curve has
CURVE_KEYS = ("phase", "epoch", "loss", "seconds")


def training_curve_problem(curve: Any) -> str | None:
    """Why ``curve`` does not follow the ``training_curve_`` format, or None.

    The format: a list of dicts, one per epoch, all with the same keys:
    ``phase`` (one of :data:`CURVE_PHASES`; the phases appear as
    ``train``, or ``select`` followed by an optional ``refit``), ``epoch``
    (int; 1, 2, ... within each phase), ``loss`` (a real number, NaN allowed),
    ``seconds`` (a finite real >= 0), optional ``valid_<METRIC>`` (a real
    number or None) and any other scalar (str, real, bool or None).
    """
    if not isinstance(curve, Sequence) or isinstance(curve, (str, bytes)):
        return f"expected a list of dicts (one per epoch), got {type(curve).__name__}"
    keys: set[str] | None = None
    phases: list[str] = []
    for index, row in enumerate(curve):
        where = f"row {index}"
        if not isinstance(row, Mapping):
            return f"{where} is a {type(row).__name__}, expected a dict"
        problem = _curve_row_problem(row)
        if problem is not None:
            return f"{where}: {problem}"
        if keys is None:
            keys = set(row)
        elif set(row) != keys:
            return f"{where} has keys {sorted(map(str, row))}, row 0 has {sorted(keys)}"
        phase = row["phase"]
        if not phases or phases[-1] != phase:
            phases.append(phase)
            expected_epoch = 1
        if row["epoch"] != expected_epoch:
            return f"{where}: epoch {row['epoch']} in phase {phase!r}, expected {expected_epoch} (one row per epoch)"
        expected_epoch += 1
    if phases and phases not in (["train"], ["select"], ["select", "refit"]):
        return f"phases appear as {phases}, expected ['train'], ['select'] or ['select', 'refit']"
    return None


def _curve_row_problem(row: Mapping[Any, Any]) -> str | None:
    missing = [k for k in CURVE_KEYS if k not in row]
    if missing:
        return f"lacks {', '.join(map(repr, missing))}"
    if row["phase"] not in CURVE_PHASES:
        return f"phase {row['phase']!r} is not one of {', '.join(CURVE_PHASES)}"
    if not _is_int(row["epoch"]) or row["epoch"] < 1:
        return f"epoch {row['epoch']!r} is not an integer >= 1"
    if not _is_real(row["loss"]):
        return f"loss {row['loss']!r} is not a number"
    if not _is_real(row["seconds"]) or not math.isfinite(row["seconds"]) or row["seconds"] < 0:
        return f"seconds {row['seconds']!r} is not a finite number >= 0"
    for key, value in row.items():
        if not isinstance(key, str):
            return f"key {key!r} is not a string"
        if key.startswith("valid_") and value is not None and not _is_real(value):
            return f"{key} {value!r} is not a number or None"
        if not (value is None or isinstance(value, (str, bool)) or _is_real(value)):
            return f"{key} holds a {type(value).__name__}, expected a scalar"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


# --------------------------------------------------------------------------- #
# reading a saved model (SessionRecommender.load)
# --------------------------------------------------------------------------- #


def _read_saved_meta(path: Path) -> dict[str, Any]:
    """``model.json`` of a saved model: an object with ``class`` (a
    ``module:QualName`` string) and ``params`` (a mapping)."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: invalid JSON or UTF-8
        reason = err.strerror if isinstance(err, OSError) and err.strerror else " ".join(str(err).split())
        raise DataError(f"not a saved model ({quote(reason)})", path=path) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("class"), str) or not isinstance(meta.get("params"), dict):
        raise DataError("not a saved model (expected a JSON object with 'class': \"module:Class\" and "
                        "'params': {...}, as save() writes)", path=path)
    return meta


def _saved_class(name: str, base: type, path: Path) -> type:
    """The class ``module:QualName`` named in ``model.json``; a ``base`` subclass."""
    import importlib

    module_name, _, qualname = name.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except Exception as err:  # not importable, no such attribute, an empty name
        raise DataError(f"class {quote(name)} cannot be imported ({type(err).__name__}: "
                        f"{quote(' '.join(str(err).split()))}); is its package installed?", path=path) from None
    if not (isinstance(target, type) and issubclass(target, base)):
        raise DataError(f"class {name} is not a {base.__name__}", path=path)
    return target


def _read_saved_state(path: Path, sha256: Any) -> dict[str, Any]:
    """The fitted state in ``state.pt``, checked against the SHA-256 that
    ``model.json`` records (saves made before it was recorded have none)."""
    from harness.data.fetch import sha256_of

    try:
        if isinstance(sha256, str) and sha256_of(path) != sha256:
            raise DataError("does not match the SHA-256 that model.json records: the file is truncated, "
                            "corrupt or belongs to another saved model", path=path)
        state = torch.load(path, map_location="cpu", weights_only=False)  # trusted input (see load)
    except DataError:
        raise
    except Exception as err:  # torch and pickle raise many types for a damaged file
        reason = err.strerror if isinstance(err, OSError) and err.strerror else " ".join(str(err).split())
        raise DataError(f"cannot read the saved state ({type(err).__name__}: {quote(reason)})", path=path) from None
    if not isinstance(state, dict):
        raise DataError(f"not a saved state (expected a dict of attributes, got {type(state).__name__})", path=path)
    return state

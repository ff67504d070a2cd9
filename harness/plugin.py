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
import random
import time
from typing import Any, ClassVar

import numpy as np
import torch

from harness.dataset import PrefixBatch, SessionDataset
from harness.errors import ContractError, SessionbenchError


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
            follows the selection rule of DESIGN.md.

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

        Checks the dataset, seeds the global generators with ``seed``, hides
        the test split (reading it raises :class:`ContractError`), times the
        model's ``_fit`` and records ``n_items_`` and ``fit_seconds_``.
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
        return self

    def score(self, batch: PrefixBatch) -> torch.Tensor:
        """Scores of every item for each prefix: float [B, n_items + 1].

        Higher is better; column 0 (padding) is ignored by the evaluator.
        Checks that the model is fitted, that the batch is well formed, and
        that the model's output has the right shape and is finite.
        """
        if not hasattr(self, "n_items_"):
            raise NotFittedError(f"{self._label()}: call fit() before score()")
        self._check_batch(batch)
        scores = self._score(batch)
        self._check_scores(batch, scores)
        return scores

    # -- what a model implements --------------------------------------------

    @abc.abstractmethod
    def _fit(self, data: SessionDataset, *, seed: int) -> None:
        """Learn from ``data.train`` (or ``train_tr``/``valid`` for selection)."""

    @abc.abstractmethod
    def _score(self, batch: PrefixBatch) -> torch.Tensor:
        """float [B, n_items + 1]; higher is better; column 0 (padding) is ignored."""

    # -- checks -------------------------------------------------------------

    def _label(self) -> str:
        return f"model {self.name or type(self).__name__!r} ({type(self).__module__}.{type(self).__qualname__})"

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

    def _check_scores(self, batch: PrefixBatch, scores: Any) -> None:
        expected = (len(batch), self.n_items_ + 1)
        if not isinstance(scores, torch.Tensor):
            raise ContractError(
                f"{self._label()}: _score must return a torch.Tensor of shape {expected}, got {type(scores).__name__}"
            )
        if tuple(scores.shape) != expected:
            raise ContractError(
                f"{self._label()}: _score returned shape {tuple(scores.shape)}, expected [B, n_items + 1] = "
                f"{expected} (one column per item id, column 0 for padding)"
            )
        if not scores.is_floating_point():
            raise ContractError(f"{self._label()}: _score must return floating-point scores, got {scores.dtype}")
        finite = torch.isfinite(scores[:, 1:])
        if not bool(finite.all()):
            row = int((~finite).any(dim=1).nonzero()[0, 0])
            raise ContractError(
                f"{self._label()}: _score returned NaN or infinite scores (first in batch row {row}); "
                "scores must be finite, give unlikely items a low finite score instead"
            )

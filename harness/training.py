"""Epoch training with model selection on the validation split.

One implementation of the selection rule of DESIGN.md, shared by every model
that trains for epochs (GRU4Rec, SR-GNN, plugins)::

    patience > 0:   train_tr |--e1--|--e2--|--e3--| ... stop after `patience`
                    valid    MRR@20  MRR@20  MRR@20     epochs without a gain
                                       ^ best epoch b
                    refit=True:  fresh model on train for exactly b epochs
                    refit=False: keep the weights of epoch b (trained on train_tr)
    patience == 0:  train    |--e1--|--e2--| ... exactly `epochs` epochs

The test split is never read: ``fit`` hands models a dataset whose ``test``
raises. An epoch whose training loss is NaN or infinite stops the fit with a
``FloatingPointError`` naming the model and the epoch.
"""

from __future__ import annotations

import abc
import copy
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from harness.dataset import SessionDataset
from harness.errors import ConfigError
from harness.plugin import SessionRecommender
from harness.registry import Range

log = logging.getLogger(__name__)

#: the validation metric that picks the epoch
SELECTION_METRIC = "MRR@20"

#: callbacks ``(model, epoch, phase)`` run after every training epoch (see :func:`observe_epochs`)
_EPOCH_OBSERVERS: list[Callable[[Any, int, str], None]] = []


@contextmanager
def observe_epochs(callback: Callable[[Any, int, str], None]) -> Iterator[None]:
    """Within the block, call ``callback(model, epoch, phase)`` after each
    training epoch of every :class:`EpochTrainedRecommender` (``phase`` as
    in ``training_curve_``). An exception it raises stops the model's
    ``fit`` (hyper-parameter search prunes trials this way)."""
    _EPOCH_OBSERVERS.append(callback)
    try:
        yield
    finally:
        _EPOCH_OBSERVERS.remove(callback)


def _epoch_done(model: Any, epoch: int, phase: str) -> None:
    for callback in list(_EPOCH_OBSERVERS):
        callback(model, epoch, phase)


class EpochTrainedRecommender(SessionRecommender):
    """Base class of models trained by epochs under the selection rule.

    A subclass's ``__init__`` takes (at least) ``epochs``, ``patience`` and
    ``refit`` and stores them; it implements:

    - ``_start_training(data, split, seed)``: a fresh model and optimiser that
      will train on ``data.split(split)`` (``"train_tr"`` or ``"train"``);
    - ``_train_epoch(epoch) -> float``: one pass over that split, returning
      the mean training loss;
    - ``_score(batch)`` as every model does.

    ``_state()`` / ``_load_state(state)`` (deep copies of the instance's
    ``__dict__`` entries ending in ``_`` by default) keep the best epoch's
    weights when ``refit=False``.

    Fitted attributes: ``best_epoch_`` (the epoch chosen on ``valid``, or
    ``epochs`` with ``patience=0``) and ``training_curve_``, a list of dicts
    ``{"phase", "epoch", "loss", "valid_MRR@20", "seconds"}`` with phase
    ``"select"`` (on train_tr), ``"refit"`` or ``"train"`` (on train).
    A non-finite epoch loss raises ``FloatingPointError``.

    :class:`harness.neural.NeuralRecommender` builds the torch parts (device,
    threads, optimiser, cleanup, embeddings) on top of this class.
    """

    #: checked when a suite or --param sets them (see harness.registry.Range)
    hyperparameter_ranges: ClassVar[dict[str, Range]] = {"epochs": Range(1), "patience": Range(0)}

    trains_by_epoch: ClassVar[bool] = True

    @abc.abstractmethod
    def _start_training(self, data: SessionDataset, split: str, seed: int) -> None:
        """Build a fresh model and optimiser for training on ``data.split(split)``."""

    @abc.abstractmethod
    def _train_epoch(self, epoch: int) -> float:
        """Train one epoch (1-based) and return the mean training loss."""

    def _state(self) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def _load_state(self, state: dict[str, Any]) -> None:
        vars(self).update(state)

    def _fit(self, data: SessionDataset, *, seed: int) -> None:
        epochs, patience, refit = self.epochs, self.patience, self.refit
        if not isinstance(epochs, int) or epochs < 1:
            raise ConfigError(f"{self.name or type(self).__name__}: epochs must be a positive integer, got {epochs!r}")
        if not isinstance(patience, int) or patience < 0:
            raise ConfigError(f"{self.name or type(self).__name__}: patience must be an integer >= 0, got {patience!r}")
        curve: list[dict[str, Any]] = []
        if patience == 0:
            self._run_epochs(data, "train", epochs, seed, curve, phase="train")
            self.best_epoch_ = epochs
        else:
            best_epoch, best_state = self._select(data, seed, curve)
            if refit:
                self._run_epochs(data, "train", best_epoch, seed, curve, phase="refit")
            else:
                self._load_state(best_state)
            self.best_epoch_ = best_epoch
        self.training_curve_ = curve

    def _run_epochs(self, data, split, epochs, seed, curve, *, phase) -> None:
        self._start_training(data, split, seed)
        for epoch in range(1, epochs + 1):
            loss, seconds = self._timed_epoch(epoch)
            curve.append({"phase": phase, "epoch": epoch, "loss": loss, "valid_" + SELECTION_METRIC: None,
                          "seconds": seconds})
            _epoch_done(self, epoch, phase)

    def _timed_epoch(self, epoch: int) -> tuple[float, float]:
        """Train epoch ``epoch``; its loss and seconds. A NaN or infinite loss
        raises ``FloatingPointError`` (nothing learnt after it can be trusted)."""
        start = time.perf_counter()
        loss = float(self._train_epoch(epoch))
        seconds = time.perf_counter() - start
        if not math.isfinite(loss):
            raise FloatingPointError(f"{self.name or type(self).__name__}: training loss became {loss} in epoch "
                                     f"{epoch}; lower the learning rate")
        return loss, seconds

    def _select(self, data: SessionDataset, seed: int, curve: list) -> tuple[int, dict[str, Any] | None]:
        from harness.evaluate import evaluate  # the evaluator imports models' outputs only

        if data.valid.n_prefixes == 0:
            raise ConfigError(f"{self.name}: patience > 0 needs a validation split with prefixes; "
                              "this dataset has none (use patience=0)")
        self._start_training(data, "train_tr", seed)
        best_epoch, best_value, best_state = 0, -1.0, None
        for epoch in range(1, self.epochs + 1):
            loss, seconds = self._timed_epoch(epoch)
            value = evaluate(self, data, split="valid", ks=(20,)).metrics()[SELECTION_METRIC]
            curve.append({"phase": "select", "epoch": epoch, "loss": loss, "valid_" + SELECTION_METRIC: value,
                          "seconds": seconds})
            log.info("%s epoch %d: loss %.4f, valid %s %.4f", self.name, epoch, loss, SELECTION_METRIC, value)
            _epoch_done(self, epoch, "select")
            if value > best_value:
                best_epoch, best_value = epoch, value
                best_state = None if self.refit else self._state()
            elif epoch - best_epoch >= self.patience:
                break
        return best_epoch, best_state

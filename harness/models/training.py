"""Epoch training with model selection on the validation split.

One implementation of the selection rule, shared by every model
that trains for epochs (GRU4Rec, SR-GNN, plugins)::

    patience > 0:   train_tr |--e1--|--e2--|--e3--| ... stop after `patience`
                    valid    MRR@20  MRR@20  MRR@20     epochs without a gain
                                       ^ best epoch b
                    refit=True:  fresh model on train for exactly b epochs
                    refit=False: keep the weights of epoch b (trained on train_tr)
    patience == 0:  train    |--e1--|--e2--| ... exactly `epochs` epochs

The test split is never read: ``fit`` hands models a dataset whose ``test``
raises.

Checkpoints: after :meth:`EpochTrainedRecommender.checkpoint_to`, every
completed epoch writes ``checkpoint.pt`` into the given folder (the model's
training state, every random generator's state and the selection rule's
state); a later ``fit`` of the same configuration, seed and data with the
same folder resumes after the last completed epoch and ends with the same
model as an uninterrupted fit (on CPU). The file is written with
``torch.save`` and read with ``weights_only=False``: read only checkpoints
you wrote yourself. An epoch whose training loss is NaN or infinite stops the fit with a
``FloatingPointError`` naming the model and the epoch.
"""

from __future__ import annotations

import abc
import copy
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from harness.data.dataset import SessionDataset
from harness.errors import ConfigError
from harness.models.plugin import SessionRecommender
from harness.models.registry import Range

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


def _restore_random_state(checkpoint: dict[str, Any]) -> None:
    """Put torch's, NumPy's and Python's random generators where they were
    when ``checkpoint`` was saved."""
    import numpy as np
    import torch

    rng = checkpoint["rng"]
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])


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

    :class:`harness.models.neural.NeuralRecommender` builds the torch parts (device,
    threads, optimiser, cleanup, embeddings) on top of this class.
    """

    #: checked when a suite or --param sets them (see harness.models.registry.Range)
    hyperparameter_ranges: ClassVar[dict[str, Range]] = {"epochs": Range(1), "patience": Range(0)}

    trains_by_epoch: ClassVar[bool] = True

    @abc.abstractmethod
    def _start_training(self, data: SessionDataset, split: str, seed: int) -> None:
        """Build a fresh model and optimiser for training on ``data.split(split)``."""

    @abc.abstractmethod
    def _train_epoch(self, epoch: int) -> float:
        """Train one epoch (1-based) and return the mean training loss."""

    #: the checkpoint file of :meth:`checkpoint_to`'s folder
    CHECKPOINT_FILE: ClassVar[str] = "checkpoint.pt"

    def checkpoint_to(self, folder: str | Path | None) -> EpochTrainedRecommender:
        """Write a checkpoint into ``folder`` after every completed epoch of
        the next ``fit`` and resume from the one found there (if it comes
        from the same hyper-parameters, seed and data); ``None`` turns
        checkpoints off. Returns self. The folder is left in place: remove
        it once the fitted model is stored."""
        if folder is not None and not self.supports_checkpoints():
            log.info("%s: no checkpoints (the model does not implement _training_state)", self._label())
            folder = None
        self._checkpoint_dir = None if folder is None else Path(folder)
        return self

    @classmethod
    def supports_checkpoints(cls) -> bool:
        """Whether the model implements :meth:`_training_state` (every
        :class:`harness.models.neural.NeuralRecommender` does); :meth:`checkpoint_to`
        does nothing for a model that does not."""
        return cls._training_state is not EpochTrainedRecommender._training_state

    def _training_state(self) -> dict[str, Any]:
        """Everything that the next epoch's training reads (network,
        optimiser, scheduler, generators); subclasses that support
        checkpoints implement it (see :class:`harness.models.neural.NeuralRecommender`)."""
        raise NotImplementedError(f"{type(self).__name__} does not support checkpoints")

    def _load_training_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`_training_state` after ``_start_training``."""
        raise NotImplementedError(f"{type(self).__name__} does not support checkpoints")

    def _checkpoint_key(self, data: SessionDataset, seed: int) -> str:
        """What a checkpoint must match to be resumed: parameters, seed, data shape."""
        train = data.split("train")
        return json.dumps({"model": type(self).__qualname__, "params": self.get_params(), "seed": int(seed),
                           "n_items": int(data.n_items), "train_events": int(len(train.item_array))},
                          sort_keys=True, default=repr)

    def _read_checkpoint(self, data: SessionDataset, seed: int) -> dict[str, Any] | None:
        folder = getattr(self, "_checkpoint_dir", None)
        path = None if folder is None else folder / self.CHECKPOINT_FILE
        if path is None or not path.is_file():
            return None
        import torch

        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)  # trusted: written by _save_checkpoint
        except Exception as err:  # a damaged file (disk full, copied in part): it only saves time, so start afresh
            log.warning("%s: ignoring unreadable checkpoint %s (%s: %s); training from the start", self._label(), path,
                        type(err).__name__, " ".join(str(err).split())[:200])
            return None
        if not isinstance(checkpoint, dict) or checkpoint.get("key") != self._checkpoint_key(data, seed):
            log.warning("%s: ignoring checkpoint %s of another configuration", self._label(), path)
            return None
        log.info("%s: resuming after %s epoch %d from %s", self._label(), checkpoint["phase"], checkpoint["epoch"],
                 path)
        return checkpoint

    def _save_checkpoint(self, phase: str, epoch: int, curve: list, **selection: Any) -> None:
        """Atomically write the state after ``epoch`` of ``phase`` (when checkpoints are on)."""
        folder = getattr(self, "_checkpoint_dir", None)
        if folder is None:
            return
        import numpy as np
        import torch

        folder.mkdir(parents=True, exist_ok=True)
        checkpoint = {"key": self._checkpoint_key(self._data, self._seed), "phase": phase, "epoch": epoch,
                      "fit_seconds": self.fit_seconds_before() + time.perf_counter() - self._fit_started,
                      "curve": copy.deepcopy(curve), "selection": selection, "training": self._training_state(),
                      "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                              "python": random.getstate()}}
        tmp = folder / f".{self.CHECKPOINT_FILE}.{os.getpid()}"
        torch.save(checkpoint, tmp)
        os.replace(tmp, folder / self.CHECKPOINT_FILE)  # a kill leaves the previous checkpoint whole
        log.debug("%s: checkpoint after %s epoch %d", self._label(), phase, epoch)
        hook = getattr(self, "_after_checkpoint", None)
        if hook is not None:  # tests: interrupt a fit at a known point
            hook(phase, epoch)

    def fit_seconds_before(self) -> float:
        """Seconds that earlier, interrupted fits spent up to the checkpoint
        this fit resumed from (0.0 when it did not resume). ``fit_seconds_``
        times this call only; the runner stores their sum as the run's fit
        time and ``resumed_`` (phase, epoch, these seconds) in its manifest.
        Work done after that checkpoint by the interrupted process is lost
        and not counted."""
        resumed = self.__dict__.get("_resumed_from", getattr(self, "resumed_", None))  # during fit, after it
        return resumed["fit_seconds_before"] if resumed else 0.0

    def _resume(self, checkpoint: dict[str, Any], data: SessionDataset, split: str, seed: int) -> None:
        """Rebuild the training of ``checkpoint`` (fresh start, then its states)."""
        self._start_training(data, split, seed)
        self._load_training_state(checkpoint["training"])
        _restore_random_state(checkpoint)

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
        self._data, self._seed = data, seed
        self._fit_started = time.perf_counter()
        checkpoint = self._read_checkpoint(data, seed)
        # a resumed fit's time so far is in the checkpoint: the run's fit time adds it (see fit_seconds_before);
        # resumed_ is set at the end, as resuming restores the interrupted fit's learned attributes
        self._resumed_from = None if checkpoint is None else {
            "phase": checkpoint["phase"], "epoch": int(checkpoint["epoch"]),
            "fit_seconds_before": float(checkpoint.get("fit_seconds", 0.0))}
        curve: list[dict[str, Any]] = list(checkpoint["curve"]) if checkpoint else []
        if patience == 0:
            self._run_epochs(data, "train", epochs, seed, curve, phase="train", checkpoint=checkpoint)
            self.best_epoch_ = epochs
        else:
            if checkpoint is not None and checkpoint["phase"] == "refit":
                best_epoch, best_state = checkpoint["selection"]["best_epoch"], None
            else:
                best_epoch, best_state = self._select(data, seed, curve, checkpoint)
            if refit:
                resume = checkpoint if checkpoint is not None and checkpoint["phase"] == "refit" else None
                self._run_epochs(data, "train", best_epoch, seed, curve, phase="refit", checkpoint=resume,
                                 best_epoch=best_epoch)
            else:
                self._load_state(best_state)
            self.best_epoch_ = best_epoch
        self.training_curve_ = curve
        self.resumed_ = self._resumed_from
        del self._data, self._seed, self._fit_started, self._resumed_from

    def _run_epochs(self, data, split, epochs, seed, curve, *, phase, checkpoint=None, **selection) -> None:
        if checkpoint is not None:
            self._resume(checkpoint, data, split, seed)
            first = checkpoint["epoch"] + 1
        else:
            self._start_training(data, split, seed)
            first = 1
        for epoch in range(first, epochs + 1):
            loss, seconds = self._timed_epoch(epoch)
            curve.append({"phase": phase, "epoch": epoch, "loss": loss, "valid_" + SELECTION_METRIC: None,
                          "seconds": seconds})
            log.info("%s %s epoch %d/%d: loss %.4f (%.1f s)", self._label(), phase, epoch, epochs, loss, seconds)
            _epoch_done(self, epoch, phase)
            self._save_checkpoint(phase, epoch, curve, **selection)

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

    def _select(self, data: SessionDataset, seed: int, curve: list,
                checkpoint: dict[str, Any] | None = None) -> tuple[int, dict[str, Any] | None]:
        """Train on train_tr until ``patience`` epochs bring no gain on valid;
        the best epoch and (refit=False) its state. Resumes from a ``select``
        checkpoint."""
        from harness.evaluation.evaluate import evaluate  # the evaluator imports models' outputs only

        if data.valid.n_prefixes == 0:
            raise ConfigError(f"{self.name}: patience > 0 needs a validation split with prefixes; "
                              "this dataset has none (use patience=0)")
        best_epoch, best_value, best_state, first = 0, -1.0, None, 1
        if checkpoint is not None:
            chosen = checkpoint["selection"]
            best_epoch, best_value, best_state = chosen["best_epoch"], chosen["best_value"], chosen["best_state"]
            if chosen["done"]:
                # what follows (the refit's initialisation and dropout) draws on the random state the
                # selection ended with, as in an uninterrupted fit
                _restore_random_state(checkpoint)
                return best_epoch, best_state
            self._resume(checkpoint, data, "train_tr", seed)
            first = checkpoint["epoch"] + 1
        else:
            self._start_training(data, "train_tr", seed)
        for epoch in range(first, self.epochs + 1):
            loss, seconds = self._timed_epoch(epoch)
            value = evaluate(self, data, split="valid", ks=(20,)).metrics()[SELECTION_METRIC]
            curve.append({"phase": "select", "epoch": epoch, "loss": loss, "valid_" + SELECTION_METRIC: value,
                          "seconds": seconds})
            log.info("%s select epoch %d/%d: loss %.4f, valid %s %.4f (%.1f s)", self._label(), epoch, self.epochs,
                     loss, SELECTION_METRIC, value, seconds)
            _epoch_done(self, epoch, "select")
            stop = False
            if value > best_value:
                best_epoch, best_value = epoch, value
                best_state = None if self.refit else self._state()
            else:
                stop = epoch - best_epoch >= self.patience
            self._save_checkpoint("select", epoch, curve, best_epoch=best_epoch, best_value=best_value,
                                  best_state=best_state, done=stop or epoch == self.epochs)
            if stop:
                break
        return best_epoch, best_state

"""The registered ``srgnn`` recommender: trains :class:`srgnn.model.SRGNN`.

Training follows the paper: every prefix of the training split is one
example (the prefix -> next item pairs of the data-augmented sessions),
shuffled each epoch, in mini-batches of ``batch_size``; Adam with L2 penalty
``l2`` (``weight_decay``); the learning rate is multiplied by ``lr_decay``
every ``lr_decay_every`` epochs. The schedule is stepped AFTER each epoch, so
epochs 1-3 run at ``lr``, 4-6 at ``lr * lr_decay`` and so on, as the paper
says; the reference code steps it at the START of each epoch, so its rate
drops after 2 epochs, then every 3.

Model selection uses the validation split only, through
:class:`harness.training.EpochTrainedRecommender` (``epochs``, ``patience``,
``refit``).
"""

from __future__ import annotations

import sys
from typing import ClassVar

import numpy as np
import torch

from harness.dataset import PrefixBatch, SessionDataset
from harness.errors import ConfigError
from harness.registry import Range, register
from harness.timing import resolve_device, torch_threads
from harness.training import EpochTrainedRecommender
from srgnn.graph import EDGE_WEIGHTS, SessionGraphs, build_session_graphs
from srgnn.model import SRGNN


@register("srgnn")
class SRGNNRecommender(EpochTrainedRecommender):
    """SR-GNN (Wu et al., AAAI 2019): session graphs, gated GNN, attention.

    Args:
        hidden_size: d, the size of item and session embeddings (paper: 100).
        batch_size: training prefixes per Adam step (paper: 100).
        lr: Adam's initial learning rate (paper: 1e-3).
        lr_decay: factor applied to the rate every ``lr_decay_every`` epochs
            (paper: 0.1; 1.0 keeps it constant).
        lr_decay_every: epochs between decays (paper: 3).
        l2: L2 penalty, Adam's ``weight_decay`` (paper: 1e-5).
        step: gated-GNN propagation steps (paper: 1).
        nonhybrid: session embedding s_g alone instead of W_3 [s_1; s_g].
        edge_weight: ``"binary"`` (the reference code: each distinct edge
            once) or ``"count"`` (the paper's text: edges weighted by their
            occurrences); see :mod:`srgnn.graph`.
        edge_bias: add the reference code's bias inside the products of
            eq. 1 (``A (V H + 1 b_e^T)``: a learned vector for every node
            that has an incoming / an outgoing edge); False is the paper's
            eq. 1. See docs/srgnn.md for its measured effect.
        epochs: maximum epochs (paper: 30).
        patience: epochs without a validation gain before stopping (paper:
            10); 0 trains on all of ``train`` for exactly ``epochs``.
        refit: after selection, retrain on ``train`` for the chosen epochs.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``,
            ``"cuda"`` or ``"cuda:N"``; resolved in ``fit``.
        num_threads: torch intra-op CPU threads while fitting and scoring
            (restored afterwards); 0 leaves torch's setting. The default, 1,
            suits SR-GNN's many small operations and, above all, shared
            machines: with more threads than free cores, OpenMP's barriers
            make every operation wait for a descheduled thread (measured:
            tens of times slower on a loaded 2-core machine). Results do
            not depend on it beyond float rounding.

    Fitted attributes: ``model_`` (the network), ``device_``,
    ``epoch_lrs_`` (the learning rate of each epoch of the last training
    run), and from the base class ``best_epoch_``, ``training_curve_``,
    ``n_items_``.
    """

    uses_gpu: ClassVar[bool] = True
    provides_embeddings: ClassVar[bool] = True
    #: checked when a suite or --param sets them (the rest by _check_params at fit)
    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        **{name: Range(1) for name in ("hidden_size", "batch_size", "lr_decay_every", "step")},
        "num_threads": Range(0),
        "lr": Range(0, low_open=True),
        "lr_decay": Range(0, 1, low_open=True),
        "l2": Range(0),
    }

    def __init__(
        self,
        *,
        hidden_size: int = 100,
        batch_size: int = 100,
        lr: float = 1e-3,
        lr_decay: float = 0.1,
        lr_decay_every: int = 3,
        l2: float = 1e-5,
        step: int = 1,
        nonhybrid: bool = False,
        edge_weight: str = "binary",
        edge_bias: bool = False,
        epochs: int = 30,
        patience: int = 10,
        refit: bool = True,
        device: str = "auto",
        num_threads: int = 1,
    ) -> None:
        self.hidden_size = hidden_size
        self.batch_size = batch_size
        self.lr = lr
        self.lr_decay = lr_decay
        self.lr_decay_every = lr_decay_every
        self.l2 = l2
        self.step = step
        self.nonhybrid = nonhybrid
        self.edge_weight = edge_weight
        self.edge_bias = edge_bias
        self.epochs = epochs
        self.patience = patience
        self.refit = refit
        self.device = device
        self.num_threads = num_threads

    # -- configuration ------------------------------------------------------

    def _check_params(self) -> None:
        def positive_int(name: str) -> None:
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"srgnn: {name} must be a positive integer, got {value!r}")

        for name in ("hidden_size", "batch_size", "lr_decay_every", "step"):
            positive_int(name)
        if not isinstance(self.num_threads, (int, np.integer)) or isinstance(self.num_threads, bool) \
                or self.num_threads < 0:
            raise ConfigError(f"srgnn: num_threads must be an integer >= 0, got {self.num_threads!r}")
        checks = {"lr": (lambda x: x > 0, "> 0"), "lr_decay": (lambda x: 0 < x <= 1, "in (0, 1]"),
                  "l2": (lambda x: x >= 0, ">= 0")}
        for name, (ok, wanted) in checks.items():
            value = getattr(self, name)
            try:
                number = float(value)  # YAML reads "1e-3" as a string; accept numeric strings
            except (TypeError, ValueError):
                number = float("nan")
            if isinstance(value, bool) or not ok(number):
                raise ConfigError(f"srgnn: {name} must be a number {wanted}, got {value!r}")
        for name in ("nonhybrid", "edge_bias", "refit"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"srgnn: {name} must be true or false, got {getattr(self, name)!r}")
        if self.edge_weight not in EDGE_WEIGHTS:
            raise ConfigError(f"srgnn: edge_weight must be one of {EDGE_WEIGHTS}, got {self.edge_weight!r}")

    # -- training (EpochTrainedRecommender) -----------------------------------

    def _fit(self, data: SessionDataset, *, seed: int) -> None:
        self._check_params()
        try:
            with torch_threads(int(self.num_threads)):
                super()._fit(data, seed=seed)
        finally:  # training-only state is not part of the fitted model
            for name in ("_cases", "_generator", "_optimizer", "_scheduler"):
                self.__dict__.pop(name, None)

    def _start_training(self, data: SessionDataset, split: str, seed: int) -> None:
        """A freshly initialised network, Adam and StepLR for ``data.split(split)``.

        One ``torch.Generator`` seeded with ``seed`` draws the initial weights
        and then every epoch's shuffle, so training is deterministic on CPU.
        """
        self.device_ = resolve_device(self.device, "srgnn")
        self._generator = torch.Generator().manual_seed(int(seed))
        model = SRGNN(self.n_items_, int(self.hidden_size), int(self.step), self.nonhybrid, self.edge_bias)
        model.reset_parameters(self._generator)
        self.model_ = model.to(self.device_)
        self._optimizer = torch.optim.Adam(
            self.model_.parameters(), lr=float(self.lr), weight_decay=float(self.l2), fused=True
        )  # fused: one kernel for all parameters (same update as the default loop)
        self._scheduler = torch.optim.lr_scheduler.StepLR(
            self._optimizer, step_size=int(self.lr_decay_every), gamma=float(self.lr_decay)
        )
        self.epoch_lrs_: list[float] = []
        self._cases = data.split(split).prefixes()
        if len(self._cases) == 0:
            raise ConfigError(f"srgnn: the {split!r} split has no prefixes to train on")

    def _graphs(self, batch: PrefixBatch) -> SessionGraphs:
        """The batch's session graphs, built on the model's device (outside ``forward``)."""
        return build_session_graphs(batch.items.to(self.device_), batch.lengths.to(self.device_), self.edge_weight)

    def _train_epoch(self, epoch: int) -> float:
        """One shuffled pass over the training prefixes; returns the mean batch loss."""
        from tqdm import tqdm

        cases, model, optimizer = self._cases, self.model_, self._optimizer
        self.epoch_lrs_.append(float(optimizer.param_groups[0]["lr"]))
        order = torch.randperm(len(cases), generator=self._generator).numpy()
        batch_size = int(self.batch_size)
        starts = range(0, len(order), batch_size)
        model.train()
        total = torch.zeros((), device=self.device_)
        bar = tqdm(starts, desc=f"srgnn epoch {epoch}", unit="batch", leave=False,
                   disable=not sys.stderr.isatty())
        for start in bar:
            index = order[start : start + batch_size]
            batch = cases.batch(index, with_times=False)
            targets = cases.next_items(index).to(self.device_)
            session = model(self._graphs(batch))
            loss = model.loss(session, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        self._scheduler.step()  # after the epoch: the paper's schedule
        return float(total) / len(starts)

    # -- scoring ------------------------------------------------------------

    def embed(self, batch: PrefixBatch) -> torch.Tensor:
        """[B, d]: the session embedding s_h of each prefix (s_g with ``nonhybrid``)."""
        self.model_.eval()
        with torch.inference_mode(), torch_threads(int(self.num_threads)):
            return self.model_(self._graphs(batch))

    def item_embeddings(self) -> torch.Tensor:
        """[n_items + 1, d]: the item embeddings (row 0: padding, never a target)."""
        return self.model_.embedding.weight.detach()

    def _score(self, batch: PrefixBatch) -> torch.Tensor:
        """float [B, n_items + 1]: ``s_h . e_j`` for every item, in one matrix product."""
        self.model_.eval()
        with torch.inference_mode(), torch_threads(int(self.num_threads)):
            return self.model_.scores(self.model_(self._graphs(batch)))

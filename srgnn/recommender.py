"""The registered ``srgnn`` recommender: trains :class:`srgnn.model.SRGNN`.

Training follows the paper: every prefix of the training split is one
example (the prefix -> next item pairs of the data-augmented sessions),
shuffled each epoch, in mini-batches of ``batch_size``; Adam with L2 penalty
``l2`` (``weight_decay``); the learning rate is multiplied by ``lr_decay``
every ``lr_decay_every`` epochs. The schedule is stepped AFTER each epoch, so
epochs 1-3 run at ``lr``, 4-6 at ``lr * lr_decay`` and so on, as the paper
says; the reference code steps it at the START of each epoch, so its rate
drops after 2 epochs, then every 3.

The prefix batching, device, threads, optimiser and model selection on the
validation split (``epochs``, ``patience``, ``refit``) come from
:class:`harness.models.neural.PrefixTrainedRecommender`; this module holds the
hyper-parameters, the graphs of each batch and the loss.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from harness.data.dataset import PrefixBatch
from harness.models.neural import PrefixTrainedRecommender
from harness.models.registry import Choice, Range, register
from srgnn.graph import EDGE_WEIGHTS, SessionGraphs, build_session_graphs
from srgnn.model import SRGNN


@register("srgnn")
class SRGNNRecommender(PrefixTrainedRecommender):
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
        softmax_precision: ``"fp32"`` (default) or ``"bf16"``: the
            precision of the training softmax's three products (see
            :func:`harness.models.neural.item_softmax_cross_entropy` and
            docs/srgnn.md); scoring is always float32.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``,
            ``"cuda"`` or ``"cuda:N"``; resolved in ``fit``.
        num_threads: torch intra-op CPU threads while fitting and scoring
            (restored afterwards); 0 leaves torch's setting. The default, 1,
            suits SR-GNN's many small operations and, above all, shared
            machines: with more threads than free cores, OpenMP's barriers
            make every operation wait for a descheduled thread (measured:
            tens of times slower on a loaded 2-core machine). Results do
            not depend on it beyond float rounding.

    Fitted attributes: ``network_`` (the :class:`srgnn.model.SRGNN`
    network, also reachable as ``model_``), ``device_``, ``epoch_lrs_`` (the
    learning rate of each epoch of the last training run),
    ``softmax_work_`` (``[FLOPs, seconds]`` of the softmax products of all
    training epochs, see :attr:`harness.models.neural.NeuralRecommender.timings_`),
    and from the base classes ``best_epoch_``, ``training_curve_``,
    ``n_items_``.
    """

    #: checked when a suite or --param sets them (the rest by _check_params at fit)
    hyperparameter_ranges: ClassVar[dict[str, Range | Choice]] = {
        **{name: Range(1) for name in ("hidden_size", "lr_decay_every", "step")},
        "lr_decay": Range(0, 1, low_open=True),
        "edge_weight": Choice(EDGE_WEIGHTS),
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
        softmax_precision: str = "fp32",
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
        self.softmax_precision = softmax_precision
        self.device = device
        self.num_threads = num_threads

    # -- configuration ------------------------------------------------------

    def _check_params(self) -> None:
        super()._check_params()
        for name in ("hidden_size", "batch_size", "lr_decay_every", "step"):
            self._check_int(name)
        self._check_number("lr", lambda x: x > 0, "a number > 0")
        self._check_number("lr_decay", lambda x: 0 < x <= 1, "a number in (0, 1]")
        self._check_number("l2", lambda x: x >= 0, "a number >= 0")
        for name in ("nonhybrid", "edge_bias", "refit"):
            self._check_bool(name)
        self._check_choice("edge_weight", EDGE_WEIGHTS)

    @property
    def model_(self) -> SRGNN:
        """The fitted network (the same object as ``network_``)."""
        return self.network_

    # -- training (PrefixTrainedRecommender) -----------------------------------

    def _build_network(self, generator: torch.Generator) -> SRGNN:
        """A network with every weight uniform in +-1/sqrt(d), drawn from ``generator``."""
        model = SRGNN(self.n_items_, int(self.hidden_size), int(self.step), self.nonhybrid, self.edge_bias)
        model.reset_parameters(generator)
        return model

    def _make_scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.StepLR:
        """The rate times ``lr_decay`` every ``lr_decay_every`` epochs (stepped after each epoch)."""
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(self.lr_decay_every),
                                               gamma=float(self.lr_decay))

    def _graphs(self, batch: PrefixBatch) -> SessionGraphs:
        """The batch's session graphs, built on the batch's device (outside ``forward``)."""
        return build_session_graphs(batch.items, batch.lengths, self.edge_weight)

    def _batch_loss(self, batch: PrefixBatch, targets: torch.Tensor) -> torch.Tensor:
        """Softmax cross-entropy over items 1..n_items (eqs. 9-10)."""
        return self._item_softmax_loss(self.network_(self._graphs(batch)), self.network_.embedding.weight, targets)

    # -- scoring ------------------------------------------------------------

    def _session_embeddings(self, batch: PrefixBatch) -> torch.Tensor:
        """[B, d]: the session embedding s_h of each prefix (s_g with ``nonhybrid``)."""
        return self.network_(self._graphs(batch))

    def _item_embeddings(self) -> torch.Tensor:
        """[n_items + 1, d]: the item embeddings e_j (row 0: padding, never a target)."""
        return self.network_.embedding.weight

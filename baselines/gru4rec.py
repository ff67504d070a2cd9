r"""GRU4Rec: a GRU over the clicks of a session, trained with session-parallel
mini-batches.

Papers
------
- B. Hidasi, A. Karatzoglou, L. Baltrunas, D. Tikk. *Session-based
  Recommendations with Recurrent Neural Networks.* ICLR 2016
  (arXiv:1511.06939): the network, session-parallel mini-batches, sampling
  on the output, ranking losses.
- B. Hidasi, A. Karatzoglou. *Recurrent Neural Networks with Top-k Gains for
  Session-based Recommendations.* CIKM 2018 (arXiv:1706.03847): additional
  negative samples drawn by popularity, the BPR-max and TOP1-max losses and
  the score regularisation of BPR-max, constrained (tied) embeddings.
- B. Hidasi, Á. Czapp. *The Effect of Third Party Implementations on
  Reproducibility.* RecSys 2023 (arXiv:2307.14956): why re-implementations
  that drop session-parallel training, in-batch + sampled negatives or the
  losses of the 2018 paper are less accurate and much slower. This module
  keeps all of them; ``docs/gru4rec.md`` lists what it does and does not do
  compared with the official code (hidasib/GRU4Rec, GRU4Rec_PyTorch_Official).

The network
-----------
For the item ``x_t`` clicked at step ``t`` of a session (ids 1..N)::

    e_t = E[x_t]                                     item embedding (dropout p_e)
    r_t = sigmoid(W_r e_t + b_r + U_r h_{t-1} + c_r)   reset gate
    z_t = sigmoid(W_z e_t + b_z + U_z h_{t-1} + c_z)   update gate
    n_t = tanh(W_n e_t + b_n + r_t * (U_n h_{t-1} + c_n))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}             (dropout p_h; h_0 = 0)
    score_t(i) = h_t . O[i] + b[i]                     for every item i

(PyTorch's GRU convention; with ``n_layers > 1`` the (dropped-out) output of
layer l is the input of layer l + 1.) The input ``E`` is, by
hyper-parameter: the output matrix ``O`` itself (``constrained_embedding``,
the 2018 paper's tied embedding, so ``E`` has the hidden size), a separate
table of ``embedding`` columns, or one-hot (``embedding=0`` and no tying: the
first layer's input weights are one row of 3 x hidden per item). As in the
original, the dropout of the hidden layer is applied to the state that is
carried to the next step.

Training: session-parallel mini-batches
---------------------------------------
Sessions are taken in the order of the split (by start time). Row r of the
mini-batch follows one session: at each step the batch holds the current
item of every row as input and the next item as target; one step is one
gradient update (back-propagation through one time step, the hidden state
carried forward and detached, as in the original). When a row's session has
no next item, the row takes the next unused session and its hidden state is
reset to 0; when no session is left, the row is dropped and the batch
shrinks. See :func:`session_parallel_steps`.

Losses (one mini-batch of B rows; r_ij = score of column j for row i)
--------------------------------------------------------------------
- ``cross-entropy`` (default): full softmax over all N items::

      L_i = -r_{i,y_i} + log sum_{k=1..N} exp(r_{i,k})

  (:func:`harness.models.neural.item_softmax_cross_entropy`, with the bias ``b``).

- ``bpr-max`` and ``top1-max`` score the columns ``[y_1..y_B, s_1..s_S]``:
  the targets of the mini-batch (row i's target is column i, the other rows'
  targets are its negatives) plus ``n_sample`` = S extra items drawn with
  probability proportional to ``count(i) ** sample_alpha`` (shared by the
  batch, drawn in large precomputed chunks). With the softmax over row i's
  negatives ``s_ij = exp(r_ij) / sum_{k != i} exp(r_ik)`` (j != i; s_ii = 0)::

      BPR-max:   L_i = -log( sum_j s_ij sigmoid(r_ii - r_ij) ) + bpreg * sum_j s_ij r_ij^2
      TOP1-max:  L_i =  sum_j s_ij ( sigmoid(r_ij - r_ii) + sigmoid(r_ij^2) )

  The last terms squeeze the negatives' scores (logits) towards 0: BPR-max's
  regulariser with weight ``bpreg``, TOP1-max's built-in ``sigmoid(r^2)``.
  With ``elu_param > 0``, BPR-max works on ``ELU(r, elu_param)`` (the official
  PyTorch code's final activation; it does not change the ranking).

The mini-batch loss is the mean of ``L_i`` over its rows.

Optimisers: ``adam`` (PyTorch's Adam) or ``adagrad``: Adagrad with the
official code's momentum, ``G += g^2; v = momentum * v - lr * g / sqrt(G + 1e-6);
theta += v``. Weights start uniform in +-sqrt(6 / (fan_in + fan_out)) (per
gate block), biases at 0, as in the original.

Scoring
-------
``score(batch)`` runs the GRU over each whole prefix of the batch (rows
sorted by length; at step t only the rows still inside their prefix are
updated, so each row's state stops at its own length) and returns
``h . O^T + b``: the same scores that session-parallel inference, which
carries each session's state click by click, gives after the prefix's last
click (tested). Scores are linear in ``[h, 1]``, so the model also provides
``session_embeddings`` (``[h, 1]``) / ``item_embeddings`` (``[O, b]``).

Hyper-parameters
----------------
loss: ``"cross-entropy"`` (full softmax), ``"bpr-max"`` or ``"top1-max"``.
hidden_size: GRU units per layer.
n_layers: stacked GRU layers.
embedding: size of a separate input embedding; 0 = one-hot input. Must be 0
    with ``constrained_embedding``.
constrained_embedding: use the output item matrix as the input embedding.
dropout_embed: dropout on the input embedding (not used with one-hot input).
dropout_hidden: dropout on each layer's output / carried hidden state.
optimizer: ``"adam"`` or ``"adagrad"``.
learning_rate: step size of the optimiser.
momentum: Adagrad's momentum (0 = none); must be 0 with Adam.
batch_size: sessions processed in parallel (rows of a mini-batch).
n_sample: extra negatives per mini-batch for the ranking losses (0 = only the
    mini-batch's own targets); unused by cross-entropy.
sample_alpha: the extra negatives are drawn proportional to count**alpha
    (1 = by popularity, 0 = uniform over the training items).
bpreg: weight of BPR-max's score regularisation.
elu_param: ELU parameter of BPR-max's final activation (0 = linear).
epochs, patience, refit: the selection rule (harness.models.training)
    (:class:`~harness.models.training.EpochTrainedRecommender`): with
    ``patience > 0``, train on ``train_tr`` for at most ``epochs`` and keep
    the epoch with the best validation MRR@20 (stop after ``patience``
    epochs without a gain), then (``refit``) retrain on ``train`` for that
    many epochs; with ``patience = 0``, train on ``train`` for ``epochs``.
softmax_precision: ``"fp32"`` (default) or ``"bf16"``: the precision of the
    cross-entropy loss's products (see
    :func:`harness.models.neural.item_softmax_cross_entropy`; not used by bpr-max).
device: ``"auto"`` (CUDA when available, chosen in ``fit``), ``"cpu"``,
    ``"cuda"`` or ``"cuda:K"``.
num_threads: torch CPU threads while the model trains and scores (the
    previous setting is restored afterwards); 0 leaves torch's setting. The
    default 1 is much faster for these small per-step products on a shared
    machine (docs/gru4rec.md).

Defaults: cross-entropy, hidden 100, one layer, tied embedding, dropout 0.5
on the hidden state, Adam with learning rate 0.002, batch 32, at most 20
epochs with patience 2.

The defaults were chosen on the validation split of yoochoose-100k
(``train_tr`` -> ``valid``); ``docs/gru4rec.md`` has the grid and the
measured test accuracy and training time.

Determinism: every random number (initial weights, dropout masks, negative
samples) comes from generators seeded in ``fit`` from ``seed``, so two fits
with one seed on the CPU give identical models.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.data.dataset import PrefixBatch, SessionDataset
from harness.models.neural import NeuralRecommender, adam, dropout
from harness.models.registry import Choice, Range, register

LOSSES = ("cross-entropy", "bpr-max", "top1-max")
OPTIMIZERS = ("adam", "adagrad")
#: negatives drawn per refill of the sample cache (a chunk covers this many / n_sample mini-batches)
SAMPLE_CACHE_SIZE = 1 << 21


# --------------------------------------------------------------------------- #
# Ranking losses: each returns the per-row loss [B] (cross-entropy is
# harness.models.neural.item_softmax_cross_entropy, the mean over the rows)
# --------------------------------------------------------------------------- #


def softmax_negatives(scores: torch.Tensor) -> torch.Tensor:
    """Softmax of row i over its negative columns (all j != i): [B, C], C >= B.

    Row i's target sits in column i and gets weight 0.
    """
    rows = scores.shape[0]
    own = torch.eye(rows, scores.shape[1], dtype=torch.bool, device=scores.device)
    return torch.softmax(scores.masked_fill(own, -math.inf), dim=1)


def bpr_max_loss(scores: torch.Tensor, bpreg: float = 0.0) -> torch.Tensor:
    """BPR-max with score regularisation (Hidasi & Karatzoglou, 2018)::

        L_i = -log( sum_j s_ij sigmoid(r_ii - r_ij) + 1e-24 ) + bpreg * sum_j s_ij r_ij^2

    scores: [B, C] with row i's target in column i (C >= B).
    """
    weights = softmax_negatives(scores)
    target = scores.diagonal().unsqueeze(1)
    ranked_below = (weights * torch.sigmoid(target - scores)).sum(dim=1)
    return -torch.log(ranked_below + 1e-24) + bpreg * (weights * scores.square()).sum(dim=1)


def top1_max_loss(scores: torch.Tensor) -> torch.Tensor:
    """TOP1-max (Hidasi & Karatzoglou, 2018)::

        L_i = sum_j s_ij ( sigmoid(r_ij - r_ii) + sigmoid(r_ij^2) )

    scores: [B, C] with row i's target in column i (C >= B).
    """
    weights = softmax_negatives(scores)
    target = scores.diagonal().unsqueeze(1)
    return (weights * (torch.sigmoid(scores - target) + torch.sigmoid(scores.square()))).sum(dim=1)


# --------------------------------------------------------------------------- #
# Session-parallel mini-batches
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class ParallelStep:
    """One step (one mini-batch) of session-parallel training.

    Before the step, the hidden state of the previous step is first cut to
    the rows ``keep`` (None: all rows continue), then zeroed where ``reset``.

    Attributes:
        inputs: int64 [B_t], the current item of each row.
        targets: int64 [B_t], the next item of each row.
        sessions: int64 [B_t], the index (in the split) of each row's session.
        reset: bool [B_t], the row starts a new session at this step.
        keep: int64 indices into the previous step's rows, or None.
    """

    inputs: np.ndarray
    targets: np.ndarray
    sessions: np.ndarray
    reset: np.ndarray
    keep: np.ndarray | None


def session_parallel_steps(items: np.ndarray, offsets: np.ndarray, batch_size: int) -> Iterator[ParallelStep]:
    """Session-parallel mini-batches over a split (Hidasi et al., 2016, Fig. 2).

    items: int64 [n_events], the split's items in session order; offsets:
    int64 [n_sessions + 1], session s is ``items[offsets[s]:offsets[s + 1]]``.
    Sessions are used in this order (sessions shorter than 2 are skipped);
    the first ``batch_size`` fill the rows. At each step every row yields its
    current item and the next one. A row whose session has no next item
    takes the next unused session (finished rows take them in row order) and
    is marked ``reset``; when no session is left, finished rows are dropped
    and the batch shrinks. Vectorised over the rows, one iteration per step.
    """
    lengths = np.diff(offsets)
    usable = np.flatnonzero(lengths >= 2)
    if len(usable) == 0 or batch_size < 1:
        return
    rows = min(int(batch_size), len(usable))
    sessions = usable[:rows].copy()
    upcoming = rows
    pos = offsets[sessions].copy()
    end = offsets[sessions + 1].copy()
    reset = np.ones(rows, dtype=bool)
    keep: np.ndarray | None = None
    while len(pos):
        yield ParallelStep(items[pos], items[pos + 1], sessions.copy(), reset, keep)
        pos = pos + 1
        finished = np.flatnonzero(pos + 1 >= end)
        reset = np.zeros(len(pos), dtype=bool)
        keep = None
        if len(finished) == 0:
            continue
        n_new = min(len(finished), len(usable) - upcoming)
        refill = finished[:n_new]
        new_sessions = usable[upcoming : upcoming + n_new]
        upcoming += n_new
        sessions[refill] = new_sessions
        pos[refill] = offsets[new_sessions]
        end[refill] = offsets[new_sessions + 1]
        reset[refill] = True
        if n_new < len(finished):
            keep = np.delete(np.arange(len(pos)), finished[n_new:])
            sessions, pos, end, reset = sessions[keep], pos[keep], end[keep], reset[keep]


class _Plan:
    """The steps of one epoch, moved to the device once (slices per step)."""

    def __init__(self, steps: list[ParallelStep], device: torch.device) -> None:
        sizes = [len(s.inputs) for s in steps]
        self.bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        self.n_steps = len(steps)
        self.n_events = int(self.bounds[-1])
        self.first_rows = sizes[0] if sizes else 0
        cat = lambda name, dtype: torch.from_numpy(  # noqa: E731
            np.concatenate([getattr(s, name) for s in steps]).astype(dtype)
        ).to(device)
        self.inputs = cat("inputs", np.int64) if steps else None
        self.targets = cat("targets", np.int64) if steps else None
        self.carry = (1.0 - cat("reset", np.float32)) if steps else None
        self.has_reset = [bool(s.reset.any()) for s in steps]
        self.keep = [None if s.keep is None else torch.from_numpy(s.keep).to(device) for s in steps]


# --------------------------------------------------------------------------- #
# The network
# --------------------------------------------------------------------------- #


def _uniform_(tensor: torch.Tensor, fan_in: int, fan_out: int, generator: torch.Generator) -> None:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        tensor.uniform_(-bound, bound, generator=generator)


class GRULayer(nn.Module):
    """One GRU layer, stepped by hand so that training (one step at a time)
    and scoring (whole prefixes) run the same arithmetic.

    With ``n_items`` the input is one-hot: ``weight_item[i]`` is the input
    projection (3 x hidden) of item i.
    """

    def __init__(self, n_in: int, hidden: int, generator: torch.Generator, *, n_items: int | None = None) -> None:
        super().__init__()
        self.hidden = hidden
        if n_items is not None:
            self.weight_item = nn.Parameter(torch.empty(n_items + 1, 3 * hidden))
            self.weight_ih = None
            for g in range(3):
                _uniform_(self.weight_item[:, g * hidden : (g + 1) * hidden], n_items, hidden, generator)
        else:
            self.weight_item = None
            self.weight_ih = nn.Parameter(torch.empty(3 * hidden, n_in))
            for g in range(3):
                _uniform_(self.weight_ih[g * hidden : (g + 1) * hidden], n_in, hidden, generator)
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden, hidden))
        for g in range(3):
            _uniform_(self.weight_hh[g * hidden : (g + 1) * hidden], hidden, hidden, generator)
        self.bias_ih = nn.Parameter(torch.zeros(3 * hidden))
        self.bias_hh = nn.Parameter(torch.zeros(3 * hidden))

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """The input's share of the gates, [..., 3 * hidden]; x holds item ids
        (one-hot layer) or features [..., n_in]."""
        if self.weight_ih is None:
            return F.embedding(x, self.weight_item) + self.bias_ih
        return F.linear(x, self.weight_ih, self.bias_ih)

    def step(self, gates_x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One GRU step from the input gates [B, 3H] and the state [B, H]."""
        gates_h = F.linear(h, self.weight_hh, self.bias_hh)
        x_r, x_z, x_n = gates_x.chunk(3, dim=1)
        h_r, h_z, h_n = gates_h.chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return n + z * (h - n)


def _dropout(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout with masks from ``generator`` (None: identity, as in scoring)."""
    return dropout(x, p, training=generator is not None, generator=generator)


class GRU4RecNetwork(nn.Module):
    """Input (tied, separate or one-hot) -> GRU layers -> scores ``h . O^T + b``."""

    def __init__(
        self, n_items: int, *, hidden_size: int, n_layers: int, embedding: int, constrained: bool,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.constrained = constrained
        self.output = nn.Parameter(torch.empty(n_items + 1, hidden_size))
        _uniform_(self.output, n_items, hidden_size, generator)
        self.bias = nn.Parameter(torch.zeros(n_items + 1))
        self.embedding = None
        one_hot = not constrained and embedding == 0
        if not constrained and embedding > 0:
            self.embedding = nn.Parameter(torch.empty(n_items + 1, embedding))
            _uniform_(self.embedding, n_items, embedding, generator)
        n_in = hidden_size if constrained else embedding
        layers = [GRULayer(n_in, hidden_size, generator, n_items=n_items if one_hot else None)]
        layers += [GRULayer(hidden_size, hidden_size, generator) for _ in range(n_layers - 1)]
        self.layers = nn.ModuleList(layers)
        with torch.no_grad():  # the padding id is never an input or a target
            self.output[0].zero_()

    @property
    def one_hot(self) -> bool:
        return self.layers[0].weight_ih is None

    def inputs(self, items: torch.Tensor, p_embed: float = 0.0, generator: torch.Generator | None = None):
        """What the first layer reads: embeddings [..., d] (dropout p_embed), or
        the ids themselves for one-hot input."""
        if self.one_hot:
            return items
        table = self.output if self.constrained else self.embedding
        return _dropout(F.embedding(items, table), p_embed, generator)

    def step(
        self, items: torch.Tensor, state: list[torch.Tensor], *, p_embed: float = 0.0, p_hidden: float = 0.0,
        generator: torch.Generator | None = None, vectors: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """One click for every row: the new state of each layer (the last is
        the session representation). Dropout only when a generator is given.
        ``vectors`` [B, d]: the rows of the input table for ``items``, when
        the caller looked them up itself (see ``GRU4Rec._train_step``)."""
        x = self.inputs(items, p_embed, generator) if vectors is None else _dropout(vectors, p_embed, generator)
        new_state = []
        for layer, h in zip(self.layers, state):
            h = _dropout(layer.step(layer.input_gates(x), h), p_hidden, generator)
            new_state.append(h)
            x = h
        return new_state

    def initial_state(self, rows: int, device: torch.device) -> list[torch.Tensor]:
        return [torch.zeros(rows, layer.hidden, device=device) for layer in self.layers]

    def encode_prefixes(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Final hidden state [B, H] after each row's ``lengths[b]`` clicks.

        Rows are sorted by length (longest first); at step t only the first
        ``active[t]`` rows (those with length > t) are advanced, so each row's
        state stops at its own length, like packed sequences.
        """
        rows = items.shape[0]
        if rows == 0:
            return torch.zeros(0, self.layers[-1].hidden, device=items.device)
        order = torch.argsort(lengths, descending=True, stable=True)
        sorted_lengths = lengths[order].cpu()
        width = int(sorted_lengths[0])
        active = (sorted_lengths.unsqueeze(0) > torch.arange(width).unsqueeze(1)).sum(1).tolist()
        x = self.inputs(items[order, :width])
        last = len(self.layers) - 1
        for depth, layer in enumerate(self.layers):
            gates_x = layer.input_gates(x)  # [B, width, 3H]
            h = torch.zeros(rows, layer.hidden, device=items.device, dtype=gates_x.dtype)
            outputs = []
            for t in range(width):
                k = active[t]
                moved = layer.step(gates_x[:k, t], h[:k])
                h = moved if k == rows else torch.cat([moved, h[k:]])
                if depth < last:
                    outputs.append(h)
            if depth < last:
                x = torch.stack(outputs, dim=1)
        out = torch.empty_like(h)
        out[order] = h
        return out

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        """[B, n_items + 1]: ``h . O^T + b`` for every item id."""
        return F.linear(h, self.output, self.bias)


# --------------------------------------------------------------------------- #
# Optimiser
# --------------------------------------------------------------------------- #


class AdagradM(torch.optim.Optimizer):
    """Adagrad with momentum, as in the official GRU4Rec code::

        G += g^2;   v = momentum * v - lr * g / sqrt(G + eps);   theta += v

    (``momentum = 0``: plain Adagrad, ``theta -= lr * g / sqrt(G + eps)``.)
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, eps: float = 1e-6) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D401 - torch's signature
        """One update of every parameter with a gradient: the same arithmetic
        per element for all of them, as one ``torch._foreach_*`` call per
        operation (the parameters' loop runs in C++)."""
        for group in self.param_groups:
            lr, momentum, eps = group["lr"], group["momentum"], group["eps"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if not self.state[p]:
                    self.state[p]["sum"] = torch.zeros_like(p)
                    if momentum > 0:
                        self.state[p]["velocity"] = torch.zeros_like(p)
            grads = [p.grad for p in params]
            sums = [self.state[p]["sum"] for p in params]
            torch._foreach_addcmul_(sums, grads, grads)  # G += g^2
            denoms = torch._foreach_add(sums, eps)
            torch._foreach_sqrt_(denoms)  # sqrt(G + eps)
            if momentum > 0:
                velocities = [self.state[p]["velocity"] for p in params]
                torch._foreach_mul_(velocities, momentum)
                torch._foreach_addcdiv_(velocities, grads, denoms, value=-lr)  # v = momentum v - lr g / sqrt(G + eps)
                torch._foreach_add_(params, velocities)
            else:
                torch._foreach_addcdiv_(params, grads, denoms, value=-lr)
        return None


# --------------------------------------------------------------------------- #
# The recommender
# --------------------------------------------------------------------------- #


@register("gru4rec")
class GRU4Rec(NeuralRecommender):
    """GRU4Rec (Hidasi et al., ICLR 2016; Hidasi & Karatzoglou, CIKM 2018).

    See the module docstring for the formulas and every hyper-parameter.
    Device, threads, cleanup and the selection rule come from
    :class:`harness.models.neural.NeuralRecommender`. Fitted attributes:
    ``network_`` (:class:`GRU4RecNetwork`), ``device_``, ``best_epoch_``,
    ``training_curve_``.
    """

    #: checked when a suite or --param sets them (the rest by _check_params at fit)
    hyperparameter_ranges: ClassVar[dict[str, Range | Choice]] = {
        **{name: Range(1) for name in ("hidden_size", "n_layers", "batch_size")},
        **{name: Range(0) for name in ("embedding", "n_sample", "sample_alpha", "bpreg", "elu_param")},
        **{name: Range(0, 1, high_open=True) for name in ("dropout_embed", "dropout_hidden", "momentum")},
        "learning_rate": Range(0, low_open=True),
        "loss": Choice(LOSSES),
        "optimizer": Choice(OPTIMIZERS),
    }

    def __init__(
        self,
        *,
        loss: str = "cross-entropy",
        hidden_size: int = 100,
        n_layers: int = 1,
        embedding: int = 0,
        constrained_embedding: bool = True,
        dropout_embed: float = 0.0,
        dropout_hidden: float = 0.5,
        optimizer: str = "adam",
        learning_rate: float = 0.002,
        momentum: float = 0.0,
        batch_size: int = 32,
        n_sample: int = 2048,
        sample_alpha: float = 0.5,
        bpreg: float = 1.0,
        elu_param: float = 0.5,
        epochs: int = 20,
        patience: int = 2,
        refit: bool = True,
        softmax_precision: str = "fp32",
        device: str = "auto",
        num_threads: int = 1,
    ) -> None:
        self.loss = loss
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.embedding = embedding
        self.constrained_embedding = constrained_embedding
        self.dropout_embed = dropout_embed
        self.dropout_hidden = dropout_hidden
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.batch_size = batch_size
        self.n_sample = n_sample
        self.sample_alpha = sample_alpha
        self.bpreg = bpreg
        self.elu_param = elu_param
        self.epochs = epochs
        self.patience = patience
        self.refit = refit
        self.softmax_precision = softmax_precision
        self.device = device
        self.num_threads = num_threads

    # -- checks -------------------------------------------------------------

    def _check_params(self) -> None:
        super()._check_params()
        self._check_choice("loss", LOSSES)
        self._check_choice("optimizer", OPTIMIZERS)
        for name in ("hidden_size", "n_layers", "batch_size"):
            self._check_int(name)
        for name in ("embedding", "n_sample"):
            self._check_int(name, minimum=0)
        if self.constrained_embedding and self.embedding:
            raise self._bad("embedding must be 0 with constrained_embedding=True (the input embedding is the "
                            "output matrix, of size hidden_size)")
        for name in ("dropout_embed", "dropout_hidden"):
            self._check_number(name, lambda x: 0.0 <= x < 1.0, "in [0, 1)")
        self._check_number("learning_rate", lambda x: x > 0.0, "a number > 0")
        self._check_number("momentum", lambda x: 0.0 <= x < 1.0, "in [0, 1)")
        if self.optimizer == "adam" and self.momentum != 0.0:
            raise self._bad("momentum is Adagrad's; Adam has its own (use optimizer='adagrad' or momentum=0)")
        for name in ("sample_alpha", "bpreg", "elu_param"):
            self._check_number(name, lambda x: x >= 0.0, "a number >= 0")

    # -- training -------------------------------------------------------------

    def _start_training(self, data: SessionDataset, split: str, seed: int) -> None:
        device = self.device_
        init_gen = torch.Generator().manual_seed(seed)
        self.network_ = GRU4RecNetwork(
            data.n_items, hidden_size=self.hidden_size, n_layers=self.n_layers, embedding=self.embedding,
            constrained=self.constrained_embedding, generator=init_gen,
        ).to(device)
        params = list(self.network_.parameters())
        if self.optimizer == "adam":
            self._optim = adam(params, lr=self.learning_rate)
        else:
            self._optim = AdagradM(params, lr=self.learning_rate, momentum=self.momentum)
        self._dropout_gen = torch.Generator(device=device).manual_seed(seed + 1)
        self._sample_gen = torch.Generator(device=device).manual_seed(seed + 2)
        train = data.split(split)
        self._plan = _Plan(list(session_parallel_steps(train.item_array, train.offsets, self.batch_size)), device)
        self._sample_cdf = None
        if self.loss != "cross-entropy" and self.n_sample > 0:
            counts = torch.from_numpy(train.item_counts(data.n_items)[1:]).double()
            weights = torch.where(counts > 0, counts.pow(self.sample_alpha), torch.zeros_like(counts))
            cdf = torch.cumsum(weights, 0) / weights.sum()
            cdf[-1] = 1.0
            self._sample_cdf = cdf.float().to(device)
        self._samples: list[torch.Tensor] = []

    def _training_state(self) -> dict:
        """The base's state plus the negative samples drawn but not yet used
        (they carry over epochs), stacked into one tensor [left, n_sample]."""
        state = super()._training_state()
        state["samples"] = torch.stack(self._samples[::-1]) if self._samples else None
        return state

    def _load_training_state(self, state: dict) -> None:
        super()._load_training_state(state)
        samples = state["samples"]
        self._samples = [] if samples is None else list(samples.to(self.device_).unbind(0))[::-1]

    def _negative_samples(self) -> torch.Tensor:
        """``n_sample`` item ids drawn by count**sample_alpha, served from a
        cache refilled in chunks of :data:`SAMPLE_CACHE_SIZE` draws."""
        if not self._samples:
            chunk = max(1, SAMPLE_CACHE_SIZE // self.n_sample)
            u = torch.rand(chunk * self.n_sample, generator=self._sample_gen, device=self.device_)
            ids = torch.searchsorted(self._sample_cdf, u, right=True).clamp_(max=len(self._sample_cdf) - 1) + 1
            self._samples = list(ids.view(chunk, self.n_sample).unbind(0))[::-1]
        return self._samples.pop()

    def _batch_loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean loss of one step's rows: ``h`` [B, H], ``targets`` [B] item ids."""
        net = self.network_
        if self.loss == "cross-entropy":  # the full softmax over items 1..N, the shared hand-written loss
            return self._item_softmax_loss(h, net.output, targets, net.bias)
        columns = targets if self._sample_cdf is None else torch.cat([targets, self._negative_samples()])
        scores = h @ net.output[columns].T + net.bias[columns]
        if self.loss == "bpr-max":
            if self.elu_param > 0:
                scores = F.elu(scores, alpha=self.elu_param)
            return bpr_max_loss(scores, self.bpreg).mean()
        return top1_max_loss(scores).mean()

    def _train_epoch(self, epoch: int) -> float:
        plan = self._plan
        self.network_.train()
        state = self.network_.initial_state(plan.first_rows, self.device_)
        total = torch.zeros((), device=self.device_)
        events = 0
        bar = self._progress(plan.n_events, epoch, "ev")
        try:
            for t in range(self._epoch_steps()):
                state, loss_sum = self._train_step(t, state)
                total += loss_sum
                rows = plan.bounds[t + 1] - plan.bounds[t]
                events += rows
                bar.update(rows, total, events)
        finally:
            bar.close()
        self.network_.eval()
        return float(total) / max(events, 1)  # a NaN stops the fit (EpochTrainedRecommender)

    def _epoch_steps(self) -> int:
        """Steps trained per epoch: all of the plan's, except that a ranking
        loss without extra negatives stops at the first step with fewer than
        2 rows (no negatives left, as the original)."""
        plan = self._plan
        if self.loss == "cross-entropy" or self._sample_cdf is not None:
            return plan.n_steps
        return next((t for t in range(plan.n_steps) if plan.bounds[t + 1] - plan.bounds[t] < 2), plan.n_steps)

    def _train_step(self, t: int, state: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Step ``t`` of the epoch's plan, one gradient update, from each
        layer's hidden state after step t - 1 ([B_{t-1}, H]; zeros before
        step 0). Returns the new states, detached ([B_t, H]), and the sum of
        the step's row losses (a detached scalar)."""
        plan, net, optim = self._plan, self.network_, self._optim
        lo, hi = plan.bounds[t], plan.bounds[t + 1]
        if plan.keep[t] is not None:
            state = [h[plan.keep[t]] for h in state]
        if plan.has_reset[t]:
            carry = plan.carry[lo:hi].unsqueeze(1)
            state = [h * carry for h in state]
        items = plan.inputs[lo:hi]
        # the tied input lookup as a leaf of its own: its gradient is added into the output table's below,
        # where autograd would fill a second [N + 1, d] table with it and add the two
        vectors = F.embedding(items, net.output.detach()).requires_grad_() if net.constrained else None
        state = net.step(items, state, p_embed=self.dropout_embed, p_hidden=self.dropout_hidden,
                         generator=self._dropout_gen, vectors=vectors)
        loss = self._batch_loss(state[-1], plan.targets[lo:hi])
        loss.backward()
        if vectors is not None:
            net.output.grad.index_add_(0, items, vectors.grad)
        optim.step()
        optim.zero_grad(set_to_none=True)  # the gradients live within the step: one steady pattern of buffers
        return [h.detach() for h in state], loss.detach() * (hi - lo)

    # -- scoring ----------------------------------------------------------------

    def _session_embeddings(self, batch: PrefixBatch) -> torch.Tensor:
        """[B, hidden + 1]: the final hidden state of each prefix, with a 1
        appended so that the product with :meth:`_item_embeddings` is the score."""
        h = self.network_.encode_prefixes(batch.items, batch.lengths)
        return torch.cat([h, torch.ones(len(h), 1, device=h.device, dtype=h.dtype)], dim=1)

    def _item_embeddings(self) -> torch.Tensor:
        """[n_items + 1, hidden + 1]: the output item vectors with their bias."""
        net = self.network_
        return torch.cat([net.output, net.bias.unsqueeze(1)], dim=1)

    def _scores(self, batch: PrefixBatch) -> torch.Tensor:
        """``h . O^T + b`` in one fused product (equal to the embeddings' product)."""
        net = self.network_
        return net.scores(net.encode_prefixes(batch.items, batch.lengths))

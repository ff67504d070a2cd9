r"""SASRec: causal self-attention over the clicks of a session.

Paper: W.-C. Kang, J. McAuley. *Self-Attentive Sequential Recommendation.*
ICDM 2018 (arXiv:1808.09781); the authors' code: kang205/SASRec.

For the last ``n <= max_len`` clicks ``x_1..x_n`` of a sequence (``d``
columns, ``E`` the item embeddings, ``P`` learned positional embeddings)::

    z_j   = sqrt(d) E[x_j] + P[max_len - n + j]          (dropout; the authors' code scales by sqrt(d)
                                                          and counts positions from the end of the window)
    block (``n_blocks`` times), the authors' code's order:
      q   = LN(z)
      z   = q + MultiHeadAttention(q, z, z)               causal: position j attends to positions <= j
      z   = LN(z)
      z   = z + W_2 dropout(ReLU(W_1 z + b_1)) + b_2      point-wise FFN (dropout after each layer)
    F     = LN(z)                                         final layer norm
    r(i)  = <F_n, E[i]>                                   the last position scored against the shared E

So the layer norms come first inside each block (pre-LN, as the authors'
code; the paper's text writes LN(x + Dropout(g(x))), post-LN), and the
attention's query is the normalised input while its keys and values are
not, as in that code.

Training: each training session (its last ``max_len + 1`` clicks) is one
sequence and every position ``j < n`` predicts click ``j + 1`` (the paper's
sequence-to-sequence training), in shuffled batches of ``batch_size``
sessions. ``loss="cross-entropy"`` (default) is the full softmax over
items 1..N at every position; ``loss="bce"`` is the paper's binary
cross-entropy with one negative per position, drawn uniformly from the
items other than the target (the paper draws it from items the user never
clicked)::

    L = - sum_j [ log sigmoid(r_j(x_{j+1})) + log(1 - sigmoid(r_j(neg_j))) ] / (positions)

Adam with beta_2 = 0.98 as the paper.

Embeddings: the session embedding is ``F_n`` [d], the item embeddings ``E``.

Hyper-parameters (paper defaults for sparse data, Section IV: d = 50, two
blocks, one head, dropout 0.5 on sparse data and 0.2 on MovieLens; 0.2
here, max_len 50, Adam lr 0.001, batch 128):

hidden_size: d.
n_blocks, n_heads: self-attention blocks and heads per block.
dropout: dropout on the input embeddings, the attention weights and the FFN.
max_len: n, the most recent clicks a sequence keeps.
loss: ``"cross-entropy"`` or ``"bce"``.
lr, l2 (Adam's weight decay), batch_size (sessions per step), epochs,
patience, refit (the selection rule), softmax_precision (of the cross-entropy's
products), device, num_threads: see :class:`harness.models.neural.NeuralRecommender`.

Initialisation: every weight matrix Xavier-uniform (the authors' code),
biases 0, layer norms at gain 1, drawn from the fit's seeded generator.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.data.dataset import PrefixBatch, SessionSplit
from harness.models.neural import Dropout, PrefixTrainedRecommender
from harness.models.registry import Choice, Range, register

LOSSES = ("cross-entropy", "bce")


class SessionSequences:
    """Whole training sessions as sequence examples, for sequence-to-sequence training.

    Example ``k`` is the ``k``-th session with at least 2 clicks, cut to its
    last ``max_len + 1`` clicks: :meth:`batch` gives its first n clicks
    (left-aligned, 0-padded) and :meth:`next_items` the click after each of
    them ([B, L], 0 at padding).
    """

    def __init__(self, split: SessionSplit, max_len: int) -> None:
        offsets = split.offsets
        lengths = np.diff(offsets)
        keep = np.flatnonzero(lengths >= 2)
        self.items = split.item_array
        self.ends = offsets[1:][keep]
        self.starts = np.maximum(offsets[:-1][keep], self.ends - (max_len + 1))

    def __len__(self) -> int:
        return len(self.ends)

    def _window(self, cases: np.ndarray, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = self.ends[cases] - self.starts[cases] - 1
        pos = np.arange(int(lengths.max()))
        mask = pos[None, :] < lengths[:, None]
        idx = np.where(mask, self.starts[cases][:, None] + pos[None, :] + shift, 0)
        return torch.from_numpy(np.where(mask, self.items[idx], 0)), torch.from_numpy(lengths)

    def batch(self, cases: np.ndarray, *, with_times: bool = False) -> PrefixBatch:
        """The inputs: each session's clicks but the last."""
        items, lengths = self._window(cases, 0)
        return PrefixBatch(items, lengths)

    def next_items(self, cases: np.ndarray) -> torch.Tensor:
        """LongTensor [B, L]: the target of every input position (0 at padding)."""
        return self._window(cases, 1)[0]


class SASRecBlock(nn.Module):
    """One self-attention block in the authors' code's order (see the module docstring).

    Multi-head attention written out (``h = n_heads`` heads of ``d / h``
    columns; ``in_proj`` holds W_Q, W_K, W_V stacked as torch's
    ``MultiheadAttention`` does), so that its dropout on the attention
    weights is :func:`harness.models.neural.dropout` like every other dropout here.
    """

    def __init__(self, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.attention_norm = nn.LayerNorm(d, eps=1e-8)
        self.in_proj = nn.Linear(d, 3 * d)
        self.out_proj = nn.Linear(d, d)
        self.ffn_norm = nn.LayerNorm(d, eps=1e-8)
        self.ffn_in = nn.Linear(d, d)
        self.ffn_out = nn.Linear(d, d)
        self.dropout = Dropout(dropout)

    def attention(self, q: torch.Tensor, z: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
        """[B, L, d]: softmax(Q K^T / sqrt(d / h) + causal) V per head, then W_O;
        queries from ``q``, keys and values from ``z``; ``causal`` [L, L] is
        0 where position i may attend to j (j <= i) and -inf elsewhere."""
        batch, width, d = z.shape
        w, b = self.in_proj.weight, self.in_proj.bias
        query = F.linear(q, w[:d], b[:d])
        key, value = F.linear(z, w[d:], b[d:]).chunk(2, dim=2)

        def heads(x: torch.Tensor) -> torch.Tensor:  # [B, L, d] -> [B, h, L, d / h]
            return x.view(batch, width, self.n_heads, d // self.n_heads).transpose(1, 2)

        logits = heads(query) @ heads(key).transpose(2, 3) * (d // self.n_heads) ** -0.5 + causal
        weights = self.dropout(torch.softmax(logits, dim=3))  # [B, h, L, L]
        return self.out_proj((weights @ heads(value)).transpose(1, 2).reshape(batch, width, d))

    def forward(self, z: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
        """[B, L, d] -> [B, L, d]; ``causal`` [L, L] is -inf where attention is forbidden, else 0."""
        q = self.attention_norm(z)
        z = self.ffn_norm(q + self.attention(q, z, causal))
        return z + self.dropout(self.ffn_out(self.dropout(F.relu(self.ffn_in(z)))))


class SASRecNetwork(nn.Module):
    """The SASRec network for ``n_items`` items (ids 1..n_items; 0 is padding)."""

    def __init__(self, n_items: int, d: int, n_blocks: int, n_heads: int, dropout: float, max_len: int) -> None:
        super().__init__()
        self.d, self.max_len = d, max_len
        self.embedding = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.positions = nn.Embedding(max_len, d)
        self.dropout = Dropout(dropout)
        self.blocks = nn.ModuleList(SASRecBlock(d, n_heads, dropout) for _ in range(n_blocks))
        self.final_norm = nn.LayerNorm(d, eps=1e-8)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Matrices Xavier-uniform, vectors (biases) 0, layer-norm gains 1; padding row 0."""
        with torch.no_grad():
            for name, parameter in self.named_parameters():
                if "norm" in name:
                    parameter.fill_(1.0 if name.endswith("weight") else 0.0)
                elif parameter.dim() >= 2:
                    fan_out, fan_in = parameter.shape[0], parameter.shape[1]
                    bound = math.sqrt(6.0 / (fan_in + fan_out))
                    parameter.uniform_(-bound, bound, generator=generator)
                else:
                    parameter.zero_()
            self.embedding.weight[0].zero_()

    def sequence_output(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, L, d]: F_j for every position (0 at padding); items left-aligned.

        Positions count from the end of the ``max_len`` window (the last
        click of a row of length n has position max_len - 1), so a row's
        output depends on its own clicks only; causal attention keeps
        position j from seeing j + 1.. (and so from the padding, which lies
        after every real position).
        """
        width = items.shape[1]
        steps = torch.arange(width, device=items.device)
        mask = (steps.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2)  # [B, L, 1]
        position = (self.max_len - lengths.unsqueeze(1) + steps.unsqueeze(0)).clamp(0, self.max_len - 1)
        z = self.embedding(items) * math.sqrt(self.d) + self.positions(position)
        z = self.dropout(z) * mask
        causal = torch.full((width, width), float("-inf"), device=items.device).triu(1)  # 0 on and below the diagonal
        for block in self.blocks:
            z = block(z, causal) * mask
        return self.final_norm(z)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, d]: F_n, the output at each row's last click (its last ``max_len`` clicks)."""
        items, lengths = self.window(items, lengths)
        out = self.sequence_output(items, lengths)
        return out[torch.arange(len(lengths), device=out.device), lengths - 1]

    def window(self, items: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's last ``max_len`` clicks, left-aligned."""
        if items.shape[1] <= self.max_len:
            return items, lengths
        kept = lengths.clamp(max=self.max_len)
        start = (lengths - kept).unsqueeze(1)
        index = (start + torch.arange(self.max_len, device=items.device).unsqueeze(0)).clamp(max=items.shape[1] - 1)
        window = items.gather(1, index)
        inside = torch.arange(self.max_len, device=items.device).unsqueeze(0) < kept.unsqueeze(1)
        return window.masked_fill(~inside, 0), kept


@register("sasrec")
class SASRec(PrefixTrainedRecommender):
    """SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the clicks.

    See the module docstring for the formulas and every hyper-parameter.

    Fitted attributes: ``network_`` (:class:`SASRecNetwork`), ``device_``,
    ``epoch_lrs_``, ``best_epoch_``, ``training_curve_``.
    """

    #: checked when a suite or --param sets them (the rest by _check_params at fit)
    hyperparameter_ranges: ClassVar[dict[str, Range | Choice]] = {
        **{name: Range(1) for name in ("hidden_size", "n_blocks", "n_heads", "max_len")},
        "dropout": Range(0, 1, high_open=True),
        "loss": Choice(LOSSES),
    }

    def __init__(
        self,
        *,
        hidden_size: int = 50,
        n_blocks: int = 2,
        n_heads: int = 1,
        dropout: float = 0.2,
        max_len: int = 50,
        loss: str = "cross-entropy",
        lr: float = 1e-3,
        l2: float = 0.0,
        batch_size: int = 128,
        epochs: int = 30,
        patience: int = 3,
        refit: bool = True,
        softmax_precision: str = "fp32",
        device: str = "auto",
        num_threads: int = 1,
    ) -> None:
        self.hidden_size = hidden_size
        self.n_blocks = n_blocks
        self.n_heads = n_heads
        self.dropout = dropout
        self.max_len = max_len
        self.loss = loss
        self.lr = lr
        self.l2 = l2
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.refit = refit
        self.softmax_precision = softmax_precision
        self.device = device
        self.num_threads = num_threads

    def _check_params(self) -> None:
        super()._check_params()
        for name in ("hidden_size", "n_blocks", "n_heads", "max_len", "batch_size"):
            self._check_int(name)
        if self.hidden_size % self.n_heads:
            raise self._bad(f"hidden_size ({self.hidden_size}) must be a multiple of n_heads ({self.n_heads})")
        self._check_number("dropout", lambda x: 0.0 <= x < 1.0, "a number in [0, 1)")
        self._check_number("lr", lambda x: x > 0, "a number > 0")
        self._check_number("l2", lambda x: x >= 0, "a number >= 0")
        self._check_choice("loss", LOSSES)
        self._check_bool("refit")

    def _build_network(self, generator: torch.Generator) -> SASRecNetwork:
        network = SASRecNetwork(self.n_items_, int(self.hidden_size), int(self.n_blocks), int(self.n_heads),
                                float(self.dropout), int(self.max_len))
        network.reset_parameters(generator)
        return network

    def _make_optimizer(self, params) -> torch.optim.Optimizer:
        """Adam with beta_2 = 0.98 (the paper)."""
        params = list(params)
        try:
            return torch.optim.Adam(params, lr=float(self.lr), betas=(0.9, 0.98), weight_decay=float(self.l2),
                                    fused=True)
        except (RuntimeError, TypeError):
            return torch.optim.Adam(params, lr=float(self.lr), betas=(0.9, 0.98), weight_decay=float(self.l2))

    def _start_training(self, data, split: str, seed: int) -> None:
        super()._start_training(data, split, seed)
        self._cases = SessionSequences(data.split(split), int(self.max_len))

    def _batch_loss(self, batch: PrefixBatch, targets: torch.Tensor) -> torch.Tensor:
        """The loss over every real position of the batch's sequences (targets [B, L], 0 = padding)."""
        out = self.network_.sequence_output(batch.items, batch.lengths)  # [B, L, d]
        real = targets > 0
        out, targets = out[real], targets[real]  # [P, d], [P]
        table = self.network_.embedding.weight
        if self.loss == "cross-entropy":
            return self._item_softmax_loss(out, table, targets)
        draws = torch.randint(1, max(self.n_items_, 2), targets.shape, generator=self._generator)
        negatives = draws.to(targets.device) + (draws.to(targets.device) >= targets).long()
        positive = (out * table[targets]).sum(dim=1)
        negative = (out * table[negatives]).sum(dim=1)
        return -(F.logsigmoid(positive) + F.logsigmoid(-negative)).mean()

    def _session_embeddings(self, batch: PrefixBatch) -> torch.Tensor:
        """[B, d]: F_n."""
        return self.network_(batch.items, batch.lengths)

    def _item_embeddings(self) -> torch.Tensor:
        """[n_items + 1, d]: E (row 0, padding, is 0)."""
        return self.network_.embedding.weight

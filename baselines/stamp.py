r"""STAMP: short-term attention/memory priority.

Paper: Q. Liu, Y. Zeng, R. Mokhosi, H. Zhang. *STAMP: Short-Term
Attention/Memory Priority Model for Session-based Recommendation.* KDD 2018.

For a prefix ``x_1..x_t`` (item embeddings, ``d`` each)::

    m_s     = (1/t) sum_{i=1..t} x_i                     the session's general interest
    m_t     = x_t                                        the last click (short-term memory)
    alpha_i = w_0^T sigmoid(W_1 x_i + W_2 x_t + W_3 m_s + b_a)      (eq. 7)
    m_a     = sum_{i=1..t} alpha_i x_i                   (eq. 8, weights not normalised)
              (+ m_s with add_session_mean, as the authors' code and RecBole do)
    h_s     = tanh(W_s m_a + b_s)                        MLP cell A
    h_t     = tanh(W_t m_t + b_t)                        MLP cell B
    z_i     = <h_s, h_t, x_i> = sum_k h_s[k] h_t[k] x_i[k]            trilinear composition
    y       = softmax(z)                                 cross-entropy over items 1..N

The paper writes ``sigmoid(<h_s, h_t, x_i>)`` before the softmax (eq. 9);
``score_sigmoid=True`` trains with it. The default, the raw trilinear product
as the logits, is what the public implementations train; the sigmoid is
monotone, so either way the ranking is that of ``z`` and ``score`` returns
``z``. The session embedding is ``h_s * h_t`` [d] and the item embeddings are
the ``x_i`` themselves, so ``score = session_embeddings @ item_embeddings().T``.

Hyper-parameters (paper defaults, Section 5.3: embedding 100, learning rate
0.005, batch 512, weights drawn from N(0, 0.05^2), embeddings from
N(0, 0.002^2), biases 0):

embedding_size: d.
lr: Adam's learning rate.
l2: Adam's weight decay (the paper uses none).
batch_size: training prefixes per Adam step.
init_std, embedding_init_std: standard deviations of the initial weights and
    item embeddings.
score_sigmoid: train on ``softmax(sigmoid(z))`` (the paper's eq. 9) instead
    of ``softmax(z)``.
add_session_mean: feed ``m_a + m_s`` to MLP cell A instead of ``m_a``: the
    authors' TensorFlow code (``attout + pool_out``) and RecBole's STAMP do
    this, the paper's eq. 8 does not (default false, the paper).
epochs, patience, refit: the selection rule (see
    :class:`harness.training.EpochTrainedRecommender`).
softmax_precision, device, num_threads: see :class:`harness.neural.NeuralRecommender`.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from harness.dataset import PrefixBatch
from harness.neural import PrefixTrainedRecommender, tanh
from harness.registry import Range, register


class STAMPNetwork(nn.Module):
    """The STAMP network for ``n_items`` items (ids 1..n_items; 0 is padding).

    Attributes: ``embedding`` ([I, d]), ``w_item`` (W_1), ``w_last`` (W_2),
    ``w_mean`` (W_3 with the bias b_a), ``w_0``, ``mlp_a`` (W_s, b_s),
    ``mlp_b`` (W_t, b_t).
    """

    #: m_a + m_s into MLP cell A (a class default too, so networks saved before it existed load as the paper's)
    add_session_mean: bool = False

    def __init__(self, n_items: int, embedding_size: int, add_session_mean: bool = False) -> None:
        super().__init__()
        d = embedding_size
        self.add_session_mean = add_session_mean
        # sparse: the lookup adds its gradient into the dense one of the softmax
        # (the rows of the batch's items only), instead of filling a second [I, d] table
        self.embedding = nn.Embedding(n_items + 1, d, padding_idx=0, sparse=True)
        self.w_item = nn.Linear(d, d, bias=False)
        self.w_last = nn.Linear(d, d, bias=False)
        self.w_mean = nn.Linear(d, d)
        self.w_0 = nn.Linear(d, 1, bias=False)
        self.mlp_a = nn.Linear(d, d)
        self.mlp_b = nn.Linear(d, d)

    def reset_parameters(self, generator: torch.Generator, std: float, embedding_std: float) -> None:
        """Weights from N(0, std^2), embeddings from N(0, embedding_std^2), biases 0, padding row 0."""
        with torch.no_grad():
            for name, parameter in self.named_parameters():
                if name.endswith("bias"):
                    parameter.zero_()
                else:
                    parameter.normal_(0.0, embedding_std if name.startswith("embedding") else std,
                                      generator=generator)
            self.embedding.weight[0].zero_()

    def memories(self, items: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h_s, h_t)``, each [B, d].

        The per-click terms are computed on the N = sum(lengths) real clicks
        only, flattened to [N, d] (``row`` says whose click each is), and
        summed back per row with ``index_add``: a batch of shuffled prefixes
        is mostly padding (its width is its longest prefix), so this does the
        same arithmetic several times faster than on the padded [B, L, d].
        ``W_1 x_i`` depends on the item only, so it is computed once per
        distinct item of the batch (a 512-prefix batch of yoochoose-100k has
        about 760 distinct items among about 1,970 clicks) and gathered.
        """
        width = items.shape[1]
        mask = torch.arange(width, device=items.device).unsqueeze(0) < lengths.unsqueeze(1)  # [B, L]
        row = torch.arange(len(lengths), device=items.device).repeat_interleave(lengths)  # [N]
        distinct, click_item = torch.unique(items[mask], return_inverse=True)  # [U], [N] in 0..U-1
        x_distinct = self.embedding(distinct)  # [U, d]
        # gathers by index_select: its backward is one index_add, where
        # advanced indexing's is a slower accumulating index_put
        x = x_distinct.index_select(0, click_item)  # [N, d], row by row, clicks in order
        m_s = x.new_zeros(len(lengths), x.shape[1]).index_add_(0, row, x) / lengths.unsqueeze(1).to(x.dtype)
        m_t = x.index_select(0, lengths.cumsum(0) - 1)
        query = (self.w_last(m_t) + self.w_mean(m_s)).index_select(0, row)  # [N, d]
        alpha = self.w_0(torch.sigmoid(self.w_item(x_distinct).index_select(0, click_item) + query)).squeeze(1)
        m_a = x.new_zeros(m_s.shape).index_add_(0, row, alpha.unsqueeze(1) * x)
        if self.add_session_mean:
            m_a = m_a + m_s
        return tanh(self.mlp_a(m_a)), tanh(self.mlp_b(m_t))

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, d]: ``h_s * h_t``, whose inner product with x_i is <h_s, h_t, x_i>."""
        h_s, h_t = self.memories(items, lengths)
        return h_s * h_t


@register("stamp")
class STAMP(PrefixTrainedRecommender):
    """STAMP (Liu et al., KDD 2018): attention and short-term memory, trilinear scores.

    See the module docstring for the formulas and every hyper-parameter.

    Fitted attributes: ``network_`` (:class:`STAMPNetwork`), ``device_``,
    ``epoch_lrs_``, ``best_epoch_``, ``training_curve_``.
    """

    #: checked when a suite or --param sets them (the rest by _check_params at fit)
    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        "embedding_size": Range(1),
        **{name: Range(0) for name in ("init_std", "embedding_init_std")},
    }

    def __init__(
        self,
        *,
        embedding_size: int = 100,
        lr: float = 5e-3,
        l2: float = 0.0,
        batch_size: int = 512,
        init_std: float = 0.05,
        embedding_init_std: float = 0.002,
        score_sigmoid: bool = False,
        add_session_mean: bool = False,
        epochs: int = 30,
        patience: int = 3,
        refit: bool = True,
        softmax_precision: str = "fp32",
        device: str = "auto",
        num_threads: int = 1,
    ) -> None:
        self.embedding_size = embedding_size
        self.lr = lr
        self.l2 = l2
        self.batch_size = batch_size
        self.init_std = init_std
        self.embedding_init_std = embedding_init_std
        self.score_sigmoid = score_sigmoid
        self.add_session_mean = add_session_mean
        self.epochs = epochs
        self.patience = patience
        self.refit = refit
        self.softmax_precision = softmax_precision
        self.device = device
        self.num_threads = num_threads

    def _check_params(self) -> None:
        super()._check_params()
        for name in ("embedding_size", "batch_size"):
            self._check_int(name)
        self._check_number("lr", lambda x: x > 0, "a number > 0")
        for name in ("l2", "init_std", "embedding_init_std"):
            self._check_number(name, lambda x: x >= 0, "a number >= 0")
        for name in ("score_sigmoid", "add_session_mean", "refit"):
            self._check_bool(name)

    def _build_network(self, generator: torch.Generator) -> STAMPNetwork:
        network = STAMPNetwork(self.n_items_, int(self.embedding_size), bool(self.add_session_mean))
        network.reset_parameters(generator, float(self.init_std), float(self.embedding_init_std))
        return network

    def _batch_loss(self, batch: PrefixBatch, targets: torch.Tensor) -> torch.Tensor:
        """Softmax cross-entropy over items 1..N of z (or of sigmoid(z))."""
        session, table = self.network_(batch.items, batch.lengths), self.network_.embedding.weight
        if not self.score_sigmoid:
            return self._item_softmax_loss(session, table, targets)
        return F.cross_entropy(torch.sigmoid(session @ table[1:].T), targets - 1)

    def _session_embeddings(self, batch: PrefixBatch) -> torch.Tensor:
        """[B, d]: ``h_s * h_t``."""
        return self.network_(batch.items, batch.lengths)

    def _item_embeddings(self) -> torch.Tensor:
        """[n_items + 1, d]: the item embeddings x_i (row 0, padding, is 0)."""
        return self.network_.embedding.weight

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
    :class:`harness.models.training.EpochTrainedRecommender`).
softmax_precision, device, num_threads: see :class:`harness.models.neural.NeuralRecommender`.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from harness.data.dataset import PrefixBatch
from harness.models.neural import PrefixTrainedRecommender, item_softmax_gradients, loss_with_gradients, tanh
from harness.models.registry import Range, register


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
        self.embedding = nn.Embedding(n_items + 1, d, padding_idx=0)  # looked up in activations()
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

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, d]: ``h_s * h_t``, whose inner product with x_i is <h_s, h_t, x_i>
        (differentiable by autograd)."""
        h_s, h_t, _ = self.activations(items, lengths)
        return h_s * h_t

    def activations(self, items: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, _Activations]:
        """``(h_s, h_t, activations)``: the forward pass, and what
        :meth:`backward` needs of it.

        The per-click terms are computed on the N = sum(lengths) real clicks
        only, flattened to [N, d] (``row`` says whose click each is), and
        summed back per row with ``index_add``: a batch of shuffled prefixes
        is mostly padding (its width is its longest prefix), so this does the
        same arithmetic several times faster than on the padded [B, L, d].
        ``W_1 x_i`` depends on the item only, so it is computed once per
        distinct item of the batch (a 512-prefix batch of yoochoose-100k has
        about 760 distinct items among about 1,970 clicks) and gathered.
        """
        weight = self.embedding.weight
        clicks = _Clicks.of(items, lengths, weight.shape[0], weight.dtype)
        # sparse: under autograd the lookup's gradient is added into the
        # softmax's dense table gradient instead of filling an [I, d] table
        x_distinct = F.embedding(clicks.distinct, weight, sparse=True)  # [U, d]
        # gathers by index_select: its backward is one index_add, where
        # advanced indexing's is a slower accumulating index_put
        x = x_distinct.index_select(0, clicks.item)  # [N, d], row by row, clicks in order
        m_s = x.new_zeros(len(lengths), x.shape[1]).index_add_(0, clicks.row, x) / clicks.lengths
        m_t = x.index_select(0, clicks.last)
        query = torch.addmm(self.w_mean(m_s), m_t, self.w_last.weight.T)  # [B, d]: W_3 m_s + b_a + W_2 m_t
        sigma = torch.sigmoid(self.w_item(x_distinct).index_select(0, clicks.item) + query.index_select(0, clicks.row))
        alpha = self.w_0(sigma).squeeze(1)  # [N]
        m_a = x.new_zeros(m_s.shape).index_add_(0, clicks.row, alpha.unsqueeze(1) * x)
        if self.add_session_mean:
            m_a = m_a + m_s
        h_s, h_t = tanh(self.mlp_a(m_a)), tanh(self.mlp_b(m_t))
        return h_s, h_t, _Activations(clicks, x_distinct, x, m_s, m_t, sigma, alpha, m_a, h_s, h_t)

    def backward(self, activations: _Activations, grad_session: torch.Tensor,
                 grad_table: torch.Tensor) -> dict[str, torch.Tensor]:
        """The gradients of every parameter (by name) for ``d loss / d
        (h_s * h_t) = grad_session`` [B, d], written by hand (autograd's
        result up to float rounding, several small operations fewer).

        ``grad_table`` [I, d] is the gradient the loss already gives the item
        table (the softmax's): the lookup's rows are added into it in place,
        and it is returned as ``embedding.weight``'s.
        """
        c = activations.clicks
        grads: dict[str, torch.Tensor] = {}
        g_za = torch.ops.aten.tanh_backward(grad_session * activations.h_t, activations.h_s)  # d loss / d (W_s m_a + b_s)
        g_zt = torch.ops.aten.tanh_backward(grad_session * activations.h_s, activations.h_t)
        grads["mlp_a.weight"], grads["mlp_a.bias"] = g_za.T @ activations.m_a, g_za.sum(0)
        grads["mlp_b.weight"], grads["mlp_b.bias"] = g_zt.T @ activations.m_t, g_zt.sum(0)
        g_ma = g_za @ self.mlp_a.weight  # [B, d]
        g_mt = g_zt @ self.mlp_b.weight
        g_ma_click = g_ma.index_select(0, c.row)  # [N, d]
        g_alpha = (g_ma_click * activations.x).sum(1)  # [N]
        g_x = g_ma_click.mul_(activations.alpha.unsqueeze(1))  # from m_a = sum alpha_i x_i
        grads["w_0.weight"] = (g_alpha @ activations.sigma).unsqueeze(0)
        g_pre = torch.ops.aten.sigmoid_backward(g_alpha.unsqueeze(1) * self.w_0.weight, activations.sigma)  # [N, d]
        g_query = g_pre.new_zeros(activations.m_s.shape).index_add_(0, c.row, g_pre)  # [B, d]
        g_item_term = g_pre.new_zeros(activations.x_distinct.shape).index_add_(0, c.item, g_pre)  # [U, d]
        grads["w_item.weight"] = g_item_term.T @ activations.x_distinct
        grads["w_last.weight"] = g_query.T @ activations.m_t
        grads["w_mean.weight"], grads["w_mean.bias"] = g_query.T @ activations.m_s, g_query.sum(0)
        g_mt.addmm_(g_query, self.w_last.weight)
        g_ms = g_query @ self.w_mean.weight
        if self.add_session_mean:
            g_ms += g_ma
        g_x.add_((g_ms / c.lengths).index_select(0, c.row))
        g_x.index_add_(0, c.last, g_mt)
        g_distinct = g_item_term @ self.w_item.weight  # [U, d]
        g_distinct.index_add_(0, c.item, g_x)
        grads["embedding.weight"] = grad_table.index_add_(0, c.distinct, g_distinct)
        return grads


class _Clicks(NamedTuple):
    """A padded batch's real clicks, flattened (N clicks, U distinct items)."""

    row: torch.Tensor  # long [N]: the batch row of each click, rows in order
    distinct: torch.Tensor  # long [U]: the batch's distinct items, ascending
    item: torch.Tensor  # long [N]: each click's item as an index into distinct
    last: torch.Tensor  # long [B]: the index of each row's last click
    lengths: torch.Tensor  # float [B, 1]: the prefix lengths

    @classmethod
    def of(cls, items: torch.Tensor, lengths: torch.Tensor, n_ids: int, dtype: torch.dtype) -> _Clicks:
        """The clicks of ``items`` [B, L] (ids below ``n_ids``) with ``lengths``
        [B] (returned as ``dtype``, the network's)."""
        mask = torch.arange(items.shape[1], device=items.device).unsqueeze(0) < lengths.unsqueeze(1)
        clicked = items.masked_select(mask)  # [N]
        row = torch.arange(len(lengths), device=items.device).repeat_interleave(lengths)
        # distinct ids through a presence table of all ids (O(N + I)): a
        # fraction of what torch.unique's sort took on a 2,000-click batch
        present = torch.zeros(n_ids, dtype=torch.bool, device=items.device)
        present[clicked] = True
        distinct = present.nonzero().squeeze(1)
        position = present.cumsum(0).sub_(1)  # the rank of each present id among them
        return cls(row, distinct, position.index_select(0, clicked), lengths.cumsum(0) - 1,
                   lengths.unsqueeze(1).to(dtype))


class _Activations(NamedTuple):
    """What :meth:`STAMPNetwork.backward` needs of the forward pass."""

    clicks: _Clicks
    x_distinct: torch.Tensor  # [U, d]
    x: torch.Tensor  # [N, d]
    m_s: torch.Tensor  # [B, d]
    m_t: torch.Tensor  # [B, d]
    sigma: torch.Tensor  # [N, d]: sigmoid(W_1 x_i + W_2 x_t + W_3 m_s + b_a)
    alpha: torch.Tensor  # [N]
    m_a: torch.Tensor  # [B, d]: MLP cell A's input (with m_s added if asked for)
    h_s: torch.Tensor  # [B, d]
    h_t: torch.Tensor  # [B, d]


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
        """Softmax cross-entropy over items 1..N of z (or of sigmoid(z)).

        For z, the loss and every gradient are computed in one go, without
        autograd: the softmax's (:func:`harness.models.neural.item_softmax_gradients`)
        and then the network's (:meth:`STAMPNetwork.backward`), the lookup's
        rows added into the softmax's table gradient.
        """
        network = self.network_
        table = network.embedding.weight
        if self.score_sigmoid:
            session = network(batch.items, batch.lengths)
            return F.cross_entropy(torch.sigmoid(session @ table[1:].T), targets - 1)
        names, parameters = zip(*network.named_parameters())
        self._count_softmax_flops(len(targets), table)

        def compute(wanted):
            h_s, h_t, activations = network.activations(batch.items, batch.lengths)
            softmax = item_softmax_gradients(h_s * h_t, table, targets, precision=self.softmax_precision,
                                             wanted=(True, True, False))
            grads = network.backward(activations, softmax.session, softmax.table)
            return softmax.loss, [grads[name] for name in names]

        return loss_with_gradients(compute, *parameters)

    def _session_embeddings(self, batch: PrefixBatch) -> torch.Tensor:
        """[B, d]: ``h_s * h_t``."""
        return self.network_(batch.items, batch.lengths)

    def _item_embeddings(self) -> torch.Tensor:
        """[n_items + 1, d]: the item embeddings x_i (row 0, padding, is 0)."""
        return self.network_.embedding.weight

r"""NARM: a GRU encoder with a global and an attention-based local session
representation and a bilinear decoder.

Paper: J. Li, P. Ren, Z. Chen, Z. Ren, T. Lian, J. Ma. *Neural Attentive
Session-based Recommendation.* CIKM 2017 (arXiv:1711.04725).

The network (``t`` = the prefix length, ``e_j = E[x_j]`` the item embeddings,
``h_1..h_t`` the GRU outputs)::

    h_j   = GRU(dropout(e_j), h_{j-1})                       (dropout p_e, h_0 = 0; no biases, as the paper)
    c_g   = h_t                                             global encoder: the last hidden state
    a_tj  = v^T sigmoid(A_1 h_t + A_2 h_j)                  local encoder: attention of h_t on h_j
    c_l   = sum_{j=1..t} a_tj h_j                           (weights not normalised, as the paper)
    c_t   = [c_g ; c_l]                                     [2H]
    S_i   = E[i]^T B dropout(c_t)                           bilinear decoder, B in R^{D x 2H} (dropout p_c)

trained with softmax cross-entropy over items 1..N on every training prefix
(each prefix of a training session with its next item). The session
embedding for retrieval is ``B c_t`` [D] and the item embeddings are ``E``,
so ``score = session_embeddings @ item_embeddings().T`` exactly.

Hyper-parameters (paper defaults, Section 4.3: embedding 50, hidden 100,
Adam 0.001, batch 512, dropout 0.25 between the embedding and the GRU and
0.5 between the GRU and the bilinear decoder):

embedding_size: D, the item embedding size.
hidden_size: H, the GRU units.
dropout_embed: dropout on the item embeddings fed to the GRU.
dropout_context: dropout on ``c_t`` before the bilinear decoder.
lr: Adam's learning rate.
l2: Adam's weight decay (the paper uses none).
batch_size: training prefixes per Adam step.
epochs, patience, refit: the selection rule (at most ``epochs`` on
    ``train_tr``, the epoch with the best validation MRR@20, then a refit on
    ``train``); the paper trains a fixed number of epochs chosen on a
    validation split.
softmax_precision, device, num_threads: see :class:`harness.models.neural.NeuralRecommender`.

Initialisation (the paper does not state it): every weight, the embeddings
included, uniform in +-1/sqrt(H) (PyTorch's GRU range), drawn from the fit's
seeded generator.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from harness.data.dataset import PrefixBatch
from harness.models.neural import Dropout, PrefixTrainedRecommender
from harness.models.registry import Range, register


class NARMNetwork(nn.Module):
    """The NARM network for ``n_items`` items (ids 1..n_items; 0 is padding).

    Attributes: ``embedding`` (E, [I, D]), ``gru``, ``a_last`` (A_1),
    ``a_step`` (A_2), ``v``, ``bilinear`` (B as a linear map 2H -> D).
    """

    def __init__(self, n_items: int, embedding_size: int, hidden_size: int,
                 dropout_embed: float = 0.0, dropout_context: float = 0.0) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(n_items + 1, embedding_size, padding_idx=0)
        # no biases: the paper's GRU equations have none, and with them (drawn
        # like the weights) NARM learns far more slowly on yoochoose-100k
        self.gru = nn.GRU(embedding_size, hidden_size, batch_first=True, bias=False)
        self.a_last = nn.Linear(hidden_size, hidden_size, bias=False)
        self.a_step = nn.Linear(hidden_size, hidden_size, bias=False)
        self.v = nn.Linear(hidden_size, 1, bias=False)
        self.bilinear = nn.Linear(2 * hidden_size, embedding_size, bias=False)
        self.dropout_embed = Dropout(dropout_embed)
        self.dropout_context = Dropout(dropout_context)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Every parameter uniform in +-1/sqrt(H); the padding row 0 of E is 0."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.uniform_(-bound, bound, generator=generator)
            self.embedding.weight[0].zero_()

    def encode(self, items: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(h, last, row, step)`` on the N = sum(lengths) real clicks only.

        ``h`` [N, H]: h_j of every real click, in the GRU's packed order
        (time-major, rows sorted by length); ``row`` and ``step`` [N]: the
        batch row and position j - 1 of each; ``last`` [B, H]: h_t of each
        row. The clicks are packed before the embedding, so neither the
        embedding dropout nor the GRU nor the attention ever touches padding
        (a batch of shuffled prefixes is mostly padding); rows run through
        ATen's packed GRU together, with no loop over rows.
        """
        packed = nn.utils.rnn.pack_padded_sequence(items, lengths.cpu(), batch_first=True, enforce_sorted=False)
        x = self.dropout_embed(self.embedding(packed.data))  # [N, D]
        out, last = self.gru(nn.utils.rnn.PackedSequence(x, packed.batch_sizes, packed.sorted_indices,
                                                         packed.unsorted_indices))
        sizes = packed.batch_sizes.to(items.device)
        step = torch.arange(len(sizes), device=items.device).repeat_interleave(sizes)  # [N]
        first = sizes.cumsum(0) - sizes  # packed index of each step's first row
        row = packed.sorted_indices[torch.arange(len(step), device=items.device) - first[step]]
        return out.data, last[-1], row, step

    def context(self, items: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(c_t, alpha)``: c_t = [c_g ; c_l], [B, 2H], and the attention
        weights a_tj, [B, L], 0 at padded positions."""
        h, last, row, step = self.encode(items, lengths)  # c_g = h_t = last, [B, H]
        alpha = self.v(torch.sigmoid(self.a_last(last)[row] + self.a_step(h))).squeeze(1)  # [N]
        local = h.new_zeros(last.shape).index_add(0, row, alpha.unsqueeze(1) * h)  # c_l, [B, H]
        alpha_rows = h.new_zeros(items.shape).index_put((row, step), alpha)
        return torch.cat([last, local], dim=1), alpha_rows

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, D]: the session embedding ``B dropout(c_t)``."""
        c, _ = self.context(items, lengths)
        return self.bilinear(self.dropout_context(c))


@register("narm")
class NARM(PrefixTrainedRecommender):
    """NARM (Li et al., CIKM 2017): GRU encoder, attention, bilinear decoder.

    See the module docstring for the formulas and every hyper-parameter.

    Fitted attributes: ``network_`` (:class:`NARMNetwork`), ``device_``,
    ``epoch_lrs_``, ``best_epoch_``, ``training_curve_``.
    """

    #: checked when a suite or --param sets them (the rest by _check_params at fit)
    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        **{name: Range(1) for name in ("embedding_size", "hidden_size")},
        **{name: Range(0, 1, high_open=True) for name in ("dropout_embed", "dropout_context")},
    }

    def __init__(
        self,
        *,
        embedding_size: int = 50,
        hidden_size: int = 100,
        dropout_embed: float = 0.25,
        dropout_context: float = 0.5,
        lr: float = 1e-3,
        l2: float = 0.0,
        batch_size: int = 512,
        epochs: int = 30,
        patience: int = 3,
        refit: bool = True,
        softmax_precision: str = "fp32",
        device: str = "auto",
        num_threads: int = 1,
    ) -> None:
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.dropout_embed = dropout_embed
        self.dropout_context = dropout_context
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
        for name in ("embedding_size", "hidden_size", "batch_size"):
            self._check_int(name)
        for name in ("dropout_embed", "dropout_context"):
            self._check_number(name, lambda x: 0.0 <= x < 1.0, "a number in [0, 1)")
        self._check_number("lr", lambda x: x > 0, "a number > 0")
        self._check_number("l2", lambda x: x >= 0, "a number >= 0")
        self._check_bool("refit")

    def _build_network(self, generator: torch.Generator) -> NARMNetwork:
        network = NARMNetwork(self.n_items_, int(self.embedding_size), int(self.hidden_size),
                              float(self.dropout_embed), float(self.dropout_context))
        network.reset_parameters(generator)
        return network

    def _batch_loss(self, batch: PrefixBatch, targets: torch.Tensor) -> torch.Tensor:
        """Softmax cross-entropy over items 1..N."""
        return self._item_softmax_loss(self.network_(batch.items, batch.lengths), self.network_.embedding.weight,
                                       targets)

    def _session_embeddings(self, batch: PrefixBatch) -> torch.Tensor:
        """[B, D]: ``B c_t``."""
        return self.network_(batch.items, batch.lengths)

    def _item_embeddings(self) -> torch.Tensor:
        """[n_items + 1, D]: E (row 0, padding, is 0)."""
        return self.network_.embedding.weight

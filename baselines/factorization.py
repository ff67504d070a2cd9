r"""BPR-MF and FPMC adapted to sessions, as in the SR-GNN paper's comparison.

Papers:

- S. Rendle, C. Freudenthaler, Z. Gantner, L. Schmidt-Thieme. *BPR: Bayesian
  Personalized Ranking from Implicit Feedback.* UAI 2009.
- S. Rendle, C. Freudenthaler, L. Schmidt-Thieme. *Factorizing Personalized
  Markov Chains for Next-Basket Recommendation.* WWW 2010.
- S. Wu et al. *Session-based Recommendation with Graph Neural Networks.*
  AAAI 2019, Section 4.1: a session has no user factor, so it is represented
  by the mean latent vector of the items it holds.

For a prefix ``x_1..x_t`` and a candidate item ``i``:

BPR-MF (one item factor table ``V``, ``d`` columns)::

    s      = (1/t) sum_j V[x_j]                      the session as a user
    x(i)   = <s, V[i]>

FPMC (four tables: ``A`` stands for the user factors ``V^{U,I}`` of the
session, ``V^{I,U}``, ``V^{I,L}``, ``V^{L,I}`` as in the paper)::

    x(i)   = <(1/t) sum_j A[x_j], V^{I,U}[i]>  +  <V^{L,I}[x_t], V^{I,L}[i]>
             (session-as-user part)               (factorised transition from the last click)

The paper's basket is here the single last click, so its mean over the
basket is one term.

Both are trained, like every prefix model, on each prefix of a training
session with its next item ``y``, by BPR with sampled negatives (S-BPR for
FPMC)::

    L = -mean over (prefix, y, n) of log sigmoid(x(y) - x(n))

with ``n_negatives`` negatives ``n`` per example drawn uniformly from the
items other than ``y``, and Adam (with weight decay ``l2``) instead of the
papers' SGD. The session representation used in training is the one used to
score (the mean), so no per-session user factors are learnt.

Embeddings for retrieval: BPR-MF ``s`` and ``V``; FPMC ``[mean A ; V^{L,I}[x_t]]``
and ``[V^{I,U} ; V^{I,L}]``, so ``score = session_embeddings @ item_embeddings().T``.

Hyper-parameters: ``factors`` (d; 100 as the other neural models), ``lr``,
``l2``, ``batch_size``, ``n_negatives``, ``init_std`` (the tables start
N(0, init_std^2)), ``epochs``/``patience``/``refit`` (the selection rule),
``device``, ``num_threads``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from harness.data.dataset import PrefixBatch
from harness.models.neural import PrefixTrainedRecommender
from harness.models.registry import Range, register


def prefix_mean(table: nn.Embedding, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B, d]: the mean of ``table`` over each row's first ``lengths`` items (padding ignored)."""
    mask = torch.arange(items.shape[1], device=items.device).unsqueeze(0) < lengths.unsqueeze(1)
    summed = (table(items) * mask.unsqueeze(2)).sum(dim=1)
    return summed / lengths.unsqueeze(1).to(summed.dtype)


def bpr_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """``-mean log sigmoid(positive - negative)``; positive [B, 1], negative [B, S]."""
    return -F.logsigmoid(positive - negative).mean()


def sample_negatives(targets: torch.Tensor, n_items: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """LongTensor [B, count]: items drawn uniformly from 1..n_items without each row's target.

    Draws from 1..n_items-1 and shifts draws at or above the target up by
    one, which is uniform over the other items (``generator`` is a CPU
    generator; the result is moved to the targets' device).
    """
    draws = torch.randint(1, max(n_items, 2), (len(targets), count), generator=generator).to(targets.device)
    return draws + (draws >= targets.unsqueeze(1)).long()


class BPRMFNetwork(nn.Module):
    """BPR-MF with sessions as the mean of their items' factors: ``factors`` [I, d]."""

    def __init__(self, n_items: int, factors: int) -> None:
        super().__init__()
        self.factors = nn.Embedding(n_items + 1, factors, padding_idx=0)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, d]: ``s``, the mean factor of each prefix."""
        return prefix_mean(self.factors, items, lengths)

    def item_vectors(self) -> torch.Tensor:
        """[I, d]: V."""
        return self.factors.weight


class FPMCNetwork(nn.Module):
    """FPMC with the session as user: tables ``session_item`` (A),
    ``item_session`` (V^{I,U}), ``item_last`` (V^{I,L}), ``last_item`` (V^{L,I})."""

    def __init__(self, n_items: int, factors: int) -> None:
        super().__init__()
        self.session_item = nn.Embedding(n_items + 1, factors, padding_idx=0)
        self.item_session = nn.Embedding(n_items + 1, factors, padding_idx=0)
        self.item_last = nn.Embedding(n_items + 1, factors, padding_idx=0)
        self.last_item = nn.Embedding(n_items + 1, factors, padding_idx=0)

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, 2d]: ``[mean A ; V^{L,I}[x_t]]``."""
        last = items.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)
        return torch.cat([prefix_mean(self.session_item, items, lengths), self.last_item(last)], dim=1)

    def item_vectors(self) -> torch.Tensor:
        """[I, 2d]: ``[V^{I,U} ; V^{I,L}]``."""
        return torch.cat([self.item_session.weight, self.item_last.weight], dim=1)


class _SessionFactorization(PrefixTrainedRecommender):
    """What BPR-MF and FPMC share: BPR with sampled negatives on the prefixes."""

    network_class: type[nn.Module]

    #: checked when a suite or --param sets them (the rest by _check_params at fit)
    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        **{name: Range(1) for name in ("factors", "n_negatives")},
        "init_std": Range(0),
    }

    def __init__(
        self,
        *,
        factors: int = 100,
        lr: float = 1e-3,
        l2: float = 0.0,
        batch_size: int = 512,
        n_negatives: int = 1,
        init_std: float = 0.1,
        epochs: int = 30,
        patience: int = 3,
        refit: bool = True,
        device: str = "auto",
        num_threads: int = 1,
    ) -> None:
        self.factors = factors
        self.lr = lr
        self.l2 = l2
        self.batch_size = batch_size
        self.n_negatives = n_negatives
        self.init_std = init_std
        self.epochs = epochs
        self.patience = patience
        self.refit = refit
        self.device = device
        self.num_threads = num_threads

    def _check_params(self) -> None:
        super()._check_params()
        for name in ("factors", "batch_size", "n_negatives"):
            self._check_int(name)
        self._check_number("lr", lambda x: x > 0, "a number > 0")
        for name in ("l2", "init_std"):
            self._check_number(name, lambda x: x >= 0, "a number >= 0")
        self._check_bool("refit")

    def _build_network(self, generator: torch.Generator) -> nn.Module:
        network = self.network_class(self.n_items_, int(self.factors))
        with torch.no_grad():
            for table in network.parameters():
                table.normal_(0.0, float(self.init_std), generator=generator)
                table[0].zero_()  # the padding id
        return network

    def _batch_loss(self, batch: PrefixBatch, targets: torch.Tensor) -> torch.Tensor:
        """BPR: ``-mean log sigmoid(x(y) - x(n))`` over ``n_negatives`` negatives per prefix."""
        session = self.network_(batch.items, batch.lengths)  # [B, d]
        vectors = self.network_.item_vectors()
        negatives = sample_negatives(targets, self.n_items_, int(self.n_negatives), self._generator)
        positive = (session * vectors[targets]).sum(dim=1, keepdim=True)  # [B, 1]
        negative = torch.einsum("bd,bsd->bs", session, vectors[negatives])  # [B, S]
        return bpr_loss(positive, negative)

    def _session_embeddings(self, batch: PrefixBatch) -> torch.Tensor:
        return self.network_(batch.items, batch.lengths)

    def _item_embeddings(self) -> torch.Tensor:
        return self.network_.item_vectors()


@register("bprmf")
class BPRMF(_SessionFactorization):
    """BPR-MF (Rendle et al., UAI 2009): a session is the mean of its items' factors.

    See the module docstring. Fitted attributes: ``network_``
    (:class:`BPRMFNetwork`), ``device_``, ``best_epoch_``, ``training_curve_``."""

    network_class = BPRMFNetwork


@register("fpmc")
class FPMC(_SessionFactorization):
    """FPMC (Rendle et al., WWW 2010): the session as user, the last click as basket.

    See the module docstring. Fitted attributes: ``network_`` (:class:`FPMCNetwork`),
    ``device_``, ``best_epoch_``, ``training_curve_``."""

    network_class = FPMCNetwork

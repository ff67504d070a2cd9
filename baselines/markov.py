"""First-order Markov chain (``markov``).

The next item depends only on the last one. The transition probabilities
are estimated by counting the consecutive pairs of the training sessions;
the matrix is built at once with :func:`baselines.rules.position_pairs`
(numpy + ``scipy.sparse``) and a batch is scored by gathering rows.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from baselines.rules import LastItemRecommender, check_int, position_pairs, prune_rows, to_csr
from harness.data.dataset import SessionSplit
from harness.models.registry import Range, register


@register("markov")
class MarkovChain(LastItemRecommender):
    """Markov: first-order chain, the transition probabilities of the last item.

    Estimated from the item-to-item transitions of the training sessions, as
    session-rec's ``MarkovModel``. With ``n(a, b)`` the number of times item ``b`` directly follows item
    ``a`` in a training session (immediate repeats ``a -> a`` included) and
    ``n(a) = sum_b n(a, b)``, a prefix whose last item is ``a`` scores ::

        score(b) = P(b | a) = n(a, b) / n(a)

    for the ``pruning`` most frequent successors ``b`` of ``a`` (ties kept
    in order of first occurrence, as session-rec) and 0 for the others.
    Earlier items of the prefix play no part. session-rec scores ``n(a, b) /
    max_b' n(a, b')`` instead: the same order.

    Where ``a`` was never followed by anything in training (or for the items
    beyond its successors), ``fallback="pop"`` ranks by training popularity.

    References: the Markov-chain baseline of Ludewig & Jannach, "Evaluation of
    session-based recommendation algorithms", UMUAI 2018 (first-order
    transitions as in Rendle et al., FPMC, WWW 2010, without factorisation).

    Args:
        pruning: successors kept per item, the most frequent (session-rec's
            default 20; 0 keeps all, i.e. the full transition matrix).
        fallback: ``"pop"`` (default) ranks the items with probability 0
            after the others by training popularity; ``"none"`` leaves them
            tied at 0 (see :mod:`baselines.common`).
    """

    #: checked when a suite or --param sets them
    hyperparameter_ranges: ClassVar[dict[str, Range]] = {"pruning": Range(0)}

    def __init__(self, *, pruning: int = 20, fallback: str = "pop") -> None:
        self.pruning = pruning
        self.fallback = fallback

    def _check(self) -> None:
        check_int("markov", "pruning", self.pruning, lo=0)

    def _item_matrix(self, split: SessionSplit, n_items: int) -> sp.csr_matrix:
        rows, cols, counts, first = position_pairs(split, n_items, max_gap=1, weight=lambda gap: 1.0)
        out_degree = np.bincount(rows, weights=counts, minlength=n_items + 1)
        rows, cols, counts = prune_rows(rows, cols, counts, first, int(self.pruning))
        return to_csr(rows, cols, counts / np.maximum(out_degree[rows], 1.0), n_items)

"""Item-KNN of Hidasi et al. (``itemknn``), as in GRU4Rec's and session-rec's
``ItemKNN``.

The item-item similarity matrix is one sparse product ``Cᵀ B`` of the
session-by-item click-count matrix ``C`` and its 0/1 pattern ``B``
(``scipy.sparse``), pruned to the ``n_sims`` largest similarities per item;
a batch is scored by gathering the rows of its last items.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from baselines.rules import LastItemRecommender, check_int, check_real, prune_rows, to_csr
from harness.data.dataset import SessionSplit
from harness.errors import ConfigError
from harness.models.registry import Choice, Range, register

COUNTS = ("events", "sessions")


@register("itemknn")
class ItemKNN(LastItemRecommender):
    """Item-KNN: the items most similar to the prefix's last item.

    The item-KNN baseline of Hidasi, Karatzoglou, Baltrunas & Tikk,
    "Session-based recommendations with recurrent neural networks", ICLR 2016.

    With ``c_s(i)`` the number of clicks on item ``i`` in training session
    ``s``, ``[j in s]`` 1 if ``j`` occurs in ``s`` (else 0) and ``supp(i) =
    sum_s c_s(i)`` the training clicks on ``i``, the similarity of items
    ``i != j`` is ::

                       sum_s c_s(i) [j in s]
        sim(i, j) = ------------------------------------
                     (supp(i) + λ)^α (supp(j) + λ)^(1 - α)

    and ``sim(i, i) = 0`` (the last item is never recommended again). Each
    item keeps its ``n_sims`` most similar items (ties: the smaller item id
    first); a prefix ending in item ``a`` scores ``score(b) = sim(a, b)``.
    ``α = 0.5`` gives a regularised cosine similarity, ``α = 1`` the
    confidence of the rule ``i -> j``.

    This is exactly what the code of GRU4Rec's (``baselines.py``) and
    session-rec's ``ItemKNN`` computes: for every click on ``i`` it adds 1 to
    each distinct item of that click's session (a NumPy ``a[idx] += 1`` adds
    once per distinct index), so the numerator is not symmetric when items
    repeat, and the supports count clicks. Their docstrings and the paper
    describe the cosine of binary session-occurrence vectors instead, which
    ``count="sessions"`` gives: numerator ``sum_s [i in s][j in s]`` and
    ``supp(i)`` the number of sessions with ``i``. The regulariser adds to
    each support, ``(supp + λ)^α``, not to the whole denominator.

    Args:
        n_sims: neighbours kept per item (session-rec's and GRU4Rec's default
            100); items outside them score 0.
        regularisation: ``λ`` above, called ``lmbd`` in session-rec and
            GRU4Rec and ``lambda`` in the papers (default 20; ``lambda`` is a
            Python keyword and a trailing ``_`` marks learned state, hence the
            name). Discounts incidental co-occurrences of rare items.
        alpha: ``α`` in [0, 1] above (default 0.5): how the normalisation is
            shared between the supports of the two items.
        count: ``"events"`` (default, as the reference code) or
            ``"sessions"`` (binary session occurrence, as the paper).
        fallback: ``"pop"`` (default) ranks the items outside the neighbours
            after them by training popularity; ``"none"`` leaves them tied
            at 0 (see :mod:`baselines.common`).
    """

    #: checked when a suite or --param sets them
    hyperparameter_ranges: ClassVar[dict[str, Range | Choice]] = {
        "n_sims": Range(1), "regularisation": Range(0), "alpha": Range(0, 1),
        "count": Choice(COUNTS),
    }

    def __init__(
        self,
        *,
        n_sims: int = 100,
        regularisation: float = 20.0,
        alpha: float = 0.5,
        count: str = "events",
        fallback: str = "pop",
    ) -> None:
        self.n_sims = n_sims
        self.regularisation = regularisation
        self.alpha = alpha
        self.count = count
        self.fallback = fallback

    def _check(self) -> None:
        check_int("itemknn", "n_sims", self.n_sims, lo=1)
        check_real("itemknn", "regularisation", self.regularisation, lo=0.0)
        check_real("itemknn", "alpha", self.alpha, lo=0.0, hi=1.0)
        if self.count not in COUNTS:
            raise ConfigError(f"itemknn: count must be one of {COUNTS}, got {self.count!r}")

    def _item_matrix(self, split: SessionSplit, n_items: int) -> sp.csr_matrix:
        session_of_event = np.repeat(np.arange(split.n_sessions), split.lengths)
        clicks = sp.csr_matrix(
            (np.ones(split.n_events), (session_of_event, split.item_array)), shape=(split.n_sessions, n_items + 1)
        )
        clicks.sum_duplicates()
        if self.count == "sessions":
            clicks.data[:] = 1.0
        support = np.asarray(clicks.sum(axis=0)).ravel()
        present = clicks.copy()
        present.data[:] = 1.0
        co = (clicks.T @ present).tocoo()
        off_diagonal = co.row != co.col
        rows = co.row[off_diagonal].astype(np.int64)
        cols = co.col[off_diagonal].astype(np.int64)
        together = co.data[off_diagonal]
        lam, alpha = float(self.regularisation), float(self.alpha)
        norm = np.power(support[rows] + lam, alpha) * np.power(support[cols] + lam, 1.0 - alpha)
        sims = together / np.where(norm == 0, 1.0, norm)
        rows, cols, sims = prune_rows(rows, cols, sims, cols, int(self.n_sims))
        return to_csr(rows, cols, sims, n_items)

"""Rule models: association rules (``ar``) and sequential rules (``sr``).

Both learn an item-to-item score matrix ``R`` from the training sessions and
score a prefix by the row of its LAST item, as session-rec does
(Ludewig & Jannach, "Evaluation of session-based recommendation algorithms",
UMUAI 2018; Kamehkhosh, Jannach & Ludewig, "A comparison of frequent pattern
techniques and a deep learning method for session-based recommendation",
TempRec @ RecSys 2017).

This module also holds the machinery shared with :mod:`baselines.markov` and
:mod:`baselines.itemknn`: :class:`LastItemRecommender` (a sparse item-item
matrix, scored by gathering the rows of a batch's last items) and the
vectorised enumeration of position pairs inside sessions (numpy over
``split.item_array`` / ``split.offsets``; the only Python loop runs over gap
sizes, never over sessions or events).

Pruning and its tie rule
------------------------
session-rec keeps, for each antecedent item ``a``, only the ``pruning``
highest-scoring consequents (``pruning=20`` by default; ``0`` keeps all).
Equal scores are kept in the order in which session-rec first created the
rule while reading the training events (its ``Counter.most_common`` is
stable); :func:`prune_rows` reproduces that order from the position of each
pair's first occurrence. session-rec also accepts a fraction ``0 < pruning <
1`` (drop that share of each rule list); that form is not offered here.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from baselines.common import FALLBACKS, check_fallback, sparse_fallback, training_popularity
from harness.data.dataset import PrefixBatch, SessionDataset, SessionSplit
from harness.errors import ConfigError
from harness.models.plugin import SessionRecommender
from harness.models.registry import Choice, Range, register

#: gap weightings of sequential rules, as in session-rec's SequentialRules
#: (``linear`` is clipped at 0; session-rec lets it go negative past gap 10)
WEIGHTINGS: dict[str, Callable[[int], float]] = {
    "linear": lambda gap: max(1.0 - 0.1 * gap, 0.0),
    "same": lambda gap: 1.0,
    "div": lambda gap: 1.0 / gap,
    "log": lambda gap: 1.0 / math.log10(gap + 1.7),
    "quadratic": lambda gap: 1.0 / (gap * gap),
}

#: compact the collected pairs once this many are pending (bounds memory)
_COMPACT_AT = 20_000_000


# --------------------------------------------------------------------------- #
# shared machinery
# --------------------------------------------------------------------------- #
def check_int(model: str, name: str, value: object, *, lo: int) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an int >= ``lo``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ConfigError(f"{model}: {name} must be an integer >= {lo}, got {value!r}")


def check_real(model: str, name: str, value: object, *, lo: float, hi: float | None = None) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a finite number in ``[lo, hi]``."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(float(value)) and float(value) >= lo and (hi is None or float(value) <= hi)
    if not ok:
        where = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ConfigError(f"{model}: {name} must be a number {where}, got {value!r}")


def position_pairs(
    split: SessionSplit,
    n_items: int,
    *,
    max_gap: int | None,
    weight: Callable[[int], float],
    symmetric: bool = False,
    earliest_first: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sum a weight over every pair of positions ``u < t`` of one session with
    gap ``t - u <= max_gap`` (``None``: any gap), per item pair.

    Each position pair adds ``weight(t - u)`` to the entry ``(x_u, x_t)``
    (and, with ``symmetric``, also to ``(x_t, x_u)``; a pair of two equal
    items then adds twice to ``(x, x)``). Also returns, per entry, a key that
    orders entries by their first creation when the events are read in order
    and, for each event ``t``, its earlier positions are visited from the
    nearest back (``earliest_first=False``, as session-rec's sequential
    rules) or from the session start on (``earliest_first=True``, as its
    association rules). Pairs of weight 0 are skipped.

    Returns ``(rows, cols, values, first_keys)``, one entry per distinct
    item pair, sorted by ``rows * (n_items + 1) + cols``.
    """
    items, off = split.item_array, split.offsets
    lengths = np.diff(off)
    size = n_items + 1
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.int64))
    if len(items) == 0 or lengths.max() < 2:
        return empty
    pos = np.arange(len(items), dtype=np.int64) - np.repeat(off[:-1], lengths)
    longest = int(lengths.max())
    top_gap = longest - 1 if max_gap is None else min(max_gap, longest - 1)
    stride = top_gap + 1
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    pending = 0
    cand = np.flatnonzero(pos >= 1)  # events with at least one earlier position
    for gap in range(1, top_gap + 1):
        cand = cand[pos[cand] >= gap]
        if len(cand) == 0:
            break
        w = float(weight(gap))
        if w == 0.0:
            continue
        t, u = cand, cand - gap
        a, b = items[u], items[t]
        order_in_t = (top_gap + 1 - gap) if earliest_first else gap
        key = t * stride + order_in_t
        codes = [a * size + b]
        if symmetric:
            codes.append(b * size + a)
        for code in codes:
            parts.append((code, np.full(len(code), w), key))
            pending += len(code)
        if pending > _COMPACT_AT:
            parts = [_compact(parts)]
            pending = len(parts[0][0])
    if not parts:
        return empty
    codes, values, keys = _compact(parts)
    return codes // size, codes % size, values, keys


def _compact(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge entries with the same code: sum the values, keep the smallest key."""
    codes = np.concatenate([p[0] for p in parts])
    values = np.concatenate([p[1] for p in parts])
    keys = np.concatenate([p[2] for p in parts])
    order = _order_by_code_then_key(codes, keys)
    codes, values, keys = codes[order], values[order], keys[order]
    start = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    return codes[start], np.add.reduceat(values, start), keys[start]


def _order_by_code_then_key(codes: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``np.lexsort((keys, codes))``: one stable sort of ``codes * span + keys``
    when that fits in int64 (about twice as fast as sorting by two keys),
    else the lexsort itself. Codes and keys are non-negative."""
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    span = int(keys.max()) + 1
    if int(codes.max()) < (2**63 - span) // span:
        return np.argsort(codes * span + keys, kind="stable")
    return np.lexsort((keys, codes))


def prune_rows(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, tiebreak: np.ndarray, keep: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the ``keep`` largest values of every row (``keep=0``: all).

    Among equal values the smaller ``tiebreak`` wins. Returns the kept
    ``(rows, cols, values)`` in their input order. Only the entries of rows
    with more than ``keep`` entries are sorted.
    """
    if keep <= 0 or len(rows) == 0:
        return rows, cols, values
    crowded = np.flatnonzero(np.bincount(rows)[rows] > keep)
    if len(crowded) == 0:
        return rows, cols, values
    order = crowded[np.lexsort((tiebreak[crowded], -values[crowded], rows[crowded]))]
    sorted_rows = rows[order]
    first = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
    rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
    kept = np.ones(len(rows), dtype=bool)
    kept[order[rank >= keep]] = False
    return rows[kept], cols[kept], values[kept]


def to_csr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_items: int) -> sp.csr_matrix:
    """float32 CSR ``[n_items + 1, n_items + 1]`` from coordinates (duplicates summed)."""
    size = n_items + 1
    matrix = sp.coo_matrix((values, (rows, cols)), shape=(size, size)).tocsr()
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix.astype(np.float32)


def divide_rows_by_max(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` divided by the largest value of their row (rows all positive)."""
    if len(rows) == 0:
        return values
    row_max = np.zeros(int(rows.max()) + 1)
    np.maximum.at(row_max, rows, values)
    return values / row_max[rows]


class LastItemRecommender(SessionRecommender):
    """Base of the models whose score is one row of an item-item matrix.

    ``_fit`` validates the hyper-parameters (:meth:`_check`), learns the
    sparse matrix ``matrix_`` (float32 CSR ``[n_items + 1, n_items + 1]``,
    :meth:`_item_matrix`) and the training popularity; ``_score`` gathers the
    rows of the batch's last items at once, ``matrix_[last_items]``, and
    applies the ``fallback`` (:func:`baselines.common.sparse_fallback`).
    Subclasses set ``self.fallback`` in ``__init__``.
    """

    #: checked when a suite or --param sets it (subclasses add their own ranges)
    hyperparameter_ranges: ClassVar[dict[str, Range | Choice]] = {"fallback": Choice(FALLBACKS)}

    fallback: str

    def _check(self) -> None:
        """Raise :class:`ConfigError` on an invalid hyper-parameter."""

    @abc.abstractmethod
    def _item_matrix(self, split: SessionSplit, n_items: int) -> sp.csr_matrix:
        """The learned non-negative item-item score matrix."""

    def _fit(self, data: SessionDataset, *, seed: int) -> None:
        check_fallback(self.name or type(self).__name__, self.fallback)
        self._check()
        self.matrix_ = self._item_matrix(data.train, data.n_items).tocsr().astype(np.float32)
        self.popularity_ = training_popularity(data)

    def _score(self, batch: PrefixBatch) -> torch.Tensor:
        last = batch.last_items.cpu().numpy()
        return sparse_fallback(self.matrix_[last], self.popularity_, self.fallback)


# --------------------------------------------------------------------------- #
# the models
# --------------------------------------------------------------------------- #
@register("ar")
class AssociationRules(LastItemRecommender):
    """AR: association rules, two items anywhere in the same session.

    As session-rec's ``AssociationRules``. Every pair of positions ``u != t`` of a training session counts once for
    the rule ``x_u -> x_t``, whatever their order and distance (so a rule and
    its reverse have the same count)::

        count(a, b) = sum_sessions  c_a * c_b          (a != b)
        count(a, a) = sum_sessions  c_a * (c_a - 1)

    where ``c_a`` is how often ``a`` occurs in the session: position pairs,
    not distinct item pairs, are counted, as session-rec does. Only the
    ``pruning`` largest counts of each antecedent are kept, and the score of
    a prefix ending in item ``a`` is ::

        score(b) = count(a, b) / max_b' count(a, b')

    (session-rec's division by the row maximum; it does not change the order).

    Reference: Agrawal, Imielinski & Swami, SIGMOD 1993 (association rules);
    as a session-based baseline: Ludewig & Jannach, UMUAI 2018.

    Args:
        pruning: rules kept per antecedent item, the largest counts, ties in
            order of first occurrence (session-rec's default 20; 0 keeps all).
        fallback: ``"pop"`` ranks the items without a rule after the others
            by training popularity; ``"none"`` leaves them tied at 0 (see
            :mod:`baselines.common`).
    """

    #: checked when a suite or --param sets them
    hyperparameter_ranges: ClassVar[dict[str, Range]] = {"pruning": Range(0)}

    def __init__(self, *, pruning: int = 20, fallback: str = "pop") -> None:
        self.pruning = pruning
        self.fallback = fallback

    def _check(self) -> None:
        check_int("ar", "pruning", self.pruning, lo=0)

    def _item_matrix(self, split: SessionSplit, n_items: int) -> sp.csr_matrix:
        rows, cols, values, first = position_pairs(
            split, n_items, max_gap=None, weight=lambda gap: 1.0, symmetric=True, earliest_first=True
        )
        rows, cols, values = prune_rows(rows, cols, values, first, int(self.pruning))
        return to_csr(rows, cols, divide_rows_by_max(rows, values), n_items)


@register("sr")
class SequentialRules(LastItemRecommender):
    """SR: sequential rules, item a before item b, weighted by their distance.

    As session-rec's ``SequentialRules`` (Kamehkhosh, Jannach & Ludewig,
    TempRec @ RecSys 2017). Item ``a`` at position ``u`` and item ``b`` at a later position ``t`` of
    the same training session, at most ``steps`` apart, add ``w(t - u)`` to
    the rule ``a -> b``::

        weight(a, b) = sum_sessions sum_{u < t <= u + steps, x_u = a, x_t = b} w(t - u)

    with the gap weighting ``w`` chosen by ``weighting``:

    ==========  =============================================================
    linear      ``max(1 - 0.1 * gap, 0)`` (session-rec does not clip at 0, so
                with ``steps > 10`` its gaps 11..100 subtract; here they add 0)
    same        ``1``
    div         ``1 / gap``
    log         ``1 / log10(gap + 1.7)``
    quadratic   ``1 / gap**2``
    ==========  =============================================================

    Only the ``pruning`` largest weights of each antecedent are kept, and a
    prefix ending in item ``a`` scores ``score(b) = weight(a, b) / max_b'
    weight(a, b')``. session-rec's optional ``last_n_days``, ``idf_weight``
    and ``last_in_session`` extensions (all off by default) are not offered.

    Args:
        steps: the largest gap that forms a rule (session-rec's default 10).
        weighting: the gap weighting above (session-rec's default ``"div"``).
        pruning: rules kept per antecedent item, the largest weights, ties in
            order of first occurrence (session-rec's default 20; 0 keeps all).
        fallback: ``"pop"`` ranks the items without a rule after the others
            by training popularity; ``"none"`` leaves them tied at 0.
    """

    #: checked when a suite or --param sets them
    hyperparameter_ranges: ClassVar[dict[str, Range | Choice]] = {
        "steps": Range(1), "pruning": Range(0), "weighting": Choice(tuple(WEIGHTINGS)),
    }

    def __init__(self, *, steps: int = 10, weighting: str = "div", pruning: int = 20, fallback: str = "pop") -> None:
        self.steps = steps
        self.weighting = weighting
        self.pruning = pruning
        self.fallback = fallback

    def _check(self) -> None:
        check_int("sr", "steps", self.steps, lo=1)
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"sr: weighting must be one of {tuple(WEIGHTINGS)}, got {self.weighting!r}")
        check_int("sr", "pruning", self.pruning, lo=0)

    def _item_matrix(self, split: SessionSplit, n_items: int) -> sp.csr_matrix:
        rows, cols, values, first = position_pairs(
            split, n_items, max_gap=int(self.steps), weight=WEIGHTINGS[self.weighting]
        )
        rows, cols, values = prune_rows(rows, cols, values, first, int(self.pruning))
        return to_csr(rows, cols, divide_rows_by_max(rows, values), n_items)

"""Session-based nearest neighbours: SKNN, V-SKNN, STAN and V-STAN.

One family, one neighbour machinery. For a prefix ``p = [i_1 .. i_n]`` (``n``
events, ``P`` its set of distinct items) every model

1. takes as *candidates* the training sessions that share at least one item
   with ``P``, and keeps the ``sample_size`` most recent of them (recency =
   the time of a session's last event; ``sample_size=0`` keeps them all);
2. gives every candidate ``s`` a similarity ``sim(p, s)`` and keeps the ``k``
   most similar ones with a positive similarity (the *neighbours* ``N_k(p)``;
   equal similarities: the more recent session first);
3. scores every item ``j``: ``score(j) = sum_{s in N_k(p), j in s} sim(p, s) *
   f(p, s, j)`` with a model-specific weight ``f``.

Items of the prefix are not removed (session-rec's ``remind=True``), and
items no neighbour contains get the popularity fallback (``fallback="pop"``,
see :mod:`baselines.common`) or stay at 0 (``"none"``).

Notation used by the docstrings below: ``pos_p(x)`` is the 1-based position
of the *last* occurrence of item ``x`` in the prefix, ``n`` the number of
events of the prefix, ``|P|`` its number of distinct items; ``|s|`` is the
number of distinct items of a training session ``s``, ``pos_s(x)`` the
1-based position of the last occurrence of ``x`` in ``s`` (counting events),
``t_s`` the time of its last event, ``t_p`` the time of the last event of
the prefix; ``idf(j) = ln(S / c(j))`` with ``S`` training sessions and
``c(j)`` the training clicks on ``j`` (as session-rec computes it).

Implementation: at fit, the training sessions are sorted by recency (so that
"most recent" is "largest column index") and stored as a sparse session x
item matrix (scipy CSR) with each item's last position. A whole batch is
scored at once, in chunks of rows: the prefix x item matrix times the item x
session matrix gives every candidate's (position-weighted) overlap, the
sample and the top-k are vectorised over the sparse candidates, the latest
shared positions (V-SKNN's step, STAN's i*) are looked up item by item for
the k neighbours only, and the item scores are one more
sparse product, of the neighbour weights with the session x item matrix (for
STAN's lambda_inh, with a (session, i*) x item matrix built at fit). Scores
are computed in float64 and returned as float32. There is no Python loop
over prefixes or sessions.

Reference implementation: session-rec (Ludewig et al.), classes ContextKNN,
VMContextKNN, STAN and VSKNN_STAN. Deliberate differences, none of which
changes a ranking of session-rec's published configurations, are listed in
``docs/knn.md``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from baselines.common import FALLBACKS, check_fallback, sparse_fallback, training_popularity
from harness.data.dataset import PrefixBatch, SessionDataset
from harness.errors import ConfigError
from harness.models.plugin import SessionRecommender
from harness.models.registry import Choice, Range, register

__all__ = ["SessionKNN", "VSKNN", "STAN", "VSTAN", "POSITION_WEIGHTS", "SCORE_WEIGHTS"]

SECONDS_PER_DAY = 24 * 3600.0

#: Upper bound on the float64 cells of one chunk's dense intermediates
#: (rows x (n_items + 1)); a batch is scored in chunks of at most this size.
_CHUNK_CELLS = 1 << 22


# -- V-SKNN decay functions ---------------------------------------------------


def _w_linear(pos: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, 1.0 - 0.1 * (n - pos))


def _w_same(pos: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.ones(np.broadcast(pos, n).shape)


def _w_div(pos: np.ndarray, n: np.ndarray) -> np.ndarray:
    return pos / n


def _w_log(pos: np.ndarray, n: np.ndarray) -> np.ndarray:
    return 1.0 / np.log10(n - pos + 1.7)


def _w_quadratic(pos: np.ndarray, n: np.ndarray) -> np.ndarray:
    return (pos / n) ** 2


#: ``weighting`` of V-SKNN: weight of a prefix item at (last) position
#: ``pos`` of a prefix of ``n`` events.
POSITION_WEIGHTS = {
    "linear": _w_linear,  # max(0, 1 - 0.1 (n - pos))
    "same": _w_same,  # 1
    "div": _w_div,  # pos / n
    "log": _w_log,  # 1 / log10(n - pos + 1.7)
    "quadratic": _w_quadratic,  # (pos / n)^2
}

#: ``weighting_score`` of V-SKNN: weight of a neighbour whose most recent item
#: in common with the prefix is ``step`` events from the end (1 = last item).
SCORE_WEIGHTS = {
    "linear": lambda step: np.maximum(0.0, 1.0 - 0.1 * step),
    "same": lambda step: np.ones(np.shape(step)),
    "div": lambda step: 1.0 / step,
    "log": lambda step: 1.0 / np.log10(step + 1.7),
    "quadratic": lambda step: 1.0 / (step * step),
}


# -- small vectorised helpers -------------------------------------------------


def _ragged(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten the ranges ``[starts[e], starts[e] + counts[e])``: returns the
    segment of each element and the element itself."""
    counts = counts.astype(np.int64, copy=False)
    seg = np.repeat(np.arange(len(counts)), counts)
    begin = np.cumsum(counts) - counts
    flat = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(starts - begin, counts)
    return seg, flat


def _check_int(model: str, name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{model}: {name} must be an integer >= {minimum}, got {value!r}")


def _check_choice(model: str, name: str, value: Any, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{model}: {name} must be one of {tuple(choices)}, got {value!r}")


def _check_lambda(model: str, name: str, value: Any, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    ok = ok and math.isfinite(float(value)) and (float(value) >= 0 if allow_zero else float(value) > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{model}: {name} must be a number {bound} or None (off), got {value!r}")


def _to_float32(scores: sp.csr_matrix) -> sp.csr_matrix:
    """float32 scores (non-negative, sparse rows). A row whose largest score is
    below 1e-30 (reachable only with tiny time decays) is first divided by
    that score, so that float32 keeps its order instead of flushing it to zero."""
    counts = np.diff(scores.indptr)
    top = np.zeros(scores.shape[0])
    filled = counts > 0
    if filled.any():
        top[filled] = np.maximum.reduceat(scores.data, scores.indptr[:-1][filled])
    tiny = (top > 0) & (top < 1e-30)
    if tiny.any():
        row_of = np.repeat(np.arange(scores.shape[0]), counts)
        scale = tiny[row_of]
        scores.data[scale] /= top[row_of[scale]]
    # built from the arrays: astype would first sort every row's columns
    return sp.csr_matrix((scores.data.astype(np.float32), scores.indices, scores.indptr), shape=scores.shape)


def _most_recent(item_sessions: sp.csr_matrix, sample_size: int) -> sp.csr_matrix:
    """Each row (item) of an item x session matrix cut to its ``sample_size``
    largest columns, the item's most recent sessions (0 keeps all).

    The candidates of a prefix are the ``sample_size`` most recent sessions
    sharing an item with it. Such a session is also among the
    ``sample_size`` most recent sessions of EVERY prefix item it holds (a
    more recent session of that item would be a more recent candidate), so
    the cut rows give the same candidates with the same overlap sums, in the
    same order of addition, while the product costs at most ``|P| *
    sample_size`` per prefix instead of the lengths of its items' session
    lists (tens of thousands for a popular item of a large log).
    """
    if sample_size <= 0:
        return item_sessions
    m = item_sessions.tocsr()
    m.sort_indices()
    counts = np.diff(m.indptr)
    if counts.max(initial=0) <= sample_size:
        return m
    row_end = np.repeat(m.indptr[1:], counts)
    keep = row_end - np.arange(m.nnz) <= sample_size
    kept = np.minimum(counts, sample_size)
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(kept, out=indptr[1:])
    return sp.csr_matrix((m.data[keep], m.indices[keep], indptr), shape=m.shape)


class _Prefixes:
    """One chunk of prefixes, as the neighbour machinery sees it: the distinct
    items of each prefix in CSR order (row, then item id) with the position of
    their last occurrence and their recency rank (0 = the prefix's last item)."""

    def __init__(self, items: np.ndarray, lengths: np.ndarray, times: np.ndarray | None, n_items: int):
        rows, width = items.shape
        n1 = n_items + 1
        self.n_rows = rows
        self.n1 = n1
        self.lengths = lengths.astype(np.int64)
        self.times = times  # float64 [rows]: time of the last event, or None
        real = np.arange(width)[None, :] < self.lengths[:, None]
        row, col = np.nonzero(real)
        item = items[row, col].astype(np.int64)
        ok = item > 0
        key = row[ok] * n1 + item[ok]
        pos = col[ok] + 1
        order = np.lexsort((pos, key))
        key, pos = key[order], pos[order]
        last = np.ones(len(key), dtype=bool)
        last[:-1] = key[1:] != key[:-1]
        self.key = key[last]  # row * n1 + item, sorted
        self.row = self.key // n1
        self.item = self.key % n1
        self.item_pos = pos[last]  # pos_p(x)
        self.n_distinct = np.bincount(self.row, minlength=rows)  # |P|
        self.indptr = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(self.n_distinct, out=self.indptr[1:])
        by_recency = np.lexsort((-self.item_pos, self.row))
        self.pos_by_rank = self.item_pos[by_recency]  # row r, rank j at indptr[r] + j
        self.rank = np.empty(len(self.key), dtype=np.int64)
        self.rank[by_recency] = np.arange(len(self.key)) - self.indptr[self.row[by_recency]]


def _top_k(c_row: np.ndarray, sim: np.ndarray, k: int, rows: int) -> np.ndarray:
    """Mask of the k entries with the largest ``sim`` of each row (ties: the
    largest column, i.e. the most recent session, first). Entries are grouped
    by row, in increasing column order within a row."""
    per_row = np.bincount(c_row, minlength=rows)
    keep = np.ones(len(sim), dtype=bool)
    if per_row.max(initial=0) <= k:
        return keep
    ent = np.flatnonzero(per_row[c_row] > k)
    e_row = c_row[ent]
    crowded = np.flatnonzero(per_row > k)
    slot_row = np.full(rows, -1, dtype=np.int64)
    slot_row[crowded] = np.arange(len(crowded))
    row_start = np.cumsum(per_row) - per_row
    # the k-th largest sim of each crowded row, a block of rows at a time
    tau = np.empty(len(crowded))
    width = int(per_row[crowded].max())
    block = max(1, _CHUNK_CELLS // width)
    for first in range(0, len(crowded), block):
        these = crowded[first : first + block]
        lo, hi = np.searchsorted(e_row, [these[0], these[-1] + 1])
        b_ent, b_row = ent[lo:hi], e_row[lo:hi]
        b_width = int(per_row[these].max())
        dense = np.full((len(these), b_width), -np.inf)
        dense[slot_row[b_row] - first, b_ent - row_start[b_row]] = sim[b_ent]
        tau[first : first + block] = np.partition(dense, b_width - k, axis=1)[:, b_width - k]
    e_sim, e_tau = sim[ent], tau[slot_row[e_row]]
    greater = e_sim > e_tau
    equal = e_sim == e_tau
    need = k - np.bincount(e_row[greater], minlength=rows)[e_row]
    # rank of a tied entry counted from the end of its row (most recent first)
    from_end = np.concatenate([np.cumsum(equal[::-1])[::-1], [0]])
    row_end = row_start[e_row] + per_row[e_row]  # index just past the row, in `ent` terms below
    end_in_ent = np.searchsorted(ent, row_end)
    tie_rank = from_end[:-1] - from_end[end_in_ent]
    keep[ent] = greater | (equal & (tie_rank <= need))
    return keep


class _KNNBase(SessionRecommender):
    """The neighbour machinery shared by the session-KNN family.

    Subclasses set the flags below and implement the per-model pieces:
    ``_prefix_weights`` (weight of each distinct prefix item), ``_similarity``
    (per candidate), ``_neighbour_factor`` (per neighbour, from the latest
    prefix position it shares), ``_item_position_kernel`` (STAN's lambda_inh)
    and ``_item_factor`` (per item, e.g. IDF).
    """

    #: the candidate product carries sum_{x in P & s} w(x) (imaginary part)
    _weighted_overlap: ClassVar[bool] = False
    #: needs, per neighbour, the latest prefix position of an item it shares
    _needs_prefix_max: ClassVar[bool] = False
    #: t_p, the time of each prefix's last event
    _uses_time: ClassVar[bool] = False
    #: checked when a suite or --param sets them (the rest at fit)
    hyperparameter_ranges: ClassVar[dict[str, Range | Choice]] = {
        "k": Range(1), "sample_size": Range(0), "fallback": Choice(FALLBACKS),
    }

    k: int
    sample_size: int
    fallback: str

    # -- fit ----------------------------------------------------------------

    def _validate(self) -> None:
        _check_int(self.name, "k", self.k, 1)
        _check_int(self.name, "sample_size", self.sample_size, 0)
        check_fallback(self.name, self.fallback)

    def _fit(self, data: SessionDataset, *, seed: int) -> None:
        self._validate()
        train = data.train
        n1 = int(data.n_items) + 1
        items, times, offsets = train.item_array, train.time_array, train.offsets
        n_sessions = train.n_sessions
        lengths = np.diff(offsets)
        end_time = np.maximum.reduceat(times, offsets[:-1])
        # columns in order of recency: by last event time, ties by session order
        order = np.lexsort((np.arange(n_sessions), end_time))
        column = np.empty(n_sessions, dtype=np.int64)
        column[order] = np.arange(n_sessions)
        session_of_event = np.repeat(np.arange(n_sessions), lengths)
        position = np.arange(len(items), dtype=np.int64) - offsets[session_of_event] + 1
        key = column[session_of_event] * n1 + items
        by_key = np.lexsort((position, key))
        last = np.ones(len(by_key), dtype=bool)
        last[:-1] = key[by_key][1:] != key[by_key][:-1]
        pick = by_key[last]  # the last occurrence of each (session, item), by (column, item)
        rows, cols = column[session_of_event[pick]], items[pick].astype(np.int64)
        sizes = np.bincount(rows, minlength=n_sessions)
        indptr = np.zeros(n_sessions + 1, dtype=np.int64)
        np.cumsum(sizes, out=indptr[1:])
        #: session (by recency: column 0 is the oldest) x item, distinct items
        self.session_items_ = sp.csr_matrix((np.ones(len(rows)), cols, indptr), shape=(n_sessions, n1))
        #: pos_s(x), aligned with session_items_.indices
        self.session_item_pos_ = position[pick]
        by_recency = np.lexsort((-self.session_item_pos_, rows))
        #: recency rank of x in s (0 = the session's last item), aligned likewise
        self.session_item_rank_ = np.empty(len(rows), dtype=np.int64)
        self.session_item_rank_[by_recency] = np.arange(len(rows)) - indptr[rows[by_recency]]
        self.session_size_ = sizes  # |s|
        self.session_time_ = end_time[order]  # t_s, ascending
        self.item_sessions_ = self.session_items_.T.tocsr()  # item x session
        #: the candidate product's item x session matrix: each item's
        #: sample_size most recent sessions only (see _most_recent)
        self.candidate_sessions_ = _most_recent(self.item_sessions_, self.sample_size)
        self.train_end_ = float(end_time.max())
        counts = np.bincount(items, minlength=n1)[:n1]
        self.idf_ = np.zeros(n1)
        self.idf_[counts > 0] = np.log(n_sessions / counts[counts > 0])
        self.popularity_ = training_popularity(data)
        factor = self._item_factor()
        kernel = self._item_position_kernel()
        #: the score matrix has a row per (session, i*): neighbours need their i*
        self.uses_star_ = kernel is not None
        scored = self.session_items_ if kernel is None else self._star_matrix(kernel)
        #: what the neighbour weights multiply: session x item (or (session, i*) x item)
        self.score_matrix_ = scored if factor is None else (scored @ sp.diags(factor)).tocsr()

    def _star_matrix(self, kernel) -> sp.csr_matrix:
        """(session s, i*) x item: kernel(|pos_s(j) - pos_s(i*)|) for j in s.
        Row ``indptr[s] + rank_s(i*)``, so a neighbour and its i* name a row."""
        m = self.session_items_
        entry_session = np.repeat(np.arange(m.shape[0]), self.session_size_)
        seg, flat = _ragged(m.indptr[entry_session], self.session_size_[entry_session])
        star_row = (m.indptr[entry_session] + self.session_item_rank_)[seg]
        pos = self.session_item_pos_
        values = kernel(np.abs(pos[flat] - pos[seg]).astype(np.float64))
        return sp.csr_matrix((values, (star_row, m.indices[flat])), shape=(m.nnz, m.shape[1]))

    # -- score --------------------------------------------------------------

    def _score(self, batch: PrefixBatch) -> torch.Tensor:
        items = batch.items.detach().cpu().numpy()
        lengths = batch.lengths.detach().cpu().numpy().astype(np.int64)
        times = self._prefix_times(batch, lengths)
        n1 = self.n_items_ + 1
        step = max(1, _CHUNK_CELLS // n1)
        out = None
        for start in range(0, len(items), step):
            stop = min(start + step, len(items))
            width = int(lengths[start:stop].max())
            chunk = _Prefixes(
                items[start:stop, :width], lengths[start:stop], None if times is None else times[start:stop], self.n_items_
            )
            scores = sparse_fallback(_to_float32(self._score_chunk(chunk)), self.popularity_, self.fallback)
            if stop - start == len(items):
                return scores
            if out is None:
                out = torch.empty((len(items), n1), dtype=torch.float32)
            out[start:stop] = scores
        return out

    def _prefix_times(self, batch: PrefixBatch, lengths: np.ndarray) -> np.ndarray | None:
        """t_p, the time of each prefix's last event; the end of training when
        the batch carries no times."""
        if not self._uses_time:
            return None
        if batch.times is None:
            return np.full(len(lengths), self.train_end_)
        t = batch.times.detach().cpu().numpy().astype(np.float64)
        t = t[np.arange(len(lengths)), lengths - 1]
        return np.where(np.isfinite(t), t, self.train_end_)

    def _score_chunk(self, p: _Prefixes) -> sp.csr_matrix:
        rows, n1 = p.n_rows, p.n1
        # 1. candidates: every session sharing an item; the product is the
        #    overlap |P & s|, or the weighted overlap sum_{x in P & s} w(x)
        w = self._prefix_weights(p) if self._weighted_overlap else None
        q = sp.csr_matrix((np.ones(len(p.item)) if w is None else w, p.item, p.indptr), shape=(rows, n1))
        cand = q @ self.candidate_sessions_
        cand.sort_indices()
        counts = np.diff(cand.indptr)
        c_row = np.repeat(np.arange(rows), counts)
        c_col = cand.indices.astype(np.int64)
        c_val = cand.data
        # 2. the sample_size most recent candidates (columns ascend with recency)
        if self.sample_size > 0 and counts.max(initial=0) > self.sample_size:
            from_end = np.repeat(cand.indptr[1:], counts) - 1 - np.arange(len(c_col))
            keep = from_end < self.sample_size
            c_row, c_col, c_val = c_row[keep], c_col[keep], c_val[keep]
        # 3. similarity; the k most similar with sim > 0 (ties: the more recent)
        overlap, wsum = (c_val, None) if w is None else (None, c_val)
        sim = self._similarity(p, c_row, c_col, overlap, wsum, w)
        keep = sim > 0
        keep[keep] = _top_k(c_row[keep], sim[keep], self.k, rows)
        c_row, c_col, sim = c_row[keep], c_col[keep], sim[keep]
        # 4. per-neighbour factors (the latest shared positions, found for the
        #    k neighbours only), then one product with the session x item matrix
        weight = sim
        target = c_col
        if self._needs_prefix_max or self.uses_star_:
            prefix_rank, star_rank = self._shared_maxima(p, c_row, c_col)
            if self._needs_prefix_max:
                prefix_max = p.pos_by_rank[p.indptr[c_row] + prefix_rank]
                weight = weight * self._neighbour_factor(p, c_row, prefix_max)
            if self.uses_star_:
                target = self.session_items_.indptr[c_col] + star_rank
        indptr = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(c_row, minlength=rows), out=indptr[1:])
        neighbours = sp.csr_matrix((weight, target, indptr), shape=(rows, self.score_matrix_.shape[0]))
        # the product sums every (row, item) once: its columns are unsorted
        # but distinct, which is all the fallback and float32 steps need
        return neighbours @ self.score_matrix_

    def _shared_maxima(self, p: _Prefixes, c_row: np.ndarray, c_col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per (prefix, session) pair sharing an item, item by item over the
        session's items: the smallest prefix recency rank and the smallest
        session recency rank of a shared item (the latest prefix position
        and the neighbour's i*). Called for the neighbours only: their
        ``k * |s|`` items per prefix cost far less than carrying both maxima
        through the candidate product of ``|P| * sample_size`` entries."""
        m = self.session_items_
        if len(c_col) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        sizes = self.session_size_[c_col]
        seg, flat = _ragged(m.indptr[c_col], sizes)
        key = c_row[seg] * p.n1 + m.indices[flat]
        at = np.minimum(np.searchsorted(p.key, key), len(p.key) - 1)
        shared = p.key[at] == key
        never = np.iinfo(np.int64).max
        starts = np.cumsum(sizes) - sizes
        prefix_rank = np.minimum.reduceat(np.where(shared, p.rank[at], never), starts)
        star_rank = np.minimum.reduceat(np.where(shared, self.session_item_rank_[flat], never), starts)
        return prefix_rank, star_rank

    # -- per-model pieces ---------------------------------------------------

    def _prefix_weights(self, p: _Prefixes) -> np.ndarray | None:
        """Weight of each distinct prefix item (aligned with ``p.item``)."""
        return None

    def _similarity(self, p, c_row, c_col, overlap, wsum, w) -> np.ndarray:
        """sim(p, s) per candidate (row ``c_row``, session column ``c_col``);
        ``overlap`` is |P & s| for the models without prefix weights,
        ``wsum`` the weighted overlap sum_{x in P & s} w(x) for the others
        (the other one is None)."""
        raise NotImplementedError

    def _neighbour_factor(self, p: _Prefixes, row: np.ndarray, prefix_max: np.ndarray) -> np.ndarray:
        """Multiplier of each neighbour, from max_{x in P & s} pos_p(x)."""
        raise NotImplementedError

    def _item_position_kernel(self):
        """f(|pos_s(j) - pos_s(i*)|) for STAN's lambda_inh, or None."""
        return None

    def _item_factor(self) -> np.ndarray | None:
        """Multiplier of each item's score (float [n_items + 1]), or None."""
        return None

    def _time_decay(self, p: _Prefixes, c_row: np.ndarray, c_col: np.ndarray, lambda_days: float | None):
        """exp(-max(0, t_p - t_s) / (lambda * 86400)) per candidate, or None when off."""
        if lambda_days is None:
            return None
        age = np.maximum(0.0, p.times[c_row] - self.session_time_[c_col])
        return np.exp(-age / (float(lambda_days) * SECONDS_PER_DAY))


# -- the models ----------------------------------------------------------------


@register("sknn")
class SessionKNN(_KNNBase):
    """SKNN: session-based k-nearest neighbours on item sets.

    Jannach & Ludewig, "When recurrent neural networks meet the neighborhood
    for session-based recommendation", RecSys 2017; Ludewig & Jannach,
    "Evaluation of session-based recommendation algorithms", UMUAI 2018
    (session-rec's ``ContextKNN``).

    The prefix is the set ``P`` of its items; candidates are the
    ``sample_size`` most recent training sessions sharing an item with ``P``
    and the neighbours ``N_k(p)`` the ``k`` most similar of them::

        sim(p, s) = |P & s| / sqrt(|P| * |s|)          (similarity="cosine")
                  = |P & s| / |P | s|                   (similarity="jaccard")
        score(j)  = sum_{s in N_k(p), j in s} sim(p, s)

    Args:
        k: number of neighbours whose items are scored.
        sample_size: candidates considered, the most recent sessions (by
            their last event) that share an item with the prefix; 0 = all.
        similarity: ``"cosine"`` or ``"jaccard"`` (set similarities).
        fallback: ``"pop"`` ranks the items no neighbour contains by
            training popularity, below every scored item; ``"none"`` leaves
            them tied at 0 (see :mod:`baselines.common`).
    """

    SIMILARITIES: ClassVar[tuple[str, ...]] = ("cosine", "jaccard")
    hyperparameter_ranges: ClassVar[dict[str, Range | Choice]] = {"similarity": Choice(SIMILARITIES)}

    def __init__(self, *, k: int = 100, sample_size: int = 1000, similarity: str = "cosine", fallback: str = "pop"):
        self.k = k
        self.sample_size = sample_size
        self.similarity = similarity
        self.fallback = fallback

    def _validate(self) -> None:
        super()._validate()
        _check_choice(self.name, "similarity", self.similarity, self.SIMILARITIES)

    def _similarity(self, p, c_row, c_col, overlap, wsum, w):
        n_p = p.n_distinct[c_row].astype(np.float64)
        n_s = self.session_size_[c_col].astype(np.float64)
        if self.similarity == "cosine":
            return overlap / np.sqrt(n_p * n_s)
        return overlap / (n_p + n_s - overlap)


@register("vsknn")
class VSKNN(_KNNBase):
    """V-SKNN: session-KNN with position decay, neighbour-item decay and IDF.

    Ludewig & Jannach, "Evaluation of session-based recommendation
    algorithms", UMUAI 2018 (session-rec's ``VMContextKNN``).
    Each distinct prefix item ``x`` gets the weight of its last position::

        w(x)      = weighting(pos_p(x), n)
        sim(p, s) = sum_{x in P & s} w(x) / |P|
        step(s)   = n - max_{x in P & s} pos_p(x) + 1     (1: s holds the last item)
        score(j)  = sum_{s in N_k(p), j in s} sim(p, s) * weighting_score(step(s))
                                                  * (1 + idf_weighting * idf(j))

    Decay functions (``pos`` of ``n`` events; ``step`` from the end)::

        weighting:        linear max(0, 1 - 0.1 (n - pos)), same 1, div pos/n,
                          log 1 / log10(n - pos + 1.7), quadratic (pos/n)^2
        weighting_score:  linear max(0, 1 - 0.1 step), same 1, div 1/step,
                          log 1 / log10(step + 1.7), quadratic 1/step^2

    Args:
        k: number of neighbours (those with sim > 0 only).
        sample_size: candidates, the most recent sessions sharing an item
            with the prefix; 0 = all.
        weighting: decay of the prefix items by position (see above).
        weighting_score: decay of a neighbour's item scores by how far back
            in the prefix its most recent common item is.
        idf_weighting: weight of the IDF boost ``1 + idf_weighting * idf(j)``
            of rare items; 0 turns it off.
        fallback: ``"pop"`` or ``"none"`` (see :mod:`baselines.common`).
    """

    _weighted_overlap = True
    _needs_prefix_max = True

    #: checked when a suite or --param sets them (None still turns a weight off)
    hyperparameter_ranges: ClassVar[dict[str, Range | Choice]] = {
        "idf_weighting": Range(0),
        "weighting": Choice(tuple(POSITION_WEIGHTS)),
        "weighting_score": Choice(tuple(SCORE_WEIGHTS)),
    }

    def __init__(
        self,
        *,
        k: int = 100,
        sample_size: int = 1000,
        weighting: str = "div",
        weighting_score: str = "div",
        idf_weighting: float = 0.0,
        fallback: str = "pop",
    ):
        self.k = k
        self.sample_size = sample_size
        self.weighting = weighting
        self.weighting_score = weighting_score
        self.idf_weighting = idf_weighting
        self.fallback = fallback

    def _validate(self) -> None:
        super()._validate()
        _check_choice(self.name, "weighting", self.weighting, POSITION_WEIGHTS)
        _check_choice(self.name, "weighting_score", self.weighting_score, SCORE_WEIGHTS)
        _check_lambda(self.name, "idf_weighting", self.idf_weighting, allow_zero=True)

    def _item_factor(self):
        return 1.0 + float(self.idf_weighting) * self.idf_ if self.idf_weighting else None

    def _prefix_weights(self, p):
        return POSITION_WEIGHTS[self.weighting](p.item_pos.astype(np.float64), p.lengths[p.row].astype(np.float64))

    def _similarity(self, p, c_row, c_col, overlap, wsum, w):
        return wsum / p.n_distinct[c_row]

    def _neighbour_factor(self, p, row, prefix_max):
        return SCORE_WEIGHTS[self.weighting_score]((p.lengths[row] - prefix_max + 1).astype(np.float64))


def _position_weights(p: _Prefixes, lam: float | None) -> np.ndarray:
    """exp((pos_p(x) - n) / lam) per distinct prefix item; 1 when lam is None."""
    if lam is None:
        return np.ones(len(p.item))
    return np.exp((p.item_pos - p.lengths[p.row]) / float(lam))


def _weighted_cosine(p: _Prefixes, c_row, c_col, wsum, w, sizes) -> np.ndarray:
    norm = np.sqrt(np.bincount(p.row, weights=w * w, minlength=p.n_rows))
    return wsum / (norm[c_row] * np.sqrt(sizes[c_col]))


@register("stan")
class STAN(_KNNBase):
    """STAN: sequence- and time-aware neighbourhood.

    Garg, Gupta, Dasgupta, Saha, "Sequence and Time Aware Neighborhood for
    Session-based Recommendations: STAN", SIGIR 2019 (session-rec's
    ``STAN``). With ``t_p - t_s`` in seconds and ``lambda_snh`` in days::

        w(x)      = exp((pos_p(x) - n) / lambda_spw)                    (1)
        sim(p, s) = sum_{x in P & s} w(x) / (sqrt(sum_{x in P} w(x)^2) * sqrt(|s|))
                    * exp(-max(0, t_p - t_s) / (86400 * lambda_snh))     (2)
        i*(s)     = the item of P whose last occurrence in s is latest
        score(j)  = sum_{s in N_k(p), j in s} sim(p, s)
                    * exp(-|pos_s(j) - pos_s(i*)| / lambda_inh)           (3)

    ``t_p`` is the time of the prefix's last event (``batch.times``; the end
    of training when the batch has no times). A ``None`` lambda turns its
    factor off (plain cosine, no recency, no in-session position).

    Args:
        k: number of neighbours.
        sample_size: candidates, the most recent sessions sharing an item
            with the prefix; 0 = all.
        lambda_spw: (1) decay of the prefix items by position; small = only
            the last item counts.
        lambda_snh: (2) recency of a neighbour in days; small = only recent
            sessions count.
        lambda_inh: (3) decay of a neighbour's items by their distance to
            the neighbour's most recent item in common with the prefix.
        fallback: ``"pop"`` or ``"none"`` (see :mod:`baselines.common`).
    """

    _weighted_overlap = True
    _uses_time = True

    #: checked when a suite or --param sets them (None still turns a weight off)
    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        name: Range(0, low_open=True) for name in ("lambda_spw", "lambda_snh", "lambda_inh")
    }

    def __init__(
        self,
        *,
        k: int = 100,
        sample_size: int = 5000,
        lambda_spw: float = 1.02,
        lambda_snh: float = 5.0,
        lambda_inh: float = 2.05,
        fallback: str = "pop",
    ):
        self.k = k
        self.sample_size = sample_size
        self.lambda_spw = lambda_spw
        self.lambda_snh = lambda_snh
        self.lambda_inh = lambda_inh
        self.fallback = fallback

    def _validate(self) -> None:
        super()._validate()
        for name in ("lambda_spw", "lambda_snh", "lambda_inh"):
            _check_lambda(self.name, name, getattr(self, name))

    def _prefix_weights(self, p):
        return _position_weights(p, self.lambda_spw)

    def _similarity(self, p, c_row, c_col, overlap, wsum, w):
        sim = _weighted_cosine(p, c_row, c_col, wsum, w, self.session_size_)
        decay = self._time_decay(p, c_row, c_col, self.lambda_snh)
        return sim if decay is None else sim * decay

    def _item_position_kernel(self):
        if self.lambda_inh is None:
            return None
        lam = float(self.lambda_inh)
        return lambda distance: np.exp(-distance / lam)


@register("vstan")
class VSTAN(STAN):
    """V-STAN: STAN with V-SKNN's sequence-aware item weighting and IDF.

    Ludewig, Latifi, Jannach, "Empirical analysis of session-based
    recommendation algorithms", UMUAI 2021 (session-rec's ``VSKNN_STAN``).
    STAN's (1)-(3), with a choice of similarity, and two more factors::

        sim(p, s) = STAN's (2)                                  (similarity="cosine")
                  = sum_{x in P & s} w(x) / |P| * recency        (similarity="vec")
        score(j)  = sum_{s in N_k(p), j in s} sim(p, s)
                    * exp(-|pos_s(j) - pos_s(i*)| / lambda_inh)               (3)
                    * exp((max_{x in P & s} pos_p(x) - n) / lambda_ipw)       (4)
                    * (1 + lambda_idf * idf(j))                               (5)

    Args:
        k, sample_size, lambda_spw, lambda_snh, lambda_inh: as in STAN.
        similarity: ``"cosine"`` (STAN's weighted cosine) or ``"vec"``
            (V-SKNN's weighted overlap divided by |P|).
        lambda_ipw: (4) decay of a neighbour's item scores by how far back
            in the prefix its most recent common item is; None = off.
        lambda_idf: (5) weight of the IDF boost of rare items; 0 or None = off.
        fallback: ``"pop"`` or ``"none"`` (see :mod:`baselines.common`).
    """

    _needs_prefix_max = True
    SIMILARITIES: ClassVar[tuple[str, ...]] = ("cosine", "vec")

    #: checked when a suite or --param sets them (None still turns a weight off)
    hyperparameter_ranges: ClassVar[dict[str, Range | Choice]] = {
        "lambda_ipw": Range(0, low_open=True), "lambda_idf": Range(0), "similarity": Choice(SIMILARITIES),
    }

    def __init__(
        self,
        *,
        k: int = 100,
        sample_size: int = 5000,
        similarity: str = "cosine",
        lambda_spw: float = 1.02,
        lambda_snh: float = 5.0,
        lambda_inh: float = 2.05,
        lambda_ipw: float = 1.02,
        lambda_idf: float = 5.0,
        fallback: str = "pop",
    ):
        self.k = k
        self.sample_size = sample_size
        self.similarity = similarity
        self.lambda_spw = lambda_spw
        self.lambda_snh = lambda_snh
        self.lambda_inh = lambda_inh
        self.lambda_ipw = lambda_ipw
        self.lambda_idf = lambda_idf
        self.fallback = fallback

    def _validate(self) -> None:
        super()._validate()
        _check_choice(self.name, "similarity", self.similarity, self.SIMILARITIES)
        _check_lambda(self.name, "lambda_ipw", self.lambda_ipw)
        _check_lambda(self.name, "lambda_idf", self.lambda_idf, allow_zero=True)

    def _item_factor(self):
        return 1.0 + float(self.lambda_idf) * self.idf_ if self.lambda_idf else None

    def _similarity(self, p, c_row, c_col, overlap, wsum, w):
        if self.similarity == "vec":
            sim = wsum / p.n_distinct[c_row]
            decay = self._time_decay(p, c_row, c_col, self.lambda_snh)
            return sim if decay is None else sim * decay
        return super()._similarity(p, c_row, c_col, overlap, wsum, w)

    def _neighbour_factor(self, p, row, prefix_max):
        if self.lambda_ipw is None:
            return np.ones(len(row))
        return np.exp((prefix_max - p.lengths[row]) / float(self.lambda_ipw))

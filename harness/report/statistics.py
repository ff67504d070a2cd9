"""Session-clustered bootstrap CIs, cluster-robust paired tests, Holm correction and Pareto fronts.

Why sessions, not cases
-----------------------
Every prefix of a test session is an evaluation case: a session of n events
gives n - 1 cases, which share the session's items, its user and usually its
outcome. They are not independent draws, so statistics that treat the C cases
as independent (a case bootstrap, ``ttest_rel`` over cases) understate the
uncertainty, the more so the longer the sessions. The independent unit is
the test session: every interval and test here resamples or compares
sessions, while a metric stays a mean over cases.

Statistics
----------
*Point estimates.* A model label's value is the mean over its seeds of the
run's metric, ``m_label = (1/S) sum_s m_s``, where ``m_s`` is the mean of the
per-case metric over the C evaluation cases (exactly
``RunRecord.evaluation.metrics(ks)``). Coverage@K is an aggregate (one number
per run), timings are one measurement per run: both are plain means over seeds.

*Confidence intervals: a two-level, session-clustered percentile bootstrap.*
The C cases fall into G test sessions; session g has ``n_g`` cases and the
per-session sum ``X_sg = sum_{c in g} x_sc`` of the per-case metric ``x_sc``
of seed s. Replicate b draws G sessions with replacement (session weights
``v_bg`` ~ Multinomial(G, 1/G)) and, independently per label, S seeds with
replacement (seed weights ``u_bs`` ~ Multinomial(S, 1/S)); its statistic is
the ratio estimator::

    T_b = (1/S) sum_s u_bs * (sum_g v_bg X_sg) / (sum_g v_bg n_g)

so a replicate is still a mean over (resampled) cases, each drawn session
bringing all its prefixes along. The 95% CI is the 2.5th and 97.5th
percentiles of ``T_1..T_B``. With one seed it is the plain session
bootstrap; with several it also carries the seed-to-seed variation; with one
case per session it is exactly the case bootstrap. The session weights of a
(dataset, protocol) are shared by all its models and seeds (same draws),
which makes differences between models paired. The weights are drawn as
index matrices ``[B, G]`` in chunks and applied to the per-session sums as
one matrix product, so nothing loops over sessions or cases in Python. Means
by prefix-length bin use the same ratio restricted to the bin:
``sum_g v_bg X_sg,bin / sum_g v_bg n_g,bin``.

*Significance against the best model.* For each directed per-case metric of
a table, the best label (direction from :data:`harness.evaluation.metrics.METRICS`) is
compared with every other label over the same evaluation cases, paired by
(session, prefix_length), with the per-case metric averaged over each label's
seeds first (``xbar_c = (1/S) sum_s x_sc``):

- a cluster-robust paired t-test (:func:`paired_ttest` with the sessions):
  with ``d_c`` the per-case differences, ``D_g`` their per-session sums and
  ``dbar = sum_g D_g / C`` the mean difference over cases,
  ``t = dbar / sqrt(G/(G-1) * sum_g (D_g - n_g dbar)^2 / C^2)`` on G - 1
  degrees of freedom (the CR1 cluster-robust standard error of a mean);
- a paired bootstrap 95% CI of the difference ``T_b(label) - T_b(best)``
  (same session weights for both);
- Holm's step-down correction across the L - 1 comparisons of the column
  (:func:`holm`); a difference is *significant* when the Holm-adjusted
  t-test p-value is below :data:`ALPHA`. Tables mark it with a dagger.

If the two labels' case lists differ (another split, another filter), the
test is skipped and the report says so.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

#: significance level of the tests (after Holm correction)
ALPHA = 0.05
#: confidence level of every interval
LEVEL = 0.95
#: elements of one bootstrap weight chunk (replicates x sessions): bounds the
#: memory (about 3 x 8 bytes per element at the peak) while keeping the matrix
#: products wide enough to be efficient
_CHUNK_ELEMENTS = 1 << 24


def _stable_seed(*parts: Any) -> int:
    """A 64-bit integer from the parts (stable across processes, unlike hash())."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


class Sessions:
    """The grouping of C evaluation cases into G test sessions.

    ``codes[c]`` is the session (0..G-1, in order of first appearance) of
    case c and ``sizes[g] = n_g`` its number of cases. :meth:`sums` turns
    per-case values ``X [C, m]`` into per-session sums ``[G, m]``, the input
    of the clustered bootstrap. ``session_ids=None`` makes every case its
    own session (the case-level statistics).
    """

    def __init__(self, session_ids: np.ndarray | None, n_cases: int | None = None):
        if session_ids is None:
            if n_cases is None:
                raise ValueError("Sessions: give session_ids or n_cases")
            self.codes = np.arange(int(n_cases))
            self.sizes = np.ones(int(n_cases), dtype=np.float64)
            self._order = None
            self._starts = None
            return
        ids = np.asarray(session_ids)
        if n_cases is not None and len(ids) != n_cases:
            raise ValueError(f"Sessions: {len(ids)} session ids for {n_cases} cases")
        _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        # renumber by first appearance so the codes follow the stored case order
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))
        self.codes = rank[inverse.reshape(-1)]
        self.sizes = np.bincount(self.codes, minlength=len(first)).astype(np.float64)
        self._order = np.argsort(self.codes, kind="stable")
        self._starts = np.concatenate([[0], np.cumsum(self.sizes[:-1]).astype(np.int64)])

    @property
    def n_sessions(self) -> int:
        return len(self.sizes)

    @property
    def n_cases(self) -> int:
        return len(self.codes)

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Per-session sums ``X_g = sum_{c in g} x_c`` of ``values`` ([C] or [C, m]), ``[G]`` or ``[G, m]``."""
        x = np.asarray(values, dtype=np.float64)
        if self._order is None or x.shape[0] == 0:
            return x.copy()
        # reduceat over the cases sorted by session: one vectorised pass, no loop over sessions
        return np.add.reduceat(x[self._order], self._starts, axis=0)


def _weight_chunks(n_units: int, n_boot: int, rng: np.random.Generator) -> Iterator[tuple[slice, np.ndarray]]:
    """Unit (session) weights of the bootstrap replicates, ``[b, G]`` float64 per chunk.

    Row b counts how often each of the G units was drawn among G draws with
    replacement (an index matrix ``rng.integers(0, G, [b, G])`` turned into
    counts), i.e. ``v_b ~ Multinomial(G, 1/G)``; ``sum_g v_bg = G``.
    """
    rows = max(1, _CHUNK_ELEMENTS // max(n_units, 1))
    for lo in range(0, n_boot, rows):
        b = min(rows, n_boot - lo)
        idx = rng.integers(0, n_units, size=(b, n_units))
        idx += np.arange(b)[:, None] * n_units
        counts = np.bincount(idx.ravel(), minlength=b * n_units)
        del idx
        yield slice(lo, lo + b), counts.reshape(b, n_units).astype(np.float64)


def _bootstrap_sums(
    matrices: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """For each matrix X [G, m] (all with the same G units, e.g. per-session
    sums, in the same order): ``out[b] = sum_g v_bg X_g`` ([n_boot, m]), with
    the same unit weights for all.

    The matrices are stacked side by side so that each chunk of weights costs
    one matrix product; the cost is O(n_boot * G * total columns), at most
    that of resampling the cases (G <= C)."""
    n_units = matrices[0].shape[0]
    stacked = np.ascontiguousarray(np.column_stack(matrices), dtype=np.float64)
    out = np.empty((n_boot, stacked.shape[1]))
    for rows, w in _weight_chunks(n_units, n_boot, rng):
        out[rows] = w @ stacked
    bounds = np.cumsum([0] + [x.shape[1] for x in matrices])
    return [out[:, lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def _seed_weights(n_seeds: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``u [n_boot, S]`` ~ Multinomial(S, 1/S) divided by S (rows sum to 1)."""
    if n_seeds == 1:
        return np.ones((n_boot, 1))
    return rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot) / n_seeds


def _percentiles(replicates: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 (NaN where no replicate is finite)."""
    tail = 100.0 * (1.0 - level) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(replicates, [tail, 100.0 - tail], axis=0)
    return lo, hi


def clustered_replicates(
    per_seed: Sequence[np.ndarray], sessions: Sessions, n_boot: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Session-bootstrap replicates of per-case means, one ``[n_boot, m]`` array per input.

    Each input is ``x [C, m]`` (one run's per-case values over the same C
    cases, grouped by ``sessions``); replicate b of input s is the ratio
    ``sum_g v_bg X_sg / sum_g v_bg n_g`` with ``X_sg`` the per-session sums
    and ``v_b ~ Multinomial(G, 1/G)``, the same session weights for every
    input (paired). NaN values give NaN replicates where a drawn session
    holds one."""
    if sessions.n_sessions < 2:  # one session resampled is itself: no interval to speak of
        return [np.full((n_boot, np.atleast_2d(x.T).shape[0]), np.nan) for x in per_seed]
    counts, *sums = _bootstrap_sums([sessions.sizes[:, None]] + [sessions.sums(x) for x in per_seed], n_boot, rng)
    # every replicate draws G >= 1 sessions of >= 1 case each: the count is never 0
    return [s / counts for s in sums]


def bootstrap_ci(
    values: np.ndarray, *, sessions: np.ndarray | None = None, n_bootstrap: int = 1000, seed: int = 0,
    level: float = LEVEL,
) -> tuple[float, float, float]:
    """Mean and session-clustered percentile bootstrap CI of per-case values.

    ``values`` is ``[C]`` (one run) or ``[S, C]`` (S seeds over the same C
    cases) and ``sessions`` the ``[C]`` test session of each case. The
    replicates are::

        T_b = sum_s u_bs * (sum_g v_bg X_sg) / (sum_g v_bg n_g)

    with ``X_sg`` the sum of seed s's values over the ``n_g`` cases of
    session g, ``v_b ~ Multinomial(G, 1/G)`` over the G sessions and
    ``u_b ~ Multinomial(S, 1/S) / S`` (the two-level bootstrap the report
    uses). Resampling sessions, not cases, because the prefixes of one
    session are correlated. ``sessions=None`` treats every case as its own
    session (the case bootstrap, too narrow for prefixes of one session).
    Returns ``(mean, low, high)``.
    """
    x = np.atleast_2d(np.asarray(values, dtype=np.float64))
    n_seeds, n_cases = x.shape
    mean = float(x.mean()) if x.size else float("nan")
    if n_cases == 0:
        return mean, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    (t,) = clustered_replicates([x.T], Sessions(sessions, n_cases), n_bootstrap, rng)  # [B, S]
    t = (t * _seed_weights(n_seeds, n_bootstrap, rng)).sum(1)
    lo, hi = _percentiles(t, level)
    return mean, float(lo), float(hi)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and do not count).

    With the m finite p-values sorted, ``p_(1) <= ... <= p_(m)``::

        p~_(i) = max_{j <= i} min(1, (m - j + 1) * p_(j))

    Rejecting ``p~ < alpha`` controls the family-wise error rate at alpha.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = len(finite)
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def paired_ttest(a: np.ndarray, b: np.ndarray, sessions: np.ndarray | Sessions | None = None) -> tuple[float, float]:
    """Cluster-robust paired t-test of ``mean(a - b) = 0`` over cases grouped in sessions, as ``(t, p)``.

    With ``d_c = a_c - b_c`` over the C cases, ``D_g`` the sum of ``d`` over
    the ``n_g`` cases of session g (G sessions) and ``dbar = sum_g D_g / C``
    the mean difference over cases::

        SE^2 = G / (G - 1) * sum_g (D_g - n_g * dbar)^2 / C^2
        t    = dbar / SE,   p = 2 * (1 - F_{t, G-1}(|t|))

    the cluster-robust (CR1) standard error of a mean, with a Student t on
    G - 1 degrees of freedom. Equivalently, a one-sample t-test
    (``scipy.stats.ttest_1samp``) of the linearised session values
    ``z_g = dbar + (D_g - n_g dbar) / (C / G)`` against 0. The sessions are
    the independent units: the prefixes of one session are correlated, and
    a test over cases would overstate the evidence. With
    ``sessions=None`` (one case per session) it is exactly
    ``scipy.stats.ttest_rel(a, b)``.

    Fewer than 2 sessions give ``(nan, nan)`` (no test); identical samples
    give ``(0, 1)`` (no evidence of a difference); a non-zero difference
    with SE = 0 (every session's mean difference equal) gives ``(±inf, 0)``.
    """
    from scipy import stats

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    groups = sessions if isinstance(sessions, Sessions) else Sessions(sessions, d.size)
    n_groups = groups.n_sessions
    if n_groups < 2:  # whatever the differences: one session is no sample to test on
        return float("nan"), float("nan")
    if np.all(d == 0):
        return 0.0, 1.0
    dbar = float(d.mean())
    resid = groups.sums(d) - groups.sizes * dbar
    se2 = n_groups / (n_groups - 1) * float(resid @ resid) / d.size**2
    if se2 == 0.0:  # a constant difference per session: no variance, a certain difference
        return math.copysign(math.inf, dbar), 0.0
    t = dbar / math.sqrt(se2)
    return t, float(2.0 * stats.t.sf(abs(t), n_groups - 1))


def pareto_front(x: Sequence[float], y: Sequence[float]) -> np.ndarray:
    """Boolean mask of the points not dominated when x is minimised (latency)
    and y maximised (accuracy): point i is dominated if some j has
    ``x_j <= x_i`` and ``y_j >= y_i`` with one inequality strict. NaN points
    are never on the front."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = ~(np.isnan(x) | np.isnan(y))
    le = (x[None, :] <= x[:, None]) & (y[None, :] >= y[:, None])
    strict = (x[None, :] < x[:, None]) | (y[None, :] > y[:, None])
    dominated = (le & strict & ok[None, :]).any(1)
    return ok & ~dominated

"""Bootstrap confidence intervals, paired tests, Holm correction and Pareto fronts.

Statistics
----------
*Point estimates.* A model label's value is the mean over its seeds of the
run's metric, ``m_label = (1/S) sum_s m_s``, where ``m_s`` is the mean of the
per-case metric over the C evaluation cases (exactly
``RunRecord.evaluation.metrics(ks)``). Coverage@K is an aggregate (one number
per run), timings are one measurement per run: both are plain means over seeds.

*Confidence intervals: a two-level percentile bootstrap.* Replicate b draws
C cases with replacement (case weights ``w_bc`` ~ Multinomial(C, 1/C)) and,
independently per label, S seeds with replacement (seed weights ``u_bs`` ~
Multinomial(S, 1/S)); its statistic is::

    T_b = (1/S) sum_s u_bs * (1/C) sum_c w_bc * x_sc

with ``x_sc`` the per-case metric of seed s on case c. The 95% CI is the
2.5th and 97.5th percentiles of ``T_1..T_B``. With one seed it is the plain
case bootstrap; with several it also carries the seed-to-seed variation.
The case weights of a (dataset, protocol) are shared by all its models and
seeds (same draws), which makes differences between models paired. The
weights are drawn as index matrices ``[B, C]`` in chunks and applied as one
matrix product, so nothing loops over cases in Python. Means by prefix-length
bin use the ratio ``sum_c w_bc x_sc 1[c in bin] / sum_c w_bc 1[c in bin]``.

*Significance against the best model.* For each directed per-case metric of
a table, the best label (direction from :data:`harness.evaluation.metrics.METRICS`) is
compared with every other label over the same evaluation cases, paired by
(session, prefix_length), with the per-case metric averaged over each label's
seeds first (``xbar_c = (1/S) sum_s x_sc``):

- a paired t-test (``scipy.stats.ttest_rel``) on ``xbar_label,c`` vs
  ``xbar_best,c``: ``t = mean(d) / (sd(d) / sqrt(C))``, ``d_c`` the differences;
- a paired bootstrap 95% CI of the difference ``T_b(label) - T_b(best)``
  (same case weights for both);
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
#: elements of one bootstrap weight chunk (replicates x cases): bounds the
#: memory (about 3 x 8 bytes per element at the peak) while keeping the matrix
#: products wide enough to be efficient
_CHUNK_ELEMENTS = 1 << 24


def _stable_seed(*parts: Any) -> int:
    """A 64-bit integer from the parts (stable across processes, unlike hash())."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _weight_chunks(n_cases: int, n_boot: int, rng: np.random.Generator) -> Iterator[tuple[slice, np.ndarray]]:
    """Case weights of the bootstrap replicates, ``[b, C]`` float64 per chunk.

    Row b counts how often each case was drawn among C draws with
    replacement (an index matrix ``rng.integers(0, C, [b, C])`` turned into
    counts), i.e. ``w_b ~ Multinomial(C, 1/C)``; ``sum_c w_bc = C``.
    """
    rows = max(1, _CHUNK_ELEMENTS // max(n_cases, 1))
    for lo in range(0, n_boot, rows):
        b = min(rows, n_boot - lo)
        idx = rng.integers(0, n_cases, size=(b, n_cases))
        idx += np.arange(b)[:, None] * n_cases
        counts = np.bincount(idx.ravel(), minlength=b * n_cases)
        del idx
        yield slice(lo, lo + b), counts.reshape(b, n_cases).astype(np.float64)


def _bootstrap_sums(
    matrices: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """For each matrix X [C, m] (all with the same C cases, in the same order):
    ``out[b] = sum_c w_bc X_c`` ([n_boot, m]), with the same case weights for all.

    The matrices are stacked side by side so that each chunk of weights costs
    one matrix product; the cost is O(n_boot * C * total columns) (about 10 s
    for 1000 replicates of 50,000 cases x 20 runs x 29 columns on 2 cores)."""
    n_cases = matrices[0].shape[0]
    stacked = np.ascontiguousarray(np.column_stack(matrices), dtype=np.float64)
    out = np.empty((n_boot, stacked.shape[1]))
    for rows, w in _weight_chunks(n_cases, n_boot, rng):
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


def bootstrap_ci(
    values: np.ndarray, *, n_bootstrap: int = 1000, seed: int = 0, level: float = LEVEL
) -> tuple[float, float, float]:
    """Mean and percentile bootstrap CI of per-case values.

    ``values`` is ``[C]`` (one run) or ``[S, C]`` (S seeds over the same C
    cases); the replicates are ``T_b = sum_s u_bs (1/C) sum_c w_bc x_sc`` with
    ``w_b ~ Multinomial(C, 1/C)`` and ``u_b ~ Multinomial(S, 1/S) / S`` (the
    two-level bootstrap the report uses). Returns ``(mean, low, high)``.
    """
    x = np.atleast_2d(np.asarray(values, dtype=np.float64))
    n_seeds, n_cases = x.shape
    mean = float(x.mean()) if x.size else float("nan")
    if n_cases == 0:
        return mean, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    (sums,) = _bootstrap_sums([x.T], n_bootstrap, rng)  # [B, S]
    t = (sums / n_cases * _seed_weights(n_seeds, n_bootstrap, rng)).sum(1)
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


def paired_ttest(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``scipy.stats.ttest_rel(a, b)`` as ``(t, p)``; identical samples give
    ``(0, 1)`` (no evidence of a difference) instead of NaN."""
    from scipy import stats

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.size < 2 or np.all(d == 0):
        return 0.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_rel(a, b)
    t, p = float(res.statistic), float(res.pvalue)
    if np.isnan(p):  # constant non-zero difference: no variance, a certain difference
        return (math.copysign(math.inf, float(d.mean())), 0.0)
    return t, p


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

"""Reports: paper-ready figures and tables, computed from the stored runs only.

:func:`write_report` reads the complete runs of a results store
(:func:`harness.store.iter_runs`), recomputes every metric from the stored
per-case ranks and top-K lists, and writes ``<out_dir>/report/``::

    report/
      summary.md                     every figure and table, one sentence each;
                                     failed runs with their error; methods
      figures/<group>_<kind>.png     for each (dataset, protocol) "group":
      figures/<group>_<kind>.pdf       bars, metric_vs_k, accuracy_latency,
                                       prefix_length, training_curves
      tables/<group>.md|.tex|.csv    the results table (and its CIs)
      tables/<group>_significance.csv  the paired tests against the best model

The report is written to a temporary folder and then replaces the previous
one, so a report folder is never half old, half new. Figures and tables are
deterministic given ``seed`` (PDFs carry no creation date).

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
a table, the best label (direction from :data:`harness.metrics.METRICS`) is
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
import os
import re
import shutil
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.metrics import METRICS, RANK_METRICS, MetricSpec, metric_key, normalise_ks, parse_metric_key
from harness.store import RunRecord, iter_runs, replace_folder

#: significance level of the tests (after Holm correction)
ALPHA = 0.05
#: confidence level of every interval
LEVEL = 0.95
#: cut-offs of the grouped bar charts
BAR_KS: tuple[int, ...] = (10, 20)
#: cut-offs of the compact summary printed by ``sessionbench run``
SUMMARY_KS: tuple[int, ...] = (20, 50)
#: K of the beyond-accuracy columns (Coverage, Popularity) and of the
#: accuracy-vs-latency and prefix-length figures
LIST_K = 20
#: the metric vs K curves run over K = 1..MAX_CURVE_K
MAX_CURVE_K = 50
#: prefix-length bins: (lowest, highest, label)
PREFIX_BINS: tuple[tuple[int, float, str], ...] = (
    (1, 1, "1"), (2, 2, "2"), (3, 3, "3"), (4, 4, "4"), (5, 9, "5–9"), (10, math.inf, "10+"),
)
#: elements of one bootstrap weight chunk (replicates x cases): bounds the
#: memory (about 3 x 8 bytes per element at the peak) while keeping the matrix
#: products wide enough to be efficient
_CHUNK_ELEMENTS = 1 << 24

REPORT_DIR = "report"
FIGURES_DIR = "figures"
TABLES_DIR = "tables"

#: figure kinds, in the order summary.md lists them, with their one-line description
FIGURE_KINDS: dict[str, str] = {
    "bars": "grouped bars of HitRate, Recall, NDCG and MRR at K = {bar_ks} per model, "
            "with 95% bootstrap confidence intervals (cases, and seeds where several).",
    "metric_vs_k": "HitRate, Recall, NDCG and MRR as the list length K grows from 1 to 50 "
                   "(means over seeds, from the stored ranks).",
    "accuracy_latency": "HitRate@{k} and MRR@{k} against single-session latency p50 (ms, log scale); "
                        "the dashed line joins the Pareto-optimal models (no other model is both faster "
                        "and more accurate).",
    "prefix_length": "HitRate@{k} by prefix length (number of items the model has seen), with 95% "
                     "bootstrap CIs; the tick labels give the number of evaluation cases per bin.",
    "training_curves": "training loss and validation MRR@20 per epoch of the models trained by epoch "
                       "(mean over seeds; band: min to max over seeds; dashed: refit on all of train).",
}


@dataclass(frozen=True)
class Timing:
    """A timing column: manifest key, header, unit and direction (like a MetricSpec)."""

    key: str
    header: str
    unit: str
    direction: str  # "higher" or "lower"

    def best(self, values: Sequence[float]) -> int | None:
        arr = np.asarray(values, dtype=np.float64)
        if arr.size == 0 or np.all(np.isnan(arr)):
            return None
        return int(np.nanargmax(arr) if self.direction == "higher" else np.nanargmin(arr))


#: the timing columns of the tables (keys of ``manifest["timings"]``, see harness.timing)
TIMINGS: dict[str, Timing] = {
    t.key: t
    for t in (
        Timing("fit_seconds", "fit (s)", "s", "lower"),
        Timing("prefixes_per_second", "prefixes/s", "prefixes/s", "higher"),
        Timing("latency_ms_p50", "p50 (ms)", "ms", "lower"),
        Timing("latency_ms_p95", "p95 (ms)", "ms", "lower"),
    )
}
#: timings read from the manifests (the tables show TIMINGS; the others are kept in the CSV)
_ALL_TIMINGS = ("fit_seconds", "score_seconds", "prefixes_per_second", "latency_ms_p50",
                "latency_ms_p95", "latency_ms_p99", "peak_rss_mb", "model_size")


# --------------------------------------------------------------------------- #
# One colour and one marker per model label
# --------------------------------------------------------------------------- #

#: built-in models, in their fixed palette slots (labels are matched ignoring
#: case and punctuation: "SR-GNN" and "srgnn" take the same slot)
KNOWN_MODELS: tuple[str, ...] = (
    "pop", "spop", "markov", "ar", "sr", "itemknn", "sknn", "vsknn", "stan", "vstan", "gru4rec", "srgnn",
)
_PALETTE: tuple[str, ...] = (
    # the 12 built-in slots
    "#7f7f7f", "#bcbd22", "#17becf", "#8c564b", "#e377c2", "#9467bd",
    "#2ca02c", "#005a32", "#ff7f0e", "#c49c00", "#1f77b4", "#d62728",
    # further labels
    "#393b79", "#637939", "#843c39", "#7b4173", "#3182bd", "#e6550d",
    "#31a354", "#756bb1", "#000000", "#fd8d3c", "#8c6d31", "#de2d26",
)
_MARKERS: tuple[str, ...] = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h", "p", "d", "8", "H")


@dataclass(frozen=True)
class Style:
    """How a model label is drawn everywhere: colour, marker, and its slot
    (slots also order the labels in tables and legends)."""

    color: str
    marker: str
    slot: int


def _normalise_label(label: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(label).lower())


def model_styles(labels: Iterable[str]) -> dict[str, Style]:
    """One :class:`Style` per label, stable across figures.

    A label naming a built-in model (:data:`KNOWN_MODELS`) takes that model's
    fixed slot (reserved even when that model is absent); the other labels
    take the slots after them, in sorted order.
    Slot s gets colour ``_PALETTE[s mod 24]`` and marker ``_MARKERS[s mod 15]``
    (so colour/marker pairs repeat only after 120 labels).
    """
    labels = sorted(set(map(str, labels)))
    slots: dict[str, int] = {}
    taken: set[int] = set()
    for label in labels:
        norm = _normalise_label(label)
        if norm in KNOWN_MODELS and KNOWN_MODELS.index(norm) not in taken:
            slots[label] = KNOWN_MODELS.index(norm)
            taken.add(slots[label])
    free = iter(range(len(KNOWN_MODELS), 10**6))  # the built-in slots stay reserved
    for label in labels:
        if label not in slots:
            slots[label] = next(free)
    return {
        label: Style(_PALETTE[s % len(_PALETTE)], _MARKERS[s % len(_MARKERS)], s) for label, s in slots.items()
    }


def _ordered(labels: Iterable[str], styles: dict[str, Style]) -> list[str]:
    return sorted(set(labels), key=lambda label: (styles[label].slot, label))


# --------------------------------------------------------------------------- #
# Bootstrap and tests
# --------------------------------------------------------------------------- #


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


# --------------------------------------------------------------------------- #
# Reading the store into per-group statistics
# --------------------------------------------------------------------------- #


@dataclass
class _Run:
    """What the report needs from one stored run."""

    record: RunRecord
    label: str
    seed: Any
    fingerprint: str
    n_cases: int
    cases: np.ndarray  # [C, m] per-case values of the bootstrapped columns
    means: dict[str, float]  # metric means (evaluation.metrics) and Coverage
    k_curve: dict[str, np.ndarray]  # metric name -> [MAX_CURVE_K] means at K = 1..50
    bins: np.ndarray  # [n_bins] HitRate@LIST_K mean per prefix-length bin (NaN if empty)
    bin_index: np.ndarray  # [C] bin of each case
    timings: dict[str, float]
    curve: pd.DataFrame | None


@dataclass
class Group:
    """The statistics of one (dataset, protocol), ready to draw and tabulate."""

    dataset: str
    protocol: str
    slug: str
    labels: list[str]
    columns: list[str]  # bootstrapped per-case metric columns
    table_ks: tuple[int, ...]
    n_cases: dict[str, int]
    n_seeds: dict[str, int]
    means: pd.DataFrame  # label x (metric keys, Coverage@LIST_K, timings)
    ci_low: pd.DataFrame  # label x bootstrapped columns
    ci_high: pd.DataFrame
    k_curves: dict[str, pd.DataFrame]  # label -> K x metric name
    bin_means: pd.DataFrame  # label x bin label
    bin_low: pd.DataFrame
    bin_high: pd.DataFrame
    bin_counts: pd.Series  # cases per bin (of the first label's case list)
    curves: dict[str, list[pd.DataFrame]]
    significance: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.dataset} ({self.protocol})"


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts)).strip("-") or "group"


def _case_fingerprint(session_ids: np.ndarray, prefix_lengths: np.ndarray) -> str:
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(session_ids, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(prefix_lengths, dtype=np.int64).tobytes())
    return h.hexdigest()


def _bin_index(prefix_lengths: np.ndarray) -> np.ndarray:
    edges = [lo for lo, _, _ in PREFIX_BINS[1:]]
    return np.digitize(prefix_lengths, edges)


def _load_run(record: RunRecord, metric_ks: tuple[int, ...]) -> _Run:
    ev = record.evaluation
    man = record.manifest
    rank_cols = [metric_key(n, k) for n in RANK_METRICS for k in metric_ks]
    frame = ev.per_case(metric_ks, names=RANK_METRICS)
    cols = [frame[c].to_numpy(np.float64) for c in rank_cols]
    pop_key = metric_key("Popularity", LIST_K)
    if LIST_K <= ev.top_k:
        cols.append(ev.per_case([LIST_K], names=["Popularity"])[pop_key].to_numpy(np.float64))
        cover = ev.metrics([LIST_K], names=["Coverage", "Popularity"])
    else:
        cols.append(np.full(ev.n_cases, np.nan))
        cover = {metric_key("Coverage", LIST_K): float("nan"), pop_key: float("nan")}
    means = ev.metrics(metric_ks, names=RANK_METRICS)
    means.update(cover)
    curve_ks = tuple(range(1, MAX_CURVE_K + 1))
    curve_means = ev.metrics(curve_ks, names=RANK_METRICS)
    k_curve = {n: np.array([curve_means[metric_key(n, k)] for k in curve_ks]) for n in RANK_METRICS}
    bin_index = _bin_index(ev.prefix_lengths)
    hit = frame[metric_key("HitRate", LIST_K)].to_numpy(np.float64)
    n_bins = len(PREFIX_BINS)
    counts = np.bincount(bin_index, minlength=n_bins).astype(np.float64)
    sums = np.bincount(bin_index, weights=hit, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        bins = np.where(counts > 0, sums / counts, np.nan)
    timings = man.get("timings") or {}
    return _Run(
        record=record,
        label=str(man.get("label") or man.get("model") or ev.meta.get("model") or record.run_id),
        seed=man.get("seed"),
        fingerprint=_case_fingerprint(ev.session_ids, ev.prefix_lengths),
        n_cases=ev.n_cases,
        cases=np.column_stack(cols) if cols else np.zeros((ev.n_cases, 0)),
        means=means,
        k_curve=k_curve,
        bins=bins,
        bin_index=bin_index,
        timings={k: _as_float(timings.get(k)) for k in _ALL_TIMINGS},
        curve=record.curve(),
    )


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _group_key(record: RunRecord) -> tuple[str, str]:
    man = record.manifest
    dataset = man.get("dataset")
    protocol = man.get("protocol")
    if dataset is None or protocol is None:
        ev = record.evaluation
        dataset = dataset if dataset is not None else ev.meta.get("dataset") or "dataset"
        protocol = protocol if protocol is not None else ev.protocol
    return str(dataset), str(protocol)


def _default_ks(records: Sequence[RunRecord]) -> tuple[int, ...]:
    ks: set[int] = set()
    for record in records:
        found = record.manifest.get("ks")
        if not found:
            found = record.evaluation.ks
        ks.update(int(k) for k in found)
    return normalise_ks(ks) if ks else (5, 10, 20, 50)


def _build_group(
    dataset: str, protocol: str, runs: list[_Run], table_ks: tuple[int, ...], metric_ks: tuple[int, ...],
    styles: dict[str, Style], n_boot: int, seed: int,
) -> Group:
    columns = [metric_key(n, k) for n in RANK_METRICS for k in metric_ks] + [metric_key("Popularity", LIST_K)]
    labels = _ordered((r.label for r in runs), styles)
    by_label = {label: [r for r in runs if r.label == label] for label in labels}
    notes: list[str] = []

    # bootstrap sums per run, case weights shared within one case list
    n_bins = len(PREFIX_BINS)
    hit_col = columns.index(metric_key("HitRate", LIST_K))
    per_run_t: dict[int, np.ndarray] = {}  # id(run) -> [B, m] resampled means
    per_run_bins: dict[int, np.ndarray] = {}  # id(run) -> [B, n_bins] resampled bin means
    for fp in sorted({r.fingerprint for r in runs}):
        members = [r for r in runs if r.fingerprint == fp]
        n_cases = members[0].n_cases
        if n_cases == 0:
            for r in members:
                per_run_t[id(r)] = np.full((n_boot, len(columns)), np.nan)
                per_run_bins[id(r)] = np.full((n_boot, n_bins), np.nan)
            continue
        onehot = np.zeros((n_cases, n_bins))
        onehot[np.arange(n_cases), members[0].bin_index] = 1.0
        mats = [onehot] + [np.column_stack([r.cases, onehot * r.cases[:, [hit_col]]]) for r in members]
        rng = np.random.default_rng([seed, _stable_seed(dataset, protocol, fp)])
        sums = _bootstrap_sums(mats, n_boot, rng)
        counts = sums[0]
        for r, s in zip(members, sums[1:]):
            per_run_t[id(r)] = s[:, : len(columns)] / n_cases
            with np.errstate(invalid="ignore", divide="ignore"):
                per_run_bins[id(r)] = s[:, len(columns):] / counts

    mean_cols = columns + [metric_key("Coverage", LIST_K)] + list(_ALL_TIMINGS)
    means = pd.DataFrame(index=labels, columns=mean_cols, dtype=np.float64)
    ci_low = pd.DataFrame(index=labels, columns=columns, dtype=np.float64)
    ci_high = ci_low.copy()
    bin_names = [b[2] for b in PREFIX_BINS]
    bin_means = pd.DataFrame(index=labels, columns=bin_names, dtype=np.float64)
    bin_low, bin_high = bin_means.copy(), bin_means.copy()
    label_t: dict[str, np.ndarray] = {}
    k_curves: dict[str, pd.DataFrame] = {}
    curves: dict[str, list[pd.DataFrame]] = {}
    for label in labels:
        members = by_label[label]
        for col in mean_cols:
            vals = [r.means.get(col, float("nan")) if col in r.means else r.timings.get(col, float("nan"))
                    for r in members]
            means.loc[label, col] = _nanmean(vals)
        rng = np.random.default_rng([seed, _stable_seed(dataset, protocol, "seeds", label)])
        u = _seed_weights(len(members), n_boot, rng)  # [B, S]
        t = sum(u[:, [i]] * per_run_t[id(r)] for i, r in enumerate(members))
        tb = sum(u[:, [i]] * per_run_bins[id(r)] for i, r in enumerate(members))
        label_t[label] = t
        ci_low.loc[label], ci_high.loc[label] = _percentiles(t)
        bin_means.loc[label] = [_nanmean(v) for v in np.stack([r.bins for r in members]).T]
        bin_low.loc[label], bin_high.loc[label] = _percentiles(tb)
        k_curves[label] = pd.DataFrame(
            {n: np.mean([r.k_curve[n] for r in members], axis=0) for n in RANK_METRICS},
            index=pd.RangeIndex(1, MAX_CURVE_K + 1, name="K"),
        )
        seeds_curves = [r.curve for r in members if r.curve is not None and len(r.curve)]
        if seeds_curves:
            curves[label] = seeds_curves
        if len({r.fingerprint for r in members}) > 1:
            notes.append(f"{label}: its seeds were evaluated on different case lists; "
                         "its significance tests are skipped.")

    fps = {r.fingerprint for r in runs}
    if len(fps) > 1:
        notes.append("the runs of this dataset do not all share one list of evaluation cases "
                     "(session, prefix length); paired tests between models with different case lists are skipped.")
    first = by_label[labels[0]][0]
    bin_counts = pd.Series(np.bincount(first.bin_index, minlength=n_bins), index=bin_names)
    test_cols = [metric_key(n, k) for n in RANK_METRICS for k in table_ks]
    significance = _significance(labels, by_label, means, label_t, columns, test_cols)
    return Group(
        dataset=dataset, protocol=protocol, slug=_slug(dataset, protocol), labels=labels, columns=columns,
        table_ks=table_ks,
        n_cases={label: by_label[label][0].n_cases for label in labels},
        n_seeds={label: len(by_label[label]) for label in labels},
        means=means, ci_low=ci_low, ci_high=ci_high, k_curves=k_curves,
        bin_means=bin_means, bin_low=bin_low, bin_high=bin_high, bin_counts=bin_counts,
        curves=curves, significance=significance, notes=notes,
    )


def _nanmean(values: Sequence[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def _significance(
    labels: list[str], by_label: dict[str, list[_Run]], means: pd.DataFrame,
    label_t: dict[str, np.ndarray], columns: list[str], test_cols: list[str],
) -> pd.DataFrame:
    """One row per (metric column, label other than the best): the paired
    t-test, its Holm-adjusted p-value and the paired bootstrap CI of the
    difference (label minus best)."""
    rows = []
    for col in test_cols:
        spec, _ = parse_metric_key(col)
        best = spec.best(means[col].to_numpy())
        if best is None or len(labels) < 2:
            continue
        best_label = labels[best]
        j = columns.index(col)
        block = []
        for label in labels:
            if label == best_label:
                continue
            row = {"metric": col, "label": label, "best": best_label,
                   "mean": means.loc[label, col], "best_mean": means.loc[best_label, col],
                   "diff": means.loc[label, col] - means.loc[best_label, col],
                   "diff_ci_low": np.nan, "diff_ci_high": np.nan, "t": np.nan, "p": np.nan, "note": ""}
            a, b = by_label[label], by_label[best_label]
            if len({r.fingerprint for r in a + b}) != 1:
                row["note"] = "skipped: evaluation cases differ"
            elif a[0].n_cases < 2:
                row["note"] = "skipped: fewer than 2 cases"
            else:
                xa = np.mean([r.cases[:, j] for r in a], axis=0)
                xb = np.mean([r.cases[:, j] for r in b], axis=0)
                row["t"], row["p"] = paired_ttest(xa, xb)
                lo, hi = _percentiles(label_t[label][:, j] - label_t[best_label][:, j])
                row["diff_ci_low"], row["diff_ci_high"] = float(lo), float(hi)
            block.append(row)
        adjusted = holm([r["p"] for r in block])
        for r, p in zip(block, adjusted):
            r["p_holm"] = p
            r["significant"] = bool(p < ALPHA) if not np.isnan(p) else False
        rows.extend(block)
    cols = ["metric", "label", "best", "mean", "best_mean", "diff", "diff_ci_low", "diff_ci_high",
            "t", "p", "p_holm", "significant", "note"]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- #
# Tables
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _Column:
    key: str  # metric key or timing key
    header: str
    group: str  # header group (metric name, "beyond accuracy", "efficiency")
    metric: MetricSpec | None
    timing: Timing | None

    def best(self, values: Sequence[float]) -> int | None:
        return (self.metric or self.timing).best(values)


def _table_columns(table_ks: tuple[int, ...]) -> list[_Column]:
    cols = [_Column(metric_key(n, k), f"@{k}", n, METRICS[n], None) for n in RANK_METRICS for k in table_ks]
    cols += [_Column(metric_key(n, LIST_K), metric_key(n, LIST_K), "beyond accuracy", METRICS[n], None)
             for n in ("Coverage", "Popularity")]
    cols += [_Column(t.key, t.header, "efficiency", None, t) for t in TIMINGS.values()]
    return cols


def _fmt_metric(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:.4f}"


def _fmt_quantity(value: float) -> str:
    if not np.isfinite(value):
        return "–"
    a = abs(value)
    if a >= 1000:
        return f"{value:,.0f}"
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _fmt(col: _Column, value: float) -> str:
    return _fmt_metric(value) if col.metric is not None else _fmt_quantity(value)


def _best_mask(col: _Column, values: np.ndarray) -> np.ndarray:
    """Where the column's best value is (all ties); none for neutral metrics."""
    best = col.best(values)
    if best is None:
        return np.zeros(len(values), dtype=bool)
    return values == values[best]


def _significant_mask(group: Group, col: _Column) -> np.ndarray:
    sig = group.significance
    rows = sig[(sig["metric"] == col.key) & sig["significant"].astype(bool)] if len(sig) else sig
    marked = set(rows["label"]) if len(rows) else set()
    return np.array([label in marked for label in group.labels])


def _caption(group: Group, n_boot: int, *, latex: bool) -> str:
    """The table caption after the title: what the numbers are and how they were tested."""
    cases = "/".join(f"{n:,}" for n in sorted(set(group.n_cases.values())))
    seeds = "/".join(map(str, sorted(set(group.n_seeds.values()))))
    if latex:
        dag = r"$^{\dagger}$"
        ci = (rf"95\% percentile bootstrap CIs over evaluation cases and seeds (two-level bootstrap, "
              rf"{n_boot} replicates) are in Table~\ref{{tab:sessionbench-{group.slug}-ci}}.")
    else:
        dag = "†"
        ci = (f"± is the half-width of the 95% percentile bootstrap CI over evaluation cases and seeds "
              f"(two-level bootstrap, {n_boot} replicates).")
    return (
        f"Means over {seeds} seed(s), {cases} evaluation cases (full ranking). {ci} "
        f"Bold: best per column. {dag}: differs significantly from the best model of the column "
        f"(paired t-test over the same evaluation cases, paired by session and prefix length, per-case "
        f"values averaged over seeds; Holm correction across models; alpha = {ALPHA}). "
        f"Coverage@{LIST_K} and timings are means over seeds (one value per run, no CI); "
        f"Popularity@{LIST_K} is descriptive (never bold)."
    )


def _table_frame(group: Group) -> pd.DataFrame:
    """The CSV: one row per label; mean, ci_low, ci_high of every column."""
    out = pd.DataFrame(index=pd.Index(group.labels, name="label"))
    out["n_seeds"] = [group.n_seeds[label] for label in group.labels]
    out["n_cases"] = [group.n_cases[label] for label in group.labels]
    ci_cols = set(group.ci_low.columns)
    for col in group.means.columns:
        out[col] = group.means[col]
        if col in ci_cols:
            out[f"{col}_ci_low"] = group.ci_low[col]
            out[f"{col}_ci_high"] = group.ci_high[col]
    return out


def _markdown_table(group: Group, n_boot: int) -> str:
    cols = _table_columns(group.table_ks)
    headers = ["model"] + [c.key if c.metric is not None else c.header for c in cols]
    lines = [f"### {group.title}", "", _caption(group, n_boot, latex=False), ""]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join([":---"] + ["---:"] * len(cols)) + "|")
    cells = {c.key: _column_cells(group, c, markdown=True) for c in cols}
    for i, label in enumerate(group.labels):
        lines.append("| " + " | ".join([_md_escape(label)] + [cells[c.key][i] for c in cols]) + " |")
    if group.notes:
        lines += [""] + [f"Note: {n}" for n in group.notes]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return str(text).replace("|", r"\|")


def _column_cells(group: Group, col: _Column, *, markdown: bool) -> list[str]:
    values = group.means[col.key].to_numpy(np.float64)
    best = _best_mask(col, values)
    sig = _significant_mask(group, col)
    has_ci = col.key in group.ci_low.columns and col.metric is not None
    out = []
    for i, label in enumerate(group.labels):
        text = _fmt(col, values[i])
        if markdown:
            if best[i] and np.isfinite(values[i]):
                text = f"**{text}**"
            if sig[i]:
                text += "†"
            if has_ci:
                hw = (group.ci_high.loc[label, col.key] - group.ci_low.loc[label, col.key]) / 2
                if np.isfinite(hw):
                    text += f" ± {hw:.4f}"
        else:
            text = text.replace("–", "--")
            if best[i] and np.isfinite(values[i]):
                text = rf"\textbf{{{text}}}"
            if sig[i]:
                text += r"$^{\dagger}$"
        out.append(text)
    return out


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _latex_tabular(group: Group, cols: list[_Column], cells: dict[str, list[str]]) -> list[str]:
    spec = "l" + "".join("r" for _ in cols)
    groups: list[tuple[str, int]] = []
    for c in cols:
        if groups and groups[-1][0] == c.group:
            groups[-1] = (c.group, groups[-1][1] + 1)
        else:
            groups.append((c.group, 1))
    top, rules, start = ["Model"], [], 2
    for name, width in groups:
        top.append(rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(name)}}}")
        rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
        start += width
    second = [""] + [latex_escape(c.header) for c in cols]
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(top) + r" \\", "".join(rules),
             " & ".join(second) + r" \\", r"\midrule"]
    for i, label in enumerate(group.labels):
        lines.append(" & ".join([latex_escape(label)] + [cells[c.key][i] for c in cols]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return lines


def _latex_table(group: Group, n_boot: int) -> str:
    """Two booktabs tables: the means (bold best, daggers) and the 95% CIs."""
    cols = _table_columns(group.table_ks)
    cells = {c.key: _column_cells(group, c, markdown=False) for c in cols}
    label_base = f"tab:sessionbench-{group.slug}"
    caption = latex_escape(group.title) + ". " + _caption(group, n_boot, latex=True)
    lines = [
        "% generated by sessionbench report from the stored runs; needs \\usepackage{booktabs}",
        r"\begin{table*}[t]", r"\centering", r"\small", r"\setlength{\tabcolsep}{3.5pt}",
        rf"\caption{{{caption}}}", rf"\label{{{label_base}}}",
    ]
    lines += _latex_tabular(group, cols, cells)
    lines += [r"\end{table*}", ""]
    ci_cols = [c for c in cols if c.key in group.ci_low.columns and c.metric is not None]
    ci_cells = {}
    for c in ci_cols:
        lo, hi = group.ci_low[c.key].to_numpy(), group.ci_high[c.key].to_numpy()
        ci_cells[c.key] = ["--" if not (np.isfinite(a) and np.isfinite(b)) else f"[{a:.3f}, {b:.3f}]"
                           for a, b in zip(lo, hi)]
    ci_caption = (
        rf"{latex_escape(group.title)}: 95\% percentile bootstrap confidence intervals of the means in "
        rf"Table~\ref{{{label_base}}} ({n_boot} replicates; evaluation cases resampled with replacement, "
        r"and seeds where several: two-level bootstrap)."
    )
    lines += [r"\begin{table*}[t]", r"\centering", r"\scriptsize", r"\setlength{\tabcolsep}{2.5pt}",
              rf"\caption{{{ci_caption}}}", rf"\label{{{label_base}-ci}}"]
    lines += _latex_tabular(group, ci_cols, ci_cells)
    lines += [r"\end{table*}", ""]
    return "\n".join(lines)


def _compact_text(groups: Sequence[Group]) -> str:
    """The compact summary printed at the end of ``sessionbench run``."""
    if not groups:
        return "no complete runs"
    blocks = []
    for g in groups:
        keys = [metric_key(n, k) for k in SUMMARY_KS for n in ("HitRate", "Recall", "NDCG", "MRR")]
        headers = ["model"] + keys + ["fit s", "p95 ms"]
        rows = []
        for label in g.labels:
            row = [label] + [_fmt_metric(g.means.loc[label, k]) if k in g.means.columns else "–" for k in keys]
            row += [_fmt_quantity(g.means.loc[label, "fit_seconds"]),
                    _fmt_quantity(g.means.loc[label, "latency_ms_p95"])]
            rows.append(row)
        cases = "/".join(f"{n:,}" for n in sorted(set(g.n_cases.values())))
        blocks.append(f"{g.title}: {cases} test cases\n" + _text_table(headers, rows))
    return "\n\n".join(blocks)


def _text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

    def line(cells: list[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        return "  ".join([first] + [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:])]).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


# --------------------------------------------------------------------------- #
# Figures
# --------------------------------------------------------------------------- #

_RC = {
    "pdf.fonttype": 42,  # embed TrueType fonts (not Type 3) in PDF and PS
    "ps.fonttype": 42,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 160,
    "svg.hashsalt": "sessionbench",
}


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path_stem: Path) -> list[Path]:
    """Write PNG and PDF (no timestamps, so reruns give identical files)."""
    png, pdf = path_stem.with_suffix(".png"), path_stem.with_suffix(".pdf")
    fig.savefig(png, metadata={"Software": None})
    fig.savefig(pdf, metadata={"CreationDate": None, "Creator": None, "Producer": None})
    return [png, pdf]


def _legend(fig, labels: list[str], styles: dict[str, Style], *, kind: str = "marker", extra=()) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    for label in labels:
        st = styles[label]
        if kind == "patch":
            handles.append(Patch(facecolor=st.color, edgecolor="black", linewidth=0.4, label=label))
        else:
            handles.append(Line2D([], [], color=st.color, marker=st.marker, linestyle="-" if kind == "line" else "",
                                  markersize=6, label=label))
    handles += list(extra)
    fig.legend(handles=handles, loc="outside right center", frameon=False, title="model")


def _yerr(mean: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    err = np.vstack([mean - lo, hi - mean])
    return np.where(np.isfinite(err), np.clip(err, 0, None), 0.0)


def _plot_bars(group: Group, styles: dict[str, Style]):
    names = list(RANK_METRICS)
    n = len(group.labels)
    panel_w = max(2.3, 0.16 * n * len(BAR_KS) + 0.8)
    if n > 6:  # many models: a 2 x 2 grid keeps the figure's aspect readable
        fig = _new_figure(panel_w * 2 + 1.6, 5.8)
        axes = fig.subplots(2, 2).ravel()
    else:
        fig = _new_figure(panel_w * len(names) + 1.6, 3.2)
        axes = fig.subplots(1, len(names))
    width = 0.8 / max(n, 1)
    for ax, name in zip(axes, names):
        keys = [metric_key(name, k) for k in BAR_KS]
        for i, label in enumerate(group.labels):
            st = styles[label]
            mean = group.means.loc[label, keys].to_numpy(np.float64)
            err = _yerr(mean, group.ci_low.loc[label, keys].to_numpy(np.float64),
                        group.ci_high.loc[label, keys].to_numpy(np.float64))
            x = np.arange(len(keys)) - 0.4 + width * (i + 0.5)
            ax.bar(x, mean, width, color=st.color, edgecolor="black", linewidth=0.4,
                   yerr=err, error_kw={"elinewidth": 0.8, "capsize": 1.5, "ecolor": "black"})
        ax.set_xticks(np.arange(len(keys)), [f"K = {k}" for k in BAR_KS])
        ax.set_ylabel(METRICS[name].label)
        ax.set_title(METRICS[name].label)
        ax.set_ylim(bottom=0)
        ax.grid(axis="x", visible=False)
    fig.suptitle(f"{group.title}: mean over cases and seeds, 95% bootstrap CI")
    _legend(fig, group.labels, styles, kind="patch")
    return fig


def _plot_metric_vs_k(group: Group, styles: dict[str, Style]):
    names = list(RANK_METRICS)
    fig = _new_figure(2.6 * len(names) + 1.6, 3.0)
    axes = fig.subplots(1, len(names))
    for ax, name in zip(axes, names):
        for label in group.labels:
            st = styles[label]
            curve = group.k_curves[label][name]
            ax.plot(curve.index, curve.to_numpy(), color=st.color, marker=st.marker, markersize=4,
                    markevery=[k - 1 for k in (1, 5, 10, 20, 30, 40, 50) if k <= len(curve)], linewidth=1.2)
        ax.set_xlabel("K (length of the recommendation list)")
        ax.set_ylabel(METRICS[name].label)
        ax.set_title(METRICS[name].label)
        ax.set_xlim(0, MAX_CURVE_K + 1)
        ax.set_ylim(bottom=0)
    fig.suptitle(f"{group.title}: metric vs K (mean over seeds)")
    _legend(fig, group.labels, styles, kind="line")
    return fig


def _plot_accuracy_latency(group: Group, styles: dict[str, Style]):
    from matplotlib.lines import Line2D

    keys = [metric_key("HitRate", LIST_K), metric_key("MRR", LIST_K)]
    fig = _new_figure(2 * 3.4 + 1.6, 3.2)
    axes = fig.subplots(1, len(keys))
    x = group.means["latency_ms_p50"].to_numpy(np.float64)
    for ax, key in zip(axes, keys):
        y = group.means[key].to_numpy(np.float64)
        err = _yerr(y, group.ci_low[key].to_numpy(np.float64), group.ci_high[key].to_numpy(np.float64))
        front = pareto_front(x, y)
        if front.any():
            order = np.argsort(x[front])
            ax.plot(x[front][order], y[front][order], linestyle="--", color="0.35", linewidth=1.0,
                    drawstyle="steps-post", zorder=1)
        for i, label in enumerate(group.labels):
            if not (np.isfinite(x[i]) and np.isfinite(y[i])):
                continue
            st = styles[label]
            ax.errorbar(x[i], y[i], yerr=err[:, [i]], color=st.color, marker=st.marker, markersize=7,
                        markeredgecolor="black" if front[i] else st.color, markeredgewidth=1.2 if front[i] else 0.5,
                        linestyle="", elinewidth=0.8, capsize=2, zorder=3)
        if np.isfinite(x).any() and (x[np.isfinite(x)] > 0).all():
            _log_axis(ax)
        else:
            ax.text(0.5, 0.5, "no latency measured", transform=ax.transAxes, ha="center", va="center")
        ax.set_xlabel("single-session latency p50 (ms, log scale)")
        ax.set_ylabel(key)
        ax.set_title(f"{key} vs latency")
    front_handle = Line2D([], [], linestyle="--", color="0.35", label="Pareto front")
    fig.suptitle(f"{group.title}: accuracy vs latency (one prefix at a time)")
    _legend(fig, group.labels, styles, extra=[front_handle])
    return fig


def _log_axis(ax) -> None:
    """Log-scale x axis labelled with plain numbers (1, 2, 5 per decade), some room at both ends."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.margins(x=0.12)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _plot_prefix_length(group: Group, styles: dict[str, Style]):
    n = len(group.labels)
    fig = _new_figure(6.4 + 1.6, 3.4)
    ax = fig.subplots()
    xs = np.arange(len(PREFIX_BINS))
    dodge = np.linspace(-0.25, 0.25, n) if n > 1 else np.zeros(1)
    for i, label in enumerate(group.labels):
        st = styles[label]
        mean = group.bin_means.loc[label].to_numpy(np.float64)
        err = _yerr(mean, group.bin_low.loc[label].to_numpy(np.float64),
                    group.bin_high.loc[label].to_numpy(np.float64))
        ok = np.isfinite(mean)
        ax.errorbar(xs[ok] + dodge[i], mean[ok], yerr=err[:, ok], color=st.color, marker=st.marker,
                    markersize=5, linewidth=1.0, elinewidth=0.7, capsize=1.5)
    ticks = [f"{name}\n(n={int(c):,})" for name, c in zip(group.bin_counts.index, group.bin_counts.to_numpy())]
    ax.set_xticks(xs, ticks)
    ax.set_xlabel("prefix length (items seen so far)")
    key = metric_key("HitRate", LIST_K)
    ax.set_ylabel(key)
    ax.set_ylim(bottom=0)
    ax.set_title(f"{group.title}: {key} by prefix length (95% bootstrap CI)")
    _legend(fig, group.labels, styles, kind="line")
    return fig


_PHASE_STYLE = {"select": "-", "train": "-", "refit": "--"}


def _plot_training_curves(group: Group, styles: dict[str, Style]):
    from matplotlib.lines import Line2D

    labels = [label for label in group.labels if label in group.curves]
    fig = _new_figure(2 * 3.4 + 1.8, 3.2)
    ax_loss, ax_valid = fig.subplots(1, 2)
    phases_seen: list[str] = []
    valid_name = "valid_MRR@20"
    for label in labels:
        st = styles[label]
        frames = group.curves[label]
        data = pd.concat(frames, ignore_index=True)
        vcols = [c for c in data.columns if c.startswith("valid_")]
        if vcols:
            valid_name = vcols[0]
        for phase in pd.unique(data["phase"]):
            part = data[data["phase"] == phase]
            ls = _PHASE_STYLE.get(str(phase), ":")
            if phase not in phases_seen:
                phases_seen.append(phase)
            for ax, col in ((ax_loss, "loss"), (ax_valid, valid_name)):
                if col not in part.columns:
                    continue
                stats = pd.to_numeric(part[col], errors="coerce").groupby(part["epoch"]).agg(["mean", "min", "max"])
                stats = stats.dropna()
                if stats.empty:
                    continue
                ax.plot(stats.index, stats["mean"], color=st.color, marker=st.marker, markersize=4,
                        linestyle=ls, linewidth=1.2)
                if len(frames) > 1:
                    ax.fill_between(stats.index, stats["min"], stats["max"], color=st.color, alpha=0.15,
                                    linewidth=0)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (mean per batch)")
    ax_loss.set_title("training loss")
    ax_valid.set_xlabel("epoch")
    ax_valid.set_ylabel(f"validation {valid_name.removeprefix('valid_')}")
    ax_valid.set_title(f"validation {valid_name.removeprefix('valid_')}")
    for ax in (ax_loss, ax_valid):
        ax.xaxis.get_major_locator().set_params(integer=True)
    extra = [Line2D([], [], color="0.3", linestyle=_PHASE_STYLE.get(str(p), ":"), label=f"phase: {p}")
             for p in phases_seen]
    fig.suptitle(f"{group.title}: training curves")
    _legend(fig, labels, styles, kind="line", extra=extra)
    return fig


_PLOTTERS = {
    "bars": _plot_bars,
    "metric_vs_k": _plot_metric_vs_k,
    "accuracy_latency": _plot_accuracy_latency,
    "prefix_length": _plot_prefix_length,
    "training_curves": _plot_training_curves,
}


# --------------------------------------------------------------------------- #
# The report
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class ReportSummary:
    """What :func:`write_report` wrote.

    Attributes:
        path: the report folder (``<out_dir>/report``).
        summary_path: ``report/summary.md``.
        text: the compact table (model x HitRate/Recall/NDCG/MRR@20 and @50,
            fit seconds, p95 latency), one block per (dataset, protocol), for
            ``sessionbench run`` to print.
        figures: every PNG and PDF written.
        tables: every table file written (md, tex, csv).
        n_runs: complete runs read.
        failed: ``(run_id, label, last line of the error)`` of each failed run.
        notes: warnings (e.g. skipped tests because case lists differ).
    """

    path: Path
    summary_path: Path
    text: str
    figures: tuple[Path, ...] = ()
    tables: tuple[Path, ...] = ()
    n_runs: int = 0
    failed: tuple[tuple[str, str, str], ...] = ()
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.text}\n\nreport: {self.summary_path}"


def _last_line(text: Any) -> str:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "(no error recorded)"


@dataclass(frozen=True)
class Collected:
    """Everything the report shows, before drawing: one :class:`Group` per
    (dataset, protocol), the label styles, and the failed runs."""

    groups: list[Group]
    styles: dict[str, Style]
    failed: tuple[tuple[str, str, str], ...]
    n_runs: int


def collect(
    out_dir: str | Path, *, ks: Iterable[int] | int | None = None, n_bootstrap: int = 1000, seed: int = 0
) -> Collected:
    """Read the stored runs and compute every statistic of the report (see
    :func:`write_report` for the arguments); draws and writes nothing."""
    n_bootstrap = int(n_bootstrap)
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    all_runs = list(iter_runs(out_dir, include_failed=True))
    complete = [r for r in all_runs if r.complete]
    failed = tuple(
        (r.run_id, str(r.manifest.get("label") or r.manifest.get("model") or "?"), _last_line(r.manifest.get("error")))
        for r in all_runs if not r.complete
    )
    table_ks = normalise_ks(ks) if ks is not None else _default_ks(complete)
    metric_ks = normalise_ks(set(table_ks) | set(BAR_KS) | set(SUMMARY_KS) | {LIST_K})
    by_group: dict[tuple[str, str], list[RunRecord]] = {}
    for record in complete:
        by_group.setdefault(_group_key(record), []).append(record)
    loaded = {key: [_load_run(r, metric_ks) for r in recs] for key, recs in sorted(by_group.items())}
    styles = model_styles(r.label for runs in loaded.values() for r in runs)
    groups = [
        _build_group(ds, proto, runs, table_ks, metric_ks, styles, n_bootstrap, seed)
        for (ds, proto), runs in loaded.items()
    ]
    return Collected(groups, styles, failed, len(complete))


def write_report(
    out_dir: str | Path, *, ks: Iterable[int] | int | None = None, n_bootstrap: int = 1000, seed: int = 0
) -> ReportSummary:
    """Write the figures, tables and summary of the runs stored under ``out_dir``.

    Args:
        out_dir: a results folder (holding ``runs/``, see :mod:`harness.store`).
        ks: the cut-offs of the tables' accuracy columns (default: the suite's
            K list, from the manifests). Any K works: metrics come from the
            stored ranks. Bars use K = 10, 20; the compact summary K = 20, 50.
        n_bootstrap: bootstrap replicates per confidence interval.
        seed: seed of the bootstrap; equal seeds give identical reports.

    Returns:
        a :class:`ReportSummary` (its ``str()`` is what ``sessionbench run`` prints).
    """
    out_dir = Path(out_dir)
    results = collect(out_dir, ks=ks, n_bootstrap=n_bootstrap, seed=seed)
    groups, styles, failed = results.groups, results.styles, results.failed
    n_bootstrap = int(n_bootstrap)

    final = out_dir / REPORT_DIR
    tmp = out_dir / f".{REPORT_DIR}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / FIGURES_DIR).mkdir(parents=True)
    (tmp / TABLES_DIR).mkdir()

    figures: dict[tuple[str, str], list[Path]] = {}
    tables: dict[tuple[str, str], list[Path]] = {}
    import matplotlib

    try:
        with matplotlib.rc_context(_RC):
            for g in groups:
                for kind, plot in _PLOTTERS.items():
                    if kind == "training_curves" and not g.curves:
                        continue
                    fig = plot(g, styles)
                    figures[(g.slug, kind)] = _save(fig, tmp / FIGURES_DIR / f"{g.slug}_{kind}")
        for g in groups:
            tables[(g.slug, "table")] = _write_tables(g, tmp / TABLES_DIR, n_bootstrap)
        text = _compact_text(groups)
        notes = tuple(f"{g.title}: {n}" for g in groups for n in g.notes)
        summary_md = _summary_markdown(groups, figures, failed, text, n_bootstrap, seed, notes)
        (tmp / "summary.md").write_text(summary_md)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    replace_folder(tmp, final)

    def moved(paths: Iterable[Path]) -> tuple[Path, ...]:
        return tuple(final / p.relative_to(tmp) for p in paths)

    return ReportSummary(
        path=final,
        summary_path=final / "summary.md",
        text=text,
        figures=moved(p for ps in figures.values() for p in ps),
        tables=moved(p for ps in tables.values() for p in ps),
        n_runs=results.n_runs,
        failed=failed,
        notes=notes,
    )


def _write_tables(group: Group, folder: Path, n_boot: int) -> list[Path]:
    stem = folder / group.slug
    paths = [stem.with_suffix(".md"), stem.with_suffix(".tex"), stem.with_suffix(".csv"),
             folder / f"{group.slug}_significance.csv"]
    paths[0].write_text(_markdown_table(group, n_boot))
    paths[1].write_text(_latex_table(group, n_boot))
    _table_frame(group).to_csv(paths[2], float_format="%.10g")
    group.significance.to_csv(paths[3], index=False, float_format="%.10g")
    return paths


def _summary_markdown(
    groups: list[Group], figures: dict, failed, text: str, n_boot: int, seed: int, notes: tuple[str, ...],
) -> str:
    n_runs = sum(sum(g.n_seeds.values()) for g in groups)
    lines = [
        "# sessionbench report", "",
        f"Computed from the {n_runs} complete run(s) stored in `../runs/` "
        f"({len(failed)} failed). Every number is recomputed from the stored per-case ranks; "
        f"the report is deterministic given its bootstrap seed ({seed}, {n_boot} replicates).", "",
        "## At a glance", "", "```", text, "```", "",
    ]
    for g in groups:
        lines += [f"## {g.title}", ""]
        seeds = ", ".join(f"{label}: {g.n_seeds[label]}" for label in g.labels)
        lines += [f"Models (seeds): {seeds}.", ""]
        lines += ["### Tables", ""]
        lines += [
            f"- [`tables/{g.slug}.md`](tables/{g.slug}.md): the results table in Markdown (means over seeds "
            "± 95% CI half-width, best in bold, † significantly different from the best).",
            f"- [`tables/{g.slug}.tex`](tables/{g.slug}.tex): the same in LaTeX (booktabs), with a second "
            "table of the 95% CIs.",
            f"- [`tables/{g.slug}.csv`](tables/{g.slug}.csv): every column's mean over seeds with separate "
            "`_ci_low`/`_ci_high` columns, plus all timings (p99 latency, peak memory, model size).",
            f"- [`tables/{g.slug}_significance.csv`](tables/{g.slug}_significance.csv): each model against "
            "the best per metric: difference, its paired bootstrap 95% CI, paired t statistic, p and "
            "Holm-adjusted p.",
            "",
        ]
        lines += ["### Figures", ""]
        for kind, desc in FIGURE_KINDS.items():
            paths = figures.get((g.slug, kind))
            desc = desc.format(bar_ks=", ".join(map(str, BAR_KS)), k=LIST_K)
            if not paths:
                lines += [f"- {kind}: not drawn (no model of this dataset was trained by epoch).", ""]
                continue
            png, pdf = (p.name for p in paths)
            lines += [f"- [`figures/{png}`](figures/{png}) ([PDF](figures/{pdf})): {desc}", "",
                      f"  ![{kind}](figures/{png})", ""]
        if g.notes:
            lines += ["### Notes", ""] + [f"- {n}" for n in g.notes] + [""]
    lines += ["## Failed runs", ""]
    if failed:
        lines += ["| run | model | error (last line) |", "|:---|:---|:---|"]
        lines += [f"| `{rid}` | {_md_escape(label)} | {_md_escape(err)} |" for rid, label, err in failed]
    else:
        lines.append("None.")
    lines += [
        "", "## Methods", "",
        "- **Metrics**: full ranking over all items, ties broken pessimistically; per-case values "
        "from the stored target ranks (" + "; ".join(METRICS[n].formula for n in RANK_METRICS) + ").",
        f"- **Confidence intervals**: 95% percentile bootstrap with {n_boot} replicates. Each replicate "
        "resamples the evaluation cases with replacement (the same draws for every model of a dataset) "
        "and, independently per model, its seeds with replacement (two-level bootstrap); the statistic is "
        "the mean over resampled seeds of the mean over resampled cases.",
        "- **Significance**: for every accuracy column, each model against the best one (direction from the "
        "metric registry): paired t-test (scipy.stats.ttest_rel) over the same evaluation cases, paired by "
        "(session, prefix length), per-case values averaged over seeds; Holm step-down correction across "
        f"models; significant when the adjusted p < {ALPHA}. A paired bootstrap 95% CI of the difference is "
        "in the significance CSV.",
        "- **Timings**: means over seeds of the stored measurements (fit seconds; batch throughput in "
        "prefixes/s; single-session latency percentiles in ms, one prefix at a time after warm-up).",
    ]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


__all__ = [
    "ALPHA",
    "BAR_KS",
    "FIGURE_KINDS",
    "KNOWN_MODELS",
    "LIST_K",
    "PREFIX_BINS",
    "ReportSummary",
    "Style",
    "TIMINGS",
    "Collected",
    "Group",
    "bootstrap_ci",
    "collect",
    "holm",
    "latex_escape",
    "model_styles",
    "paired_ttest",
    "pareto_front",
    "write_report",
]

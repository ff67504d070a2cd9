"""Reading the store into per-group statistics (:func:`collect`): draws and writes nothing."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import did_you_mean, quote
from harness.limits import MAX_K
from harness.evaluation.metrics import DEFAULT_KS, RANK_METRICS, metric_key, normalise_ks, parse_metric_key
from harness.report.constants import _ALL_TIMINGS, LIST_K, MAX_CURVE_K, PREFIX_BINS, TABLE_K_COUNT
from harness.report.statistics import (
    ALPHA, Sessions, _percentiles, _seed_weights, _stable_seed, clustered_replicates, holm, paired_ttest,
)
from harness.report.provenance import ReportError, Selection, label_of, select_runs
from harness.report.styles import Style, _ordered, model_styles
from harness.run.store import Plan, RunRecord


@dataclass
class _Run:
    """What the report needs from one stored run."""

    record: RunRecord
    label: str
    seed: Any
    fingerprint: str
    n_cases: int
    session_ids: np.ndarray  # [C] test session of each case: the resampling unit
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
    n_sessions: dict[str, int]  # test sessions behind the cases (the bootstrap's and the tests' unit)
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
    tuned: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> chosen hyper-parameters
    #: label -> one :func:`run_provenance` per run averaged into the label (by seed)
    provenance: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: the test split's first and last day, "2016-05-26 to 2016-06-01" (None: not recorded)
    test_period: str | None = None
    #: the suite whose plan the runs belong to (None: a folder without a plan)
    suite: str | None = None

    @property
    def title(self) -> str:
        """``synthetic (next), suite default``: what every caption starts with,
        so two suites' figures on one dataset are told apart in one paper."""
        return f"{self.dataset} ({self.protocol})" + (f", suite {self.suite}" if self.suite else "")

    @property
    def cases_phrase(self) -> str:
        """``2,131 test cases of 411 sessions`` (``/``-joined where labels
        were evaluated on lists of other sizes)."""
        cases = counts_text(self.n_cases.values(), "test case")
        return f"{cases} of {counts_text(self.n_sessions.values(), 'session')}"


def run_provenance(record: RunRecord) -> dict[str, Any]:
    """What a reader needs to trace a run's numbers to its exact code and
    configuration: run id, seed, model, every hyper-parameter, the config,
    pool and code digests (see :mod:`harness.run.store`), the git commit and,
    for a run resumed from a checkpoint, where it resumed (None otherwise);
    ``model_class``: the class the model name resolved to (runs stored
    before it was recorded: None)."""
    man = record.manifest
    return {"run_id": record.run_id, "seed": man.get("seed"), "model": man.get("model"),
            "model_class": man.get("model_class"), "params": man.get("params") or {},
            "config_digest": record.config_digest or "",
            "pool_digest": record.pool_digest or "", "code_digest": record.code_digest or "",
            "git_commit": man.get("git_commit") or "", "resumed": man.get("resumed")}


def check_ks_against_items(ks: Iterable[int], records: Iterable[RunRecord], where: str) -> None:
    """Refuse a cut-off above the number of items of a dataset of ``records``
    (as each run's ``dataset_stats`` records it), as ``run`` and ``evaluate``
    do: every model would score HitRate@K = 1 there."""
    from harness.evaluation.evaluate import check_k_limit

    ks = tuple(ks)
    sizes = dict.fromkeys((str(r.manifest.get("dataset")), stored_n_items(r.manifest)) for r in records)
    for dataset, n_items in sizes:  # each dataset once, in the order of the runs
        if n_items is not None:
            check_k_limit(ks, n_items, dataset, where)


def stored_n_items(manifest: dict[str, Any]) -> int | None:
    """The number of items of a run's dataset as its manifest records it
    (``dataset_stats.n_items``); None when absent or not a positive integer
    (a broken or hand-edited manifest)."""
    stats = manifest.get("dataset_stats")
    n_items = stats.get("n_items") if isinstance(stats, dict) else None
    return n_items if type(n_items) is int and n_items > 0 else None


def counts_text(counts: Iterable[int], noun: str) -> str:
    """``1 test session``, ``2,131 test cases``, ``2,131/2,000 test cases``
    (the distinct counts, ``/``-joined: labels evaluated on lists of other
    sizes)."""
    distinct = sorted({int(n) for n in counts})
    return f"{'/'.join(f'{n:,}' for n in distinct)} {noun}" + ("" if distinct == [1] else "s")


def file_prefix(selection: Selection) -> str | None:
    """What every report file's name starts with: the suite's name (from the
    folder's plan), so that the figures and tables of two suites' reports
    can sit in one paper's folder, and their LaTeX labels in one document,
    without one silently replacing the other; None for a folder without a
    plan (older output)."""
    return selection.plan.suite_name if selection.plan is not None else None


def test_period(manifest: dict[str, Any]) -> str | None:
    """The first and last day of a run's test split as its manifest records
    them (``dataset_stats.test.first_event/last_event``), ``"D1 to D2"``;
    None when they are not recorded."""
    stats = manifest.get("dataset_stats")
    test = stats.get("test") if isinstance(stats, dict) else None
    days = [test.get(key) for key in ("first_event", "last_event")] if isinstance(test, dict) else []
    # a caption prints these: only ISO days in order, never a hand-edited string LaTeX would choke on
    days = [d[:10] for d in days if isinstance(d, str) and _ISO_DAY.match(d)]
    if len(days) != 2 or days[0] > days[1]:
        return None
    return days[0] if days[0] == days[1] else f"{days[0]} to {days[1]}"


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]|$)")


def file_slug(*parts: str | None) -> str:
    """The stem of a report file (and of its LaTeX label) from its parts,
    ``None`` ones left out: ``file_slug("default", "synthetic", "next")`` is
    ``default_synthetic_next``; characters a file name or a LaTeX label
    could trip on become ``-``."""
    text = "_".join(p for p in parts if p)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "group"  # no hidden file
    if len(slug) > MAX_SLUG_LENGTH:  # file systems refuse names over 255 bytes; keep a cut name unique
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        slug = f"{slug[:MAX_SLUG_LENGTH - 9]}-{digest}"
    return slug


#: longest file stem :func:`file_slug` returns (room for a suffix such as
#: ``_training_curves.pdf`` within the 255 bytes of a file name)
MAX_SLUG_LENGTH = 120


def beside(stem: Path, suffix: str) -> Path:
    """``stem`` with ``suffix`` appended: ``Path.with_suffix`` would replace
    whatever follows a dot of the stem (suite ``paper.v2`` gave ``paper.png``
    for every figure, each overwriting the last)."""
    return stem.parent / (stem.name + suffix)


def _case_fingerprint(session_ids: np.ndarray, prefix_lengths: np.ndarray) -> str:
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(session_ids, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(prefix_lengths, dtype=np.int64).tobytes())
    return h.hexdigest()


def _bin_index(prefix_lengths: np.ndarray) -> np.ndarray:
    edges = [lo for lo, _, _ in PREFIX_BINS[1:]]
    return np.digitize(prefix_lengths, edges)


#: the modules that turn a run's stored ranks into the report's numbers
METRIC_CODE = ("harness/evaluation/evaluate.py", "harness/evaluation/metrics.py")


def metric_code_warnings(records: Iterable[RunRecord]) -> list[str]:
    """One line when runs were made with other code of :data:`METRIC_CODE`
    than this process has (e.g. a report written after an upgrade): the
    report recomputes their numbers with this code, not with the code their
    manifests record. Compares the per-file code hashes (``code_sha256``);
    runs without them are not judged."""
    from harness.run.fingerprint import code_hash, package_location

    base, _ = package_location("harness")
    current = {path: code_hash((base / path).read_bytes()) for path in METRIC_CODE if (base / path).is_file()}
    stale: dict[str, list[str]] = {}
    for record in records:
        files = (record.manifest.get("code") or {}).get("files") or []
        made = {f.get("path"): f.get("code_sha256") for f in files if isinstance(f, dict) and f.get("code_sha256")}
        changed = [p for p in METRIC_CODE if p in made and p in current and made[p] != current[p]]
        if changed:
            stale[record.run_id] = changed
    if not stale:
        return []
    paths = sorted({p for changed in stale.values() for p in changed})
    return [f"{len(stale)} run(s) (e.g. {min(stale)}) were made with other code of {', '.join(paths)} than this "
            "sessionbench's: their numbers here are recomputed from the stored ranks with this code, not the code "
            "their manifests record; `sessionbench run` redoes them"]


def _load_run(record: RunRecord, metric_ks: tuple[int, ...], warnings: list[str]) -> _Run:
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
        label=label_of(record),
        seed=man.get("seed"),
        fingerprint=_case_fingerprint(ev.session_ids, ev.prefix_lengths),
        n_cases=ev.n_cases,
        session_ids=np.asarray(ev.session_ids),
        cases=np.column_stack(cols) if cols else np.zeros((ev.n_cases, 0)),
        means=means,
        k_curve=k_curve,
        bins=bins,
        bin_index=bin_index,
        timings={k: _as_float(timings.get(k)) for k in _ALL_TIMINGS},
        curve=_read_curve(record, warnings),
    )


def _read_curve(record: RunRecord, warnings: list[str]) -> pd.DataFrame | None:
    """The run's training curve; None with a warning when the file cannot be read."""
    try:
        return record.curve()
    except Exception as err:  # noqa: BLE001 - a bad curve costs its figure only, never the report
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        warnings.append(f"training_curves: {label_of(record)}: {record.run_id}/curve.csv unreadable ({first})")
        return None


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


def default_table_ks(report_ks: Iterable[int]) -> tuple[int, ...]:
    """The cut-offs the tables and the compact summary show unless told
    otherwise: the TABLE_K_COUNT largest of the report's (the suite's
    ``ks``), so that ``ks: [5, 10, 20, 50]`` shows 20 and 50 and ``ks:
    [10, 20]`` shows 10 and 20."""
    return normalise_ks(report_ks)[-TABLE_K_COUNT:]


def planned_ks(plan: Plan | None) -> tuple[int, ...] | None:
    """The ``ks`` of the suite a plan was made for, sorted; None without a
    plan or with a (hand-edited) value that is not a list of valid K."""
    planned = plan.suite.get("ks") if plan is not None else None
    if isinstance(planned, list) and planned and all(type(k) is int and 1 <= k <= MAX_K for k in planned):
        return normalise_ks(planned)
    return None


def _default_ks(records: Sequence[RunRecord], plan: Plan | None = None) -> tuple[int, ...]:
    """The cut-offs of a report that names none: the ``ks`` of the suite
    last run into the folder (its plan). A run is reused by suites of other
    ``ks`` than the one that made it, so the K its manifest records say
    nothing about the current suite; only a folder without a plan (older
    output) falls back to the union of its runs' K."""
    planned = planned_ks(plan)
    if planned is not None:
        return planned
    ks: set[int] = set()
    for record in records:
        found = record.manifest.get("ks")
        if not found:
            found = record.evaluation.ks
        ks.update(int(k) for k in found)
    return normalise_ks(ks) if ks else DEFAULT_KS


def _build_group(
    dataset: str, protocol: str, runs: list[_Run], table_ks: tuple[int, ...], metric_ks: tuple[int, ...],
    styles: dict[str, Style], n_boot: int, seed: int, *, prefix: str | None = None,
) -> Group:
    columns = [metric_key(n, k) for n in RANK_METRICS for k in metric_ks] + [metric_key("Popularity", LIST_K)]
    labels = _ordered((r.label for r in runs), styles)
    by_label = {label: [r for r in runs if r.label == label] for label in labels}
    notes: list[str] = _whole_catalogue_note(runs, table_ks)

    # Bootstrap replicates per run: test sessions resampled (the prefixes of
    # one session are correlated cases), the same session weights for every
    # run of one case list so that differences between models are paired.
    n_bins = len(PREFIX_BINS)
    hit_col = columns.index(metric_key("HitRate", LIST_K))
    per_run_t: dict[int, np.ndarray] = {}  # id(run) -> [B, m] resampled means
    per_run_bins: dict[int, np.ndarray] = {}  # id(run) -> [B, n_bins] resampled bin means
    sessions: dict[str, Sessions] = {}  # case fingerprint -> its grouping into test sessions
    for fp in sorted({r.fingerprint for r in runs}):
        members = [r for r in runs if r.fingerprint == fp]
        n_cases = members[0].n_cases
        sessions[fp] = groups = Sessions(members[0].session_ids, n_cases)
        if groups.n_sessions < 2:  # resampling one session gives a zero-width interval, not a CI
            where = f"{counts_text([n_cases], 'test case')} in {counts_text([groups.n_sessions], 'test session')}"
            notes.append(f"{where}: no confidence intervals or tests (sessions are the resampling unit; "
                         "at least 2 needed)")
            for r in members:
                per_run_t[id(r)] = np.full((n_boot, len(columns)), np.nan)
                per_run_bins[id(r)] = np.full((n_boot, n_bins), np.nan)
            continue
        if n_cases == 0:
            for r in members:
                per_run_t[id(r)] = np.full((n_boot, len(columns)), np.nan)
                per_run_bins[id(r)] = np.full((n_boot, n_bins), np.nan)
            continue
        onehot = np.zeros((n_cases, n_bins))
        onehot[np.arange(n_cases), members[0].bin_index] = 1.0
        mats = [onehot] + [np.column_stack([r.cases, onehot * r.cases[:, [hit_col]]]) for r in members]
        rng = np.random.default_rng([seed, _stable_seed(dataset, protocol, fp)])
        # ratio = resampled sums over resampled case counts: the bin columns of
        # the one-hot matrix count the drawn cases per bin, so a bin mean is a
        # ratio like the overall one (a bin no drawn session reaches is NaN)
        bin_counts, *reps = clustered_replicates(mats, groups, n_boot, rng)
        for r, t in zip(members, reps):
            per_run_t[id(r)] = t[:, : len(columns)]
            with np.errstate(invalid="ignore", divide="ignore"):
                per_run_bins[id(r)] = (t[:, len(columns):] / bin_counts)

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
    test_cols = [metric_key(n, k) for n in RANK_METRICS for k in metric_ks]
    significance = _significance(labels, by_label, means, label_t, columns, test_cols, sessions)
    return Group(
        dataset=dataset, protocol=protocol, slug=file_slug(prefix, dataset, protocol), labels=labels, columns=columns,
        table_ks=table_ks,
        n_cases={label: by_label[label][0].n_cases for label in labels},
        n_sessions={label: sessions[by_label[label][0].fingerprint].n_sessions for label in labels},
        n_seeds={label: len(by_label[label]) for label in labels},
        means=means, ci_low=ci_low, ci_high=ci_high, k_curves=k_curves,
        bin_means=bin_means, bin_low=bin_low, bin_high=bin_high, bin_counts=bin_counts,
        curves=curves, significance=significance, notes=notes,
        provenance={label: [run_provenance(r.record) for r in sorted(by_label[label], key=_seed_order)]
                    for label in labels},
        test_period=test_period(first.record.manifest), suite=prefix,
    )


def _whole_catalogue_note(runs: list[_Run], table_ks: tuple[int, ...]) -> list[str]:
    """A note when a cut-off the report shows reaches the number of items
    (``manifest["dataset_stats"]["n_items"]``): every target then ranks
    within K, so every model's HitRate and Recall there are 1 (a tie, all bold)."""
    sizes = [n for n in (stored_n_items(r.record.manifest) for r in runs) if n is not None]
    if not sizes:
        return []
    shown = sorted(k for k in table_ks if k >= min(sizes))
    if not shown:
        return []
    return [f"K = {', '.join(map(str, shown))} reaches the {min(sizes):,} items of the catalogue: every model's "
            f"HitRate and Recall at such K are 1 by construction, not a result (report smaller K with --ks)"]


def _seed_order(run: _Run) -> tuple[str, str]:
    return (f"{run.seed:>20}" if isinstance(run.seed, int) else str(run.seed), run.record.run_id)


def _nanmean(values: Sequence[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def _significance(
    labels: list[str], by_label: dict[str, list[_Run]], means: pd.DataFrame,
    label_t: dict[str, np.ndarray], columns: list[str], test_cols: list[str], sessions: dict[str, Sessions],
) -> pd.DataFrame:
    """One row per (metric column, label other than the best): the
    cluster-robust paired t-test over test sessions (:func:`paired_ttest`),
    its Holm-adjusted p-value and the paired session-bootstrap CI of the
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
            elif sessions[a[0].fingerprint].n_sessions < 2:
                row["note"] = "skipped: fewer than 2 test sessions"
            else:
                xa = np.mean([r.cases[:, j] for r in a], axis=0)
                xb = np.mean([r.cases[:, j] for r in b], axis=0)
                row["t"], row["p"] = paired_ttest(xa, xb, sessions[a[0].fingerprint])
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


@dataclass(frozen=True)
class Collected:
    """Everything the report shows, before drawing: one :class:`Group` per
    (dataset, protocol), the label styles, and what was left out and why.

    ``failed`` holds ``(run_id, label, last error line)``; ``selection`` the
    full sorting of the folder's runs (:class:`~harness.report.provenance.Selection`:
    superseded, broken, missing runs, tunings); ``warnings`` one line each
    (e.g. an unreadable training curve)."""

    groups: list[Group]
    styles: dict[str, Style]
    failed: tuple[tuple[str, str, str], ...]
    n_runs: int
    selection: Selection = field(default_factory=Selection)
    warnings: tuple[str, ...] = ()
    table_ks: tuple[int, ...] = ()  # the cut-offs the tables and the compact summary show
    report_ks: tuple[int, ...] = ()  # every cut-off of the CSV and the tests: the suite's ks (see _default_ks)


def unused_style_warnings(overrides: dict[str, Any], labels: Iterable[str]) -> list[str]:
    """One line for each ``style:`` key that is the label of no stored run:
    a style is matched to a label exactly, so a misspelt key (``SR-GNN`` for
    ``srgnn``) would leave its model in its default look without a word."""
    known = sorted(set(labels))
    return [f"style: no run is labelled {quote(key)}{did_you_mean(key, known)}, so its style is not used "
            f"(labels: {', '.join(known) or 'none'})" for key in sorted(set(overrides).difference(known))]


def collect(
    out_dir: str | Path, *, ks: Iterable[int] | int | None = None, n_bootstrap: int = 1000, seed: int = 0,
    table_ks: Iterable[int] | None = None, models: Iterable[str] | None = None,
    style: dict[str, dict[str, str]] | None = None,
) -> Collected:
    """Read the stored runs and compute every statistic of the report (see
    :func:`harness.report.write_report` for the arguments); draws and writes nothing.

    Raises :class:`~harness.report.provenance.ReportError` when runs that
    must not be pooled share a label, or when ``models`` names no stored label."""
    n_bootstrap = int(n_bootstrap)
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    sel = select_runs(out_dir)
    complete = sel.test
    if models is not None:
        wanted = list(models)
        known = sorted({label_of(r) for r in complete})
        unknown = [m for m in wanted if m not in known]
        if unknown:
            raise ReportError(f"--models: no stored runs labelled {', '.join(map(repr, unknown))}; "
                              f"labels: {', '.join(known) or 'none'}")
        complete = [r for r in complete if label_of(r) in wanted]
    suite_ks = normalise_ks(ks) if ks is not None else _default_ks(complete, sel.plan)
    shown_ks = normalise_ks(table_ks) if table_ks else default_table_ks(suite_ks)
    metric_ks = normalise_ks(set(suite_ks) | set(shown_ks) | {LIST_K})
    by_group: dict[tuple[str, str], list[RunRecord]] = {}
    for record in complete:
        by_group.setdefault(_group_key(record), []).append(record)
    warnings: list[str] = metric_code_warnings(complete)
    overrides = {**sel.style, **(style or {})}
    warnings += unused_style_warnings(overrides, {label_of(r) for r in sel.test})
    loaded = {key: [_load_run(r, metric_ks, warnings) for r in recs] for key, recs in sorted(by_group.items())}
    styles = model_styles((r.label for runs in loaded.values() for r in runs), overrides)
    groups = [
        _build_group(ds, proto, runs, shown_ks, metric_ks, styles, n_bootstrap, seed, prefix=file_prefix(sel))
        for (ds, proto), runs in loaded.items()
    ]
    for g in groups:
        g.tuned = {t.label: t.grid_params(t.params) for t in sel.tunings
                   if (t.dataset, t.protocol) == (g.dataset, g.protocol) and t.label in g.labels}
    failed = tuple(sel.failed)
    return Collected(groups, styles, failed, len(complete), sel, tuple(warnings), shown_ks, suite_ks)

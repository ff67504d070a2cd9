"""``sessionbench compare``: the differences between two sets of runs on the same test cases.

Two result folders A and B (e.g. one suite run at two settings), or two
labels X and Y (of one folder or of two): for every (dataset, protocol,
label) both sides have (or for X in A against Y in B), and every metric
column, the difference ``mean_B - mean_A`` with

- a paired session-bootstrap 95% CI: each replicate draws the test
  sessions with replacement (each with all its prefixes, which are
  correlated cases, not independent ones), the same draws for both sides
  (the runs must share their case list: same dataset, split and protocol,
  checked by a fingerprint of the (session, prefix length) list), and each
  side's seeds independently; a side's replicate is the ratio of the
  resampled sums of its per-case values over the resampled case count;
- a cluster-robust paired t-test over the test sessions
  (:func:`~harness.report.statistics.paired_ttest`, G - 1 degrees of
  freedom for G sessions) on the per-case values averaged over each side's
  seeds, Holm-corrected across all rows.

These are the statistics of :mod:`harness.report.statistics` (the same
functions), applied to a pair of runs instead of a model and the best one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.evaluation.metrics import RANK_METRICS, metric_key
from harness.report.collection import (
    _case_fingerprint, _group_key, beside, counts_text, default_table_ks, file_slug, planned_ks, stored_n_items,
)
from harness.report.provenance import ReportError, label_of, select_runs
from harness.report.statistics import (
    ALPHA, Sessions, _percentiles, _seed_weights, _stable_seed, clustered_replicates, holm, paired_ttest,
)
from harness.run.store import Plan, RunRecord

#: default metrics and cut-offs of a comparison
COMPARE_METRICS: tuple[str, ...] = ("HitRate", "MRR", "NDCG")
COMPARE_KS: tuple[int, ...] = (20, 50)
_COLUMNS = ["dataset", "protocol", "label_a", "label_b", "metric", "mean_a", "mean_b", "diff", "diff_ci_low",
            "diff_ci_high", "t", "p", "p_holm", "significant", "n_cases", "n_sessions", "seeds_a", "seeds_b"]


@dataclass
class Comparison:
    """The rows of a comparison (one per pair and metric) and what was left out.

    ``table`` columns: dataset, protocol, label_a, label_b, metric, mean_a,
    mean_b, diff (B - A), diff_ci_low, diff_ci_high, t, p, p_holm,
    significant, n_cases, n_sessions (the test sessions behind the cases: the
    resampling and testing unit), seeds_a, seeds_b.
    """

    a: Path
    b: Path
    table: pd.DataFrame
    n_bootstrap: int
    notes: list[str] = field(default_factory=list)
    #: the runs behind each compared pair: dataset, protocol, label_a,
    #: label_b, and per side (suffix _a, _b) run_ids, code digests, model and params
    runs: list[dict] = field(default_factory=list)
    #: the suite names of A's and B's plans (None: a folder without a plan)
    suites: tuple[str | None, str | None] = (None, None)

    def text(self) -> str:
        """A compact text table (what the CLI prints)."""
        rows = []
        for r in self.table.itertuples(index=False):
            pair = r.label_a if r.label_a == r.label_b else f"{r.label_a} -> {r.label_b}"
            rows.append([f"{r.dataset} ({r.protocol})", pair, r.metric, f"{r.mean_a:.4f}", f"{r.mean_b:.4f}",
                         f"{r.diff:+.4f}", f"[{r.diff_ci_low:+.4f}, {r.diff_ci_high:+.4f}]",
                         _p_text(r.p_holm) + (" *" if r.significant else "")])
        from harness.report.tables import _text_table

        head = (f"A = {self.a}\nB = {self.b}\ndiff = B - A; 95% paired bootstrap CI ({self.n_bootstrap} replicates, "
                f"test sessions resampled); p: paired t-test over test sessions, Holm-corrected; * p < {ALPHA}")
        body = _text_table(["dataset", "model", "metric", "A", "B", "diff", "95% CI", "p (Holm)"], rows)
        return "\n".join([head, "", body] + [f"note: {n}" for n in self.notes])


def _p_text(p: float) -> str:
    if not np.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _check_metrics(metrics) -> tuple[str, ...]:
    known = {n.lower(): n for n in RANK_METRICS}
    out = []
    for name in metrics or COMPARE_METRICS:
        canon = known.get(str(name).lower())
        if canon is None:
            raise ReportError(f"compare: --metrics: unknown metric {name!r}; "
                              f"expected some of {', '.join(RANK_METRICS)}")
        out.append(canon)
    return tuple(out)


def _runs_by_key(folder: Path) -> tuple[dict[tuple[str, str, str], list[RunRecord]], Plan | None]:
    """A folder's test runs by (dataset, protocol, label), and its plan."""
    sel = select_runs(folder)
    out: dict[tuple[str, str, str], list[RunRecord]] = {}
    for record in sel.test:
        out.setdefault((*_group_key(record), label_of(record)), []).append(record)
    if not out:
        raise ReportError(f"compare: {folder}: no complete test runs (expected {folder}/runs/<run_id>/)")
    return out, sel.plan


def _pairs(runs_a, runs_b, labels):
    """(key_a, key_b) pairs to compare: shared (dataset, protocol, label), or X in A against Y in B."""
    if labels:
        x, y = labels
        have_a = sorted({k[2] for k in runs_a})
        have_b = sorted({k[2] for k in runs_b})
        if x not in have_a:
            raise ReportError(f"compare: label {x!r} not in A (labels: {', '.join(have_a)})")
        if y not in have_b:
            raise ReportError(f"compare: label {y!r} not in B (labels: {', '.join(have_b)})")
        pairs = [(ka, (ka[0], ka[1], y)) for ka in sorted(runs_a) if ka[2] == x and (ka[0], ka[1], y) in runs_b]
        if not pairs:
            raise ReportError(f"compare: {x!r} in A and {y!r} in B share no dataset and protocol")
        return pairs
    pairs = [(k, k) for k in sorted(runs_a) if k in runs_b]
    if not pairs:
        la = sorted({f"{k[2]} on {k[0]} ({k[1]})" for k in runs_a})
        lb = sorted({f"{k[2]} on {k[0]} ({k[1]})" for k in runs_b})
        raise ReportError(f"compare: A and B share no (dataset, protocol, label): A has {', '.join(la)}; "
                          f"B has {', '.join(lb)}; use --labels X Y to pair two labels")
    return pairs


def compare(
    a: str | Path, b: str | Path, *, labels: tuple[str, str] | None = None, metrics=None, ks=None,
    n_bootstrap: int = 1000, seed: int = 0,
) -> Comparison:
    """Compare the runs of ``a`` and ``b`` (see the module docstring).

    Raises :class:`ReportError` (one line) when nothing can be paired: no
    shared label, a label missing, or test cases that differ.
    """
    a, b = Path(a), Path(b)
    names = _check_metrics(metrics)
    (runs_a, plan_a), (runs_b, plan_b) = _runs_by_key(a), _runs_by_key(b)
    notes: list[str] = []
    if ks:
        ks = tuple(sorted(set(ks)))
    else:
        ks, left_out = _within_catalogue(_default_ks(plan_a, plan_b),
                                         [r for rs in (runs_a, runs_b) for r in rs.values()])
        notes += left_out
    rows: list[dict] = []
    cols = [metric_key(n, k) for n in names for k in ks]
    pairs = _pairs(runs_a, runs_b, labels)
    if not labels:
        notes += _one_sided(runs_a, runs_b)
    provenance: list[dict] = []
    for ka, kb in pairs:
        ra, rb = runs_a[ka], runs_b[kb]
        fps = {_fingerprint(r) for r in ra + rb}
        where = f"{ka[0]} ({ka[1]})"
        if len(fps) != 1:
            notes.append(f"{ka[2]} on {where}: A's and B's test cases differ (other data, split or protocol); "
                         "not compared")
            continue
        notes += _evaluation_differences(ka, kb, ra, rb, where)
        if _same_ranks(ra, rb):
            notes.append(f"{_pair_name(ka[2], kb[2])} on {where}: A's and B's runs rank every test case "
                         "alike (the same runs, or runs that predict alike): every difference is zero")
        rows += _compare_pair(ka, kb, ra, rb, cols, ks, names, n_bootstrap, seed)
        provenance.append(_pair_runs(ka, kb, ra, rb))
    if not rows:
        raise ReportError("compare: no pair of runs shares its test cases: " + "; ".join(notes))
    table = pd.DataFrame(rows, columns=[c for c in _COLUMNS if c != "p_holm" and c != "significant"])
    table["p_holm"] = holm(table["p"].to_numpy())
    table["significant"] = table["p_holm"] < ALPHA
    suites = tuple(p.suite_name if p is not None and p.suite_name else None for p in (plan_a, plan_b))
    return Comparison(a, b, table[_COLUMNS], int(n_bootstrap), notes, provenance, suites)


def _within_catalogue(ks: tuple[int, ...], records: list[list[RunRecord]]) -> tuple[tuple[int, ...], list[str]]:
    """The default cut-offs that do not exceed the smallest catalogue of the
    runs (at K >= the number of items every model scores HitRate 1), and a
    note naming any left out."""
    sizes = [n for rs in records for r in rs if (n := stored_n_items(r.manifest)) is not None]
    if not sizes:
        return ks, []
    kept = tuple(k for k in ks if k <= min(sizes)) or (min(sizes),)
    dropped = [k for k in ks if k not in kept]
    note = (f"K = {', '.join(map(str, dropped))} left out: above the {min(sizes):,} items of the catalogue "
            "(every model would score HitRate 1 there)")
    return kept, [note] if dropped else []


#: evaluation settings that change what a metric measures: a pair whose sides differ in one is named
_EVALUATION_KEYS = ("exclude_seen", "top_width")


def _evaluation_differences(ka, kb, ra: list[RunRecord], rb: list[RunRecord], where: str) -> list[str]:
    """A note when the two sides were evaluated under other settings (e.g.
    ``exclude_seen``): their difference then mixes the models with the
    protocol."""
    def settings(records):
        evaluation = (records[0].manifest.get("config") or {}).get("evaluation") or {}
        return {k: evaluation.get(k) for k in _EVALUATION_KEYS}

    sa, sb = settings(ra), settings(rb)
    differ = [f"{k} {sa[k]} -> {sb[k]}" for k in _EVALUATION_KEYS if sa[k] != sb[k]]
    if not differ:
        return []
    return [f"{_pair_name(ka[2], kb[2])} on {where}: A and B were evaluated under other settings "
            f"({', '.join(differ)}): the differences mix the models with the evaluation"]


def _pair_name(label_a: str, label_b: str) -> str:
    return label_a if label_a == label_b else f"{label_a} -> {label_b}"


def _same_ranks(ra: list[RunRecord], rb: list[RunRecord]) -> bool:
    """Whether both sides' runs (seed by seed, in run-id order) rank every
    test case's targets identically: the same run copied, or a folder
    compared with itself."""
    def ranks(records):
        return [r.evaluation.ranks for r in sorted(records, key=lambda r: r.run_id)]

    a, b = ranks(ra), ranks(rb)
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def _one_sided(runs_a, runs_b) -> list[str]:
    """A note per side naming the (dataset, protocol, label) that only it has: not compared."""
    notes = []
    for side, mine, other in (("A", runs_a, runs_b), ("B", runs_b, runs_a)):
        only = sorted(f"{k[2]} on {k[0]} ({k[1]})" for k in mine if k not in other)
        if only:
            notes.append(f"only in {side}, not compared: {', '.join(only)}")
    return notes


def _pair_runs(ka, kb, ra: list[RunRecord], rb: list[RunRecord]) -> dict:
    """The runs behind one compared pair (see :attr:`Comparison.runs`)."""
    row = {"dataset": ka[0], "protocol": ka[1], "label_a": ka[2], "label_b": kb[2]}
    for side, records in (("a", ra), ("b", rb)):
        first = records[0].manifest
        row[f"run_ids_{side}"] = ";".join(sorted(r.run_id for r in records))
        row[f"code_digest_{side}"] = ";".join(sorted({r.code_digest or "" for r in records}))
        row[f"model_{side}"] = first.get("model")
        row[f"params_{side}"] = json.dumps(first.get("params") or {}, sort_keys=True)
    return row


def _fingerprint(record: RunRecord) -> str:
    ev = record.evaluation
    return _case_fingerprint(ev.session_ids, ev.prefix_lengths)


def _compare_pair(ka, kb, ra, rb, cols, ks, names, n_boot, seed) -> list[dict]:
    """Rows of one pair: per-case values ``x [S, C, m]`` of each side, shared session weights."""
    xa = np.stack([r.evaluation.per_case(ks, names=names)[cols].to_numpy(np.float64) for r in ra])
    xb = np.stack([r.evaluation.per_case(ks, names=names)[cols].to_numpy(np.float64) for r in rb])
    n_cases = xa.shape[1]
    # both sides share the case list (checked by the fingerprint), hence its sessions
    groups = Sessions(ra[0].evaluation.session_ids, n_cases)
    rng = np.random.default_rng([seed, _stable_seed("compare", *ka, kb[2])])
    # one matrix per seed, all with the same session weights (paired)
    reps = clustered_replicates([x for x in xa] + [x for x in xb], groups, n_boot, rng)
    ua, ub = _seed_weights(len(ra), n_boot, rng), _seed_weights(len(rb), n_boot, rng)
    ta = sum(ua[:, [i]] * reps[i] for i in range(len(ra)))  # [B, m]
    tb = sum(ub[:, [i]] * reps[len(ra) + i] for i in range(len(rb)))
    lo, hi = _percentiles(tb - ta)
    mean_a, mean_b = xa.mean(axis=(0, 1)), xb.mean(axis=(0, 1))
    rows = []
    for j, col in enumerate(cols):
        t, p = paired_ttest(xb[:, :, j].mean(0), xa[:, :, j].mean(0), groups)
        rows.append({"dataset": ka[0], "protocol": ka[1], "label_a": ka[2], "label_b": kb[2], "metric": col,
                     "mean_a": mean_a[j], "mean_b": mean_b[j], "diff": mean_b[j] - mean_a[j],
                     "diff_ci_low": float(lo[j]), "diff_ci_high": float(hi[j]), "t": t, "p": p,
                     "n_cases": n_cases, "n_sessions": groups.n_sessions, "seeds_a": len(ra), "seeds_b": len(rb)})
    return rows


def write_comparison(result: Comparison, out: str | Path, *, figure_width: str | float = "column") -> list[Path]:
    """Write ``compare_<A>_vs_<B>.md``, ``.csv`` and the figure's ``.png``,
    ``.pdf``, ``.txt`` (caption) and ``.tex`` (LaTeX figure) into ``out``,
    all named by :func:`_figure_stem`: a second comparison into the same
    folder adds its own files instead of replacing the first's tables."""
    from harness.report import figure_width_inches

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / _figure_stem(result)
    csv, md = beside(stem, ".csv"), beside(stem, ".md")
    table = result.table
    if result.runs:  # each row names the runs behind it
        table = table.merge(pd.DataFrame(result.runs), on=["dataset", "protocol", "label_a", "label_b"], how="left")
    table.to_csv(csv, index=False, float_format="%.10g")
    md.write_text(_markdown(result))
    return [md, csv] + _figure(result, stem, figure_width_inches(figure_width))


def _markdown(result: Comparison) -> str:
    lines = ["# sessionbench compare", "", f"- A: `{result.a}`", f"- B: `{result.b}`", "",
             f"diff = B - A, with its 95% paired bootstrap CI ({result.n_bootstrap} replicates: the same test "
             f"sessions drawn for both sides, each with all its prefixes, seeds drawn per side); p: cluster-robust "
             f"paired t-test over the test sessions on the per-case values (averaged over seeds), Holm-corrected "
             f"across the rows; **bold**: p < {ALPHA}. The unit is the test session because the prefixes of one "
             f"session are correlated cases, not independent ones.", "",
             "| dataset | model (A → B) | metric | A | B | diff | 95% CI | p (Holm) |",
             "|:---|:---|:---|---:|---:|---:|:---:|---:|"]
    for r in result.table.itertuples(index=False):
        pair = r.label_a if r.label_a == r.label_b else f"{r.label_a} → {r.label_b}"
        diff = f"{r.diff:+.4f}"
        lines.append(f"| {r.dataset} ({r.protocol}) | {pair} | {r.metric} | {r.mean_a:.4f} | {r.mean_b:.4f} | "
                     f"{f'**{diff}**' if r.significant else diff} | [{r.diff_ci_low:+.4f}, {r.diff_ci_high:+.4f}] | "
                     f"{_p_text(r.p_holm)} |")
    if result.notes:
        lines += [""] + [f"Note: {n}" for n in result.notes]
    if result.runs:
        lines += ["", "## Runs", "", "Each side's runs (by seed; `runs/<run>/manifest.json` in its folder holds the "
                  "resolved configuration and the code fingerprint):", "",
                  "| dataset | model (A → B) | A: runs, code, hyper-parameters | B: runs, code, hyper-parameters |",
                  "|:---|:---|:---|:---|"]
        for r in result.runs:
            sides = [f"{' '.join(f'`{i}`' for i in r[f'run_ids_{s}'].split(';'))}<br>code "
                     f"`{r[f'code_digest_{s}'][:12]}`<br>`{r[f'model_{s}']}` {r[f'params_{s}']}" for s in ("a", "b")]
            lines.append(f"| {r['dataset']} ({r['protocol']}) | {_pair_name(r['label_a'], r['label_b'])} | "
                         f"{sides[0]} | {sides[1]} |")
    return "\n".join(lines) + "\n"


def _default_ks(plan_a: Plan | None, plan_b: Plan | None) -> tuple[int, ...]:
    """The cut-offs a comparison shows unless told: the two largest K that
    both folders' suites ask for (their plans' ``ks``), as their reports'
    tables show; :data:`COMPARE_KS` where a folder has no plan or the
    suites share no K."""
    asked = [planned_ks(plan_a), planned_ks(plan_b)]
    if None in asked:
        return COMPARE_KS
    shared = set(asked[0]) & set(asked[1])
    return default_table_ks(shared) if shared else COMPARE_KS


def _side_names(result: Comparison) -> list[str]:
    """Each side as a paper names it: its suite, else its folder's name (never a local path)."""
    return [f"suite {suite}" if suite else f"folder {Path(folder).name}"
            for folder, suite in zip((result.a, result.b), result.suites)]


def _single_pair(result: Comparison) -> tuple[str, str] | None:
    pairs = result.table[["label_a", "label_b"]].drop_duplicates()
    return tuple(pairs.iloc[0]) if len(pairs) == 1 else None


def _figure_stem(result: Comparison) -> str:
    """``compare_<A>_vs_<B>``, each side its suite (or folder) name and, for
    one compared pair of labels, the label: two comparisons' figures can go
    into one paper without one file or LaTeX label replacing the other."""
    pair = _single_pair(result)
    sides = [file_slug(suite or Path(folder).name, pair[i] if pair else None)
             for i, (folder, suite) in enumerate(zip((result.a, result.b), result.suites))]
    return file_slug("compare", sides[0], "vs", sides[1])


def _sides_text(result: Comparison) -> str:
    """``A: gru4rec of suite default, B: ...``: the suites, and the models when one pair is compared."""
    pair = _single_pair(result)
    names = _side_names(result)
    if pair is not None:
        names = [f"{pair[0]} of {names[0]}", f"{pair[1]} of {names[1]}"]
    return f"A: {names[0]}, B: {names[1]}"


def _cases_text(table: pd.DataFrame) -> str:
    """`` (C test cases of G sessions)`` when every row shares its case list's size."""
    if "n_sessions" not in table or table["n_cases"].nunique() != 1 or table["n_sessions"].nunique() != 1:
        return ""
    return f" ({counts_text(table['n_cases'], 'test case')} of {counts_text(table['n_sessions'], 'session')})"


def _figure(result: Comparison, stem: Path, width: float) -> list[Path]:
    """Differences with their CIs, one row per (pair, metric), a line at zero."""
    import matplotlib

    from harness.report.figures import _RC, _new_figure, _yerr, save_figure, wider_than_a_column, write_captions

    t = result.table
    names = [f"{r.label_a if r.label_a == r.label_b else r.label_a + '→' + r.label_b} {r.metric}"
             + ("" if t["dataset"].nunique() == 1 else f" ({r.dataset})") for r in t.itertuples(index=False)]
    with matplotlib.rc_context(_RC):
        fig = _new_figure(width, 0.5 + 0.17 * len(t))
        ax = fig.subplots()
        y = np.arange(len(t))[::-1]
        diff = t["diff"].to_numpy(np.float64)
        # clipped at 0: a percentile interval may miss its own estimate by a rounding (or, skewed, more)
        err = _yerr(diff, t["diff_ci_low"].to_numpy(np.float64), t["diff_ci_high"].to_numpy(np.float64))
        sig = t["significant"].to_numpy(bool)
        ax.axvline(0.0, color="0.4", linewidth=0.6)
        ax.errorbar(diff[sig], y[sig], xerr=err[:, sig], fmt="o", color="#0072B2", markersize=3.5, elinewidth=0.8,
                    capsize=1.5, label=f"p < {ALPHA} (Holm)")
        ax.errorbar(diff[~sig], y[~sig], xerr=err[:, ~sig], fmt="o", color="0.45", markerfacecolor="white",
                    markersize=3.5, elinewidth=0.8, capsize=1.5, label="not significant")
        ax.set_yticks(y, names)
        ax.set_xlabel("B − A (95% CI)")
        ax.grid(axis="y", visible=False)
        fig.legend(loc="outside lower center", ncol=2, frameon=False)
        paths = save_figure(fig, stem)
    caption = (f"Differences B - A ({_sides_text(result)}) with 95% paired bootstrap CIs resampling the "
               f"shared test sessions{_cases_text(t)} (the prefixes of one session are correlated, not independent "
               f"cases); filled: significant after Holm correction (paired t-test over test sessions, "
               f"alpha = {ALPHA}).")
    return paths + write_captions(stem, caption, wide=wider_than_a_column(width), folder=f"{stem.parent.name}/",
                                  command="compare")


__all__ = ["COMPARE_KS", "COMPARE_METRICS", "Comparison", "compare", "write_comparison"]

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

The package's parts: :mod:`~harness.report.styles` (colours and markers),
:mod:`~harness.report.statistics` (bootstrap, tests), :mod:`~harness.report.collection`
(reading the store), :mod:`~harness.report.tables`, :mod:`~harness.report.figures`;
this module writes the report folder. The statistics are described in
:mod:`harness.report.statistics`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.metrics import METRICS, RANK_METRICS
from harness.report.collection import Collected, Group, collect
from harness.report.constants import (
    BAR_KS, FIGURES_DIR, LIST_K, PREFIX_BINS, REPORT_DIR, TABLES_DIR, TIMINGS, Timing,
)
from harness.report.figures import _PLOTTERS, _RC, FIGURE_KINDS, _save
from harness.report.statistics import ALPHA, bootstrap_ci, holm, paired_ttest, pareto_front
from harness.report.styles import KNOWN_MODELS, Style, model_styles
from harness.report.tuning_figures import write_tuning_figures
from harness.report.tables import (
    _compact_text, _latex_table, _markdown_table, _md_escape, _table_frame, latex_escape,
)
from harness.store import replace_folder

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
            figures[("tuning", "search")] = write_tuning_figures(out_dir, tmp / FIGURES_DIR)
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
    "Timing",
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

"""The retrieval part of the report: accuracy and ANN recall against search
speed for every index setting (from ``manifest["retrieval"]``, written by
runs whose suite model has a ``retrieval`` key; see :mod:`harness.evaluation.retrieval`).

For each (dataset, protocol, model) with retrieval rows it writes
``figures/retrieval_<slug>.png|pdf`` (HitRate@20 and ANN recall@20 against
single-query queries per second, log x, a marker per setting and a line
per method through its own Pareto-optimal settings, as ann-benchmarks draws
them; the dashed line is the front over all methods) and
``tables/retrieval_<slug>.md|csv`` (one row per setting, means over seeds).
Like every figure of the report, it is drawn at the report's print width,
without a title, with its caption beside it (``.txt``); only the runs the
report shows (those of the folder's plan) contribute.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.constants import FIGURES_DIR, TABLES_DIR
from harness.evaluation.retrieval import ROW_K
from harness.report.statistics import pareto_front
from harness.run.store import RunRecord

#: the cut-off of the figure and of the headline columns: the one every retrieval row holds
RETRIEVAL_K = ROW_K
#: the table's columns after the setting: (frame column, header, format)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("mips", "MIPS path", "{}"),
    ("hitrate", f"HitRate@{RETRIEVAL_K}", "{:.4f}"),
    ("mrr", f"MRR@{RETRIEVAL_K}", "{:.4f}"),
    ("recall", f"ANN recall@{RETRIEVAL_K}", "{:.4f}"),
    ("latency_ms_p50", "p50 (ms)", "{:.3f}"),
    ("latency_ms_p95", "p95 (ms)", "{:.3f}"),
    ("single_qps", "queries/s (1 at a time)", "{:,.0f}"),
    ("batch_qps", "queries/s (batched)", "{:,.0f}"),
    ("speedup", "batched speed-up vs exact", "{:.2f}x"),
    ("build_seconds", "build (s)", "{:.2f}"),
    ("index_mib", "index (MiB)", "{:.2f}"),
)


def retrieval_frame(runs: Iterable[RunRecord]) -> pd.DataFrame:
    """One row per (dataset, protocol, model label, setting): means over seeds
    of the retrieval rows of ``runs`` (the runs the report shows); empty when
    none has any."""
    rows = []
    for run in runs:
        for row in run.manifest.get("retrieval") or []:
            metrics = row.get("metrics", {})
            rows.append({
                "dataset": run.dataset, "protocol": run.protocol, "model": run.label, "seed": run.seed,
                "setting": row["label"], "method": row["method"], "mips": row["mips"],
                "hitrate": metrics.get(f"HitRate@{RETRIEVAL_K}", np.nan),
                "mrr": metrics.get(f"MRR@{RETRIEVAL_K}", np.nan),
                "recall": row["recall"].get(str(RETRIEVAL_K), np.nan),
                "latency_ms_p50": row["latency_ms_p50"], "latency_ms_p95": row["latency_ms_p95"],
                "single_qps": row["single_qps"], "batch_qps": row["batch_qps"],
                "build_seconds": row["build_seconds"], "index_mib": row["index_bytes"] / 2**20,
                "n_items": row["n_items"], "threads": row["threads"],
            })  # fmt: skip
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    keys = ["dataset", "protocol", "model", "setting", "method", "mips"]
    order = frame.drop_duplicates(keys)[keys]  # settings in suite order
    means = frame.groupby(keys, sort=False).mean(numeric_only=True).drop(columns="seed").reset_index()
    means["seeds"] = frame.groupby(keys, sort=False)["seed"].nunique().to_numpy()
    means = order.merge(means, on=keys, how="left")
    exact = means[means["method"] == "exact"].set_index(["dataset", "protocol", "model"])["batch_qps"]
    base = [exact.get((d, p, m), np.nan) for d, p, m in zip(means["dataset"], means["protocol"], means["model"])]
    means["speedup"] = means["batch_qps"] / np.asarray(base, dtype=np.float64)
    return means


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(parts))


def plot_retrieval(frame: pd.DataFrame, width: float):
    """HitRate@20 and ANN recall@20 against single-query queries/s (log x)
    for one (dataset, protocol, model), ``width`` inches wide (the panels side
    by side from 5 in, stacked below); the dashed line joins the settings no
    other setting beats in both speed and the panel's quantity, and each
    method's line its own such settings."""
    from harness.report.figures import _new_figure, log_axis

    side_by_side = width >= 5.0
    fig = _new_figure(width, 2.4 if side_by_side else 4.4)
    axes = fig.subplots(1, 2) if side_by_side else fig.subplots(2, 1)
    methods = list(dict.fromkeys(frame["method"]))
    from harness.report.styles import MARKERS, PALETTE, Style

    # one colour-blind-safe colour and marker per index method, in suite order
    markers = ("*",) + MARKERS
    for ax, column, label in ((axes[0], "hitrate", f"HitRate@{RETRIEVAL_K}"),
                              (axes[1], "recall", f"ANN recall@{RETRIEVAL_K} (vs exact top-{RETRIEVAL_K})")):
        for i, method in enumerate(methods):
            part = frame[frame["method"] == method]
            look = Style(PALETTE[i % len(PALETTE)], markers[i % len(markers)], "", True, i).line_look(1.0)
            style = {**look, "markersize": 7 if method == "exact" else 4}
            # every setting as a marker; the line joins only the method's own Pareto-optimal
            # settings (as ann-benchmarks draws it), so settings of different parameters
            # do not zigzag through one another
            ax.plot(part["single_qps"], part[column], linestyle="none", alpha=0.6, **style)
            own = part[pareto_front(-part["single_qps"].to_numpy(np.float64), part[column].to_numpy(np.float64))]
            own = own.sort_values("single_qps")
            ax.plot(own["single_qps"], own[column], linewidth=1.0, label=method, **style)
        front = pareto_front(-frame["single_qps"].to_numpy(np.float64), frame[column].to_numpy(np.float64))
        best = frame[front].sort_values("single_qps")
        ax.plot(best["single_qps"], best[column], linestyle="--", color="0.4", linewidth=0.8, zorder=0)
        log_axis(ax)
        ax.set_xlabel("queries/s, one at a time (log)")
        ax.set_ylabel(label)
    axes[1].legend(loc="lower left")
    return fig


def _markdown(frame: pd.DataFrame, title: str) -> str:
    headers = ["index setting"] + [h for _, h, _ in COLUMNS]
    lines = [f"### {title}", "", "| " + " | ".join(headers) + " |", "|:---|:---|" + "---:|" * (len(COLUMNS) - 1)]
    for _, row in frame.iterrows():
        cells = [row["setting"]] + [
            "–" if isinstance(row[c], float) and np.isnan(row[c]) else fmt.format(row[c]) for c, _, fmt in COLUMNS
        ]
        lines.append("| " + " | ".join(str(c).replace("|", r"\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_retrieval(runs: Iterable[RunRecord], folder: Path, width: float, *,
                    wide: bool = False) -> tuple[list[Path], list[Path], list[str]]:
    """Write the retrieval figures (``width`` inches wide, caption beside
    each as text and as a LaTeX ``figure``, ``figure*`` when ``wide``) and tables of ``runs`` into the report folder being built
    (``folder``); returns (figures, tables, summary.md lines)."""
    frame = retrieval_frame(runs)
    if frame.empty:
        return [], [], []
    import matplotlib
    import matplotlib.pyplot as plt

    from harness.report.figures import _RC, save_figure, write_captions

    figures, tables = [], []
    lines = ["## Retrieval: approximate nearest neighbours against exact ranking", "",
             f"Each model's top-{RETRIEVAL_K} served by an index over its item embeddings (docs/retrieval.md): "
             "the metrics rank only the retrieved items; ANN recall is the overlap of the retrieved and the "
             "exact top lists; speeds are of the search alone (one query on one thread, and batches on the "
             "run's threads) on the machine that ran the suite.", ""]  # fmt: skip
    for (dataset, protocol, model), part in frame.groupby(["dataset", "protocol", "model"], sort=False):
        slug = _slug("retrieval", dataset, protocol, model)
        title = f"{model} on {dataset} ({protocol}, {int(part['n_items'].iloc[0]):,} items)"
        with matplotlib.rc_context(_RC):
            fig = plot_retrieval(part, width)
            figures += save_figure(fig, folder / FIGURES_DIR / slug)
            plt.close(fig)
        caption = (f"{title}: HitRate@{RETRIEVAL_K} (left or top) and ANN recall@{RETRIEVAL_K} against the exact "
                   "top list (right or bottom) for each index setting, against queries per second one query at "
                   "a time (log scale). Each marker is one setting; a method's line joins its settings that no other "
                   "setting of that method beats in both speed and the panel's quantity; the dashed line is the "
                   "Pareto front over all methods.")
        figures += write_captions(folder / FIGURES_DIR / slug, caption, wide=wide)
        table = _markdown(part, title)
        (folder / TABLES_DIR / f"{slug}.md").write_text(table)
        part.to_csv(folder / TABLES_DIR / f"{slug}.csv", index=False, float_format="%.10g")
        tables += [folder / TABLES_DIR / f"{slug}.md", folder / TABLES_DIR / f"{slug}.csv"]
        lines += [f"![{slug}](figures/{slug}.png)", "", table]
    return figures, tables, lines


__all__ = ["COLUMNS", "RETRIEVAL_K", "plot_retrieval", "retrieval_frame", "write_retrieval"]

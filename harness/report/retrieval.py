"""The retrieval part of the report: accuracy and ANN recall against search
speed for every index setting (from ``manifest["retrieval"]``, written by
runs whose suite model has a ``retrieval`` key; see :mod:`harness.evaluation.retrieval`).

For each (dataset, protocol, model) with retrieval rows it writes
``figures/<suite>_retrieval_<slug>.png|pdf`` (HitRate@20 and ANN recall@20 against
single-query queries per second, log x, a marker per setting and a line
per method through its own Pareto-optimal settings, as ann-benchmarks draws
them; the dashed line is the front over all methods) and
``tables/<suite>_retrieval_<slug>.md|tex|csv`` (one row per setting, means over
seeds; the setting labelled with every parameter its method's sweep varies;
the CSV also names the runs behind each row, ``run_ids``, and their
``code_digest``; the ``.tex`` is a booktabs ``table*``).
Like every figure of the report, it is drawn at the report's print width,
without a title, with its caption beside it (``.txt``); only the runs the
report shows (those of the folder's plan) contribute.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.collection import file_slug
from harness.report.constants import FIGURES_DIR, TABLES_DIR
from harness.evaluation.retrieval import ROW_K, RetrievalSetting, sweep_labels
from harness.report.statistics import pareto_front
from harness.report.tables import latex_escape, seeds_phrase
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
    none has any. ``setting`` labels a row with its non-default parameters
    and every parameter its method's settings vary (:func:`sweep_labels`);
    ``run_ids`` and ``code_digest`` name the runs a row averages and the code
    they ran (space-separated), as in the main results CSV."""
    rows = []
    for run in runs:
        for row in run.manifest.get("retrieval") or []:
            metrics = row.get("metrics", {})
            rows.append({
                "dataset": run.dataset, "protocol": run.protocol, "model": run.label, "seed": run.seed,
                "setting": row["label"], "method": row["method"], "mips": row["mips"],
                "params": json.dumps(row.get("params") or {}, sort_keys=True),
                "run_id": getattr(run, "run_id", ""), "code_digest": getattr(run, "code_digest", None) or "",
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
    frame["setting"] = _setting_labels(frame)
    keys = ["dataset", "protocol", "model", "setting", "method", "mips"]
    order = frame.drop_duplicates(keys)[keys]  # settings in suite order
    groups = frame.groupby(keys, sort=False)
    means = groups.mean(numeric_only=True).drop(columns="seed").reset_index()
    means["seeds"] = groups["seed"].nunique().to_numpy()
    means["params"] = groups["params"].first().to_numpy()  # every parameter, defaults included (JSON)
    means["run_ids"] = groups["run_id"].agg(lambda ids: " ".join(dict.fromkeys(ids))).to_numpy()
    means["code_digest"] = groups["code_digest"].agg(lambda d: " ".join(dict.fromkeys(x for x in d if x))).to_numpy()
    means = order.merge(means, on=keys, how="left")
    exact = means[means["method"] == "exact"].set_index(["dataset", "protocol", "model"])["batch_qps"]
    base = [exact.get((d, p, m), np.nan) for d, p, m in zip(means["dataset"], means["protocol"], means["model"])]
    means["speedup"] = means["batch_qps"] / np.asarray(base, dtype=np.float64)
    return means


def _setting_labels(frame: pd.DataFrame) -> list[str]:
    """The table label of each retrieval row: its setting labelled with every
    parameter that varies among the settings of its method for the same
    (dataset, protocol, model), default values included."""
    labels = pd.Series("", index=frame.index, dtype=object)
    for _, part in frame.groupby(["dataset", "protocol", "model"], sort=False):
        distinct = list(dict.fromkeys(zip(part["method"], part["params"])))
        settings = [RetrievalSetting(method, json.loads(params)) for method, params in distinct]
        named = dict(zip(distinct, sweep_labels(settings)))
        labels[part.index] = [named[key] for key in zip(part["method"], part["params"])]
    return labels.tolist()


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


def _cells(row: pd.Series) -> list[str]:
    """The table cells of a row after its setting, formatted ("–" for a missing value)."""
    return ["–" if isinstance(row[c], float) and np.isnan(row[c]) else fmt.format(row[c]) for c, _, fmt in COLUMNS]


def _markdown(frame: pd.DataFrame, title: str) -> str:
    headers = ["index setting"] + [h for _, h, _ in COLUMNS]
    lines = [f"### {title}", "", "| " + " | ".join(headers) + " |", "|:---|:---|" + "---:|" * (len(COLUMNS) - 1)]
    for _, row in frame.iterrows():
        cells = [row["setting"]] + _cells(row)
        lines.append("| " + " | ".join(str(c).replace("|", r"\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _stacked(header: str) -> str:
    r"""A LaTeX header cell on two lines, split at the space nearest its
    middle (a nested ``tabular``: no package needed), so that twelve columns
    fit the text width; ``batched speed-up vs exact`` becomes
    ``batched speed-up`` over ``vs exact``."""
    words = header.split(" ")
    if len(words) < 2:
        return header
    cut = min(range(1, len(words)), key=lambda i: abs(len(" ".join(words[:i])) - len(" ".join(words[i:]))))
    return rf"\begin{{tabular}}[b]{{@{{}}c@{{}}}}{' '.join(words[:cut])}\\{' '.join(words[cut:])}\end{{tabular}}"


def _setting_cell(label: str) -> str:
    r"""A setting's LaTeX cell: the method over its parameters
    (``faiss-hnsw`` over ``[M=16,efSearch=16]``), the widest cell otherwise."""
    method, bracket, params = label.partition("[")
    if not bracket:
        return latex_escape(label)
    # "{}" after the line break: a "[" right after "\\" would be read as its optional argument
    return (rf"\begin{{tabular}}[t]{{@{{}}l@{{}}}}{latex_escape(method)}\\{{}}"
            rf"[{latex_escape(params)}\end{{tabular}}")


def _latex(frame: pd.DataFrame, title: str, slug: str) -> str:
    r"""The table as a booktabs ``table*`` at \scriptsize (twelve columns
    need both columns of a two-column article, and the headers take two
    lines), text escaped as in the results tables;
    ``\label{tab:sessionbench-<slug>}``."""
    seeds = seeds_phrase({latex_escape(s): int(n) for s, n in zip(frame["setting"], frame["seeds"])})
    caption = (f"{latex_escape(title)}: each index setting's top-{RETRIEVAL_K} against exact ranking. "
               f"Means over {seeds}. ANN recall: overlap of the retrieved and the exact top-{RETRIEVAL_K}; "
               "speeds of the search alone, on the machine that ran the suite.")
    lines = [
        "% generated by sessionbench report from the stored runs; needs \\usepackage{booktabs}",
        r"\begin{table*}[t]", r"\centering", r"\scriptsize", r"\setlength{\tabcolsep}{1pt}",
        rf"\caption{{{caption}}}", rf"\label{{tab:sessionbench-{slug}}}",
        r"\begin{tabular}{@{}ll" + "r" * (len(COLUMNS) - 1) + "@{}}", r"\toprule",
        " & ".join(_stacked(latex_escape(h)) for h in ["Index setting"] + [h for _, h, _ in COLUMNS]) + r" \\",
        r"\midrule",
    ]
    for _, row in frame.iterrows():
        cells = [_setting_cell(row["setting"])] + [latex_escape(c).replace("–", "--") for c in _cells(row)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table*}", ""]
    return "\n".join(lines)


def write_retrieval(runs: Iterable[RunRecord], folder: Path, width: float, *,
                    wide: bool = False, prefix: str | None = None) -> tuple[list[Path], list[Path], list[str]]:
    """Write the retrieval figures (``width`` inches wide, caption beside
    each as text and as a LaTeX ``figure``, ``figure*`` when ``wide``) and
    tables of ``runs`` into the report folder being built
    (``folder``), their names starting with ``prefix`` (the suite's name, see
    :func:`harness.report.collection.file_prefix`); returns (figures, tables,
    summary.md lines)."""
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
        slug = file_slug(prefix, "retrieval", dataset, protocol, model)
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
        (folder / TABLES_DIR / f"{slug}.tex").write_text(_latex(part, title, slug))
        part.to_csv(folder / TABLES_DIR / f"{slug}.csv", index=False, float_format="%.10g")
        tables += [folder / TABLES_DIR / f"{slug}{ext}" for ext in (".md", ".tex", ".csv")]
        lines += [f"![{slug}](figures/{slug}.png)", "", table]
    return figures, tables, lines


__all__ = ["COLUMNS", "RETRIEVAL_K", "plot_retrieval", "retrieval_frame", "write_retrieval"]

"""The figures: one function per kind, each taking a :class:`Group` and the styles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.metrics import METRICS, RANK_METRICS, metric_key
from harness.report.collection import Group
from harness.report.constants import BAR_KS, LIST_K, MAX_CURVE_K, PREFIX_BINS
from harness.report.statistics import pareto_front
from harness.report.styles import Style

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

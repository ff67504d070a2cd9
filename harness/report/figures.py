"""The figures: one function per kind, each drawing a :class:`Group` at a given print width.

Every figure is drawn at the width it will be printed at (``--figure-width``:
one column, the text width, or inches), with 7-8 pt text, so that fonts keep
their size in the paper. Figures carry no title: each plotter returns the
caption, which the report writes beside the figure as plain text and as a
LaTeX ``figure`` (:func:`write_captions`).
Panels without data, or repeating another panel (Recall@K equals
HitRate@K when every case has one target), are left out, and the caption
says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.evaluation.metrics import METRICS, RANK_METRICS, metric_key
from harness.report.collection import Group, beside
from harness.report.constants import COLUMN_WIDTH, LIST_K, MAX_CURVE_K
from harness.report.statistics import pareto_front
from harness.report.styles import Style, hatch_repeat_for
from harness.report.tables import latex_escape

#: figure kinds, in the order summary.md lists them
FIGURE_KINDS: tuple[str, ...] = ("bars", "metric_vs_k", "accuracy_latency", "prefix_length", "training_curves")

#: the smallest font size (pt) of any text in a figure
MIN_FONT_PT = 7.0
_RC = {
    "pdf.fonttype": 42,  # embed TrueType fonts (Type 42, not Type 3) in PDF and PS
    "ps.fonttype": 42,
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "lines.linewidth": 1.0,
    "lines.markersize": 4,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.4,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "hatch.linewidth": 0.5,
    "savefig.dpi": 300,
    "svg.hashsalt": "sessionbench",
}
#: a panel narrower than this (inches) is unreadable: fewer panels per row
_MIN_PANEL_WIDTH = 1.55


@dataclass
class Drawn:
    """A drawn figure and its caption."""

    figure: object  # matplotlib.figure.Figure
    caption: str


Warn = Callable[[str], None]


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.04, hspace=0.04)
    FigureCanvasAgg(fig)
    return fig


def _grid(n_panels: int, width: float) -> tuple[int, int]:
    """(rows, columns) of ``n_panels`` panels in a figure ``width`` inches wide."""
    cols = max(1, min(n_panels, int(width // _MIN_PANEL_WIDTH)))
    return -(-n_panels // cols), cols


def _panels(n_panels: int, width: float, panel_height: float, legend_rows: int):
    """A figure of ``n_panels`` axes (row-major), sized for the width, with room
    for the legend below; when the grid has an empty cell, the legend goes there
    instead (the figure's ``_legend_ax``)."""
    rows, cols = _grid(n_panels, width)
    spare = rows * cols > n_panels
    fig = _new_figure(width, rows * panel_height + (0 if spare else 0.16 * legend_rows + 0.1))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes[n_panels + 1:]:
        ax.remove()
    fig._legend_ax = None
    if spare:
        fig._legend_ax = axes[n_panels]
        fig._legend_ax.axis("off")
        fig._legend_cell = width / cols
    return fig, list(axes[:n_panels])


def save_figure(fig, path_stem: Path) -> list[Path]:
    """Write PNG (300 dpi) and PDF (Type 42 fonts), without timestamps so reruns give identical files."""
    png, pdf = beside(path_stem, ".png"), beside(path_stem, ".pdf")
    fig.savefig(png, metadata={"Software": None})
    fig.savefig(pdf, metadata={"CreationDate": None, "Creator": None, "Producer": None})
    return [png, pdf]


def wider_than_a_column(width: float, column_width: float = COLUMN_WIDTH) -> bool:
    """Whether a figure ``width`` inches wide needs both columns (LaTeX
    ``figure*``); equal widths up to float rounding fit one column."""
    return width > column_width + 1e-9


def write_captions(stem: Path, caption: str, *, wide: bool, folder: str = "report/figures/",
                   command: str = "report") -> list[Path]:
    """Write a figure's caption beside it: ``<stem>.txt`` (plain text) and
    ``<stem>.tex``, a LaTeX ``figure`` (``figure*`` when ``wide``: drawn
    wider than a column) that includes the PDF by its name, with the
    caption escaped for LaTeX and a label ``fig:sessionbench-<stem>``.
    ``\\input`` it with the figures folder on ``\\graphicspath`` (``folder``,
    as the comment suggests; ``command``: the sessionbench command that wrote it)."""
    env = "figure*" if wide else "figure"
    txt, tex = beside(stem, ".txt"), beside(stem, ".tex")
    txt.write_text(caption + "\n")
    tex.write_text("\n".join([
        f"% generated by sessionbench {command}; needs \\usepackage{{graphicx}} and this folder on \\graphicspath,",
        f"% e.g. \\graphicspath{{{{{folder}}}}}",
        *([] if wide else ["% in the plain article class a column is 3.16 in: draw with --column-width 3.16 "
                           "(the default 3.3 in suits ACM and IEEE columns)"]),
        rf"\begin{{{env}}}[t]",
        r"\centering",
        rf"\includegraphics{{{stem.name}.pdf}}",
        rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{fig:sessionbench-{stem.name}}}",
        rf"\end{{{env}}}",
    ]) + "\n")
    return [txt, tex]


def _legend_columns(labels: list[str], width: float) -> int:
    longest = max((len(str(label)) for label in labels), default=4)
    per = 0.28 + 0.055 * longest  # inches per entry at 7 pt: handle + text
    return max(1, min(len(labels), int((width - 0.1) // per)))


def _legend_rows(labels: list[str], width: float, extra: int = 0) -> int:
    n = len(labels) + extra
    return -(-n // _legend_columns(list(labels) + ["x" * 12] * extra, width))


def _row_major(items: list, ncol: int) -> list:
    """``items`` reordered so that a legend of ``ncol`` columns, which
    matplotlib fills column by column (the first ``len % ncol`` columns one
    entry longer), reads in the given order row by row."""
    return [items[i] for col in range(ncol) for i in range(col, len(items), ncol)]


def _legend(fig, labels: list[str], styles: dict[str, Style], width: float, *, kind: str = "marker",
            extra=(), hatch_repeat: int = 1) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    for label in labels:
        st = styles[label]
        if kind == "patch":
            handles.append(Patch(**st.bar_look(hatch_repeat), label=label))
        else:
            handles.append(Line2D([], [], **st.line_look(1.0), linestyle="-" if kind == "line" else "",
                                  markersize=4, label=label))
    handles += list(extra)
    spare = getattr(fig, "_legend_ax", None)
    if spare is not None:  # an empty grid cell: the legend fills it
        ncol = _legend_columns([h.get_label() for h in handles], fig._legend_cell)
        spare.legend(handles=_row_major(handles, ncol), loc="center", ncol=ncol, frameon=False, handlelength=1.6,
                     columnspacing=0.8, handletextpad=0.4, borderaxespad=0.0)
        return
    ncol = _legend_columns([h.get_label() for h in handles], width)
    fig.legend(handles=_row_major(handles, ncol), loc="outside lower center", ncol=ncol, frameon=False,
               handlelength=1.6, columnspacing=0.9, handletextpad=0.4, borderaxespad=0.1)


def _yerr(mean: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    err = np.vstack([mean - lo, hi - mean])
    return np.where(np.isfinite(err), np.clip(err, 0, None), 0.0)


def _shown_metrics(group: Group, keys_of: Callable[[str], list[str]]) -> tuple[list[str], list[str]]:
    """The rank metrics worth a panel, and a note per metric left out: those
    without any value, and Recall when it equals HitRate everywhere (one
    target per case, as under the next-item protocol)."""
    shown, dropped = [], []
    for name in RANK_METRICS:
        keys = [k for k in keys_of(name) if k in group.means.columns]
        values = group.means[keys].to_numpy(np.float64) if keys else np.zeros((0, 0))
        if not np.isfinite(values).any():
            dropped.append(f"{name} has no values")
            continue
        if name == "Recall":
            hit = group.means[[k.replace("Recall", "HitRate") for k in keys]].to_numpy(np.float64)
            if np.allclose(values, hit, equal_nan=True):
                dropped.append("Recall equals HitRate here (one target per case) and is not drawn")
                continue
        shown.append(name)
    return shown, dropped


def _dropped_note(dropped: list[str]) -> str:
    return (" " + "; ".join(dropped) + ".") if dropped else ""


def _bar_ks(group: Group) -> tuple[int, ...]:
    """The cut-offs of the bar chart: the report's table cut-offs (the
    suite's two largest ``ks`` unless ``--ks`` names others), so that one
    option sets both and the bars show the numbers the tables print."""
    return tuple(k for k in group.table_ks if any(metric_key(n, k) in group.means.columns for n in RANK_METRICS))


def _bar_width_inches(width: float, n_panels: int, n_groups: int, n_bars: int) -> float:
    """About how wide one bar is printed: a panel's share of the figure, less
    its y-axis labels (about 0.45 in), spread over the groups of bars (each
    0.84 of a unit, with room at the axis ends)."""
    _, cols = _grid(n_panels, width)
    panel = max(width / cols - 0.45, 0.1)
    return panel / (n_groups + 0.3) * 0.84 / max(n_bars, 1)


def _plot_bars(group: Group, styles: dict[str, Style], width: float, warn: Warn) -> Drawn | None:
    bar_ks = _bar_ks(group)
    names, dropped = _shown_metrics(group, lambda n: [metric_key(n, k) for k in bar_ks])
    if not names:
        return None
    n = len(group.labels)
    fig, axes = _panels(len(names), width, 1.5, _legend_rows(group.labels, width))
    bar_w = 0.84 / max(n, 1)
    # the same density in every panel and in the legend, so a bar's hatch matches its legend entry
    repeat = hatch_repeat_for(_bar_width_inches(width, len(names), len(bar_ks), n))
    for ax, name in zip(axes, names):
        keys = [metric_key(name, k) for k in bar_ks]
        for i, label in enumerate(group.labels):
            st = styles[label]
            mean = group.means.loc[label, keys].to_numpy(np.float64)
            err = _yerr(mean, group.ci_low.loc[label, keys].to_numpy(np.float64),
                        group.ci_high.loc[label, keys].to_numpy(np.float64))
            x = np.arange(len(keys)) - 0.42 + bar_w * (i + 0.5)
            ax.bar(x, mean, bar_w, **st.bar_look(repeat), yerr=err,
                   error_kw={"elinewidth": 0.5, "capsize": 0.8, "ecolor": "black"})
        ax.set_xticks(np.arange(len(keys)), [f"@{k}" for k in bar_ks])
        ax.set_ylabel(METRICS[name].label)
        ax.set_ylim(bottom=0)
        ax.grid(axis="x", visible=False)
    _legend(fig, group.labels, styles, width, kind="patch", hatch_repeat=repeat)
    ks = " and ".join(map(str, bar_ks)) if len(bar_ks) <= 2 else ", ".join(map(str, bar_ks))
    caption = (f"{group.title}: {', '.join(names)} at K = {ks} per model (mean over the "
               f"{group.cases_phrase} and over seeds; "
               f"error bars: 95% bootstrap CI resampling test sessions, whose prefixes are correlated cases, "
               f"and seeds where several).{_dropped_note(dropped)}")
    return Drawn(fig, caption)


def _plot_metric_vs_k(group: Group, styles: dict[str, Style], width: float, warn: Warn) -> Drawn | None:
    names, dropped = _shown_metrics(group, lambda n: [metric_key(n, k) for k in (1, LIST_K)])
    names = [n for n in names if all(n in c for c in group.k_curves.values())]
    if not names:
        return None
    fig, axes = _panels(len(names), width, 1.45, _legend_rows(group.labels, width))
    ticks = _curve_ticks(group)
    for ax, name in zip(axes, names):
        for label in group.labels:
            st = styles[label]
            curve = group.k_curves[label][name]
            ax.plot(curve.index, curve.to_numpy(), **st.line_look(0.9), markersize=3,
                    markevery=[k - 1 for k in ticks if k <= len(curve)], linewidth=0.9)
        _k_axis(ax, ticks)
        ax.set_ylabel(METRICS[name].label)
        ax.set_ylim(bottom=0)
    _legend(fig, group.labels, styles, width, kind="line")
    caption = (f"{group.title}: {', '.join(names)} as the recommendation list length K grows from 1 to "
               f"{MAX_CURVE_K} (log scale; means over seeds, from the stored ranks; markers at K = "
               f"{', '.join(map(str, ticks))}).{_dropped_note(dropped)}")
    return Drawn(fig, caption)


def _curve_ticks(group: Group) -> tuple[int, ...]:
    """The K marked on the metric-vs-K curves: where they start and end (1
    and :data:`MAX_CURVE_K`) and the report's cut-offs between (those of the
    group's metric columns: the suite's ``ks``, and any the tables or figures
    add), so that the values a reader looks up in the tables are marked."""
    ks = {1, MAX_CURVE_K}
    for column in group.means.columns:
        name, _, k = str(column).partition("@")
        if name in RANK_METRICS and k.isdigit() and 1 <= int(k) <= MAX_CURVE_K:
            ks.add(int(k))
    return tuple(sorted(ks))


def _k_axis(ax, ticks: tuple[int, ...]) -> None:
    """A log-scale K axis ticked and labelled at ``ticks`` only: on a linear
    axis K = 1..10, where the curves change most, took a fifth of the width
    and the suite's small K were unreadable."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, ScalarFormatter

    ax.set_xscale("log")
    ax.set_xlim(0.85, MAX_CURVE_K * 1.15)
    ax.xaxis.set_major_locator(FixedLocator(list(ticks)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("K (log scale)")


def place_labels(ax, points_px: np.ndarray, texts: list[str], *, fontsize: float = 7.0,
                 radii: tuple[float, ...] = (4.0, 9.0, 15.0, 22.0, 30.0, 40.0),
                 segments_px: list[tuple[float, float, float, float]] = ()) -> list:
    """Annotate each point with its text, avoiding overlaps (deterministic).

    Points are placed in order of decreasing y (top first). For each, the
    candidate offsets (right, above, below, left and the four diagonals, at
    growing distances in points) are tried in a fixed order; the first whose
    text box stays inside the axes and overlaps neither an earlier label, nor
    any point's marker box (labels keep 1.5 pt apart sideways: two abutting
    labels read as one), nor any of ``segments_px`` (drawn lines: the
    Pareto front, error bars), and is nearer its own point than any other
    point, is used (with a thin leader line past the first ring). When none
    fits, the candidate with the least overlap is used (a label nearer
    another point than its own counts as half a label's overlap), and a
    label left nearer another point than its own always gets a leader line:
    without one it would be read as that point's.

    Args:
        ax: the axes (already laid out: the figure has been drawn once).
        points_px: ``[n, 2]`` the points in display pixels.
        texts: one label per point.
        segments_px: horizontal or vertical line segments ``(x0, y0, x1, y1)``
            in display pixels that labels should not cross.
    Returns:
        the annotation artists, in the order of ``texts``.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px_per_pt = fig.dpi / 72.0
    frame = ax.get_window_extent(renderer)
    marker_half = 3.5 * px_per_pt
    obstacles = [np.array([x - marker_half, y - marker_half, x + marker_half, y + marker_half])
                 for x, y in points_px if np.isfinite(x) and np.isfinite(y)]
    half_line = 1.0 * px_per_pt  # a line counts as a 2 pt wide band: crossing it costs its length
    obstacles += [np.array([min(x0, x1) - half_line, min(y0, y1) - half_line, max(x0, x1) + half_line,
                            max(y0, y1) + half_line]) for x0, y0, x1, y1 in segments_px
                  if np.isfinite([x0, y0, x1, y1]).all()]
    directions = [(1, 0), (0, 1), (0, -1), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1)]
    finite = np.isfinite(points_px).all(axis=1)
    out: list = [None] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: (-points_px[i][1], points_px[i][0], texts[i]))
    for i in order:
        x, y = points_px[i]
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        probe = fig.text(0.5, 0.5, texts[i], fontsize=fontsize)  # measured in figure space (any axis scale)
        bbox = probe.get_window_extent(renderer)
        probe.remove()
        w, h = bbox.width, bbox.height
        best, best_cost = None, np.inf
        for r in radii:
            for dx, dy in directions:
                ox, oy = dx * r * px_per_pt, dy * r * px_per_pt
                left = x + ox if dx > 0 else (x + ox - w if dx < 0 else x - w / 2)
                bottom = y + oy if dy > 0 else (y + oy - h if dy < 0 else y - h / 2)
                box = np.array([left, bottom, left + w, bottom + h])
                cost = sum(_overlap(box, o) for o in obstacles)
                outside = max(0, frame.x0 - box[0]) + max(0, box[2] - frame.x1) + max(0, frame.y0 - box[1]) \
                    + max(0, box[3] - frame.y1)
                cost += outside * h * 4
                if _nearer_another(points_px, finite, i, box):
                    cost += 0.5 * w * h
                if cost < best_cost:
                    best, best_cost = (dx, dy, r, box), cost
                if cost == 0:
                    break
            if best_cost == 0:
                break
        dx, dy, r, box = best
        ha = "left" if dx > 0 else ("right" if dx < 0 else "center")
        va = "bottom" if dy > 0 else ("top" if dy < 0 else "center")
        # the leader stops at the marker's edge, and is drawn above the markers so that none hides it
        arrow = {"arrowstyle": "-", "linewidth": 0.5, "color": "0.25", "shrinkA": 0.5, "shrinkB": 2.5} \
            if r > radii[0] or _nearer_another(points_px, finite, i, box) else None
        xy = tuple(ax.transData.inverted().transform((x, y)))
        ann = ax.annotate(texts[i], xy, xycoords="data", xytext=(dx * r, dy * r), textcoords="offset points",
                          ha=ha, va=va, fontsize=fontsize, arrowprops=arrow, annotation_clip=False, zorder=5)
        ann.set_in_layout(False)
        # later labels keep a word space from this one: two abutting labels read as one
        obstacles.append(box + np.array([-1.5, -0.5, 1.5, 0.5]) * px_per_pt)
        out[i] = ann
    return out


def _box_distance(point: np.ndarray, box: np.ndarray) -> float:
    """Distance from a point to the nearest point of a box ``[x0, y0, x1, y1]`` (0 inside it)."""
    dx = max(box[0] - point[0], 0.0, point[0] - box[2])
    dy = max(box[1] - point[1], 0.0, point[1] - box[3])
    return float(np.hypot(dx, dy))


def _nearer_another(points: np.ndarray, finite: np.ndarray, own: int, box: np.ndarray) -> bool:
    """Whether a label's box is nearer some other point than point ``own``:
    a reader would take the label for that point's."""
    mine = _box_distance(points[own], box)
    return any(_box_distance(points[j], box) < mine for j in np.flatnonzero(finite) if j != own)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Area of the intersection of two boxes ``[x0, y0, x1, y1]``."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return float(w * h) if w > 0 and h > 0 else 0.0


def _plot_accuracy_latency(group: Group, styles: dict[str, Style], width: float, warn: Warn) -> Drawn | None:
    from matplotlib.lines import Line2D

    x = group.means["latency_ms_p50"].to_numpy(np.float64)
    keys = [k for k in (metric_key("HitRate", LIST_K), metric_key("MRR", LIST_K))
            if k in group.means.columns and np.isfinite(group.means[k].to_numpy(np.float64) + x).any()]
    timed = np.isfinite(x) & (x > 0)
    if not keys or not timed.any():
        # say why the figure is missing: e.g. a suite with latency: {samples: 0}
        warn("accuracy_latency: not drawn (no model has a single-session latency p50)")
        return None
    for label in np.asarray(group.labels, dtype=object)[~timed]:
        warn(f"accuracy_latency: {label}: not drawn (no single-session latency p50)")
    # labelled scatter plots need room: one panel per row unless the figure is wide
    rows, cols = (len(keys), 1) if width < 2 * 2.6 else (1, len(keys))
    fig = _new_figure(width, rows * 2.3 + 0.35)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, key in zip(axes, keys):
        y = group.means[key].to_numpy(np.float64)
        front = pareto_front(x, y)
        if front.any():
            ax.plot(*_front_steps(x[front], y[front]), linestyle="--", color="0.35", linewidth=0.8, zorder=1)
        # invisible: the points and their CIs set the axis limits now, as the markers are drawn
        # once the layout is fixed (they are spread apart in display space, see _spread_markers)
        ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
        ax.plot(np.tile(x[ok], 3), np.concatenate([y[ok], group.ci_low[key].to_numpy(np.float64)[ok],
                                                   group.ci_high[key].to_numpy(np.float64)[ok]]),
                linestyle="none", marker="none")
        log_axis(ax)
        ax.set_xlabel("latency p50 (ms, log scale)")
        ax.set_ylabel(key)
    handle = Line2D([], [], linestyle="--", color="0.35", linewidth=0.8, label="Pareto front")
    fig.legend(handles=[handle], loc="outside lower center", frameon=False)
    fig.canvas.draw()  # fix the layout (legend included) before placing markers and labels in display space
    fig.set_layout_engine("none")  # and keep it: the labels are placed for exactly this layout
    px_per_pt = fig.dpi / 72.0
    spread_any = False
    for ax, key in zip(axes, keys):
        ax.set_xlim(ax.get_xlim())  # and the limits: the markers drawn now must not rescale the axes
        ax.set_ylim(ax.get_ylim())
        y = group.means[key].to_numpy(np.float64)
        err = _yerr(y, group.ci_low[key].to_numpy(np.float64), group.ci_high[key].to_numpy(np.float64))
        ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
        front = pareto_front(x, y)
        pts = ax.transData.transform(np.column_stack([np.where(ok, x, 1.0), np.where(ok, y, 0.0)]))
        pts[~ok] = np.nan
        shift = _spread_markers(pts, front, _MARKER_PT * px_per_pt)
        spread_any |= bool(np.any(shift != 0))
        drawn = pts + np.column_stack([shift, np.zeros(len(shift))])
        x_drawn = np.where(ok, ax.transData.inverted().transform(np.where(ok[:, None], drawn, 1.0))[:, 0], np.nan)
        for i, label in enumerate(group.labels):
            if not ok[i]:
                continue
            st = styles[label]
            # Pareto-optimal markers on top: where markers still touch, the best models stay whole
            ax.errorbar(x_drawn[i], y[i], yerr=err[:, [i]], **st.line_look(0.6), markersize=_MARKER_PT,
                        markeredgecolor="black" if front[i] else st.color,
                        markeredgewidth=0.8 if front[i] else 0.6, linestyle="", elinewidth=0.6, capsize=1.2,
                        zorder=4 if front[i] else 3, alpha=0.9)
        lines = [(x_drawn[i], lo, x_drawn[i], hi)
                 for i, (lo, hi) in enumerate(zip(group.ci_low[key], group.ci_high[key])) if ok[i]]  # error bars
        if front.any():
            xs, ys = _front_steps(x[front], y[front])
            lines += [(xs[j], ys[j], xs[j + 1], ys[j + 1]) for j in range(len(xs) - 1)]
        segments = [tuple(ax.transData.transform([(x0, y0), (x1, y1)]).ravel()) for x0, y0, x1, y1 in lines]
        place_labels(ax, drawn, list(group.labels), segments_px=segments)
    caption = (f"{group.title}: {' and '.join(keys)} against single-session latency p50 (ms, log scale; one "
               f"prefix at a time); error bars: 95% bootstrap CI over test sessions. The dashed line joins the "
               f"Pareto-optimal models (no other model is both faster and more accurate); their markers have "
               f"black edges."
               + (" Markers that would cover each other are moved slightly apart sideways." if spread_any else ""))
    return Drawn(fig, caption)


#: marker size (pt) of the accuracy-latency points
_MARKER_PT = 4.5


def _spread_markers(points_px: np.ndarray, first: np.ndarray, min_gap_px: float) -> np.ndarray:
    """Sideways shifts (display pixels, one per point) that keep markers from
    covering each other: models of about the same latency and accuracy
    (markov, ar, sr and itemknn on the synthetic data) would otherwise hide
    all but one of their markers.

    Points are taken in order: those of ``first`` (the Pareto front, which
    keep their place), then by decreasing y. A point whose marker would
    overlap one already placed (centres less than ``min_gap_px`` apart in both
    x and y) is moved sideways by the least that clears them all (right
    before left on a tie), so markers end up just touching; NaN points are
    left alone. Deterministic.
    """
    shift = np.zeros(len(points_px))
    finite = np.isfinite(points_px).all(axis=1)
    order = sorted(np.flatnonzero(finite), key=lambda i: (not first[i], -points_px[i][1], points_px[i][0], i))
    placed: list[tuple[float, float]] = []
    for i in order:
        x, y = points_px[i]
        near = [px for px, py in placed if abs(y - py) < min_gap_px]
        # the marker clears a placed one when it sits at least a gap to its left or right
        candidates = sorted([0.0] + [px + side * min_gap_px - x for px in near for side in (1, -1)],
                            key=lambda d: (abs(d), d < 0))
        best = next(d for d in candidates if all(abs(x + d - px) >= min_gap_px - 1e-6 for px in near))
        shift[i] = best
        placed.append((x + best, y))
    return shift


def _front_steps(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Pareto front's points, by latency, joined by steps (across, then up or down): the
    vertices of the dashed line, so that labels can avoid its segments."""
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    step_x = np.repeat(xs, 2)[1:]
    step_y = np.repeat(ys, 2)[:-1]
    return step_x, step_y


def plain_number(value: float) -> str:
    """A tick label without exponent: ``0.5``, ``20``, ``5000``, and from
    10,000 on in thousands (``14k``, ``200k``) or millions (``1.5M``), so that
    labels stay short at the figures' 7 pt."""
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def _log_ticks(vmin: float, vmax: float, room: int) -> np.ndarray:
    """Tick positions of a log axis over [vmin, vmax] with room for ``room``
    labels: 1, 2 and 5 per decade, or 1 and 3, or 1, whichever is the
    densest that fits; linear ticks when fewer than two of those are in view
    (data spanning less than about a decade), and every few decades when
    even one per decade does not fit."""
    from matplotlib.ticker import LogLocator, MaxNLocator

    lo, hi = min(vmin, vmax), max(vmin, vmax)
    for subs in ((1.0, 2.0, 5.0), (1.0, 3.0), (1.0,)):
        ticks = LogLocator(base=10, subs=subs, numticks=1000).tick_values(lo, hi)
        shown = int(((ticks >= lo) & (ticks <= hi)).sum())
        if shown < 2:
            return MaxNLocator(nbins=max(room - 1, 1), steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
        if shown <= room:
            return ticks
    return LogLocator(base=10, subs=(1.0,), numticks=max(room, 2)).tick_values(lo, hi)


def log_axis(ax) -> None:
    """Log-scale x axis labelled with plain numbers (:func:`plain_number`),
    some room at both ends, with as many ticks as the axis has room for
    (:func:`_log_ticks`). A bare ``set_xscale("log")`` labels an axis
    spanning less than a decade 1.4x10^4, 1.6x10^4, ...: overlapping labels
    whose exponents are below the figures' 7 pt."""
    from matplotlib.ticker import FuncFormatter, Locator, NullFormatter

    class PlainLogLocator(Locator):
        def __call__(self):
            return self.tick_values(*self.axis.get_view_interval())

        def tick_values(self, vmin, vmax):
            # get_tick_space: labels that fit the axis, each taken as three font sizes wide
            return _log_ticks(vmin, vmax, max(2, self.axis.get_tick_space()))

    ax.set_xscale("log")
    ax.margins(x=0.15, y=0.12)
    ax.xaxis.set_major_locator(PlainLogLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: plain_number(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _plot_prefix_length(group: Group, styles: dict[str, Style], width: float, warn: Warn) -> Drawn | None:
    counts = group.bin_counts.to_numpy()
    keep = np.flatnonzero(counts > 0)
    if not len(keep):
        return None
    n = len(group.labels)
    fig = _new_figure(width, 1.9 + 0.16 * _legend_rows(group.labels, width) + 0.1)
    ax = fig.subplots()
    xs = np.arange(len(keep))
    dodge = np.linspace(-0.28, 0.28, n) if n > 1 else np.zeros(1)
    for i, label in enumerate(group.labels):
        st = styles[label]
        mean = group.bin_means.loc[label].to_numpy(np.float64)[keep]
        err = _yerr(mean, group.bin_low.loc[label].to_numpy(np.float64)[keep],
                    group.bin_high.loc[label].to_numpy(np.float64)[keep])
        ok = np.isfinite(mean)
        ax.errorbar(xs[ok] + dodge[i], mean[ok], yerr=err[:, ok], **st.line_look(0.8), markersize=3, linewidth=0.8,
                    elinewidth=0.5, capsize=0.8)
    names = group.bin_counts.index[keep]
    ax.set_xticks(xs, [f"{name}\n{int(c):,}" for name, c in zip(names, counts[keep])])
    ax.set_xlabel("prefix length (items seen), cases per bin")
    key = metric_key("HitRate", LIST_K)
    ax.set_ylabel(key)
    # the axis spans the data and its CIs (with a margin), not 0..1: from zero, models
    # within a few points of each other would share one band of the plot
    ax.margins(y=0.08)
    _legend(fig, group.labels, styles, width, kind="line")
    empty = [str(b) for b, c in zip(group.bin_counts.index, counts) if c == 0]
    note = f" Empty bins ({', '.join(empty)}) are left out." if empty else ""
    if ax.get_ylim()[0] > 0:
        note += " The vertical axis does not start at zero."
    caption = (f"{group.title}: {key} by prefix length (the number of items the model has seen), means over "
               f"seeds with 95% bootstrap CIs over test sessions; under each bin, its number of evaluation "
               f"cases.{note}")
    return Drawn(fig, caption)


_PHASE_STYLE = {"select": "-", "train": "-", "refit": "--"}


def _curve_frame(label: str, frames: list[pd.DataFrame], warn: Warn) -> pd.DataFrame | None:
    """The seeds' curves of one label, or None (with a warning) when malformed."""
    try:
        data = pd.concat(frames, ignore_index=True)
    except Exception as err:  # noqa: BLE001 - any unreadable curve is skipped, the report goes on
        warn(f"training_curves: {label}: curve not drawn ({err})")
        return None
    missing = [c for c in ("phase", "epoch", "loss") if c not in data.columns]
    if missing:
        warn(f"training_curves: {label}: curve not drawn (curve.csv has no {', '.join(missing)} column)")
        return None
    return data


def _plot_training_curves(group: Group, styles: dict[str, Style], width: float, warn: Warn) -> Drawn | None:
    from matplotlib.lines import Line2D

    data = {label: _curve_frame(label, group.curves[label], warn) for label in group.labels if label in group.curves}
    data = {label: d for label, d in data.items() if d is not None}
    if not data:
        return None
    vnames = sorted({c for d in data.values() for c in d.columns if c.startswith("valid_")})
    valid_name = vnames[0] if vnames else None
    has_valid = valid_name is not None and any(
        pd.to_numeric(d[valid_name], errors="coerce").notna().any() for d in data.values() if valid_name in d)
    cols = ["loss"] + ([valid_name] if has_valid else [])
    labels = list(data)
    phases_seen: list[str] = []
    fig, axes = _panels(len(cols), width, 1.6, _legend_rows(labels, width, extra=2))
    for label, frame in data.items():
        st = styles[label]
        n_seeds = len(group.curves[label])
        for phase in pd.unique(frame["phase"]):
            part = frame[frame["phase"] == phase]
            if phase not in phases_seen:
                phases_seen.append(phase)
            for ax, col in zip(axes, cols):
                if col not in part.columns:
                    continue
                values = pd.to_numeric(part[col], errors="coerce")
                stats = values.groupby(pd.to_numeric(part["epoch"], errors="coerce")).agg(["mean", "min", "max"])
                stats = stats.dropna()
                if stats.empty:
                    continue
                ax.plot(stats.index, stats["mean"], **st.line_look(0.9), markersize=3,
                        linestyle=_PHASE_STYLE.get(str(phase), ":"), linewidth=0.9)
                if n_seeds > 1:
                    ax.fill_between(stats.index, stats["min"], stats["max"], color=st.color, alpha=0.15, linewidth=0)
    axes[0].set_ylabel("training loss")
    if has_valid:
        axes[1].set_ylabel(f"validation {valid_name.removeprefix('valid_')}")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    extra = [Line2D([], [], color="0.3", linestyle=_PHASE_STYLE.get(str(p), ":"), linewidth=0.9, label=str(p))
             for p in phases_seen]
    _legend(fig, labels, styles, width, kind="line", extra=extra)
    if has_valid:
        drawn = f"training loss per epoch (mean per batch) and validation {valid_name.removeprefix('valid_')}"
    elif "select" in phases_seen:
        drawn = "training loss per epoch (mean per batch; no validation scores were recorded)"
    else:  # no model selected its epochs on a validation split: nothing to draw there
        drawn = "training loss per epoch (mean per batch; no validation scores: no model stopped early)"
    phases = "; ".join(f"{p}: {_PHASE_MEANING.get(str(p), 'as recorded')}" for p in phases_seen)
    caption = (f"{group.title}: {drawn}, for the models trained by epoch (mean over seeds; band: min to max over "
               f"seeds). Line style: phase ({phases}).")
    return Drawn(fig, caption)


#: what each training phase is (see harness.models.plugin's training-curve format)
_PHASE_MEANING = {
    "train": "a fixed number of epochs on all of train",
    "select": "on the training part of train, scored on the validation split for early stopping",
    "refit": "retrained on all of train for the chosen number of epochs",
}


#: kind -> plotter(group, styles, width, warn) -> Drawn or None (nothing to draw)
_PLOTTERS = {
    "bars": _plot_bars,
    "metric_vs_k": _plot_metric_vs_k,
    "accuracy_latency": _plot_accuracy_latency,
    "prefix_length": _plot_prefix_length,
    "training_curves": _plot_training_curves,
}

"""Figures at print size: width, font sizes read back from the PDFs, Type 42 fonts, 300 dpi PNGs,
no titles, captions beside them, dropped panels and bins, label placement, robustness."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import report
from harness.errors import ConfigError
from harness.report import figures
from harness.models.testing import tiny_dataset
from report_fixtures import add_run, default_like_store, retrieval_rows

N_BOOT = 50


#: retrieval settings whose queries/s span less than a decade: a bare log axis labels them
#: 1.4x10^4, 1.6x10^4, ... with overlapping labels and 4.9 pt exponents
NARROW_QPS = {"exact": 1.40e4, "faiss-hnsw[efSearch=16]": 1.62e4, "faiss-hnsw[efSearch=32]": 1.55e4,
              "faiss-hnsw": 1.47e4, "annoy": 1.51e4}


@pytest.fixture(scope="module")
def column_report(tmp_path_factory):
    out = default_like_store(tmp_path_factory.mktemp("default-like"), seeds={"gru4rec": 2},
                             extra={"srgnn": {"retrieval": retrieval_rows(NARROW_QPS)}})
    return report.write_report(out, n_bootstrap=N_BOOT, figure_width="column")


def pdf_facts(path: Path) -> tuple[float, float, list[float]]:
    """(page width in inches, page height in inches, size in pt of every character drawn)."""
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTChar, LTContainer

    sizes: list[float] = []

    def walk(item) -> None:
        if isinstance(item, LTChar):
            if item.get_text().strip():
                # the glyph box spans the font size across the baseline's normal: its height for
                # horizontal text, its width for text rotated by 90 degrees (y-axis labels)
                a, b = item.matrix[0], item.matrix[1]
                sizes.append(item.width if abs(b) > abs(a) else item.height)
        elif isinstance(item, LTContainer):
            for child in item:
                walk(child)

    (page,) = list(extract_pages(str(path)))
    walk(page)
    return page.width / 72.0, page.height / 72.0, sizes


def png_size(path: Path) -> tuple[int, int]:
    with open(path, "rb") as fh:
        head = fh.read(24)
    return struct.unpack(">II", head[16:24])


def test_column_figures_fit_one_column_with_readable_fonts(column_report):
    pdfs = [p for p in column_report.figures if p.suffix == ".pdf"]
    kinds = {p.stem.split("_", 2)[-1] for p in pdfs if not p.stem.startswith("retrieval_")}
    assert kinds == set(report.FIGURE_KINDS)
    assert [p.stem for p in pdfs if p.stem.startswith("retrieval_")] == ["retrieval_tiny_next_srgnn"]
    for pdf in pdfs:
        width, height, sizes = pdf_facts(pdf)
        assert width <= 3.35, (pdf.name, width)
        assert sizes, pdf.name
        assert min(sizes) >= figures.MIN_FONT_PT - 0.05, (pdf.name, min(sizes))
        assert max(sizes) <= 9.05, (pdf.name, max(sizes))
        data = pdf.read_bytes()
        assert b"/Type3" not in data and (b"/TrueType" in data or b"/CIDFontType2" in data), pdf.name
        png = pdf.with_suffix(".png")
        w_px, _ = png_size(png)
        assert w_px == round(width * 300), (png.name, w_px)
        caption = pdf.with_suffix(".txt").read_text()
        assert caption.strip() and caption.count("\n") == 1


def test_text_width_and_inches(tmp_path):
    data = tiny_dataset(n_test=30, seed=0)
    for label in ("pop", "markov", "gru4rec"):
        add_run(tmp_path, data, label, 0, with_curve=label == "gru4rec")
    out = tmp_path
    for width, want in (("text", 7.0), ("4.5", 4.5)):
        summary = report.write_report(out, n_bootstrap=N_BOOT, figure_width=width)
        for pdf in (p for p in summary.figures if p.suffix == ".pdf"):
            w, _, sizes = pdf_facts(pdf)
            assert abs(w - want) < 0.01 and min(sizes) >= 6.95, (width, pdf.name, w)
    with pytest.raises(ConfigError, match="figure-width"):
        report.figure_width_inches("huge")
    # a width out of range names the option that set it
    with pytest.raises(ConfigError, match="^--column-width: expected a width between 2 and 20 inches, got 0$"):
        report.figure_width_inches("column", column_width=0)
    with pytest.raises(ConfigError, match="^--text-width: .* got 30$"):
        report.figure_width_inches("text", text_width=30)
    with pytest.raises(ConfigError, match="^--figure-width: .* got 1$"):
        report.figure_width_inches("1")


def test_figures_have_no_titles_and_drop_repeated_panels(tmp_path):
    import matplotlib

    out = default_like_store(tmp_path)
    results = report.collect(out, n_bootstrap=N_BOOT)
    group = results.groups[0]
    with matplotlib.rc_context(figures._RC):
        for kind, plot in figures._PLOTTERS.items():
            drawn = plot(group, results.styles, 3.3, print)
            if drawn is None:
                continue
            fig = drawn.figure
            assert fig._suptitle is None, kind
            assert all(ax.get_title() == "" for ax in fig.axes), kind
        bars = figures._plot_bars(group, results.styles, 3.3, print)
    # next-item protocol: one target per case, so Recall@K == HitRate@K and its panel is left out
    ylabels = [ax.get_ylabel() for ax in bars.figure.axes if ax.get_ylabel()]
    assert not any("Recall" in y for y in ylabels) and any("HitRate" in y for y in ylabels)
    assert "Recall equals HitRate" in bars.caption
    # when Recall differs, its panel is drawn
    group.means["Recall@10"] = group.means["HitRate@10"] * 0.5
    names, dropped = figures._shown_metrics(group, lambda n: [f"{n}@10"])
    assert "Recall" in names and not dropped


def test_empty_bins_and_missing_validation_are_left_out(tmp_path):
    import matplotlib

    data = tiny_dataset(n_test=40, seed=0)
    add_run(tmp_path, data, "gru4rec", 0, with_curve=True, valid_curve=False)  # patience 0: no validation
    add_run(tmp_path, data, "pop", 0)
    results = report.collect(tmp_path, n_bootstrap=N_BOOT)
    group = results.groups[0]
    with matplotlib.rc_context(figures._RC):
        curves = figures._plot_training_curves(group, results.styles, 3.3, print)
        prefix = figures._plot_prefix_length(group, results.styles, 3.3, print)
    assert len([ax for ax in curves.figure.axes if ax.get_ylabel()]) == 1
    assert "no validation" in curves.caption
    # the data may well have a validation split: the models trained a fixed number of epochs
    assert "no validation split" not in curves.caption and "no model stopped early" in curves.caption
    assert "phase (train: a fixed number of epochs on all of train)" in curves.caption  # only phases drawn
    counts = group.bin_counts
    ticks = [t.get_text() for t in prefix.figure.axes[0].get_xticklabels()]
    assert len(ticks) == int((counts > 0).sum())
    assert all(not t.endswith("\n0") for t in ticks)
    if (counts == 0).any():
        assert "Empty bins" in prefix.caption


def test_a_plugin_sharing_a_built_in_colour_gets_other_bars(tmp_path):
    import matplotlib
    from matplotlib.colors import to_hex

    data = tiny_dataset(n_test=30, seed=0)
    for label in ("pop", "repeat"):  # "repeat" hashes to pop's colour, black
        add_run(tmp_path, data, label, 0)
    results = report.collect(tmp_path, n_bootstrap=N_BOOT)
    with matplotlib.rc_context(figures._RC):
        bars = figures._plot_bars(results.groups[0], results.styles, 3.3, print)
    faces = {to_hex(c.patches[0].get_facecolor()) for ax in bars.figure.axes for c in ax.containers
             if hasattr(c, "patches")}
    assert faces == {"#000000", "#a6a6a6"}  # pop solid black; repeat an open (tinted) bar
    legend = bars.figure.legends[0] if bars.figure.legends else bars.figure.axes[-1].get_legend()
    assert {to_hex(h.get_facecolor()) for h in legend.get_patches()} == faces


def test_a_light_colour_is_outlined_as_a_line_and_in_the_legend(tmp_path):
    # spop's Okabe-Ito yellow (#F0E442) alone was a faint line on white paper
    import matplotlib
    from matplotlib.colors import to_hex

    from harness.report.styles import LIGHT_LINE_OUTLINE, style_of

    assert style_of("spop").light and not any(style_of(m).light for m in ("pop", "srgnn", "gru4rec", "sknn"))
    data = tiny_dataset(n_test=30, seed=0)
    for label in ("pop", "spop"):
        add_run(tmp_path, data, label, 0)
    results = report.collect(tmp_path, n_bootstrap=N_BOOT)
    with matplotlib.rc_context(figures._RC):
        drawn = figures._plot_metric_vs_k(results.groups[0], results.styles, 3.3, print)
    lines = [line for ax in drawn.figure.axes for line in ax.get_lines()]
    outlined = {to_hex(line.get_color()): bool(line.get_path_effects()) for line in lines}
    assert outlined == {"#000000": False, "#f0e442": True}
    stroke = next(line for line in lines if line.get_path_effects()).get_path_effects()[0]
    assert to_hex(stroke._gc["foreground"]) == to_hex(LIGHT_LINE_OUTLINE)
    legend = drawn.figure.legends[0] if drawn.figure.legends else drawn.figure.axes[-1].get_legend()
    assert [bool(h.get_path_effects()) for h in legend.legend_handles] == [False, True]


@pytest.mark.parametrize("n_labels", [5, 6, 7, 12])
def test_a_legend_of_several_columns_reads_row_by_row(n_labels):
    import matplotlib

    from harness.report.styles import model_styles

    labels = [f"m{i}" for i in range(n_labels)]
    with matplotlib.rc_context(figures._RC):
        fig = figures._new_figure(3.3, 2.0)
        fig.subplots()
        figures._legend(fig, labels, model_styles(labels), 1.4)  # narrow: several rows
        fig.canvas.draw()
        texts = fig.legends[0].get_texts()
        assert 1 < fig.legends[0]._ncols < n_labels
        boxes = {t.get_text(): t.get_window_extent() for t in texts}
    # top to bottom, then left to right, is the order given
    reading = sorted(labels, key=lambda label: (-round(boxes[label].y0), boxes[label].x0))
    assert reading == labels


def test_labels_do_not_cross_the_pareto_line_or_error_bars():
    import matplotlib

    with matplotlib.rc_context(figures._RC):
        fig = figures._new_figure(3.3, 2.3)
        ax = fig.subplots()
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        fig.canvas.draw()
        point = ax.transData.transform([(0.3, 0.5)])
        # a front leaving the point to the right (where a label goes first) and an error bar through it
        lines = [(0.3, 0.5, 0.9, 0.5), (0.3, 0.35, 0.3, 0.65)]
        segments = [tuple(ax.transData.transform([(a, b), (c, d)]).ravel()) for a, b, c, d in lines]
        (ann,) = figures.place_labels(ax, point, ["itemknn"], segments_px=segments)
        (free,) = figures.place_labels(ax, ax.transData.transform([(0.3, 0.2)]), ["pop"])
        fig.canvas.draw()
        box = ann.get_window_extent()
        for x0, y0, x1, y1 in segments:
            crosses = box.x0 < max(x0, x1) and min(x0, x1) < box.x1 and box.y0 < max(y0, y1) and min(y0, y1) < box.y1
            assert not crosses, (box, (x0, y0, x1, y1))
        assert free.get_position() == (4.0, 0.0)  # with nothing in the way: right of its point, as before


def test_labels_are_placed_without_overlap():
    import matplotlib
    from matplotlib.text import Text

    with matplotlib.rc_context(figures._RC):
        fig = figures._new_figure(3.3, 2.3)
        ax = fig.subplots()
        rng = np.random.default_rng(0)
        x = np.concatenate([rng.uniform(0.5, 0.6, 8), rng.uniform(0.1, 0.9, 4)])
        y = np.concatenate([rng.uniform(0.85, 0.9, 8), rng.uniform(0.2, 0.8, 4)])
        ax.scatter(x, y)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        fig.canvas.draw()
        fig.set_layout_engine("none")
        labels = ["pop", "spop", "markov", "ar", "sr", "itemknn", "sknn", "vsknn", "stan", "vstan", "gru4rec",
                  "srgnn"]
        anns = figures.place_labels(ax, ax.transData.transform(np.column_stack([x, y])), labels)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        # the text's own box (an Annotation's extent also covers its leader line)
        boxes = [Text.get_window_extent(a, renderer) for a in anns]
        again = figures.place_labels(ax, ax.transData.transform(np.column_stack([x, y])), labels)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (labels[i], labels[j])
    # deterministic: the same offsets every time
    assert [a.xyann for a in anns] == [a.xyann for a in again]


def test_malformed_curve_and_failing_figure_cost_only_themselves(tmp_path, monkeypatch):
    data = tiny_dataset(n_test=40, seed=0)
    add_run(tmp_path, data, "pop", 0)
    rid = add_run(tmp_path, data, "gru4rec", 0, with_curve=True)
    # a curve without a phase column, stored with valid checksums (as a plugin might write it)
    from harness.run.store import read_manifest, write_run

    man = read_manifest(tmp_path / "runs" / rid)
    rows = [{"epoch": e, "loss": 1.0 / e} for e in range(1, 4)]
    from harness.evaluation.evaluate import EvaluationResult

    ev = EvaluationResult.load(tmp_path / "runs" / rid / "ranks.parquet")
    write_run(tmp_path, {k: v for k, v in man.items() if k != "files"}, evaluation=ev, curve=rows)

    def broken(*args, **kwargs):
        raise RuntimeError("cannot draw this")

    monkeypatch.setitem(figures._PLOTTERS, "metric_vs_k", broken)
    summary = report.write_report(tmp_path, n_bootstrap=N_BOOT)
    warnings = summary.warnings
    assert any("training_curves" in w and "gru4rec" in w and "phase" in w for w in warnings), warnings
    assert any("metric_vs_k" in w and "cannot draw this" in w for w in warnings), warnings
    assert all("\n" not in w for w in warnings)
    names = {p.name for p in summary.figures}
    assert "tiny_next_bars.pdf" in names and "tiny_next_metric_vs_k.pdf" not in names
    assert not (summary.path / "figures" / "tiny_next_metric_vs_k.png").exists()
    assert (summary.path / "tables" / "tiny_next.tex").is_file()
    assert "cannot draw this" in summary.summary_path.read_text()


def test_stale_temporary_report_folders_are_removed(tmp_path):
    data = tiny_dataset(n_test=30, seed=0)
    add_run(tmp_path, data, "pop", 0)
    # a pid that is certainly dead: a child that has exited
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = tmp_path / f".report.tmp-{dead}"
    (stale / "figures").mkdir(parents=True)
    alive = tmp_path / f".report.tmp-{os.getppid()}"  # a running process (pytest's parent)
    alive.mkdir()
    report.write_report(tmp_path, n_bootstrap=N_BOOT)
    assert not stale.exists() and alive.exists()
    assert (tmp_path / "report" / "summary.md").is_file()


def test_a_model_without_latency_is_named_not_dropped_silently(tmp_path):
    """A run without a single-session latency (a suite with latency: {samples: 0}) cannot be placed
    in the accuracy-latency figure: the report says so, per model, or for the whole figure."""
    from report_fixtures import timings

    data = tiny_dataset(n_test=30, seed=0)
    no_latency = {"latency_ms_p50": float("nan"), "latency_ms_p95": float("nan"), "latency_ms_p99": float("nan")}
    add_run(tmp_path, data, "pop", 0)
    add_run(tmp_path, data, "markov", 0, extra={"timings": {**timings("markov", 0), **no_latency}})
    summary = report.write_report(tmp_path, n_bootstrap=N_BOOT)
    assert "tiny_next_accuracy_latency.pdf" in {p.name for p in summary.figures}
    assert [w for w in summary.warnings if "accuracy_latency" in w] == [
        "tiny (next): accuracy_latency: markov: not drawn (no single-session latency p50)"]
    add_run(tmp_path, data, "pop", 0, extra={"timings": {**timings("pop", 0), **no_latency}})
    summary = report.write_report(tmp_path, n_bootstrap=N_BOOT)
    assert "tiny_next_accuracy_latency.pdf" not in {p.name for p in summary.figures}
    assert [w for w in summary.warnings if "accuracy_latency" in w] == [
        "tiny (next): accuracy_latency: not drawn (no model has a single-session latency p50)"]
    assert "accuracy_latency: not drawn" in summary.summary_path.read_text()


@pytest.mark.parametrize("qps", [NARROW_QPS, {"exact": 90.0, "faiss-ivf[nprobe=1]": 3.0e4, "annoy": 2.0e6}])
def test_retrieval_speed_axis_labels_are_plain_and_apart(qps):
    """The retrieval figure's log x axis uses the report's log-axis helper: tick labels without
    exponents that do not overlap, whether the speeds span less than a decade or several."""
    from types import SimpleNamespace

    import matplotlib

    from harness.report.retrieval import plot_retrieval, retrieval_frame

    run = SimpleNamespace(dataset="tiny", protocol="next", label="srgnn", seed=0,
                          manifest={"retrieval": retrieval_rows(qps)})
    frame = retrieval_frame([run])
    with matplotlib.rc_context(figures._RC):
        fig = plot_retrieval(frame, 3.3)
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        labels = [t for t, v in zip(ax.get_xticklabels(), ax.get_xticks()) if lo <= v <= hi and t.get_text()]
        assert len(labels) >= 2, [t.get_text() for t in labels]
        assert all("$" not in t.get_text() and "e+" not in t.get_text() for t in labels)
        boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
        assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), [t.get_text() for t in labels]


#: the accuracy-latency layout of the default suite's report (an audit's numbers): markov, ar, sr
#: and itemknn at one latency, sknn, vsknn, stan and vstan in a cluster, each CI about +-0.015
_DEFAULT_LAYOUT = {
    #          p50 ms  HitRate@20 MRR@20
    "pop": (0.0273, 0.5256, 0.1951), "spop": (0.0407, 0.5983, 0.3608), "markov": (0.1515, 0.8634, 0.6775),
    "ar": (0.1539, 0.8832, 0.5412), "sr": (0.1527, 0.8813, 0.6699), "itemknn": (0.1530, 0.7701, 0.5205),
    "sknn": (0.4821, 0.8498, 0.4099), "vsknn": (0.5127, 0.8747, 0.3932), "stan": (0.5644, 0.8705, 0.4594),
    "vstan": (0.5521, 0.8677, 0.4082), "gru4rec": (0.3015, 0.8874, 0.6746), "srgnn": (0.5979, 0.8827, 0.6464),
}


def _default_like_group():
    from types import SimpleNamespace

    import pandas as pd

    labels = list(_DEFAULT_LAYOUT)
    values = np.array([_DEFAULT_LAYOUT[label] for label in labels])
    means = pd.DataFrame({"latency_ms_p50": values[:, 0], "HitRate@20": values[:, 1], "MRR@20": values[:, 2]},
                         index=labels)
    ci = means[["HitRate@20", "MRR@20"]]
    return SimpleNamespace(labels=labels, title="synthetic (next)", means=means, ci_low=ci - 0.015,
                           ci_high=ci + 0.015)


@pytest.mark.parametrize("width", [3.3, 7.0])
def test_accuracy_latency_labels_and_markers_are_unambiguous(width):
    import matplotlib
    from matplotlib.text import Text

    from harness.report.styles import model_styles

    group = _default_like_group()
    with matplotlib.rc_context(figures._RC):
        drawn = figures._plot_accuracy_latency(group, model_styles(group.labels), width, print)
        fig = drawn.figure
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        px_per_pt = fig.dpi / 72.0
        for ax in fig.axes:
            markers = {}  # drawing order -> (display position, zorder, black edge)
            for line in ax.get_lines():
                x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
                if len(x) != 1 or line.get_marker() in (None, "None", "none", "", "_"):
                    continue  # the front, the invisible limits line, error-bar caps
                markers[len(markers)] = (ax.transData.transform([(x[0], y[0])])[0], line.get_zorder(),
                                         line.get_markeredgecolor() == "black")
            anns = [t for t in ax.texts if t.get_text() in _DEFAULT_LAYOUT]
            assert [a.get_text() for a in anns] and len(markers) == len(group.labels)
            # the markers were drawn in label order: map them to their labels
            points = {label: markers[i][0] for i, label in enumerate(group.labels)}
            # Pareto-front markers (black edge) are drawn above the others
            front_z = {z for _, z, black in markers.values() if black}
            other_z = {z for _, z, black in markers.values() if not black}
            assert min(front_z) > max(other_z)
            # no marker hides another: centres at least a marker size apart in x or in y
            gap = figures._MARKER_PT * px_per_pt - 0.5
            pts = np.array(list(points.values()))
            for i in range(len(pts)):
                for j in range(i + 1, len(pts)):
                    assert max(abs(pts[i] - pts[j])) >= gap, (group.labels[i], group.labels[j])
            for ann in anns:
                box = Text.get_window_extent(ann, renderer)
                box = np.array([box.x0, box.y0, box.x1, box.y1])
                distance = {label: figures._box_distance(p, box) for label, p in points.items()}
                nearest = min(distance, key=distance.get)
                own = ann.get_text()
                if nearest != own:
                    # a leader line, long enough to see past the marker (its radius, then 2 pt of line)
                    assert ann.arrow_patch is not None, (width, own, nearest)
                    assert distance[own] > (figures._MARKER_PT / 2 + 2.0) * px_per_pt, (width, own, nearest)


def test_coinciding_markers_are_spread_by_the_least_that_separates_them():
    pts = np.array([[100.0, 100.0], [100.5, 101.0], [100.0, 200.0], [np.nan, np.nan], [130.0, 100.0]])
    front = np.array([False, True, False, False, False])
    shift = figures._spread_markers(pts, front, 10.0)
    # the front point keeps its place; the other one just clears it (to the left: the right side is
    # as near); points that are apart, and NaN, stay
    assert shift[1] == 0 and shift[0] == pytest.approx(-9.5) and shift[2] == 0 and shift[3] == 0
    assert shift[4] == 0


def test_bars_follow_the_tables_cut_offs(tmp_path):
    import matplotlib

    out = default_like_store(tmp_path)
    with matplotlib.rc_context(figures._RC):
        for table_ks, expected in ((None, (10, 20)), ([5, 20], (5, 20))):  # the two largest, or --ks
            results = report.collect(out, n_bootstrap=N_BOOT, ks=[1, 5, 10, 20], table_ks=table_ks)
            group = results.groups[0]
            assert group.table_ks == results.table_ks == expected
            bars = figures._plot_bars(group, results.styles, 3.3, print)
            ticks = [t.get_text() for t in bars.figure.axes[0].get_xticklabels()]
            assert ticks == [f"@{k}" for k in expected]
            assert f"K = {expected[0]} and {expected[1]} per model" in bars.caption
            assert f"mean over the {group.cases_phrase} and over seeds" in bars.caption
            assert group.cases_phrase.endswith(f" test cases of {group.n_sessions['pop']:,} sessions")


def test_k_curves_are_on_a_log_axis_marked_at_the_reports_cut_offs(tmp_path):
    import matplotlib

    out = default_like_store(tmp_path)
    results = report.collect(out, n_bootstrap=N_BOOT, ks=[1, 5, 10, 20])
    with matplotlib.rc_context(figures._RC):
        curves = figures._plot_metric_vs_k(results.groups[0], results.styles, 3.3, print)
    panels = [ax for ax in curves.figure.axes if ax.get_lines()]
    assert panels
    for ax in panels:
        assert ax.get_xscale() == "log"
        assert list(ax.get_xticks()) == [1, 5, 10, 20, 50]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "5", "10", "20", "50"]
    assert "markers at K = 1, 5, 10, 20, 50" in curves.caption


def test_prefix_length_axis_is_not_forced_to_zero(tmp_path):
    import matplotlib

    out = default_like_store(tmp_path)
    results = report.collect(out, n_bootstrap=N_BOOT)
    group = results.groups[0]
    group.bin_means = group.bin_means * 0 + 0.85  # every model between 0.8 and 0.9, as on the synthetic data
    group.bin_low, group.bin_high = group.bin_means - 0.03, group.bin_means + 0.03
    with matplotlib.rc_context(figures._RC):
        drawn = figures._plot_prefix_length(group, results.styles, 3.3, print)
    low, high = drawn.figure.axes[0].get_ylim()
    assert 0.7 < low < 0.82 and 0.88 < high < 1.0
    assert "does not start at zero" in drawn.caption


@pytest.mark.parametrize("width", [3.16, 3.3, 7.0])
def test_no_text_of_any_figure_falls_outside_it(tmp_path, width):
    """A label cut at the figure's edge is invisible to LaTeX (the PDF has
    the right width): every text of every figure lies inside the figure, at
    the plain article's column (3.16 in), the default column and text width."""
    import matplotlib
    import matplotlib.pyplot as plt

    out = default_like_store(tmp_path)
    results = report.collect(out, n_bootstrap=N_BOOT)
    (group,) = results.groups
    with matplotlib.rc_context(figures._RC):
        for kind, plot in figures._PLOTTERS.items():
            drawn = plot(group, results.styles, width, print)
            if drawn is None:
                continue
            fig = drawn.figure
            fig.canvas.draw()
            # the extent of everything drawn (ticks outside the view are not), in inches
            ink = fig.get_tightbbox(fig.canvas.get_renderer())
            size = fig.get_size_inches()
            assert ink.x0 >= -0.01 and ink.x1 <= size[0] + 0.01, (kind, width, ink)
            assert ink.y0 >= -0.01 and ink.y1 <= size[1] + 0.01, (kind, width, ink)
            plt.close(fig)

"""Reports from a hand-built results store (no runner): files, values, bold, tests, CIs, colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harness import report
from harness.report import figures
from harness.report.collection import default_table_ks
from harness.evaluation.evaluate import evaluate
from harness.evaluation.metrics import RANK_METRICS
from harness.run.store import iter_runs, write_run
from harness.models.testing import tiny_dataset

KS = (5, 10, 20, 50)
N_BOOT = 200
DATASETS = {"tiny-a": 0, "tiny-b": 1}
LABELS = ("pop", "markov", "my-random")
SEEDS = (1, 2)


class FakeModel:
    """Scores from training counts: popularity, transitions, or noise; the seed adds a little noise."""

    def __init__(self, kind: str, data, seed: int) -> None:
        self.name = kind
        n = data.n_items
        counts = np.bincount(data.train.events["item"].to_numpy(), minlength=n + 1).astype(np.float64)
        trans = np.zeros((n + 1, n + 1))
        for sess in data.train.sessions():
            np.add.at(trans, (sess[:-1], sess[1:]), 1.0)
        rng = np.random.default_rng(seed)
        self.kind = kind
        self.pop = torch.tensor(counts / counts.max())
        self.trans = torch.tensor(trans)
        self.noise = torch.tensor(rng.normal(scale=0.05, size=n + 1))
        self.random = torch.tensor(rng.random((1000, n + 1)))

    def score(self, batch) -> torch.Tensor:
        last = batch.items.gather(1, (batch.lengths - 1).clamp(min=0)[:, None]).squeeze(1)
        if self.kind == "pop":
            return (self.pop + self.noise).expand(len(last), -1).clone()
        if self.kind == "markov":
            return self.trans[last] + 0.01 * self.pop + 0.001 * self.noise
        # random scores, fixed per last item so that scoring is deterministic
        return self.random[last]


def _curve(seed: int) -> list[dict]:
    rows = [{"phase": "select", "epoch": e, "loss": 2.0 / e + 0.01 * seed, "valid_MRR@20": 0.1 + 0.02 * e,
             "seconds": 0.5} for e in range(1, 5)]
    rows += [{"phase": "refit", "epoch": e, "loss": 1.9 / e, "valid_MRR@20": None, "seconds": 0.6}
             for e in range(1, 4)]
    return rows


def _timings(label: str, seed: int) -> dict:
    base = {"pop": 0.02, "markov": 0.3, "my-random": 1.5}[label]
    return {"fit_seconds": 10 * base + seed, "score_seconds": base, "prefixes_per_second": 1000 / base,
            "latency_ms_p50": base * (1 + 0.1 * seed), "latency_ms_p95": 2 * base, "latency_ms_p99": 3 * base,
            "peak_rss_mb": 100.0, "model_size": 40}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("suite")
    for dataset, data_seed in DATASETS.items():
        data = tiny_dataset(n_test=60, seed=data_seed)
        for label in LABELS:
            for seed in SEEDS:
                ev = evaluate(FakeModel(label, data, seed), data, ks=KS, batch_size=64)
                manifest = {
                    "run_id": f"{dataset}-{label}-{seed}", "status": "complete", "suite": "test",
                    "dataset": dataset, "model": label, "label": label, "params": {}, "seed": seed,
                    "protocol": "next", "ks": list(KS), "timings": _timings(label, seed),
                    "metrics": ev.metrics(), "trains_by_epoch": label == "markov",
                }
                write_run(out, manifest, evaluation=ev, curve=_curve(seed) if label == "markov" else None)
    write_run(out, {"run_id": "zz-failed", "status": "failed", "dataset": "tiny-a", "model": "boom",
                    "label": "boom", "seed": 1, "protocol": "next",
                    "error": "Traceback (most recent call last):\n  File x\nRuntimeError: out of patience\n"})
    return out


@pytest.fixture(scope="module")
def summary(store) -> report.ReportSummary:
    return report.write_report(store, n_bootstrap=N_BOOT, seed=0)


def _slug(dataset: str) -> str:
    return f"{dataset}_next"


def test_every_file_exists(summary, store):
    base = store / "report"
    assert summary.path == base and summary.summary_path == base / "summary.md"
    for dataset in DATASETS:
        for kind in report.FIGURE_KINDS:
            for ext in ("png", "pdf"):
                path = base / "figures" / f"{_slug(dataset)}_{kind}.{ext}"
                assert path.is_file() and path.stat().st_size > 1000, path
                assert path in summary.figures
        for ext in ("md", "tex", "csv"):
            assert (base / "tables" / f"{_slug(dataset)}.{ext}").is_file()
        assert (base / "tables" / f"{_slug(dataset)}_significance.csv").is_file()
    text = summary.summary_path.read_text()
    for path in summary.figures + summary.tables:
        assert path.name in text, f"summary.md does not list {path.name}"
    assert "zz-failed" in text and "RuntimeError: out of patience" in text
    assert summary.failed == (("zz-failed", "boom", "RuntimeError: out of patience"),)
    assert summary.n_runs == len(DATASETS) * len(LABELS) * len(SEEDS)
    assert not list(store.glob(".report*")), "temporary report folders left behind"


def test_pdf_fonts_are_truetype(summary):
    pdf = next(p for p in summary.figures if p.suffix == ".pdf").read_bytes()
    # Type 42: TrueType outlines embedded (FontFile2, as CIDFontType2 or TrueType), never Type 3
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf


def test_table_values_equal_metrics_from_stored_ranks(summary, store):
    runs = list(iter_runs(store))
    for dataset in DATASETS:
        table = pd.read_csv(store / "report" / "tables" / f"{_slug(dataset)}.csv", index_col="label")
        assert set(table.index) == set(LABELS)
        for label in LABELS:
            mine = [r for r in runs if r.dataset == dataset and r.label == label]
            assert len(mine) == len(SEEDS)
            expected = pd.DataFrame([r.evaluation.metrics(KS, names=list(RANK_METRICS) + ["Coverage", "Popularity"])
                                     for r in mine]).mean()
            for key, value in expected.items():
                if key in table.columns:
                    assert table.loc[label, key] == pytest.approx(value, rel=1e-9, abs=1e-12), (label, key)
            assert table.loc[label, "fit_seconds"] == pytest.approx(np.mean([r.timings["fit_seconds"] for r in mine]))
            for key in ("HitRate@20", "MRR@20", "NDCG@10", "Popularity@20"):
                assert table.loc[label, f"{key}_ci_low"] <= table.loc[label, key] <= table.loc[label, f"{key}_ci_high"]
        # the compact summary shows the same numbers
        assert f"{table.loc['markov', 'HitRate@20']:.4f}" in summary.text


def _latex_rows(tex: str) -> list[list[str]]:
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule", 1)[0]
    return [[c.strip() for c in line.rstrip("\\ ").split(" & ")] for line in body.strip().splitlines()]


def _latex_value(cell: str) -> str:
    """A table cell's printed number, without bold or dagger."""
    return cell.replace(r"\textbf{", "").replace("$^{\\dagger}$", "").replace("}", "").strip()


def test_latex_bold_is_on_the_best_value(store, summary):
    for dataset in DATASETS:
        table = pd.read_csv(store / "report" / "tables" / f"{_slug(dataset)}.csv", index_col="label")
        tex = (store / "report" / "tables" / f"{_slug(dataset)}.tex").read_text()
        assert r"\toprule" in tex and r"\bottomrule" in tex and r"\caption{" in tex and "Holm" in tex
        rows = _latex_rows(tex)
        labels = [r[0] for r in rows]
        assert labels == ["pop", "markov", "my-random"]  # fixed slots first, then the others
        cols = report.TableSpec(ks=default_table_ks(KS)).columns()
        assert len(rows[0]) == 1 + len(cols)
        for j, col in enumerate(cols, start=1):
            values = table.loc[labels, col.key].to_numpy()
            bold = [r"\textbf{" in row[j] for row in rows]
            direction = col.metric.direction if col.metric else col.timing.direction
            if direction == "neutral":
                assert not any(bold), col.key
                continue
            # the best is bold, and so is every cell that prints the same (timings may differ below print)
            best = int(values.argmax() if direction == "higher" else values.argmin())
            printed = [_latex_value(row[j]) for row in rows]
            assert bold == [p == printed[best] for p in printed], (dataset, col.key, values, bold)
        # a lower-is-better column: the fastest fit is bold, not the largest
        fit = [c.key for c in cols].index("fit_seconds") + 1
        assert r"\textbf{" in rows[labels.index("pop")][fit]


def test_significance_marks_follow_holm_adjusted_tests(store, summary):
    for dataset in DATASETS:
        sig = pd.read_csv(store / "report" / "tables" / f"{_slug(dataset)}_significance.csv")
        assert set(sig["metric"]) == {f"{n}@{k}" for n in RANK_METRICS for k in KS}
        for metric, block in sig.groupby("metric"):
            assert len(block) == len(LABELS) - 1
            assert np.allclose(block["p_holm"], report.holm(block["p"].to_numpy()))
            assert (block["significant"] == (block["p_holm"] < report.ALPHA)).all()
        hit = sig[sig["metric"] == "HitRate@20"].set_index("label")
        assert hit["best"].iloc[0] == "markov"
        assert hit.loc["my-random", "significant"]  # random scores are far worse than transitions
        assert hit.loc["my-random", "diff_ci_high"] < 0
        md = (store / "report" / "tables" / f"{_slug(dataset)}.md").read_text()
        means_table = md.split("95% percentile")[0]  # the CI table follows the means
        rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in means_table.splitlines()
                if line.startswith("| ") and not line.startswith("| model")}
        col = [c.key for c in report.TableSpec(ks=default_table_ks(KS)).columns()].index("HitRate@20")
        assert "†" in rows["my-random"][col] and "**" in rows["markov"][col]
        assert "paired t-test" in md and "Holm" in md


def test_holm_hand_example():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: .005*4 = .02, .01*3 = .03, .03*2 = .06, .04*1 = .04 -> running max .06
    np.testing.assert_allclose(report.holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(report.holm([0.01, np.nan, 0.04]), [0.02, np.nan, 0.04])
    np.testing.assert_allclose(report.holm([0.5, 0.6]), [1.0, 1.0])
    assert report.holm([]).shape == (0,)


def test_bootstrap_ci_contains_mean_and_narrows():
    rng = np.random.default_rng(3)
    small = rng.binomial(1, 0.3, size=200).astype(float)
    large = rng.binomial(1, 0.3, size=20_000).astype(float)
    m1, lo1, hi1 = report.bootstrap_ci(small, n_bootstrap=N_BOOT, seed=0)
    m2, lo2, hi2 = report.bootstrap_ci(large, n_bootstrap=N_BOOT, seed=0)
    assert lo1 <= m1 <= hi1 and lo2 <= m2 <= hi2
    assert (hi2 - lo2) < (hi1 - lo1) / 4  # ~ 1/sqrt(100) as wide
    # two seeds: the seed-level resampling widens the interval when seeds disagree
    seeds = np.stack([small, np.clip(small + (rng.random(200) < 0.3), 0, 1)])
    _, lo_s, hi_s = report.bootstrap_ci(seeds, n_bootstrap=N_BOOT, seed=0)
    assert lo_s <= seeds.mean() <= hi_s
    assert report.bootstrap_ci(small, n_bootstrap=N_BOOT, seed=5) == report.bootstrap_ci(
        small, n_bootstrap=N_BOOT, seed=5)


def test_paired_ttest_and_pareto():
    a = np.array([1.0, 0.0, 1.0, 1.0])
    assert report.paired_ttest(a, a) == (0.0, 1.0)
    front = report.pareto_front([1.0, 2.0, 3.0, 2.5, np.nan], [0.1, 0.3, 0.2, 0.4, 0.9])
    assert front.tolist() == [True, True, False, True, False]


def test_figures_use_each_labels_style(store):
    import matplotlib
    from matplotlib.colors import to_hex

    results = report.collect(store, n_bootstrap=20, seed=0)
    group = results.groups[0]
    with matplotlib.rc_context(figures._RC):
        bars = figures._plot_bars(group, results.styles, 3.3, print).figure
        lines = figures._plot_metric_vs_k(group, results.styles, 3.3, print).figure
    for label in LABELS:
        st = results.styles[label]
        bar_styles = {(to_hex(p.get_facecolor()), p.get_hatch() or "") for ax in bars.axes for p in ax.patches}
        line_colors = {to_hex(ln.get_color()) for ax in lines.axes for ln in ax.get_lines()}
        # the hatch may be repeated (denser) on narrow bars, but it is the label's own
        hatches = {st.hatch * k for k in range(1, 4)}
        assert any((to_hex(st.bar_look()["facecolor"]), h) in bar_styles for h in hatches)
        assert st.color.lower() in line_colors


def test_collect_is_deterministic(store):
    a = report.collect(store, n_bootstrap=50, seed=7)
    b = report.collect(store, n_bootstrap=50, seed=7)
    c = report.collect(store, n_bootstrap=50, seed=8)
    for ga, gb, gc in zip(a.groups, b.groups, c.groups):
        pd.testing.assert_frame_equal(ga.ci_low, gb.ci_low)
        pd.testing.assert_frame_equal(ga.significance, gb.significance)
        assert not ga.ci_low.equals(gc.ci_low)


def test_mismatched_cases_skip_the_tests(tmp_path):
    small, other = tiny_dataset(n_test=30, seed=0), tiny_dataset(n_test=30, seed=4)
    for label, data in (("pop", small), ("markov", other)):
        ev = evaluate(FakeModel(label, data, 1), data, ks=(10, 20))
        write_run(tmp_path, {"run_id": label, "status": "complete", "dataset": "d", "model": label, "label": label,
                             "seed": 1, "protocol": "next", "ks": [10, 20], "timings": {}}, evaluation=ev)
    out = report.write_report(tmp_path, n_bootstrap=20)
    sig = pd.read_csv(out.path / "tables" / "d_next_significance.csv")
    assert sig["note"].str.startswith("skipped").all() and not sig["significant"].any()
    assert any("case" in n for n in out.notes)
    assert "case" in out.summary_path.read_text()
    # no training curves and no latency: those figures are left out, the rest is written
    assert not (out.path / "figures" / "d_next_training_curves.png").exists()
    assert not (out.path / "figures" / "d_next_accuracy_latency.png").exists()
    md = out.summary_path.read_text()
    assert "d_next_accuracy_latency" not in md and "accuracy_latency: not drawn (no model has a single-session" in md


def test_empty_store(tmp_path):
    out = report.write_report(tmp_path)
    assert out.text == "no complete runs" and out.summary_path.is_file()


def test_a_cut_off_reaching_the_catalogue_size_is_noted(tmp_path):
    """On a catalogue of 40 items, HitRate@50 (a column of runs made with ks [20, 50]) is 1 for every
    model: the report says it is so by construction instead of showing a tie of perfect scores unexplained."""
    from harness.evaluation.evaluate import EvaluationResult
    from harness.run.store import read_manifest

    data = tiny_dataset(n_test=30, seed=0)
    for label in ("pop", "markov"):
        ev = evaluate(FakeModel(label, data, 1), data, ks=(20, 50))
        write_run(tmp_path, {"run_id": label, "status": "complete", "dataset": "d", "model": label, "label": label,
                             "seed": 1, "protocol": "next", "ks": [20, 50], "timings": {},
                             "dataset_stats": {"n_items": 40}}, evaluation=ev)
    out = report.write_report(tmp_path, n_bootstrap=20)
    (note,) = [n for n in out.notes if "catalogue" in n]
    assert note.startswith("d (next): K = 50 reaches the 40 items of the catalogue")
    assert "by construction" in (out.path / "tables" / "d_next.md").read_text()
    for label in ("pop", "markov"):  # no note where every K stays below the catalogue size
        manifest = read_manifest(tmp_path / "runs" / label)
        write_run(tmp_path, {**{k: v for k, v in manifest.items() if k != "files"},
                             "dataset_stats": {"n_items": 400}},
                  evaluation=EvaluationResult.load(tmp_path / "runs" / label / "ranks.parquet"))
    assert not [n for n in report.write_report(tmp_path, n_bootstrap=20).notes if "catalogue" in n]

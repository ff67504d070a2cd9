"""sessionbench against an independent brute-force reference (tests/brute_reference.py).

The reference is written from docs/datasets.md and docs/metrics.md only:
pandas preprocessing from the raw files, ranks by counting each case's
scores, metrics by their formulas, statistics with scipy. Three layers:

1. the prepared splits and every evaluation case of the real samples and of
   synthetic logs;
2. ranks, top lists and metrics of stored runs (``run_suite``, both
   protocols, with and without ``exclude_seen``) recomputed from each fitted
   model's raw score matrix;
3. the report's CSV, Markdown table (bold best, daggers), significance
   tests and one confidence interval, recomputed from those ranks.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from brute_reference import (
    UNRANKED, case_metric, cases, distinct, mean_metrics, presplit_reference, ranks_of_case, ranks_of_case_fast,
    srgnn_reference, standard_reference,
)
from data_paths import DIGINETICA_SAMPLE, YOOCHOOSE_100K, require_data

from harness.data import preprocess as pp
from harness.evaluation import metrics as M
from harness.data.dataset import SessionDataset, SessionSplit
from harness.evaluation.evaluate import EvaluationResult, evaluate

DAY = 86400

# --------------------------------------------------------------------------- #
# 1. splits and evaluation cases
# --------------------------------------------------------------------------- #


def _sessions(split: SessionSplit) -> list[tuple[int, list[int]]]:
    return [(int(s), items.tolist()) for s, items in zip(split.session_ids, split.sessions())]


def _assert_same_data(data: SessionDataset, ref: dict) -> None:
    """Item map, all four splits session by session, and every test and
    valid case: the prefix a model is handed, its target, its remaining items."""
    assert list(data.item_map.items()) == [(str(k), v) for k, v in ref["items"].items()]
    assert data.n_items == len(ref["items"])
    for name in ("train", "train_tr", "valid", "test"):
        assert _sessions(data.split(name)) == ref[name], name
    for name in ("test", "valid"):
        pc = data.prefixes(name)
        every = np.arange(len(pc))
        batch = pc.batch(every)
        nxt, rest = pc.next_items(every).numpy(), pc.remaining_items(every).numpy()
        items, lengths, times = batch.items.numpy(), batch.lengths.numpy(), batch.times.numpy()
        expected = cases(ref[name])
        assert len(pc) == len(expected)
        assert pc.session_ids.tolist() == [c[0] for c in expected]
        assert lengths.tolist() == [c[1] for c in expected]
        assert [row[:t].tolist() for row, t in zip(items, lengths)] == [c[2] for c in expected]
        assert nxt.tolist() == [c[3] for c in expected]
        assert [r[r > 0].tolist() for r in rest] == [c[4] for c in expected]
        # nothing at or after the target position reaches the model
        assert all(not row[t:].any() and np.isnan(tr[t:]).all() for row, tr, t in zip(items, times, lengths))


def _no_session_leaks(data: SessionDataset) -> None:
    train = set(data.train.session_ids.tolist())
    assert not train & set(data.test.session_ids.tolist())
    assert not set(data.train_tr.session_ids.tolist()) & set(data.valid.session_ids.tolist())


def test_diginetica_sample_splits_equal_the_pandas_reference():
    folder = require_data("diginetica-sample")
    from harness.data.specs import load_dataset

    data = load_dataset("diginetica-sample", data_dir=folder)
    ref = srgnn_reference(DIGINETICA_SAMPLE, test_days=7, valid_days=7)
    # the published figures of the SR-GNN preprocessing of this file
    assert (len(ref["train"]), len(ref["test"]), len(ref["items"]), len(cases(ref["test"]))) == (469, 39, 309, 99)
    _assert_same_data(data, ref)
    _no_session_leaks(data)
    # the date boundary: train dated before it, test after, none on it
    dates = ref["dates"]
    assert max(dates[s] for s, _ in ref["train"]) < ref["split_date"] < min(dates[s] for s, _ in ref["test"])
    assert pd.Timestamp(data.meta["test_split"]["time"]).timestamp() == ref["split_date"]
    assert pd.Timestamp(data.meta["valid_split"]["time"]).timestamp() == ref["valid_date"]


def test_yoochoose_100k_splits_equal_the_pandas_reference(yoochoose_100k):
    files = {}
    for role, stem in [("train", "train_full"), ("test", "test"), ("train_tr", "train_tr"), ("valid", "train_valid")]:
        raw = pd.read_csv(YOOCHOOSE_100K / f"yoochoose-clicks-100k_{stem}.txt", sep="\t", dtype={"ItemId": str})
        files[role] = pd.DataFrame({"session": raw["SessionId"], "item": raw["ItemId"], "time": raw["Time"]})
    ref = presplit_reference(files)
    # the sample's published figures
    assert (len(ref["train"]), len(ref["items"]), len(ref["test"]), len(cases(ref["test"]))) == (
        17_794, 2_933, 3_416, 10_152)
    _assert_same_data(yoochoose_100k, ref)
    _no_session_leaks(yoochoose_100k)
    assert files["test"]["time"].min() > files["train"]["time"].max()  # no test click precedes a train click


@pytest.mark.parametrize("iterations", [1, 4])
def test_standard_splits_equal_the_pandas_reference_on_generated_logs(iterations):
    from harness.data.synthetic import generate_events

    events, _ = generate_events(n_sessions=1_500, n_items=300, seed=11, days=12)
    events = pd.DataFrame({"session": events["session"], "item": events["item"].astype(str), "time": events["time"]})
    config = pp.StandardConfig(test_days=2, valid_days=2, min_item_support=5, filter_iterations=iterations)
    data = pp.prepare_standard(events, config, name="g", source="generated")
    ref = standard_reference(events, test_days=2, valid_days=2, min_length=2, min_support=5, iterations=iterations)
    _assert_same_data(data, ref)
    _no_session_leaks(data)
    bounds = ref["bounds"]
    assert max(bounds[s][1] for s, _ in ref["train"]) <= ref["split_time"] < min(bounds[s][0] for s, _ in ref["test"])


def test_standard_split_boundaries_by_hand():
    """Split time t = latest event - 1 day. A session ending exactly at t is
    train; one starting exactly at t straddles it (test needs start > t) and
    is dropped, as is one across t; only sessions starting after t are test."""
    t0 = 1_700_000_000.0
    latest = t0 + 10 * DAY
    t = latest - DAY
    rows = [
        (1, "a", t0), (1, "b", t0 + 60),  # early train
        (2, "a", t - 100), (2, "b", t),  # ends exactly at t: train
        (3, "a", t), (3, "b", t + 50),  # starts exactly at t: dropped
        (4, "a", t - 50), (4, "b", t + 10),  # across t: dropped
        (5, "b", t + 1), (5, "a", latest),  # test
    ]
    events = pd.DataFrame(rows, columns=["session", "item", "time"])
    config = pp.StandardConfig(test_days=1, valid_days=1, min_item_support=1)
    data = pp.prepare_standard(events, config, name="h", source="hand")
    ref = standard_reference(events, test_days=1, valid_days=1, min_length=2, min_support=1, iterations=1)
    assert [s for s, _ in ref["train"]] == [1, 2] and [s for s, _ in ref["test"]] == [5]
    assert ref["items"] == {"a": 1, "b": 2}
    assert _sessions(data.train) == [(1, [1, 2]), (2, [1, 2])] and _sessions(data.test) == [(5, [2, 1])]
    assert data.meta["dropped"]["straddling_test_split"] == 2


# --------------------------------------------------------------------------- #
# 2a. ranks, top lists and metrics on synthetic score matrices
# --------------------------------------------------------------------------- #


def _top_reference(row: np.ndarray, k: int, excluded: set[int]) -> list[int]:
    """Items 1..N not excluded, by score descending then id ascending (NaN as
    -inf), padded with 0 to min(k, N)."""
    s = np.where(np.isnan(row), -np.inf, row.astype(np.float64))
    ids = np.arange(1, len(row), dtype=np.int64)
    ids = ids[~np.isin(ids, list(excluded))]
    order = ids[np.lexsort((ids, -s[ids]))][:k].tolist() if len(ids) else []
    return order + [0] * (min(k, len(row) - 1) - len(order))


def test_ranks_and_top_lists_equal_counting_on_tied_scores():
    """Few distinct score levels (ties everywhere), NaN, +-inf, padding and
    repeated targets, excluded items; float16/32/64."""
    rng = np.random.default_rng(0)
    for trial in range(120):
        n_rows, n_items = int(rng.integers(1, 5)), int(rng.choice([1, 2, 5, 13, 40, 300]))
        dtype = rng.choice([np.float16, np.float32, np.float64])
        scores = rng.integers(0, int(rng.integers(1, 5)), (n_rows, n_items + 1)).astype(dtype)
        if trial % 3 == 0:
            scores[rng.random(scores.shape) < 0.2] = np.nan
        if trial % 4 == 0:
            scores[rng.random(scores.shape) < 0.2] = -np.inf
        if trial % 5 == 0:
            scores[rng.random(scores.shape) < 0.1] = np.inf
        targets = rng.integers(0, n_items + 1, (n_rows, int(rng.integers(1, 8))))
        exclude = rng.integers(0, n_items + 1, (n_rows, int(rng.integers(1, 5)))) if trial % 2 else None
        ex_t = None if exclude is None else torch.from_numpy(exclude)
        got = M.target_ranks(torch.from_numpy(scores), torch.from_numpy(targets), exclude=ex_t).numpy()
        k = int(rng.integers(1, 30))
        top = M.top_items(torch.from_numpy(scores), k, exclude=ex_t).numpy()
        for b in range(n_rows):
            excluded = set() if exclude is None else set(exclude[b].tolist()) - {0}
            real = distinct([t for t in targets[b].tolist() if t])
            want = dict(zip(real, ranks_of_case(scores[b], real, excluded)))
            assert got[b].tolist() == [want.get(t, 0) for t in targets[b].tolist()], (trial, b)
            assert top[b].tolist() == _top_reference(scores[b], k, excluded), (trial, b)


def test_ranks_and_top_lists_on_a_wide_catalogue():
    """60,000 items: the chunked top-k selection of wide rows and the
    binned count of many targets, against counting."""
    rng = np.random.default_rng(1)
    n_items = 60_000
    scores = np.round(rng.standard_normal((3, n_items + 1)), 2).astype(np.float32)  # many ties
    scores[1, 1:200] = scores[1].max()  # a block tied at the very top
    targets = rng.integers(1, n_items + 1, (3, 7))
    got = M.target_ranks(torch.from_numpy(scores), torch.from_numpy(targets)).numpy()
    top = M.top_items(torch.from_numpy(scores), 20).numpy()
    for b in range(3):
        real = distinct(targets[b].tolist())
        want = dict(zip(real, ranks_of_case_fast(scores[b], real)))
        assert got[b].tolist() == [want[t] for t in targets[b].tolist()]
        assert top[b].tolist() == _top_reference(scores[b], 20, set())
    assert top[1].tolist() == list(range(1, 21))  # tied at the top: smallest ids first


def test_case_metrics_equal_the_formulas():
    rng = np.random.default_rng(2)
    for _ in range(60):
        n_cases = int(rng.integers(1, 20))
        n_targets = rng.integers(1, 7, n_cases)
        ranks = []
        for n in n_targets:
            r = rng.choice(np.arange(1, 80), size=n, replace=False)
            r[rng.random(n) < 0.2] = UNRANKED  # excluded targets: a miss, still counted in T_c
            ranks.append(r.tolist())
        ks = sorted({int(k) for k in rng.integers(1, 60, 3)})
        got = M.case_metrics_ragged(torch.tensor([x for r in ranks for x in r]), torch.from_numpy(n_targets), ks)
        for name in ("HitRate", "Recall", "MRR", "NDCG"):
            for k in ks:
                want = [case_metric(name, r, k) for r in ranks]
                np.testing.assert_allclose(got[f"{name}@{k}"].numpy(), want, rtol=1e-13, atol=0)


def test_case_metric_reference_by_hand():
    """The reference itself, on cases small enough to check on paper."""
    assert case_metric("MRR", [3], 5) == pytest.approx(1 / 3) and case_metric("MRR", [6], 5) == 0
    assert case_metric("NDCG", [1], 5) == 1.0
    assert case_metric("NDCG", [3], 5) == pytest.approx(1 / math.log2(4))
    # two targets at ranks 1 and 3, K = 5: (1 + 1/2) / (1 + 1/log2(3))
    assert case_metric("NDCG", [1, 3], 5) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert case_metric("Recall", [1, 3, UNRANKED], 5) == pytest.approx(2 / 3)
    # pessimistic ties: scores of items 1..4 = 5, 7, 5, 5; target 3 ties with 1 and 4
    row = np.array([99.0, 5, 7, 5, 5])  # column 0 (padding) never ranks
    assert ranks_of_case(row, [3]) == [4]
    # targets 3 and 1: item 2 first, then the non-target 4, then the tied targets, smaller id first
    assert ranks_of_case(row, [3, 1]) == [4, 3]
    assert ranks_of_case(row, [3], {2}) == [3] and ranks_of_case(row, [2], {2}) == [UNRANKED]


def _tied_scores(last_items: torch.Tensor, n_items: int) -> torch.Tensor:
    """float32 [B, n_items + 1]: item i scores (i * (last + 3)) mod 7,
    seven levels, so ties everywhere."""
    items = torch.arange(n_items + 1, dtype=torch.float64)[None, :]
    return torch.remainder(items * (last_items[:, None].double() + 3), 7.0).float()


class _TiedScorer:
    """A model (anything with ``score``) that scores by :func:`_tied_scores`."""

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items

    def score(self, batch):
        return _tied_scores(batch.last_items, self.n_items)


def test_evaluate_equals_brute_force_on_a_wide_catalogue():
    """The evaluator end to end with 30,000 items: the per-block ranking of
    wide batches (several row blocks per batch), both protocols, exclusion."""
    n_items = 30_000
    rng = np.random.default_rng(4)
    train = pd.DataFrame({"session": 1, "item": np.arange(1, n_items + 1), "time": np.arange(n_items, dtype=float)})
    test_sessions = [rng.integers(1, n_items + 1, int(rng.integers(2, 7))) for _ in range(120)]
    for s in test_sessions[:20]:
        s[-1] = s[0]  # repeats: a target already in its prefix
    test = pd.DataFrame({
        "session": np.repeat(np.arange(2, 122), [len(s) for s in test_sessions]),
        "item": np.concatenate(test_sessions), "time": 1e6 + np.arange(sum(len(s) for s in test_sessions)),
    })
    split = SessionSplit(train)
    data = SessionDataset("wide", n_items, {str(i): i for i in range(1, n_items + 1)}, split, split,
                          SessionSplit(train.iloc[0:0]), SessionSplit(test))
    model = _TiedScorer(n_items)
    expected = cases([(int(s), x.tolist()) for s, x in zip(data.test.session_ids, data.test.sessions())])
    for protocol in ("next", "rest"):
        for exclude_seen in (False, True):
            res = evaluate(model, data, protocol=protocol, exclude_seen=exclude_seen, ks=(1, 5, 20, 50),
                           batch_size=150)
            want_ranks, want_top = [], []
            for (_, _, prefix, target, remaining) in expected:
                row = _tied_scores(torch.tensor([prefix[-1]]), n_items)[0].numpy()
                excluded = set(prefix) if exclude_seen else set()
                targets = [target] if protocol == "next" else distinct(remaining)
                want_ranks.append(ranks_of_case_fast(row, targets, excluded))
                want_top.append(_top_reference(row, 50, excluded))
            off = res.offsets
            assert [res.ranks[off[c]:off[c + 1]].tolist() for c in range(res.n_cases)] == want_ranks
            assert res.top.tolist() == want_top
            got = res.metrics()
            for key, value in mean_metrics(want_ranks, (1, 5, 20, 50)).items():
                assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-15), (protocol, exclude_seen, key)


# --------------------------------------------------------------------------- #
# 2b. stored runs of real models on the DIGINETICA sample
# --------------------------------------------------------------------------- #

KS = (1, 5, 20, 50)
RANK_NAMES = ("HitRate", "Recall", "MRR", "NDCG")


@pytest.fixture(scope="module")
def stored_runs(tmp_path_factory):
    """POP, Markov, item-KNN and GRU4Rec (one epoch, two seeds) on the
    DIGINETICA sample, both protocols, with and without ``exclude_seen``:
    ``{exclude_seen: results folder}``, models saved."""
    folder = require_data("diginetica-sample")
    from harness.run.runner import InlineExecutor, run_suite
    from harness.run.suites import parse_suite

    outs = {}
    for exclude_seen in (False, True):
        out = tmp_path_factory.mktemp(f"brute-exclude-{exclude_seen}")
        models = ["pop", "markov", "itemknn"]
        if not exclude_seen:
            models.append({"name": "gru4rec", "params": {"epochs": 1, "refit": False}, "seeds": [0, 1]})
        suite = parse_suite({
            "name": "brute", "datasets": [{"name": "diginetica-sample", "data_dir": str(folder)}], "models": models,
            "seeds": [0], "ks": list(KS), "protocols": ["next", "rest"], "exclude_seen": exclude_seen,
            "latency": {"samples": 3, "warmup": 1},
        }, out / "brute.yaml")
        outcome = run_suite(suite, out_dir=out, executor=InlineExecutor(), report=False, save_models=True)
        assert not outcome.failed and len(outcome.executed) == len(outcome.planned)
        outs[exclude_seen] = out
    return outs


def _recompute_run(run_dir, data: SessionDataset) -> dict:
    """Ranks, top-50 lists and metrics of a stored run, from its saved
    model's raw scores and the reference rules."""
    from harness.models.plugin import SessionRecommender

    manifest = json.loads((run_dir / "manifest.json").read_text())
    exclude_seen = manifest["config"]["evaluation"]["exclude_seen"]
    model = SessionRecommender.load(run_dir / "model")
    pc = data.prefixes("test")
    expected = cases(_sessions(data.test))
    ranks, tops = [], []
    with torch.inference_mode():
        for sl in pc.slices(500):
            scores = model.score(pc.batch(sl)).double().numpy()
            for row, (_, _, prefix, target, remaining) in zip(scores, expected[sl]):
                excluded = set(prefix) if exclude_seen else set()
                targets = [target] if manifest["protocol"] == "next" else distinct(remaining)
                ranks.append(ranks_of_case(row, targets, excluded))
                tops.append(_top_reference(row, 50, excluded))
    metrics = mean_metrics(ranks, KS)
    pop = data.item_popularity("train")
    pop = pop / pop[1:].max()
    top = np.array(tops)
    for k in KS:
        metrics[f"Coverage@{k}"] = len(set(top[:, :k].ravel()) - {0}) / data.n_items
        metrics[f"Popularity@{k}"] = float(np.mean([pop[[i for i in r[:k] if i]].mean() for r in top]))
    return {"manifest": manifest, "ranks": ranks, "top": tops, "metrics": metrics, "cases": expected}


@pytest.fixture(scope="module")
def recomputed(stored_runs):
    from harness.data.specs import load_dataset

    data = load_dataset("diginetica-sample", data_dir=require_data("diginetica-sample"))
    out = {}
    for exclude_seen, folder in stored_runs.items():
        for run_dir in sorted((folder / "runs").iterdir()):
            if (run_dir / "manifest.json").is_file():
                out[run_dir] = _recompute_run(run_dir, data)
    return out


def test_stored_ranks_top_lists_and_metrics_equal_the_reference(recomputed):
    assert len(recomputed) == 2 * (4 + 3) + 2  # gru4rec has two seeds
    for run_dir, ref in recomputed.items():
        res = EvaluationResult.load(run_dir / "ranks.parquet")
        assert res.session_ids.tolist() == [c[0] for c in ref["cases"]]
        assert res.prefix_lengths.tolist() == [c[1] for c in ref["cases"]]
        off = res.offsets
        assert [res.ranks[off[c]:off[c + 1]].tolist() for c in range(res.n_cases)] == ref["ranks"], run_dir.name
        assert res.top.tolist() == ref["top"], run_dir.name
        stored = ref["manifest"]["metrics"]
        assert set(stored) == set(ref["metrics"])
        for key, value in ref["metrics"].items():
            assert stored[key] == pytest.approx(value, rel=1e-12, abs=1e-15), (run_dir.name, key)


# --------------------------------------------------------------------------- #
# 3. the report: CSV, Markdown table, significance, confidence intervals
# --------------------------------------------------------------------------- #


def _holm(p: list[float]) -> list[float]:
    """Holm's step-down adjustment, written out."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - j) * p[i]))
        out[i] = running
    return out


def _label_values(runs: dict) -> tuple[list[str], dict, dict]:
    """Labels, per-case metrics averaged over each label's seeds and means
    (plus fit_seconds), from the reference ranks of ``runs``."""
    labels = sorted({v["manifest"]["label"] for v in runs.values()})
    per_case, means = {}, {}
    for label in labels:
        seeds = [v for v in runs.values() if v["manifest"]["label"] == label]
        for name in RANK_NAMES:
            for k in KS:
                x = np.array([[case_metric(name, r, k) for r in v["ranks"]] for v in seeds])
                per_case[label, f"{name}@{k}"] = x.mean(0)
                means[label, f"{name}@{k}"] = float(x.mean())
        means[label, "fit_seconds"] = float(np.mean([v["manifest"]["timings"]["fit_seconds"] for v in seeds]))
    return labels, per_case, means


def _cluster_ttest(a: np.ndarray, b: np.ndarray, sessions: np.ndarray) -> tuple[float, float]:
    """The cluster-robust paired t-test written out from per-session data:
    D_g the per-session sums of a - b, n_g the cases per session, dbar their
    ratio; SE^2 = G/(G-1) sum_g (D_g - n_g dbar)^2 / C^2, p from scipy's t on G - 1."""
    from scipy import stats

    frame = pd.DataFrame({"s": sessions, "d": a - b}).groupby("s")["d"].agg(["sum", "size"])
    big_d, n = frame["sum"].to_numpy(), frame["size"].to_numpy()
    g, c = len(big_d), n.sum()
    dbar = big_d.sum() / c
    t = dbar / math.sqrt(g / (g - 1) * np.sum((big_d - n * dbar) ** 2) / c**2)
    return float(t), float(2 * stats.t.sf(abs(t), g - 1))


def _check_significance(sig: pd.DataFrame, order: list[str], per_case: dict, means: dict,
                        sessions: np.ndarray) -> dict:
    """Each label against the column's best (higher is better; first in
    table order on a tie): the cluster-robust paired t-test over test
    sessions, from per-session sums, and Holm by hand. Returns
    {(label, metric): significant}."""

    significant = {}
    for name in RANK_NAMES:
        for k in KS:
            key = f"{name}@{k}"
            best = max(order, key=lambda lab: (means[lab, key], -order.index(lab)))
            others = [lab for lab in order if lab != best]
            tests = []
            for lab in others:
                a, b = per_case[lab, key], per_case[best, key]
                if np.array_equal(a, b):
                    tests.append((0.0, 1.0))
                else:
                    tests.append(_cluster_ttest(a, b, sessions))
            rows = sig[sig["metric"] == key].set_index("label")
            for lab, (t, p), p_holm in zip(others, tests, _holm([p for _, p in tests])):
                row = rows.loc[lab]
                assert row["best"] == best, key
                assert row["t"] == pytest.approx(t, rel=1e-7), (key, lab)
                assert row["p"] == pytest.approx(p, rel=1e-6, abs=1e-300), (key, lab)
                assert row["p_holm"] == pytest.approx(p_holm, rel=1e-6, abs=1e-300), (key, lab)
                assert bool(row["significant"]) == (p_holm < 0.05), (key, lab)
                significant[lab, key] = p_holm < 0.05
    return significant


def _check_markdown(text: str, labels: list[str], means: dict, significant: dict) -> None:
    """The results table: 4 decimals, bold where the column's best is and
    wherever a cell prints the same as the best (lower fit time is better), a
    dagger where the gap to the best is significant."""
    lines = [ln for ln in text.split("\n\n")[2].splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:])}
    for label, cells in rows.items():
        for i, (column, cell) in enumerate(zip(header[1:], cells)):
            key = "fit_seconds" if column == "fit (s)" else column
            values = [means[lab, key] for lab in labels]
            best_label = labels[int(np.argmin(values) if key == "fit_seconds" else np.argmax(values))]
            printed = cell.strip("*†")
            assert cell.startswith("**") == (printed == rows[best_label][i].strip("*†")), (label, key)
            if label == best_label:
                assert cell.startswith("**"), (label, key)
            if key != "fit_seconds":
                assert float(cell.strip("*†")) == round(means[label, key], 4), (label, key)
                assert cell.endswith("†") == significant.get((label, key), False), (label, key)


def test_report_numbers_bold_daggers_and_tests_equal_scipy(stored_runs, recomputed):
    from scipy import stats

    from harness.report import write_report

    folder = stored_runs[False]
    write_report(folder, n_bootstrap=2000, seed=0)
    tables = folder / "report" / "tables"
    for protocol in ("next", "rest"):
        runs = {k: v for k, v in recomputed.items()
                if k.parent.parent == folder and v["manifest"]["protocol"] == protocol}
        labels, per_case, means = _label_values(runs)
        csv = pd.read_csv(tables / f"brute_diginetica-sample_{protocol}.csv").set_index("label")
        assert sorted(csv.index) == labels
        assert csv.loc["gru4rec", "n_seeds"] == 2 and (csv["n_cases"] == 99).all()
        for (label, key), value in means.items():
            assert csv.loc[label, key] == pytest.approx(value, rel=1e-8, abs=1e-12), (protocol, label, key)
        sig = pd.read_csv(tables / f"brute_diginetica-sample_{protocol}_significance.csv")
        sessions = np.array([c[0] for c in next(iter(runs.values()))["cases"]])
        significant = _check_significance(sig, list(csv.index), per_case, means, sessions)
        _check_markdown((tables / f"brute_diginetica-sample_{protocol}.md").read_text(), labels, means, significant)

        # one CI: the report's session bootstrap against scipy's percentile bootstrap of
        # the ratio estimator over test sessions (per-session sums and case counts, paired), in standard errors
        x = per_case["markov", "MRR@20"]
        per_session = pd.DataFrame({"s": sessions, "x": x}).groupby("s")["x"].agg(["sum", "size"])
        ci = stats.bootstrap((per_session["sum"].to_numpy(), per_session["size"].to_numpy(np.float64)),
                             lambda xs, ns, axis=-1: xs.sum(axis) / ns.sum(axis), paired=True,
                             method="percentile", n_resamples=20_000, random_state=0).confidence_interval
        se = (ci.high - ci.low) / (2 * 1.96)  # the session-level standard error, roughly
        low, high = csv.loc["markov", "MRR@20_ci_low"], csv.loc["markov", "MRR@20_ci_high"]
        assert abs(low - ci.low) < 0.3 * se and abs(high - ci.high) < 0.3 * se, (low, high, ci, se)

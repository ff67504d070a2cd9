"""Fit time and batch-scoring throughput of markov, ar, sr and itemknn on
yoochoose-100k (17,794 training sessions, 2,933 items, 10,152 test prefixes).

``make test`` runs each case once (the project passes ``--benchmark-disable``);
to measure::

    .venv/bin/pytest tests/benchmarks/test_bench_rules.py --benchmark-enable

The scoring cases score all 10,152 test prefixes in batches of 500 (the
evaluator's default), batches built beforehand; prefixes per second =
10,152 / the reported time. Skipped when the yoochoose-100k data are
absent (tests/data_paths.py).
"""

from __future__ import annotations


import pytest
from hand_data import prefix_batches

from harness.models.registry import make_model


#: the hyper-parameters of the session-rec agreement table (docs/rules.md)
MODELS = {
    "markov": {},
    "ar": {},
    "sr": {"steps": 4, "weighting": "quadratic"},
    "itemknn": {},
}
BATCH_SIZE = 500


@pytest.fixture(scope="module")
def yoochoose(yoochoose_100k):
    return yoochoose_100k


@pytest.fixture(scope="module")
def test_batches(yoochoose):
    return prefix_batches(yoochoose, BATCH_SIZE, with_times=False)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fit(benchmark, yoochoose, name):
    model = benchmark(lambda: make_model(name, MODELS[name]).fit(yoochoose, seed=0))
    assert model.matrix_.shape == (yoochoose.n_items + 1, yoochoose.n_items + 1)
    benchmark.extra_info["train_events"] = yoochoose.train.n_events


@pytest.mark.parametrize("fallback", ["pop", "none"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_score_all_test_prefixes(benchmark, yoochoose, test_batches, name, fallback):
    model = make_model(name, {**MODELS[name], "fallback": fallback}).fit(yoochoose, seed=0)

    def score_all():
        return [model.score(batch) for batch in test_batches]

    scores = benchmark(score_all)
    n_prefixes = sum(len(b) for b in test_batches)
    assert n_prefixes == 10152
    assert sum(s.shape[0] for s in scores) == n_prefixes
    benchmark.extra_info["prefixes"] = n_prefixes

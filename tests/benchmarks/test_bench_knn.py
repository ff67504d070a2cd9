"""Fit time and batch-scoring throughput of sknn, vsknn, stan and vstan on
yoochoose-100k (17,794 training sessions, 2,933 items, 10,152 test prefixes),
with the hyper-parameters of the session-rec agreement table (docs/knn.md).

``make test`` runs each case once (the project passes ``--benchmark-disable``);
to measure::

    .venv/bin/pytest tests/benchmarks/test_bench_knn.py --benchmark-enable

``test_score_all_test_prefixes`` scores all 10,152 test prefixes in batches
of 500 (the evaluator's default; batches built beforehand, with times, which
STAN and V-STAN use); ``test_score_in_one_batch`` scores them in one call.
Prefixes per second = 10,152 / the reported time. Skipped when the
yoochoose-100k data are absent (tests/data_paths.py).

The cases run with one torch thread: the models are single-threaded
NumPy/SciPy, torch only runs the harness's output check and the fallback,
and on a busy 2-core machine torch's OpenMP threads spin-wait and inflate
those few milliseconds per batch by up to 10x (docs/knn.md).
"""

from __future__ import annotations


import pytest
from hand_data import prefix_batches
import torch

from harness.models.registry import make_model


#: the hyper-parameters of the session-rec agreement table (docs/knn.md)
MODELS = {
    "sknn": {"k": 500, "sample_size": 1000, "similarity": "cosine"},
    "vsknn": {"k": 1000, "sample_size": 5000, "weighting": "log", "weighting_score": "quadratic", "idf_weighting": 2.0},
    "stan": {"k": 1500, "sample_size": 10000, "lambda_spw": 1e-5, "lambda_snh": 2.5, "lambda_inh": 4.0},
    "vstan": {
        "k": 1000, "sample_size": 5000, "similarity": "cosine", "lambda_spw": 4.0, "lambda_snh": 5.0,
        "lambda_inh": 4.0, "lambda_ipw": 1e-5, "lambda_idf": 1.0,
    },
}
BATCH_SIZE = 500
N_TEST_PREFIXES = 10152


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def yoochoose(yoochoose_100k):
    return yoochoose_100k


@pytest.fixture(scope="module")
def test_batches(yoochoose):
    return prefix_batches(yoochoose, BATCH_SIZE)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fit(benchmark, yoochoose, name):
    model = benchmark(lambda: make_model(name, MODELS[name]).fit(yoochoose, seed=0))
    assert model.session_items_.shape == (yoochoose.train.n_sessions, yoochoose.n_items + 1)
    benchmark.extra_info["train_sessions"] = yoochoose.train.n_sessions


@pytest.mark.parametrize("fallback", ["pop", "none"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_score_all_test_prefixes(benchmark, yoochoose, test_batches, name, fallback):
    model = make_model(name, {**MODELS[name], "fallback": fallback}).fit(yoochoose, seed=0)

    def score_all():
        with torch.inference_mode():
            return [model.score(batch) for batch in test_batches]

    scores = benchmark(score_all)
    assert sum(len(b) for b in test_batches) == N_TEST_PREFIXES
    assert sum(s.shape[0] for s in scores) == N_TEST_PREFIXES
    benchmark.extra_info["prefixes"] = N_TEST_PREFIXES


@pytest.mark.parametrize("name", sorted(MODELS))
def test_score_in_one_batch(benchmark, yoochoose, name):
    model = make_model(name, MODELS[name]).fit(yoochoose, seed=0)
    cases = yoochoose.prefixes("test")
    batch = cases.batch(slice(0, len(cases)))

    def score_all():
        with torch.inference_mode():
            return model.score(batch)

    scores = benchmark(score_all)
    assert scores.shape == (N_TEST_PREFIXES, yoochoose.n_items + 1)
    benchmark.extra_info["prefixes"] = N_TEST_PREFIXES

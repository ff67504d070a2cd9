"""SR-GNN training-epoch time and batch-scoring throughput on yoochoose-100k
(52,484 training prefixes, 2,933 items, 10,152 test prefixes; batch 100,
hidden 100, step 1: the setting of the reference figures in docs/srgnn.md).

``make test`` runs each case once (the project passes ``--benchmark-disable``)
with the epoch on a subset. To measure the full epoch::

    .venv/bin/pytest tests/benchmarks/test_bench_srgnn.py --benchmark-enable

- ``test_train_epoch``: one epoch over all 52,484 training prefixes (525
  batches) with ``--benchmark-enable``; over the prefixes of the first 1,700
  training sessions (about a tenth) when benchmarks are disabled; its
  ``extra_info`` holds ``softmax_gflops`` (the epoch's softmax-product
  FLOPs per second, a lower bound of the GEMM rate achieved there);
- ``test_score_all_test_prefixes[100|500]``: all 10,152 test prefixes through
  ``model.score`` in batches of 100 (the reference's) and 500 (the
  evaluator's default), batches built beforehand; prefixes per second =
  10,152 / the reported time.

"""

from __future__ import annotations

import pytest
from hand_data import first_sessions, prefix_batches

from srgnn.recommender import SRGNNRecommender

SUBSET_SESSIONS = 1700


@pytest.fixture(scope="module")
def yoochoose(yoochoose_100k):
    return yoochoose_100k


def test_train_epoch(benchmark, yoochoose):
    # a full epoch when measuring; a tenth of one when `make test` runs it once
    data = first_sessions(yoochoose, SUBSET_SESSIONS) if benchmark.disabled else yoochoose
    seeds = iter(range(1000))

    def one_epoch():  # a fresh network each round; initialising it takes about a millisecond
        return SRGNNRecommender(epochs=1, patience=0, device="cpu").fit(data, seed=next(seeds))

    model = benchmark.pedantic(one_epoch, rounds=3, iterations=1)
    assert 0 < model.training_curve_[0]["loss"] < 9
    benchmark.extra_info["train_prefixes"] = data.train.n_prefixes
    benchmark.extra_info["epoch_seconds"] = model.training_curve_[0]["seconds"]
    # the softmax products' FLOPs / epoch seconds (compare with test_bench_gemm.py)
    benchmark.extra_info["softmax_gflops"] = model.timings_["softmax_gflops"]


@pytest.mark.parametrize("batch_size", [100, 500])
def test_score_all_test_prefixes(benchmark, yoochoose, batch_size):
    # scoring cost does not depend on the weights: fit briefly on a few sessions
    model = SRGNNRecommender(epochs=1, patience=0, device="cpu").fit(first_sessions(yoochoose, 300), seed=0)
    batches = prefix_batches(yoochoose, batch_size, with_times=False)

    def score_all():
        return [model.score(batch) for batch in batches]

    scores = benchmark(score_all)
    assert sum(s.shape[0] for s in scores) == yoochoose.test.n_prefixes == 10152
    benchmark.extra_info["prefixes"] = yoochoose.test.n_prefixes

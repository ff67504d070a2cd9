"""GRU4Rec training-epoch time and batch-scoring throughput on yoochoose-100k
(17,794 training sessions, 70,278 events, 52,484 training transitions,
2,933 items, 10,152 test prefixes), with the model's default
hyper-parameters on the CPU (the figures in docs/gru4rec.md).

``make test`` runs each case once (the project passes ``--benchmark-disable``)
with the epoch on a subset. To measure the full epoch::

    .venv/bin/pytest tests/benchmarks/test_bench_gru4rec.py --benchmark-enable

- ``test_train_epoch``: one session-parallel epoch over all of ``train``
  (52,484 transitions) with ``--benchmark-enable``; over the first 1,700
  training sessions (about a tenth) when benchmarks are disabled;
- ``test_score_all_test_prefixes[500]``: all 10,152 test prefixes through
  ``model.score`` in batches of 500 (the evaluator's default), batches built
  beforehand; prefixes per second = 10,152 / the reported time.

"""

from __future__ import annotations


import pytest
from hand_data import first_sessions, prefix_batches
import torch

from baselines.gru4rec import GRU4Rec
from harness.evaluation.timing import reuse_freed_memory, torch_threads

SUBSET_SESSIONS = 1700


@pytest.fixture(scope="module")
def yoochoose(yoochoose_100k):
    return yoochoose_100k


def test_train_epoch(benchmark, yoochoose):
    # a full epoch when measuring; a tenth of one when `make test` runs it once
    data = first_sessions(yoochoose, SUBSET_SESSIONS) if benchmark.disabled else yoochoose
    model = GRU4Rec(device="cpu")
    model._check_params()
    model.n_items_, model.device_ = data.n_items, torch.device("cpu")
    model._start_training(data, "train", 0)
    epochs = iter(range(1, 1000))

    def epoch():
        with torch_threads(model.num_threads), reuse_freed_memory():  # as fit() runs it
            return model._train_epoch(next(epochs))

    loss = benchmark.pedantic(epoch, rounds=3, iterations=1, warmup_rounds=0)
    assert 0 < loss < 9
    benchmark.extra_info["train_transitions"] = data.train.n_prefixes


@pytest.mark.parametrize("batch_size", [500])
def test_score_all_test_prefixes(benchmark, yoochoose, batch_size):
    # scoring cost does not depend on the weights: fit briefly on a few sessions
    model = GRU4Rec(epochs=1, patience=0, device="cpu").fit(first_sessions(yoochoose, 300), seed=0)
    batches = prefix_batches(yoochoose, batch_size, with_times=False)

    def score_all():
        return [model.score(batch) for batch in batches]

    scores = benchmark(score_all)
    assert sum(s.shape[0] for s in scores) == yoochoose.test.n_prefixes == 10152
    benchmark.extra_info["prefixes"] = yoochoose.test.n_prefixes

"""Training-epoch time of NARM, STAMP, SASRec, BPR-MF and FPMC on
yoochoose-100k (52,484 training prefixes, 2,933 items), each with its
defaults and one thread: the figures docs/neural-baselines.md compares with
RecBole's epochs (scripts/compare_neural.py and scripts/compare_recbole.py
time the same epochs beside RecBole's).

``make test`` runs each case once (the project passes
``--benchmark-disable``) on the prefixes of the first 1,700 training
sessions. To measure whole epochs::

    .venv/bin/pytest tests/benchmarks/test_bench_neural_baselines.py --benchmark-enable

``extra_info`` holds the epoch's wall-clock seconds (from the model's
training curve), ``fit_cpu_seconds_min`` (the CPU seconds of the whole
one-epoch ``fit``, network set-up included, by ``time.thread_time`` of the
training thread, steadier on a shared machine; the least of the rounds)
and, for the full-softmax models, ``softmax_gflops``.
"""

from __future__ import annotations

import time

import pytest
from hand_data import first_sessions

from harness.models.registry import make_model

SUBSET_SESSIONS = 1700


@pytest.mark.parametrize("name", ["narm", "stamp", "sasrec", "bprmf", "fpmc"])
def test_train_epoch(benchmark, yoochoose_100k, name):
    data = first_sessions(yoochoose_100k, SUBSET_SESSIONS) if benchmark.disabled else yoochoose_100k
    seeds = iter(range(1000))
    cpu_seconds: list[float] = []

    def one_epoch():  # a fresh network each round
        model = make_model(name, {"epochs": 1, "patience": 0, "device": "cpu", "num_threads": 1})
        start = time.thread_time()
        model.fit(data, seed=next(seeds))
        cpu_seconds.append(time.thread_time() - start)
        return model

    model = benchmark.pedantic(one_epoch, rounds=3, iterations=1)
    assert model.training_curve_[0]["loss"] > 0 and len(model.training_curve_) == 1
    benchmark.extra_info.update({
        "train_prefixes": data.train.n_prefixes,
        "epoch_seconds": model.training_curve_[0]["seconds"],
        "fit_cpu_seconds_min": min(cpu_seconds),
        **model.timings_,
    })

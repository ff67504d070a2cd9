"""The GEMM and softmax GFLOP/s instruments (the figures themselves are
machine- and load-dependent: only their arithmetic is tested)."""

from __future__ import annotations

import pytest

from harness.neural import softmax_flops
from harness.testing import tiny_dataset
from harness.timing import measure_gemm_gflops
from srgnn.recommender import SRGNNRecommender


def test_softmax_flops_counts_three_products():
    assert softmax_flops(10, 20, 30) == 10 * 20 * 30 * 2 * 3


def test_srgnn_softmax_work_covers_every_training_epoch():
    data = tiny_dataset(n_items=12, n_train=60, n_test=10, seed=3)
    model = SRGNNRecommender(hidden_size=8, batch_size=16, epochs=3, patience=1, device="cpu").fit(data, seed=0)
    epochs = {phase: sum(1 for r in model.training_curve_ if r["phase"] == phase) for phase in ("select", "refit")}
    flops, seconds = model.softmax_work_
    assert flops == (softmax_flops(data.train_tr.n_prefixes, data.n_items, 8) * epochs["select"]
                     + softmax_flops(data.train.n_prefixes, data.n_items, 8) * epochs["refit"])
    assert seconds == pytest.approx(sum(r["seconds"] for r in model.training_curve_), rel=0.05, abs=0.05)
    assert model.timings_["softmax_gflops"] == pytest.approx(flops / seconds / 1e9)


def test_measure_gemm_gflops_reports_rates_and_threads():
    rates = measure_gemm_gflops(32, 16, 8, repeats=3)
    assert rates["gflops_best"] >= rates["gflops_median"] > 0 and rates["threads"] >= 1

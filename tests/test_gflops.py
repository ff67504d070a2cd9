"""The GEMM and softmax GFLOP/s instruments (the figures themselves are
machine- and load-dependent: only their arithmetic is tested)."""

from __future__ import annotations

import pytest

from baselines.gru4rec import GRU4Rec
from harness.models.neural import softmax_flops
from harness.models.registry import make_model
from harness.models.testing import tiny_dataset
from harness.evaluation.timing import gemm_bound_figures, softmax_gemm_rates
from srgnn.recommender import SRGNNRecommender


def test_softmax_flops_counts_three_products():
    assert softmax_flops(10, 20, 30) == 10 * 20 * 30 * 2 * 3


@pytest.mark.parametrize("model", [
    SRGNNRecommender(hidden_size=8, batch_size=16, epochs=3, patience=1, device="cpu"),
    # session-parallel: every training transition is one row of one step, once per epoch
    GRU4Rec(hidden_size=8, batch_size=4, epochs=3, patience=1, device="cpu"),
], ids=["srgnn", "gru4rec"])
def test_softmax_work_covers_every_training_epoch(model):
    data = tiny_dataset(n_items=12, n_train=60, n_test=10, seed=3)
    model.fit(data, seed=0)
    epochs = {phase: sum(1 for r in model.training_curve_ if r["phase"] == phase) for phase in ("select", "refit")}
    flops, seconds = model.softmax_work_
    assert flops == (softmax_flops(data.train_tr.n_prefixes, data.n_items, 8) * epochs["select"]
                     + softmax_flops(data.train.n_prefixes, data.n_items, 8) * epochs["refit"])
    assert seconds == pytest.approx(sum(r["seconds"] for r in model.training_curve_), rel=1e-9)
    assert model.timings_["softmax_gflops"] == pytest.approx(flops / seconds / 1e9)
    assert model.timings_["softmax_gflops"] > 0


@pytest.mark.parametrize("name", ["narm", "stamp", "sasrec"])
def test_every_full_softmax_model_reports_softmax_gflops(name):
    data = tiny_dataset(n_items=12, n_train=40, n_test=10, seed=3)
    model = make_model(name, {"epochs": 1, "patience": 0, "device": "cpu"}).fit(data, seed=0)
    assert model.timings_["softmax_gflops"] > 0


def test_no_softmax_gflops_without_a_full_softmax():
    data = tiny_dataset(n_items=12, n_train=40, n_test=10, seed=3)
    model = GRU4Rec(loss="bpr-max", n_sample=4, hidden_size=8, epochs=1, patience=0, device="cpu").fit(data, seed=0)
    assert model.timings_ == {} and not hasattr(model, "softmax_work_")


def test_gemm_bound_figures_arithmetic():
    rates = {"square_gflops": 100.0, "scores_ms": 1.0, "grad_session_ms": 2.0, "grad_items_ms": 3.0}
    figures = gemm_bound_figures(6e8, 0.012, rates)  # 6e8 FLOPs in 12 ms
    assert figures == pytest.approx({"ms_per_step": 12.0, "softmax_gflops": 50.0, "bound_ms_square": 6.0,
                                     "bound_ms_shapes": 6.0, "ratio_square": 2.0, "ratio_shapes": 2.0})


def test_softmax_gemm_rates_are_positive():
    rates = softmax_gemm_rates(4, 3, 10, square=16, repeat=2)
    assert set(rates) == {"square_gflops", "scores_ms", "grad_session_ms", "grad_items_ms"}
    assert all(value > 0 for value in rates.values())

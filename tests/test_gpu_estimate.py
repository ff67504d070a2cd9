"""scripts/gpu_estimate.py: what it counts in a profile, and its arithmetic."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("gpu_estimate", ROOT / "scripts" / "gpu_estimate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_counts_computing_operators_and_matrix_flops_not_views(script):
    a, b = torch.ones(2, 3), torch.ones(3, 4)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True, record_shapes=True) as prof:
        c = a @ b  # one product: 2 * 2 * 3 * 4 FLOPs
        c.t()  # a view: no kernel
        d = c.reshape(-1)  # of a contiguous tensor, a view too
        e = torch.relu(d + 1.0)  # two computing operators (1.0 is converted on the host)
        f = e.to(torch.float64)  # a copy of a tensor: a kernel
    assert f.shape == (8,)
    counts = script.profile_counts(prof.events())
    assert counts["flops"] == 2 * 2 * 3 * 4
    assert counts["kernels"] == 4
    assert counts["steps"] == 0


def test_counts_optimiser_steps(script):
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            optimizer.zero_grad()
            (weight * 2).sum().backward()
            optimizer.step()
    assert script.profile_counts(prof.events())["steps"] == 3


ROW = {"dataset": "d", "model": "m", "n_items": 999, "parameters": 1000, "subset_prefixes": 200, "steps": 2,
       "kernels_per_step": 100.0, "flops_per_step": 2e9, "rows_per_step": 100.0, "valid_cases": 10,
       "valid_kernels_per_case": 2.0, "valid_flops_per_case": 1e6, "train_prefixes": 10000,
       "train_tr_prefixes": 5000, "full_valid_cases": 1000, "host_ms_per_step": 0.5,
       "valid_host_ms_per_case": 0.01, "max_epochs": 10, "patience": 3}
GPU = {"gpu_tflops": 10.0, "gpu_gbps": 1000.0, "launch_us": 5.0}


def test_estimate_adds_host_issue_time_arithmetic_and_memory_traffic(script):
    est = script.estimate(ROW, GPU)
    host = 0.5e-3 + 100 * 5e-6  # the host's own seconds, then one launch per kernel
    device = 2e9 / 10e12 + (28 * 1000 + 20 * 100 * 1000) / 1000e9
    assert est["step_ms"] == pytest.approx((host + device) * 1e3)
    assert est["host_share"] == pytest.approx(host / (host + device))
    # 2 steps for 200 prefixes: 100 steps an epoch over 10,000
    assert est["train_epoch_s"] == pytest.approx(100 * (host + device))
    assert est["train_tr_epoch_s"] == pytest.approx(50 * (host + device))
    case = 0.01e-3 + 2 * 5e-6 + 1e6 / 10e12 + 12 * 1000 / 1000e9
    assert est["valid_pass_s"] == pytest.approx(1000 * case)


def test_table_prints_the_assumptions_and_one_row_per_measurement(script, tmp_path, capsys):
    path = tmp_path / "gpu.jsonl"
    path.write_text(json.dumps(ROW) + "\n", encoding="utf-8")
    assert script.main(["--table", str(path), "--gpu-tflops", "10", "--gpu-gbps", "1000"]) == 0
    out = capsys.readouterr().out
    assert "gpu_tflops 10" in out
    row = [line for line in out.splitlines() if line.startswith("| d | m |")]
    assert len(row) == 1
    assert "| d | m | 100 | 2000 | 0.50 |" in row[0]  # kernels, MFLOP and host ms per step
    assert "| b = 5: " in row[0]


def test_a_run_is_its_selection_epochs_with_validation_then_the_refit(script):
    est = {"train_epoch_s": 10.0, "train_tr_epoch_s": 6.0, "valid_pass_s": 1.0}
    assert script.run_seconds(ROW, est, 5) == (5 + 3) * (6 + 1) + 5 * 10
    assert script.run_seconds(ROW, est, 9) == 10 * (6 + 1) + 9 * 10  # selection stops at the maximum


def test_the_miniature_keeps_every_session_and_prefix_over_a_small_catalogue(script):
    from harness.models.testing import tiny_dataset

    data = tiny_dataset()
    small = script.miniature(data, n_items=4)
    assert small.n_items == 4
    for name in ("train", "train_tr", "valid", "test"):
        big, little = getattr(data, name), getattr(small, name)
        assert little.n_prefixes == big.n_prefixes
        assert little.events["session"].tolist() == big.events["session"].tolist()
        assert little.events["item"].between(1, 4).all()
        assert (little.events["item"] == (big.events["item"] - 1) % 4 + 1).all()

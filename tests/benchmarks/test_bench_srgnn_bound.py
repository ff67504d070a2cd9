"""SR-GNN training batches against the machine's GEMM rate, in the shape of
YOOCHOOSE 1/64 (docs/srgnn.md, "How close a batch is to the GEMM bound").

A seeded synthetic dataset with about 12,000 items and 88,000 training
prefixes (hidden 100, batch 100, the paper's settings) trains for
``BATCHES`` batches. In the same process, right before, the benchmark
measures the fp32 GEMM rate at the same thread count twice: a square 2048
product (the machine's peak-like rate) and the epoch's own three softmax
products (``[B, d] x [d, N]`` scores, the ``[B, N] x [N, d]`` gradient of
the session vectors and the ``[N, B] x [B, d]`` gradient of the item table).
Each batch's softmax products are ``6 B N d`` FLOPs, so

    bound_ms_square  = 6 B N d / square rate         (what an epoch made only of GEMM at peak would take)
    bound_ms_shapes  = sum of the three products' measured times
    ratio_square     = measured ms per batch / bound_ms_square
    ratio_shapes     = measured ms per batch / bound_ms_shapes

all in ``extra_info``, beside ``softmax_gflops`` (6 B N d per measured
batch time). To measure (one thread, then two)::

    .venv/bin/pytest tests/benchmarks/test_bench_srgnn_bound.py --benchmark-enable

With one thread the figures are the thread's CPU time (``time.thread_time``:
every operation runs in that thread, so other processes' load barely
changes them, though a busy sibling hyper-thread still slows the arithmetic);
with two they are wall-clock, which on a shared machine measures the load as
much as the code: read those on an idle machine. pytest-benchmark's own
columns are wall-clock either way; the ratios in ``extra_info`` are the
figures to read.
``make test`` runs it once on a small catalogue, with a few batches.
"""

from __future__ import annotations

import time

import pytest
import torch

from harness.specs import load_dataset
from harness.timing import torch_threads
from srgnn.recommender import SRGNNRecommender

BATCHES = 200  # measured batches per round (of about 880 in an epoch)
SPEC = """\
name: srgnn-bound-{n_items}
description: synthetic, the shape of YOOCHOOSE 1/64 for the SR-GNN bound benchmark
source: generated
format: synthetic
generator: {{n_sessions: {n_sessions}, n_items: {n_items}, seed: 0, days: 30, zipf_exponent: 0.0,
            n_communities: 50, community_leak: 0.1, transition_prob: 0.5, mean_length: 4.0, max_length: 50}}
preprocess: {{method: standard, test_days: 2, valid_days: 2, min_session_length: 2,
             min_item_support: 5, filter_iterations: 1}}
"""


def _dataset(tmp_path_factory, full: bool):
    n_sessions, n_items = (36_000, 14_500) if full else (800, 300)
    path = tmp_path_factory.mktemp("bound") / "spec.yaml"
    path.write_text(SPEC.format(n_sessions=n_sessions, n_items=n_items))
    return load_dataset(path)


def _clock(threads: int):
    """CPU time of this thread with one thread (every op runs in it, so other
    processes' load barely changes the figure); wall-clock with more."""
    return time.thread_time if threads == 1 else time.perf_counter


def _seconds(fn, repeat: int, clock) -> float:
    """Best of three means of ``repeat`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(3):
        start = clock()
        for _ in range(repeat):
            fn()
        best = min(best, (clock() - start) / repeat)
    return best


def _gemm_rates(batch: int, hidden: int, n_items: int, full: bool, clock) -> dict[str, float]:
    gen = torch.Generator().manual_seed(0)
    session, table = torch.randn(batch, hidden, generator=gen), torch.randn(n_items + 1, hidden, generator=gen)
    grad = torch.randn(batch, n_items + 1, generator=gen)
    size = 2048 if full else 128
    square = torch.randn(size, size, generator=gen)
    repeat = 20 if full else 2
    return {
        "square_gflops": 2 * size**3 / _seconds(lambda: square @ square, 3 if full else 1, clock) / 1e9,
        "scores_ms": 1e3 * _seconds(lambda: session @ table.T, repeat, clock),
        "grad_session_ms": 1e3 * _seconds(lambda: grad @ table, repeat, clock),
        "grad_items_ms": 1e3 * _seconds(lambda: grad.T @ session, repeat, clock),
    }


@pytest.mark.parametrize("threads", [1, 2])
def test_training_batches_against_gemm_bound(benchmark, tmp_path_factory, threads):
    full = not benchmark.disabled
    data = _dataset(tmp_path_factory, full)
    n_batches = BATCHES if full else 3
    model = SRGNNRecommender(epochs=1, patience=0, device="cpu", num_threads=threads)
    # the base class's training loop, stopped after n_batches: set up as fit does
    model._check_params()
    model.device_, model.n_items_ = torch.device("cpu"), data.n_items
    with torch_threads(threads):
        model._start_training(data, "train", 0)
        cases, network, optimizer = model._cases, model.network_, model._optimizer
        order = torch.randperm(len(cases), generator=torch.Generator().manual_seed(0)).numpy()
        batch_size = int(model.batch_size)
        batches = [order[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]
        network.train()
        losses: list[float] = []
        clock, round_seconds = _clock(threads), []

        def train_batches():
            start = clock()
            for index in batches:
                loss = model._batch_loss(cases.batch(index, with_times=False), cases.next_items(index))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            round_seconds.append(clock() - start)

        rates = _gemm_rates(batch_size, int(model.hidden_size), data.n_items, full, clock)
        benchmark.pedantic(train_batches, rounds=3, iterations=1, warmup_rounds=1 if full else 0)

    assert losses and all(0 < loss < 20 for loss in losses)
    if not full:
        return
    flops = 6.0 * batch_size * data.n_items * int(model.hidden_size)  # one batch's softmax products
    per_batch = min(round_seconds) / n_batches
    bound_square = flops / (rates["square_gflops"] * 1e9)
    bound_shapes = (rates["scores_ms"] + rates["grad_session_ms"] + rates["grad_items_ms"]) / 1e3
    benchmark.extra_info.update({
        "threads": threads, "clock": clock.__name__, "items": data.n_items, "train_prefixes": data.train.n_prefixes,
        "batches": n_batches, "ms_per_batch": 1e3 * per_batch, "softmax_gflops": flops / per_batch / 1e9,
        "bound_ms_square": 1e3 * bound_square, "bound_ms_shapes": 1e3 * bound_shapes,
        "ratio_square": per_batch / bound_square, "ratio_shapes": per_batch / bound_shapes, **rates,
    })

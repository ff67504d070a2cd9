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
    ratio_square     = measured ms per batch (ms_per_step) / bound_ms_square
    ratio_shapes     = measured ms per batch / bound_ms_shapes

all in ``extra_info``, beside ``softmax_gflops`` (6 B N d per measured
batch time); ``harness.evaluation.timing.gemm_bound_figures`` computes them, the same
for GRU4Rec (test_bench_gru4rec_bound.py). To measure (one thread, then two)::

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

import pytest
import torch
from hand_data import bound_dataset

from harness.models.neural import softmax_flops
from harness.evaluation.timing import benchmark_clock, gemm_bound_figures, reuse_freed_memory, softmax_gemm_rates, torch_threads
from srgnn.recommender import SRGNNRecommender

BATCHES = 200  # measured batches per round (of about 880 in an epoch)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("threads", [1, 2])
def test_training_batches_against_gemm_bound(benchmark, tmp_path_factory, threads, precision):
    full = not benchmark.disabled
    data = bound_dataset(tmp_path_factory.mktemp("bound"), full)
    n_batches = BATCHES if full else 3
    model = SRGNNRecommender(epochs=1, patience=0, device="cpu", num_threads=threads, softmax_precision=precision)
    # the base class's training loop, stopped after n_batches: set up as fit does
    model._check_params()
    model.device_, model.n_items_ = torch.device("cpu"), data.n_items
    with torch_threads(threads), reuse_freed_memory():
        model._start_training(data, "train", 0)
        cases, network, optimizer = model._cases, model.network_, model._optimizer
        order = torch.randperm(len(cases), generator=torch.Generator().manual_seed(0)).numpy()
        batch_size = int(model.batch_size)
        batches = [order[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]
        network.train()
        losses: list[float] = []
        clock, round_seconds = benchmark_clock(threads), []

        def train_batches():
            start = clock()
            for index in batches:
                loss = model._batch_loss(cases.batch(index, with_times=False), cases.next_items(index))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            round_seconds.append(clock() - start)

        rates = softmax_gemm_rates(batch_size, int(model.hidden_size), data.n_items + 1,
                                   square=2048 if full else 128, repeat=20 if full else 2, clock=clock)
        benchmark.pedantic(train_batches, rounds=3, iterations=1, warmup_rounds=1 if full else 0)

    assert losses and all(0 < loss < 20 for loss in losses)
    if not full:
        return
    figures = gemm_bound_figures(softmax_flops(batch_size, data.n_items, int(model.hidden_size)),
                                 min(round_seconds) / n_batches, rates)
    benchmark.extra_info.update({
        "threads": threads, "precision": precision, "clock": clock.__name__, "items": data.n_items,
        "train_prefixes": data.train.n_prefixes, "batches": n_batches, **figures, **rates,
    })

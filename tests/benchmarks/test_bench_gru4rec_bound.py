"""GRU4Rec training steps (full-softmax cross-entropy) against the machine's
GEMM rate, in the shape of YOOCHOOSE 1/64 (docs/gru4rec.md, "How close a
step is to the GEMM bound").

The seeded synthetic dataset of the SR-GNN bound benchmark
(test_bench_srgnn_bound.py: about 12,000 items, 90,000 training
transitions) trains GRU4Rec with its default hyper-parameters (hidden 100,
session-parallel mini-batches of 32 rows, tied embedding, Adam) for
``STEPS`` session-parallel steps, the first steps of an epoch, through the
model's own ``_train_step``. In the same process, right before, the
benchmark measures the fp32 GEMM rate at the same thread count twice
(:func:`harness.evaluation.timing.softmax_gemm_rates`): a square 2048 product and the
step's own three softmax products (``[B, d] x [d, N + 1]`` scores, the
``[B, N + 1] x [N + 1, d]`` gradient of the hidden state and the
``[N + 1, B] x [B, d]`` gradient of the output table). Each step's softmax
products are ``6 B N d`` FLOPs (:func:`harness.models.neural.softmax_flops`; the
bias and the padding column add under 0.1%), so

    bound_ms_square  = 6 B N d / square rate
    bound_ms_shapes  = sum of the three products' measured times
    ratio_square     = measured ms per step (ms_per_step) / bound_ms_square
    ratio_shapes     = measured ms per step / bound_ms_shapes

all in ``extra_info`` (:func:`harness.evaluation.timing.gemm_bound_figures`), beside
``softmax_gflops`` (6 B N d per measured step time). To measure (one
thread, then two)::

    .venv/bin/pytest tests/benchmarks/test_bench_gru4rec_bound.py --benchmark-enable

With one thread the figures are the thread's CPU time (``time.thread_time``);
with two they are wall-clock, which on a shared machine measures the load
as much as the code. pytest-benchmark's own columns are wall-clock either
way; the figures in ``extra_info`` are the ones to read.
``make test`` runs it once on a small catalogue, for a few steps, and checks
the losses and the figures' arithmetic.
"""

from __future__ import annotations

import math

import pytest
import torch
from hand_data import bound_dataset

from baselines.gru4rec import GRU4Rec
from harness.models.neural import softmax_flops
from harness.evaluation.timing import benchmark_clock, gemm_bound_figures, reuse_freed_memory, softmax_gemm_rates, torch_threads

STEPS = 300  # measured steps per round (of about 2,900 in an epoch)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("threads", [1, 2])
def test_training_steps_against_gemm_bound(benchmark, tmp_path_factory, threads, precision):
    full = not benchmark.disabled
    data = bound_dataset(tmp_path_factory.mktemp("bound"), full)
    model = GRU4Rec(epochs=1, patience=0, device="cpu", num_threads=threads, softmax_precision=precision)
    # the model's training steps, from the start of an epoch: set up as fit does
    model._check_params()
    model.device_, model.n_items_ = torch.device("cpu"), data.n_items
    with torch_threads(threads), reuse_freed_memory():
        model._start_training(data, "train", 0)
        n_steps = min(STEPS if full else 4, model._epoch_steps())
        rows = [model._plan.bounds[t + 1] - model._plan.bounds[t] for t in range(n_steps)]
        model.network_.train()
        losses: list[float] = []
        clock, round_seconds = benchmark_clock(threads), []

        def train_steps():
            state = model.network_.initial_state(model._plan.first_rows, model.device_)
            start = clock()
            for t in range(n_steps):
                state, loss_sum = model._train_step(t, state)
                losses.append(float(loss_sum) / rows[t])
            round_seconds.append(clock() - start)

        rates = softmax_gemm_rates(int(model.batch_size), int(model.hidden_size), data.n_items + 1,
                                   square=2048 if full else 64, repeat=20 if full else 1, clock=clock)
        benchmark.pedantic(train_steps, rounds=3, iterations=1, warmup_rounds=1 if full else 0)

    # the first step starts from small random weights: about ln(N) per row
    assert abs(losses[0] - math.log(data.n_items)) < 0.5
    assert all(math.isfinite(loss) and 0 < loss < 20 for loss in losses)
    flops = softmax_flops(sum(rows), data.n_items, int(model.hidden_size))
    figures = gemm_bound_figures(flops / n_steps, min(round_seconds) / n_steps, rates)
    assert figures["softmax_gflops"] > 0 and figures["ratio_square"] > 0 and figures["ratio_shapes"] > 0
    if full:
        benchmark.extra_info.update({
            "threads": threads, "precision": precision, "clock": clock.__name__, "items": data.n_items,
            "train_transitions": data.train.n_prefixes, "steps": n_steps, "rows_per_step": sum(rows) / n_steps,
            **figures, **rates,
        })

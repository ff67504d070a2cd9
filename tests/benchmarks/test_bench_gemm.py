"""The machine's achieved fp32 GEMM rate at the thread count in use, in the
shapes of SR-GNN's softmax products, to put an SR-GNN epoch's
``softmax_gflops`` (the run's timings, docs/scale.md) next to what the
machine can do.

``make test`` runs each case once with small sizes (the project passes
``--benchmark-disable``) and checks the product; to measure::

    .venv/bin/pytest tests/benchmarks/test_bench_gemm.py --benchmark-enable

Cases (``m x k x n``, 2 m k n FLOPs per call; GFLOP/s in ``extra_info`` and
= FLOPs / the reported mean time):

- ``square``: 2048 x 2048 x 2048, the machine's peak-like rate;
- ``softmax_forward``: 100 x 100 x 37,483 (batch x hidden x items of
  yoochoose 1/4 after filtering): the scores ``s_h E^T``;
- ``softmax_grad_items``: 100 x 100 x 37,483 transposed the other way: the
  gradient w.r.t. the item embeddings, ``dS^T s_h``.

A figure measured on a shared or loaded machine says nothing about it:
measure on an idle one, with the thread count you train with
(``torch.set_num_threads`` / the models' ``num_threads``).
"""

from __future__ import annotations

import pytest
import torch

CASES = {  # name: (m, k, n) measured, (m, k, n) when benchmarks are disabled
    "square": ((2048, 2048, 2048), (64, 64, 64)),
    "softmax_forward": ((100, 100, 37_483), (100, 100, 500)),
    "softmax_grad_items": ((37_483, 100, 100), (500, 100, 100)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gemm(benchmark, case):
    m, k, n = CASES[case][1] if benchmark.disabled else CASES[case][0]
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
    out = torch.empty(m, n)

    result = benchmark(torch.mm, a, b, out=out)
    assert torch.allclose(result.double(), a.double() @ b.double(), rtol=1e-3, atol=1e-3)
    benchmark.extra_info.update({"m": m, "k": k, "n": n, "flops": 2 * m * k * n,
                                 "threads": torch.get_num_threads()})
    if not benchmark.disabled:
        benchmark.extra_info["gflops"] = 2 * m * k * n / benchmark.stats.stats.mean / 1e9

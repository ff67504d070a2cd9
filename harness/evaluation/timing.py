"""Timings of a fitted model: latency, throughput, memory and size.

Every figure is measured with ``time.perf_counter`` around the public
``score`` (so the plugin checks are included, as a user would pay them), and
CUDA work is synchronised before the clock is read. Latency is measured one
prefix at a time on one thread after a warm-up; the machines are shared, so
compare ratios from one run rather than absolute figures across runs.
"""

from __future__ import annotations

import ctypes
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from harness.data.dataset import PrefixCases
from harness.errors import ConfigError, quote
from harness.models.plugin import SessionRecommender


def synchronize() -> None:
    """Wait for queued CUDA work, so that the clock reads finished work."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (0: leave the
    setting as it is), then restore the previous setting.

    Neural models train and score under this (``num_threads``): on a shared
    2-core machine torch's spinning worker threads can make each step many
    times slower than one thread.
    """
    before = torch.get_num_threads()
    if n and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: while training: blocks up to this size come from the heap, and this much
#: free memory may stay at its top, so a step's [batch, items] temporaries
#: reuse the previous step's pages
_TRAINING_MMAP, _TRAINING_TRIM = 256 << 20, 1 << 30
#: afterwards: the ceilings glibc's own adaptive thresholds grow to
_DEFAULT_MMAP, _DEFAULT_TRIM = 32 << 20, 64 << 20


def _glibc():
    """The C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both must exist
    except (OSError, AttributeError):
        return None
    return libc


@contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Keep freed blocks in the process's heap while the block runs (glibc).

    A training step allocates and frees temporaries of several MB (the
    ``[batch, items]`` scores and probabilities). By default glibc hands
    such blocks back to the kernel when they are freed, so every step
    faults the same pages in again (about 2,000 page faults a batch for
    STAMP on 2,933 items, 10-20% of its epoch). Inside the block, blocks up
    to 256 MiB come from the heap and up to 1 GiB of free heap stays mapped;
    afterwards the free memory is returned (``malloc_trim``) and the
    thresholds are set to the ceilings glibc's adaptive rule reaches on its
    own (32 and 64 MiB). Elsewhere than glibc this does nothing.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, _TRAINING_MMAP)
        libc.mallopt(_M_TRIM_THRESHOLD, _TRAINING_TRIM)
    try:
        yield
    finally:
        if libc is not None:
            libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_MMAP)
            libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM)
            libc.malloc_trim(0)


def check_device_name(name: str, model: str) -> torch.device | None:
    """The device a ``device`` hyper-parameter names (None for ``"auto"``),
    whether or not this machine has it; :class:`ConfigError` naming
    ``model`` for a name that is none of ``"auto"``, ``"cpu"``, ``"cuda"``,
    ``"cuda:N"`` (a suite is checked where it is loaded, and may run where
    CUDA is)."""
    if name == "auto":
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"{model}: device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {quote(name)}")
    return device


def resolve_device(name: str, model: str) -> torch.device:
    """The torch device for a model's ``device`` hyper-parameter: ``"auto"``
    (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Called in ``fit``, never in ``__init__``. Raises :class:`ConfigError`
    naming ``model`` for anything else, or for CUDA on a machine without it.
    """
    device = check_device_name(name, model)
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{model}: device {name!r} asked for, but CUDA is not available (use device='auto')")
    return device


def single_session_latency(
    model: SessionRecommender,
    cases: PrefixCases,
    *,
    n_samples: int = 200,
    warmup: int = 20,
    seed: int = 0,
    threads: int = 1,
) -> dict[str, float]:
    """Milliseconds to score one prefix, p50/p95/p99 over ``n_samples``
    randomly drawn cases (seeded), after ``warmup`` untimed calls, with
    ``threads`` torch threads.

    Returns ``{"latency_ms_p50", "latency_ms_p95", "latency_ms_p99",
    "latency_samples"}``; NaNs when there are no cases.
    """
    keys = ("latency_ms_p50", "latency_ms_p95", "latency_ms_p99")
    if len(cases) == 0 or n_samples < 1:
        return {**dict.fromkeys(keys, float("nan")), "latency_samples": 0}
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(cases), size=warmup + n_samples)
    batches = [cases.batch(np.array([i])) for i in picks]
    seconds = np.empty(n_samples)
    with torch_threads(threads), torch.inference_mode():
        for b in batches[:warmup]:
            model.score(b)
        synchronize()
        for j, b in enumerate(batches[warmup:]):
            start = time.perf_counter()
            model.score(b)
            synchronize()
            seconds[j] = time.perf_counter() - start
    p50, p95, p99 = np.percentile(seconds * 1000.0, [50, 95, 99])
    return {keys[0]: float(p50), keys[1]: float(p95), keys[2]: float(p99), "latency_samples": int(n_samples)}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    Runs execute in their own process, so this is the run's peak.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)


def model_size(model: Any) -> int:
    """Number of learned values: parameters of torch modules, elements of
    tensors and arrays, stored entries of sparse matrices, among the
    model's fitted attributes (names ending in ``_``).

    A model may define ``model_size()`` itself to count differently.
    """
    own = getattr(type(model), "model_size", None)
    if callable(own):
        return int(own(model))
    total = 0
    for name, value in vars(model).items():
        if name.endswith("_") and not name.startswith("_"):
            total += _count(value)
    return total


def _count(value: Any) -> int:
    if isinstance(value, torch.nn.Module):
        return sum(p.numel() for p in value.parameters()) + sum(b.numel() for b in value.buffers())
    if isinstance(value, torch.Tensor):
        return int(value._nnz()) if value.is_sparse else value.numel()
    if isinstance(value, np.ndarray):
        return int(value.size)
    if hasattr(value, "nnz") and hasattr(value, "shape"):  # scipy.sparse
        return int(value.nnz)
    if isinstance(value, (list, tuple)):
        return sum(_count(v) for v in value)
    if isinstance(value, dict):
        return sum(_count(v) for v in value.values())
    return 0


def benchmark_clock(threads: int) -> Callable[[], float]:
    """The clock of the GEMM-bound benchmarks: ``time.thread_time`` (CPU
    time of the calling thread) with one thread, where every operation runs
    in that thread, so other processes' load barely changes the figure;
    ``time.perf_counter`` (wall-clock) with more threads."""
    return time.thread_time if threads == 1 else time.perf_counter


def best_mean_seconds(fn: Callable[[], Any], repeat: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per call of ``fn``: the best of three means of ``repeat``
    calls each, after one warm-up call, read on ``clock``."""
    fn()
    best = float("inf")
    for _ in range(3):
        start = clock()
        for _ in range(repeat):
            fn()
        best = min(best, (clock() - start) / repeat)
    return best


def softmax_gemm_rates(rows: int, hidden: int, columns: int, *, square: int = 2048, repeat: int = 20,
                       clock: Callable[[], float] = time.perf_counter, seed: int = 0) -> dict[str, float]:
    """The two GEMM bounds of a full-softmax training step, at torch's current
    thread count: the rate of a ``square`` x ``square`` fp32 product
    (``square_gflops``, the machine's peak-like rate, 2 square^3 FLOPs) and
    the milliseconds of the step's own three products, each timed alone
    (:func:`best_mean_seconds` of ``repeat`` calls on ``clock``):

        scores_ms        [rows, hidden] x [hidden, columns]    the scores
        grad_session_ms  [rows, columns] x [columns, hidden]   gradient of the session vectors
        grad_items_ms    [columns, rows] x [rows, hidden]      gradient of the item table

    Together they are ``6 rows columns hidden`` FLOPs (:func:`harness.models.neural.softmax_flops`).
    Operands are drawn from a generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    session, table = torch.randn(rows, hidden, generator=gen), torch.randn(columns, hidden, generator=gen)
    grad = torch.randn(rows, columns, generator=gen)
    a = torch.randn(square, square, generator=gen)
    seconds = best_mean_seconds(lambda: a @ a, max(1, repeat // 6), clock)
    return {
        "square_gflops": 2.0 * square**3 / seconds / 1e9,
        "scores_ms": 1e3 * best_mean_seconds(lambda: session @ table.T, repeat, clock),
        "grad_session_ms": 1e3 * best_mean_seconds(lambda: grad @ table, repeat, clock),
        "grad_items_ms": 1e3 * best_mean_seconds(lambda: grad.T @ session, repeat, clock),
    }


def gemm_bound_figures(flops: float, seconds_per_step: float, rates: dict[str, float]) -> dict[str, float]:
    """A training step of ``flops`` softmax FLOPs that took ``seconds_per_step``,
    against the bounds of :func:`softmax_gemm_rates` (``rates``)::

        bound_ms_square = flops / square rate      (the products alone at the peak-like rate)
        bound_ms_shapes = scores_ms + grad_session_ms + grad_items_ms
        ratio_square    = step time / bound_ms_square
        ratio_shapes    = step time / bound_ms_shapes

    plus ``ms_per_step`` and ``softmax_gflops`` (flops / step time)."""
    bound_square = flops / (rates["square_gflops"] * 1e9)
    bound_shapes = (rates["scores_ms"] + rates["grad_session_ms"] + rates["grad_items_ms"]) / 1e3
    return {"ms_per_step": 1e3 * seconds_per_step, "softmax_gflops": flops / seconds_per_step / 1e9,
            "bound_ms_square": 1e3 * bound_square, "bound_ms_shapes": 1e3 * bound_shapes,
            "ratio_square": seconds_per_step / bound_square, "ratio_shapes": seconds_per_step / bound_shapes}

"""Index build time and top-20 search throughput of each retrieval method on
clustered random item vectors (d = 100, norms varying: a MIPS problem).

``make test`` runs each case once on 5,000 items (the project passes
``--benchmark-disable``); with ``--benchmark-enable`` the catalogue has
100,000 items::

    .venv/bin/pytest tests/benchmarks/test_bench_retrieval.py --benchmark-enable

``test_build`` times building the index; ``test_search_batch`` searches 1,000
queries in batches of 500 (queries per second = 1,000 / the reported time);
``test_search_one`` searches a single query. The ANN recall@20 of the last
batch against exact search is printed and checked against a floor that only
a broken index misses. Everything runs on one thread. On a shared machine,
compare methods within one run.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.evaluation.retrieval import make_index, make_setting

pytest.importorskip("faiss")
pytest.importorskip("annoy")

DIM, K, N_QUERIES = 100, 20, 1000
SETTINGS = {
    "exact": ("exact", {}, 1.0),
    "faiss-flat": ("faiss-flat", {}, 0.99),
    "faiss-hnsw": ("faiss-hnsw", {"efSearch": 128}, 0.5),
    "faiss-ivf": ("faiss-ivf", {"nprobe": 16}, 0.5),
    "faiss-ivfpq": ("faiss-ivfpq", {"nprobe": 16, "nbits": 6, "rerank": 4}, 0.3),
    "faiss-lsh": ("faiss-lsh", {"nbits": 512, "rerank": 10}, 0.2),
    "annoy": ("annoy", {"n_trees": 50}, 0.3),
}


def _vectors(n: int, seed: int) -> np.ndarray:
    """Vectors around 64 cluster centres, with norms spread over [0.5, 2]."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(64, DIM))
    x = centres[rng.integers(0, 64, size=n)] + 0.5 * rng.normal(size=(n, DIM))
    x *= rng.uniform(0.5, 2.0, size=(n, 1)) / np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Every method on one thread (faiss's OpenMP threads spin-wait on a busy machine)."""
    import faiss
    import torch

    before = torch.get_num_threads()
    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def catalogue(request):
    enabled = not request.config.getoption("benchmark_disable", False)
    n_items = 100_000 if enabled else 5_000
    items, queries = _vectors(n_items, 0), _vectors(N_QUERIES, 1)
    truth = np.argsort(-(queries @ items.T), axis=1)[:, :K] + 1
    return items, queries, truth


def _search_all(index, queries):
    return np.concatenate([index.search(queries[lo : lo + 500], K) for lo in range(0, len(queries), 500)])


@pytest.mark.parametrize("name", SETTINGS)
def test_build(benchmark, catalogue, name):
    method, params, _ = SETTINGS[name]
    items = catalogue[0]
    index = benchmark.pedantic(lambda: make_index(make_setting(method, params)).build(items), rounds=1, iterations=1)
    assert index.nbytes() > 0


@pytest.mark.parametrize("name", SETTINGS)
def test_search_batch(benchmark, catalogue, name):
    method, params, floor = SETTINGS[name]
    items, queries, truth = catalogue
    index = make_index(make_setting(method, params)).build(items)
    ids = benchmark(_search_all, index, queries)
    assert ids.shape == (N_QUERIES, K) and ids.min() >= 1 and ids.max() <= len(items)
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(ids.tolist(), truth.tolist())])
    print(f"{name}: ANN recall@{K} {recall:.3f} on {len(items):,} items")
    assert recall >= floor


@pytest.mark.parametrize("name", ["exact", "faiss-hnsw", "annoy"])
def test_search_one(benchmark, catalogue, name):
    method, params, _ = SETTINGS[name]
    items, queries, _ = catalogue
    index = make_index(make_setting(method, params)).build(items)
    ids = benchmark(index.search, queries[:1], K)
    assert ids.shape == (1, K)

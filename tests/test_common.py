"""The popularity fallback shared by the rule and neighbourhood models."""

import torch

import harness.evaluation.metrics

from baselines.common import apply_fallback


def test_fallback_ranks_unscored_items_by_popularity_below_every_positive_score():
    scores = torch.tensor([[0.0, 0.0, 2.0, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0]])
    pop = torch.tensor([0.0, 1.0, 0.5, 0.25, 0.1])
    out = apply_fallback(scores, pop, "pop")
    # row 0: smallest positive 0.5, so unscored items get 0.25 * pop
    assert out[0].tolist() == [0.0, 0.25, 2.0, 0.0625, 0.5]
    # row 1: nothing positive, so m = 1: 0.5 * pop
    assert out[1].tolist() == [0.0, 0.5, 0.25, 0.125, 0.05000000074505806]
    assert apply_fallback(scores, pop, "none") is scores


def test_fallback_in_blocks_of_rows_is_the_same(monkeypatch):
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(23, 9, generator=g) * (torch.rand(23, 9, generator=g) > 0.6)
    pop = torch.rand(9, generator=g)
    whole = apply_fallback(scores, pop, "pop")
    monkeypatch.setattr(harness.evaluation.metrics, "ROW_BLOCK_CELLS", 9 * 5)  # blocks of 5 rows, the last one short
    blocks = apply_fallback(scores, pop, "pop")
    assert torch.equal(blocks, whole)
    assert blocks.dtype == scores.dtype


def test_sparse_fallback_equals_the_dense_one_bit_for_bit():
    import numpy as np
    import scipy.sparse as sp

    from baselines.common import sparse_fallback

    rng = np.random.default_rng(2)
    for dtype in (np.float32, np.float64):
        dense = rng.random((17, 40)).astype(dtype) * (rng.random((17, 40)) > 0.8)
        dense[3] = 0  # a row with nothing positive
        dense[5, 7] = 1e-40 if dtype == np.float64 else 1e-44  # tiny positive scores
        rows = sp.csr_matrix(dense)
        rows.data[:2] = 0  # explicit zeros are not positive
        dense = rows.toarray()
        pop = torch.rand(40, generator=torch.Generator().manual_seed(0))
        for fallback in ("pop", "none"):
            want = apply_fallback(torch.from_numpy(dense), pop, fallback)
            got = sparse_fallback(rows, pop, fallback)
            assert got.dtype == want.dtype
            assert torch.equal(got, want)

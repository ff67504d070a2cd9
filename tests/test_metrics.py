"""Ranking and metrics: hand-worked values, properties, and a brute-force oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.evaluation import metrics as M
from harness.errors import UnknownNameError
from harness.evaluation.metrics import (
    PAD_RANK,
    UNRANKED,
    case_metrics,
    case_metrics_ragged,
    coverage,
    popularity,
    rank_and_top,
    summarise,
    target_ranks,
    top_items,
    unique_targets,
)

L2 = math.log2


def t(x, dtype=torch.long):
    return torch.tensor(x, dtype=dtype)


# Five items; the padding column holds the HIGHEST score and must be ignored.
# item:        pad    1    2    3    4    5
FIVE = t([[100.0, 0.9, 0.5, 0.5, 0.5, 0.1]], torch.float32)


# --------------------------------------------------------------------------- #
# target_ranks by hand
# --------------------------------------------------------------------------- #


def test_target_tied_with_two_others_ranks_below_them():
    # item 3 ties with items 2 and 4: pessimistic rank 4, not 2
    assert target_ranks(FIVE, t([[3]])).tolist() == [[4]]
    assert target_ranks(FIVE, t([[1]])).tolist() == [[1]]  # padding (score 100) never ranks
    assert target_ranks(FIVE, t([[5]])).tolist() == [[5]]
    assert target_ranks(FIVE, t([3])).tolist() == [4]  # 1-D targets -> 1-D ranks


def test_tied_targets_take_consecutive_positions():
    # targets 3 and 4 tie with each other and with non-target 2:
    # both go below item 2, then the smaller id first
    assert target_ranks(FIVE, t([[3, 4]])).tolist() == [[3, 4]]
    assert target_ranks(FIVE, t([[4, 3]])).tolist() == [[4, 3]]
    # three targets (the searchsorted path): 1 first, non-target 2, then 3 and 4
    assert target_ranks(FIVE, t([[3, 4, 1]])).tolist() == [[3, 4, 1]]
    # all scores equal: targets 2 and 5 go below the three non-targets
    flat = torch.zeros(1, 6)
    assert target_ranks(flat, t([[2, 5]])).tolist() == [[4, 5]]
    assert target_ranks(flat, t([[5, 2, 0]])).tolist() == [[5, 4, 0]]


def test_padding_targets_and_duplicates():
    assert target_ranks(FIVE, t([[3, 0, 4, 3]])).tolist() == [[3, 0, 4, 3]]
    assert target_ranks(FIVE, t([[0]])).tolist() == [[PAD_RANK]]
    # padding id never ranks even if the scorer puts it first for every row
    scores = t([[9.0, 1.0, 2.0], [9.0, 2.0, 1.0]], torch.float32)
    assert target_ranks(scores, t([[2], [1]])).tolist() == [[1], [1]]


def test_exclude_removes_prefix_items():
    # exclude items 1 and 2 (with padding and a repeat): item 3 now only ties with 4
    ex = t([[1, 2, 2, 0]])
    assert target_ranks(FIVE, t([[3]]), exclude=ex).tolist() == [[2]]
    assert target_ranks(FIVE, t([[5]]), exclude=ex).tolist() == [[3]]
    # an excluded target can never be hit
    assert target_ranks(FIVE, t([[1, 3]]), exclude=ex).tolist() == [[UNRANKED, 2]]
    # without exclude nothing changes
    assert target_ranks(FIVE, t([[3]]), exclude=None).tolist() == [[4]]


def test_exclude_with_minus_inf_target():
    # excluded items do not count even when the target's own score is -inf
    scores = t([[0.0, 1.0, 2.0, 3.0, 0.5, -math.inf]], torch.float32)
    assert target_ranks(scores, t([[5]])).tolist() == [[5]]
    assert target_ranks(scores, t([[5]]), exclude=t([[1, 3]])).tolist() == [[3]]


def test_nan_scores_rank_last():
    scores = t([[0.0, float("nan"), 1.0, float("nan"), -math.inf]], torch.float32)
    # NaN counts as -inf: item 1 ties with items 3 and 4 -> pessimistic rank 4
    assert target_ranks(scores, t([[1]])).tolist() == [[4]]
    assert target_ranks(scores, t([[2]])).tolist() == [[1]]


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        target_ranks(FIVE, t([[6]]))
    with pytest.raises(ValueError):
        target_ranks(FIVE, t([[1], [2]]))
    with pytest.raises(ValueError):
        target_ranks(FIVE, t([[1]]), exclude=t([[7]]))


def test_searchsorted_path_matches_direct_path(monkeypatch):
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 30, (23, 3001), generator=g).float()
    targets = torch.randint(0, 3001, (23, 12), generator=g)
    exclude = torch.randint(0, 3001, (23, 9), generator=g)
    monkeypatch.setattr(M, "_CHUNK_ELEMENTS", 5000)  # several chunks
    fast = target_ranks(scores, targets, exclude=exclude)
    monkeypatch.setattr(M, "_DIRECT_COLUMNS", 1000)
    slow = target_ranks(scores, targets, exclude=exclude)
    assert torch.equal(fast, slow)
    assert fast.dtype == torch.long


# --------------------------------------------------------------------------- #
# unique_targets and top_items by hand
# --------------------------------------------------------------------------- #


def test_unique_targets_keeps_first_occurrences_in_order():
    rem = t([[3, 5, 3, 0], [7, 7, 7, 2], [0, 0, 0, 0], [4, 0, 0, 0]])
    assert unique_targets(rem).tolist() == [[3, 5], [7, 2], [0, 0], [4, 0]]
    assert unique_targets(t([[0, 0]])).tolist() == [[0]]
    assert unique_targets(torch.zeros(2, 0, dtype=torch.long)).shape == (2, 1)


def test_top_items_ties_by_id_and_exclusion():
    scores = t([[99.0, 0.5, 0.9, 0.5, 0.5, 0.1]], torch.float32)
    assert top_items(scores, 1).tolist() == [[2]]
    assert top_items(scores, 2).tolist() == [[2, 1]]  # 1, 3, 4 tie: smallest id
    assert top_items(scores, 3).tolist() == [[2, 1, 3]]
    assert top_items(scores, 9).tolist() == [[2, 1, 3, 4, 5]]  # width min(k, n_items)
    assert top_items(scores, 3, exclude=t([[1, 0]])).tolist() == [[2, 3, 4]]
    # fewer rankable items than k: padded with 0 at the end
    assert top_items(scores, 5, exclude=t([[2, 4]])).tolist() == [[1, 3, 5, 0, 0]]


def test_top_items_rows_with_and_without_boundary_ties():
    scores = t(
        [
            [0.0, 3.0, 2.0, 1.0, 0.0],  # no tie
            [0.0, 1.0, 1.0, 1.0, 1.0],  # all tied
            [0.0, 0.0, 5.0, 0.0, 5.0],  # tie inside and at the boundary
        ],
        torch.float32,
    )
    assert top_items(scores, 2).tolist() == [[1, 2], [1, 2], [2, 4]]
    assert top_items(scores, 3).tolist() == [[1, 2, 3], [1, 2, 3], [2, 4, 1]]


# --------------------------------------------------------------------------- #
# per-case metrics by hand
# --------------------------------------------------------------------------- #


def test_next_protocol_metrics_by_hand():
    ranks = t([[1], [3], [7], [UNRANKED]])
    m = case_metrics(ranks, ks=(1, 5, 10))
    assert m["HitRate@1"].tolist() == [1, 0, 0, 0]
    assert m["HitRate@5"].tolist() == [1, 1, 0, 0]
    assert m["HitRate@10"].tolist() == [1, 1, 1, 0]
    assert m["Recall@5"].tolist() == m["HitRate@5"].tolist()
    assert m["MRR@5"].tolist() == pytest.approx([1, 1 / 3, 0, 0])  # cut-off at 5
    assert m["MRR@10"].tolist() == pytest.approx([1, 1 / 3, 1 / 7, 0])
    assert m["NDCG@5"].tolist() == pytest.approx([1, 1 / L2(4), 0, 0])
    assert m["NDCG@10"].tolist() == pytest.approx([1, 0.5, 1 / L2(8), 0])
    assert list(m) == [f"{n}@{k}" for n in ("HitRate", "Recall", "MRR", "NDCG") for k in (1, 5, 10)]


def test_rest_protocol_metrics_by_hand():
    # case 0: targets at ranks 1 and 3; case 1: ranks 4 and 2 (padded);
    # case 2: three targets, one excluded (UNRANKED)
    ranks = t([[1, 3, 0], [4, 2, 0], [UNRANKED, 2, 60]])
    m = case_metrics(ranks, ks=(1, 2, 3, 5))
    ideal2 = 1 + 1 / L2(3)
    ideal3 = ideal2 + 1 / L2(4)
    assert m["NDCG@5"][0].item() == pytest.approx((1 + 1 / 2) / ideal2)
    assert m["NDCG@2"][0].item() == pytest.approx(1 / ideal2)
    assert m["NDCG@1"][0].item() == pytest.approx(1.0)
    assert m["Recall@2"].tolist() == pytest.approx([1 / 2, 1 / 2, 1 / 3])
    assert m["Recall@5"].tolist() == pytest.approx([1, 1, 1 / 3])
    assert m["HitRate@1"].tolist() == [1, 0, 0]
    assert m["MRR@1"].tolist() == [1, 0, 0]
    assert m["MRR@3"].tolist() == pytest.approx([1, 1 / 2, 1 / 2])
    assert m["NDCG@3"][1].item() == pytest.approx((1 / L2(3)) / ideal2)
    assert m["NDCG@5"][2].item() == pytest.approx((1 / L2(3)) / ideal3)
    # explicit n_targets is the denominator
    m2 = case_metrics(t([[1, 0]]), n_targets=t([4]), ks=5)
    assert m2["Recall@5"].item() == pytest.approx(0.25)


def test_ragged_equals_padded():
    padded = t([[1, 3, 0], [4, 2, 0], [UNRANKED, 2, 60], [5, 0, 0]])
    flat = t([1, 3, 4, 2, UNRANKED, 2, 60, 5])
    a = case_metrics(padded, ks=(1, 3, 50))
    b = case_metrics_ragged(flat, t([2, 2, 3, 1]), ks=(1, 3, 50))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k]), k
    with pytest.raises(ValueError):
        case_metrics_ragged(flat, t([2, 2]), ks=5)


def test_recall_counts_duplicate_remaining_items_once():
    # session continues with 5, 5, 2: two distinct targets; 5 at rank 1, 2 at rank 4
    scores = t([[0.0, 0.1, 0.2, 0.3, 0.4, 0.9]], torch.float32)
    targets = unique_targets(t([[5, 5, 2, 0]]))
    assert targets.tolist() == [[5, 2]]
    ranks = target_ranks(scores, targets)
    assert ranks.tolist() == [[1, 4]]
    m = case_metrics(ranks, ks=(3, 5))
    assert m["Recall@3"].item() == pytest.approx(0.5)  # not 2/3
    assert m["Recall@5"].item() == pytest.approx(1.0)


def test_exclude_seen_end_to_end_by_hand():
    # prefix [1, 2] is removed; target 1 (a repeat) is a miss at every K
    ranks = target_ranks(FIVE.expand(2, -1), t([[1], [3]]), exclude=t([[1, 2], [1, 2]]))
    assert ranks.tolist() == [[UNRANKED], [2]]
    m = case_metrics(ranks, ks=(5, 1000))
    assert m["HitRate@1000"].tolist() == [0, 1]
    assert m["MRR@5"].tolist() == [0, 0.5]


def test_coverage_and_popularity_by_hand():
    top = t([[1, 2, 3], [1, 4, 5]])
    assert coverage(top, 1, 10) == pytest.approx(0.1)
    assert coverage(top, 2, 10) == pytest.approx(0.3)
    assert coverage(top, 3, 10) == pytest.approx(0.5)
    counts = np.array([7, 10, 5, 0, 2, 1, 0, 0, 0, 0, 0])  # padding count ignored
    assert popularity(top, 2, counts).tolist() == pytest.approx([0.75, 0.6])
    assert popularity(top, 3, counts).tolist() == pytest.approx([0.5, 1.3 / 3])
    # zeros in a list (fewer items than K) are skipped
    assert popularity(t([[2, 0, 0]]), 3, counts).tolist() == pytest.approx([0.5])
    assert coverage(t([[0, 0]]), 2, 10) == 0.0
    with pytest.raises(ValueError):
        coverage(top, 4, 10)


def test_summarise_by_hand():
    ranks = t([[1], [3], [7], [UNRANKED]])
    top = t([[1, 2], [1, 3], [2, 3], [4, 1]])
    counts = np.array([0, 4, 2, 1, 0])
    out = summarise(ranks, top, ks=(1, 2), n_items=4, item_popularity=counts, protocol="next")
    assert list(out) == [
        "HitRate@1", "HitRate@2", "Recall@1", "Recall@2", "MRR@1", "MRR@2", "NDCG@1", "NDCG@2",
        "Coverage@1", "Coverage@2", "Popularity@1", "Popularity@2",
    ]  # fmt: skip
    assert out["HitRate@1"] == pytest.approx(0.25)
    assert out["HitRate@2"] == pytest.approx(0.25)
    assert out["Coverage@1"] == pytest.approx(3 / 4)
    assert out["Coverage@2"] == pytest.approx(1.0)
    assert out["Popularity@1"] == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert out["Popularity@2"] == pytest.approx(((1 + 0.5) / 2 + (1 + 0.25) / 2 + 0.75 / 2 + 0.5) / 4)
    rest = summarise(t([[1, 3]]), ks=5, protocol="rest")
    assert set(rest) == {"HitRate@5", "Recall@5", "MRR@5", "NDCG@5"}
    only = summarise(ranks, ks=5, names=["MRR"])
    assert only == {"MRR@5": pytest.approx((1 + 1 / 3) / 4)}
    with pytest.raises(ValueError):
        summarise(ranks, ks=5, names=["Coverage"])  # needs the top lists


# --------------------------------------------------------------------------- #
# registry
# --------------------------------------------------------------------------- #


def test_registry_metadata():
    assert list(M.METRICS) == ["HitRate", "Recall", "MRR", "NDCG", "Coverage", "Popularity"]
    assert M.METRICS["HitRate"].label == "HitRate@K"
    assert M.METRICS["NDCG"].higher_is_better is True
    assert M.METRICS["Popularity"].higher_is_better is None
    assert M.METRICS["Coverage"].per_case is False
    assert M.METRICS["Popularity"].per_case is True
    assert M.METRICS["MRR"].kind == "rank"
    assert all(s.formula for s in M.METRICS.values())
    assert M.protocol_metrics("next") == ("HitRate", "Recall", "MRR", "NDCG", "Coverage", "Popularity")
    assert M.protocol_metrics("rest") == ("HitRate", "Recall", "MRR", "NDCG", "Coverage", "Popularity")
    spec, k = M.parse_metric_key("NDCG@20")
    assert spec.name == "NDCG" and k == 20
    assert M.metric_key("MRR", 5) == "MRR@5"
    assert M.METRICS["HitRate"].best([0.2, 0.5, 0.1]) == 1
    assert M.METRICS["Popularity"].best([0.2, 0.5]) is None
    with pytest.raises(UnknownNameError):
        M.metric_spec("Precision")
    with pytest.raises(ValueError):
        M.parse_metric_key("NDCG")
    with pytest.raises(ValueError):
        M.normalise_ks([0, 5])
    assert M.normalise_ks([20, 5, 5]) == (5, 20)


# --------------------------------------------------------------------------- #
# properties
# --------------------------------------------------------------------------- #

SCORE_VALUES = [0.0, 1.0, 2.0, 3.0, -math.inf, math.nan]


@st.composite
def ranking_case(draw):
    b = draw(st.integers(1, 4))
    n = draw(st.integers(1, 8))
    scores = draw(st.lists(st.lists(st.sampled_from(SCORE_VALUES), min_size=n + 1, max_size=n + 1),
                           min_size=b, max_size=b))  # fmt: skip
    tw = draw(st.integers(1, 6))
    targets = draw(st.lists(st.lists(st.integers(0, n), min_size=tw, max_size=tw), min_size=b, max_size=b))
    exclude = None
    if draw(st.booleans()):
        ew = draw(st.integers(1, 4))
        exclude = draw(st.lists(st.lists(st.integers(0, n), min_size=ew, max_size=ew), min_size=b, max_size=b))
    return scores, targets, exclude


def oracle_ranks(scores, targets, exclude):
    """Pessimistic ranks by an explicit Python sort of each row."""
    out = []
    for row, (srow, trow) in enumerate(zip(scores, targets)):
        ex = set(exclude[row]) - {0} if exclude is not None else set()
        tset = set(trow) - {0}
        val = lambda i: -math.inf if math.isnan(srow[i]) else srow[i]  # noqa: E731
        items = [i for i in range(1, len(srow)) if i not in ex]
        # higher score first; among equals, non-targets before targets; then id
        order = sorted(items, key=lambda i: (-val(i), i in tset, i))
        pos = {item: p + 1 for p, item in enumerate(order)}
        out.append([0 if x == 0 else UNRANKED if x in ex else pos[x] for x in trow])
    return out


def oracle_top(scores, k, exclude):
    out = []
    n = len(scores[0]) - 1
    for row, srow in enumerate(scores):
        ex = set(exclude[row]) if exclude is not None else set()
        val = lambda i: -math.inf if math.isnan(srow[i]) else srow[i]  # noqa: E731
        order = sorted((i for i in range(1, n + 1) if i not in ex), key=lambda i: (-val(i), i))
        width = min(k, n)
        out.append((order + [0] * width)[:width])
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ranking_case())
def test_ranks_equal_brute_force_oracle(case):
    scores, targets, exclude = case
    s = torch.tensor(scores, dtype=torch.float32)
    ex = None if exclude is None else t(exclude)
    assert target_ranks(s, t(targets), exclude=ex).tolist() == oracle_ranks(scores, targets, exclude)


@settings(max_examples=200, deadline=None)
@given(ranking_case(), st.integers(1, 10))
def test_top_items_equal_brute_force_oracle(case, k):
    scores, _, exclude = case
    s = torch.tensor(scores, dtype=torch.float64)
    ex = None if exclude is None else t(exclude)
    assert top_items(s, k, exclude=ex).tolist() == oracle_top(scores, k, exclude)


@settings(max_examples=200, deadline=None)
@given(ranking_case())
def test_ranks_of_distinct_targets_form_a_permutation_prefix(case):
    scores, targets, exclude = case
    ex = None if exclude is None else t(exclude)
    ranks = target_ranks(torch.tensor(scores), t(targets), exclude=ex)
    for row, trow in enumerate(targets):
        seen = {}
        for item, r in zip(trow, ranks[row].tolist()):
            if item and r != UNRANKED:
                seen.setdefault(item, r)
                assert seen[item] == r  # duplicates share the rank
        assert len(set(seen.values())) == len(seen)  # distinct items, distinct ranks


@st.composite
def perfect_case(draw):
    n = draw(st.integers(1, 30))
    b = draw(st.integers(1, 5))
    rows = []
    for _ in range(b):
        k = draw(st.integers(1, min(n, 6)))
        rows.append(draw(st.lists(st.integers(1, n), min_size=k, max_size=k, unique=True)))
    tied = draw(st.booleans())
    return n, rows, tied


@settings(max_examples=150, deadline=None)
@given(perfect_case(), st.integers(0, 2**16))
def test_perfect_scorer_scores_one(case, seed):
    n, rows, tied = case
    g = torch.Generator().manual_seed(seed)
    width = max(len(r) for r in rows)
    targets = torch.zeros(len(rows), width, dtype=torch.long)
    scores = torch.rand(len(rows), n + 1, generator=g)
    scores[:, 0] = 10.0  # a high padding score must not matter
    for i, r in enumerate(rows):
        targets[i, : len(r)] = t(r)
        # targets get strictly the highest scores (possibly all tied with each other)
        scores[i, r] = 2.0 if tied else 2.0 + torch.rand(len(r), generator=g)
    ranks = target_ranks(scores, targets)
    for i, r in enumerate(rows):
        assert sorted(ranks[i, : len(r)].tolist()) == list(range(1, len(r) + 1))
    ks = range(width, width + 4)
    for key, val in case_metrics(ranks, ks=ks).items():
        assert val.tolist() == pytest.approx([1.0] * len(rows), abs=1e-12), key
    # next protocol: one target per case, strictly the highest score
    scores = torch.rand(len(rows), n + 1, generator=g)
    scores[:, 0] = 10.0
    nxt = targets[:, :1]
    scores.scatter_(1, nxt, 2.0)
    ranks = target_ranks(scores, nxt)
    assert ranks.flatten().tolist() == [1] * len(rows)
    for key, val in case_metrics(ranks, ks=(1, 5)).items():
        assert torch.all(val == 1.0), key


@st.composite
def rank_matrix(draw):
    # valid rank rows: distinct ranks (a permutation), plus UNRANKED misses and 0 padding
    c = draw(st.integers(1, 6))
    w = draw(st.integers(1, 5))
    rows = []
    for _ in range(c):
        real = draw(st.lists(st.integers(1, 40), min_size=0, max_size=w, unique=True))
        rest = draw(st.lists(st.sampled_from([0, UNRANKED]), min_size=w - len(real), max_size=w - len(real)))
        rows.append(draw(st.permutations(real + rest)))
    return t(rows)


@settings(max_examples=200, deadline=None)
@given(rank_matrix())
def test_metric_properties(ranks):
    ks = list(range(1, 45))
    m = case_metrics(ranks, ks=ks)
    for k, k2 in zip(ks, ks[1:]):
        for name in ("HitRate", "Recall", "MRR"):  # these never fall as K grows
            assert torch.all(m[f"{name}@{k2}"] >= m[f"{name}@{k}"]), (name, k)
    for k in ks:
        nd, mrr, hr, rec = m[f"NDCG@{k}"], m[f"MRR@{k}"], m[f"HitRate@{k}"], m[f"Recall@{k}"]
        assert torch.all((nd >= 0) & (nd <= 1 + 1e-12))
        assert torch.all(mrr <= hr)
        assert torch.all(rec <= hr)
        assert torch.all(((hr == 0) | (hr == 1)))
    # next protocol (one target per case): HitRate == Recall, MRR <= NDCG
    m1 = case_metrics(ranks[:, :1], ks=ks)
    for k in ks:
        assert torch.equal(m1[f"HitRate@{k}"], m1[f"Recall@{k}"])
        assert torch.all(m1[f"MRR@{k}"] <= m1[f"NDCG@{k}"] + 1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["distinct", "ties", "floor"])
def test_chunked_top_selection_and_tie_scan_equal_the_plain_ones(kind, dtype, monkeypatch):
    # rows wide enough for the chunk bound (N >= 16 * 32 * (k + 1)); with many
    # ties at the k-th score, -inf and NaN scores, and excluded items
    import harness.evaluation.metrics as metrics

    gen = torch.Generator().manual_seed(5)
    B, N = 40, 11000
    if kind == "distinct":
        scores = torch.rand(B, N + 1, generator=gen, dtype=dtype)
    elif kind == "ties":
        scores = torch.randint(0, 30, (B, N + 1), generator=gen).to(dtype)
    else:  # most items at -inf, fewer finite scores than k in some rows
        scores = torch.full((B, N + 1), -math.inf, dtype=dtype)
        scores[:, :40] = torch.randint(0, 3, (B, 40), generator=gen).to(dtype)
        scores[::2, 10:] = -math.inf
    scores[3, 7] = math.nan
    scores[4, 100:110] = math.inf
    targets = torch.randint(1, N + 1, (B, 2), generator=gen)
    exclude = torch.randint(0, N + 1, (B, 5), generator=gen)
    for ex in (None, exclude):
        fast = rank_and_top(scores, targets, 20, exclude=ex)
        s, _ = metrics._prepare(scores, ex)
        values, columns = metrics._largest(s, 21)
        assert torch.equal(values, torch.topk(s, 21, dim=1).values)
        assert torch.equal(s.gather(1, columns), values)
        with monkeypatch.context() as m:
            m.setattr(metrics, "_CHUNKS_PER_K", 10**6)  # every row through torch.topk
            m.setattr(metrics, "_tied_by_scan", metrics._tied_by_key)  # ties as on other devices
            plain = rank_and_top(scores, targets, 20, exclude=ex)
        assert torch.equal(fast[0], plain[0]) and torch.equal(fast[1], plain[1])

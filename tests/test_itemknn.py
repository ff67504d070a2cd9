"""itemknn: exact similarities on a hand-made dataset, the fallback, the
neighbour cut, and agreement with an item-by-item reference of the GRU4Rec /
session-rec computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.itemknn import ItemKNN
from harness.data.dataset import PrefixBatch
from harness.errors import ConfigError
from hand_data import dataset_from, rows, split_from  # noqa: F401

# The hand dataset: five items, four training sessions
#   S1: 1 2 3     S2: 1 2 4     S3: 2 2 3 1     S4: 5 1
# supp (training clicks): item 1: 4, item 2: 4, item 3: 2, item 4: 1, item 5: 1, so the
# popularity of fallback="pop" is pop = [1, 1, 0.5, 0.25, 0.25] for items 1..5.
# Numerator N(i, j) = sum_s c_s(i) [j in s] (every click on i adds 1 to each distinct
# item of its session, as the reference code):
#   N(1,2) = 1 + 1 + 1 = 3 but N(2,1) = 1 + 1 + 2 = 4 (item 2 is clicked twice in S3)
#   N(2,3) = 1 + 2 = 3 but N(3,2) = 1 + 1 = 2;  N(1,3) = N(3,1) = 2
#   N(1,4) = N(4,1) = N(2,4) = N(4,2) = N(1,5) = N(5,1) = 1; all others 0
HAND = [[1, 2, 3], [1, 2, 4], [2, 2, 3, 1], [5, 1]]
SUPP = {1: 4, 2: 4, 3: 2, 4: 1, 5: 1}


def test_defaults_follow_the_reference_code():
    assert ItemKNN.hyperparameters() == {
        "n_sims": 100, "regularisation": 20.0, "alpha": 0.5, "count": "events", "fallback": "pop"
    }


def test_default_similarity_exact():
    # sim(i, j) = N(i, j) / ((supp_i + 20)^0.5 (supp_j + 20)^0.5)
    model = ItemKNN(fallback="none").fit(dataset_from(HAND, 5))
    s24, s22, s21 = math.sqrt(24), math.sqrt(22), math.sqrt(21)
    expected = torch.tensor(
        [
            [0.0, 3 / 24, 2 / (s24 * s22), 1 / (s24 * s21), 1 / (s24 * s21)],  # last item 1
            [4 / 24, 0.0, 3 / (s24 * s22), 1 / (s24 * s21), 0.0],  # last item 2 (itself 0)
            [2 / (s22 * s24), 2 / (s22 * s24), 0.0, 0.0, 0.0],  # last item 3
            [1 / (s21 * s24), 1 / (s21 * s24), 0.0, 0.0, 0.0],  # last item 4
            [1 / (s21 * s24), 0.0, 0.0, 0.0, 0.0],  # last item 5
        ]
    )
    assert torch.allclose(rows(model, [1, 2, 3, 4, 5]), expected)
    # earlier items of the prefix play no part
    prefix = model.score(PrefixBatch.from_sequences([[5, 4, 3, 2]]))[0, 1:]
    assert torch.allclose(prefix, expected[1])


def test_alpha_one_without_regularisation_is_the_confidence():
    # sim(i, j) = N(i, j) / supp_i: row 2: 4/4, -, 3/4, 1/4, 0;  row 3: 2/2, 2/2
    model = ItemKNN(regularisation=0.0, alpha=1.0, fallback="none").fit(dataset_from(HAND, 5))
    scores = rows(model, [2, 3])
    assert torch.allclose(scores[0], torch.tensor([1.0, 0.0, 0.75, 0.25, 0.0]))
    assert torch.allclose(scores[1], torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0]))


def test_asymmetric_alpha_and_regularisation():
    # alpha = 0.25, lambda = 2: sim(2, j) = N(2, j) / (6^0.25 (supp_j + 2)^0.75)
    model = ItemKNN(regularisation=2.0, alpha=0.25, fallback="none").fit(dataset_from(HAND, 5))
    d = lambda j: 6**0.25 * (SUPP[j] + 2) ** 0.75  # noqa: E731
    expected = torch.tensor([4 / d(1), 0.0, 3 / d(3), 1 / d(4), 0.0])
    assert torch.allclose(rows(model, [2])[0], expected)


def test_session_counts_use_binary_occurrence():
    # count="sessions": numerator = sessions with both: (2,1) = 3, (2,3) = 2, (2,4) = 1;
    # supp = sessions with the item: 1: 4, 2: 3, 3: 2, 4: 1
    # lambda = 0, alpha = 0.5: row 2: 3/sqrt(4*3), 0, 2/sqrt(3*2), 1/sqrt(3*1), 0
    model = ItemKNN(count="sessions", regularisation=0.0, fallback="none").fit(dataset_from(HAND, 5))
    expected = torch.tensor([3 / math.sqrt(12), 0.0, 2 / math.sqrt(6), 1 / math.sqrt(3), 0.0])
    assert torch.allclose(rows(model, [2])[0], expected)


def test_n_sims_keeps_the_nearest_ties_by_smaller_id():
    # row 2 (defaults): 1: 1/6 > 3: 3/sqrt(528) > 4: 1/sqrt(504); n_sims=2 keeps 1 and 3
    model = ItemKNN(n_sims=2, fallback="none").fit(dataset_from(HAND, 5))
    assert torch.allclose(rows(model, [2])[0], torch.tensor([4 / 24, 0.0, 3 / math.sqrt(528), 0.0, 0.0]))
    # row 4: items 1 and 2 tie at 1/sqrt(21 * 24); n_sims=1 keeps item 1
    model = ItemKNN(n_sims=1, fallback="none").fit(dataset_from(HAND, 5))
    assert torch.allclose(rows(model, [4])[0], torch.tensor([1 / math.sqrt(504), 0.0, 0.0, 0.0, 0.0]))


def test_pop_fallback():
    model = ItemKNN().fit(dataset_from(HAND, 5))
    scores = rows(model, [2, 5])
    # row 2: smallest positive m = 1/sqrt(504) (item 4); zeros get 0.5 * m * pop:
    #   item 2 (the last item itself): 0.5 * m * 1, item 5: 0.5 * m * 0.25
    m = 1 / math.sqrt(504)
    assert torch.allclose(scores[0], torch.tensor([4 / 24, 0.5 * m, 3 / math.sqrt(528), m, 0.125 * m]))
    # row 5: one neighbour, item 1, m = 1/sqrt(504): item 2: 0.5 m, 3: 0.25 m, 4 and 5: 0.125 m
    assert torch.allclose(scores[1], torch.tensor([m, 0.5 * m, 0.25 * m, 0.125 * m, 0.125 * m]))


def reference_itemknn(sessions, n_items, n_sims, lam, alpha):
    """The GRU4Rec / session-rec ItemKNN, item by item: for every click on i,
    add one to every distinct item of that click's session; zero i itself; divide by
    (supp_i + lam)^alpha (supp_j + lam)^(1 - alpha); keep the n_sims largest
    (ties: smaller id first)."""
    supp = np.zeros(n_items + 1)
    for s in sessions:
        for x in s:
            supp[x] += 1
    out = np.zeros((n_items + 1, n_items + 1))
    for i in range(1, n_items + 1):
        counts = np.zeros(n_items + 1)
        for s in sessions:
            for x in s:
                if x == i:
                    for y in set(s):
                        counts[y] += 1
        counts[i] = 0
        sims = counts / ((supp[i] + lam) ** alpha * (supp + lam) ** (1 - alpha))
        sims[0] = 0
        order = sorted(range(1, n_items + 1), key=lambda j: (-sims[j], j))[:n_sims]
        out[i, order] = sims[order]
    return torch.from_numpy(out[1:, 1:]).float()


@pytest.mark.parametrize("n_sims, lam, alpha", [(100, 20.0, 0.5), (3, 20.0, 0.5), (2, 0.0, 1.0), (4, 5.0, 0.2)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_the_reference(seed, n_sims, lam, alpha):
    rng = np.random.default_rng(seed)
    sessions = [[int(x) for x in rng.integers(1, 9, size=rng.integers(1, 10))] for _ in range(40)]
    sessions.append(list(range(1, 9)))
    model = ItemKNN(n_sims=n_sims, regularisation=lam, alpha=alpha, fallback="none").fit(dataset_from(sessions, 8))
    expected = reference_itemknn(sessions, 8, n_sims, lam, alpha)
    assert torch.allclose(rows(model, list(range(1, 9))), expected, atol=1e-6)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_sims": 0}, "itemknn: n_sims must be an integer >= 1"),
        ({"regularisation": -1.0}, "itemknn: regularisation must be a number >= 0"),
        ({"regularisation": float("nan")}, "itemknn: regularisation must be a number"),
        ({"alpha": 1.5}, r"itemknn: alpha must be a number in \[0.0, 1.0\]"),
        ({"count": "clicks"}, "itemknn: count must be one of"),
        ({"fallback": "random"}, "fallback must be one of"),
    ],
)
def test_invalid_hyperparameters_are_refused_in_fit(params, message):
    model = ItemKNN(**params)
    with pytest.raises(ConfigError, match=message):
        model.fit(dataset_from(HAND, 5))

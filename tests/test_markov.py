"""markov: exact transition probabilities on a hand-made dataset, the
fallback, session-rec's pruning and tie rule, and recovery of a planted chain."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
import torch

from baselines.markov import MarkovChain
from harness.data.dataset import PrefixBatch, SessionDataset, SessionSplit
from harness.errors import ConfigError
from harness.data.synthetic import generate_events, optimal_next_item_hit_rate
from hand_data import dataset_from, rows, split_from  # noqa: F401

# The hand dataset: five items, four training sessions (event index in brackets)
#   S1: 1 2 3        [0 1 2]
#   S2: 1 2 4        [3 4 5]
#   S3: 2 2 3 1      [6 7 8 9]
#   S4: 5 1          [10 11]
# Training clicks: item 1: 4, item 2: 4, item 3: 2, item 4: 1, item 5: 1, so the
# popularity of fallback="pop" is pop = [1, 1, 0.5, 0.25, 0.25] for items 1..5.
HAND = [[1, 2, 3], [1, 2, 4], [2, 2, 3, 1], [5, 1]]


# Transitions: 1->2 (t1), 2->3 (t2), 1->2 (t4), 2->4 (t5), 2->2 (t7), 2->3 (t8), 3->1 (t9), 5->1 (t11)
#   n(1, .) = {2: 2}                 -> P(2|1) = 1
#   n(2, .) = {3: 2, 4: 1, 2: 1}     -> P(3|2) = 2/4, P(4|2) = 1/4, P(2|2) = 1/4
#   n(3, .) = {1: 1}                 -> P(1|3) = 1
#   n(4, .) = {}                     (4 is never followed)
#   n(5, .) = {1: 1}                 -> P(1|5) = 1
RAW = torch.tensor(
    [
        [0.0, 1.0, 0.0, 0.0, 0.0],  # last item 1
        [0.0, 0.25, 0.5, 0.25, 0.0],  # last item 2
        [1.0, 0.0, 0.0, 0.0, 0.0],  # last item 3
        [0.0, 0.0, 0.0, 0.0, 0.0],  # last item 4
        [1.0, 0.0, 0.0, 0.0, 0.0],  # last item 5
    ]
)


def test_scores_are_transition_probabilities_without_fallback():
    model = MarkovChain(fallback="none").fit(dataset_from(HAND, 5))
    assert torch.allclose(rows(model, [1, 2, 3, 4, 5]), RAW)


def test_only_the_last_item_of_the_prefix_counts():
    model = MarkovChain(fallback="none").fit(dataset_from(HAND, 5))
    scores = model.score(PrefixBatch.from_sequences([[3, 1, 2], [2], [4, 4, 5]]))[:, 1:]
    assert torch.allclose(scores, RAW[[1, 1, 4]])


def test_pop_fallback_ranks_the_rest_by_popularity_below_every_probability():
    model = MarkovChain().fit(dataset_from(HAND, 5))  # fallback="pop" is the default
    scores = rows(model, [2, 4, 1])
    # last item 2: smallest positive m = 1/4, zeros get 0.5 * m * pop:
    #   item 1: 0.5 * 0.25 * 1 = 0.125, item 5: 0.5 * 0.25 * 0.25 = 0.03125
    assert torch.allclose(scores[0], torch.tensor([0.125, 0.25, 0.5, 0.25, 0.03125]))
    # last item 4 was never followed: no positive score, m = 1, all 0.5 * pop
    assert torch.allclose(scores[1], torch.tensor([0.5, 0.5, 0.25, 0.125, 0.125]))
    # last item 1: m = 1; item 1: 0.5, items 3: 0.25, 4 and 5: 0.125
    assert torch.allclose(scores[2], torch.tensor([0.5, 1.0, 0.25, 0.125, 0.125]))


def test_pruning_keeps_the_most_frequent_successors_ties_by_first_occurrence():
    # row 2: n(2,3) = 2 is kept first; 2->4 (t5) and 2->2 (t7) tie at 1 and
    # 2->4 occurred first, so pruning=2 keeps item 4 (not the smaller id 2).
    # Probabilities keep the unpruned denominator n(2) = 4.
    model = MarkovChain(pruning=2, fallback="none").fit(dataset_from(HAND, 5))
    assert torch.allclose(rows(model, [2])[0], torch.tensor([0.0, 0.0, 0.5, 0.25, 0.0]))
    model = MarkovChain(pruning=1, fallback="none").fit(dataset_from(HAND, 5))
    assert torch.allclose(rows(model, [2])[0], torch.tensor([0.0, 0.0, 0.5, 0.0, 0.0]))
    model = MarkovChain(pruning=0, fallback="none").fit(dataset_from(HAND, 5))
    assert torch.allclose(rows(model, [1, 2, 3, 4, 5]), RAW)


def reference_markov(sessions, n_items, pruning):
    """session-rec's MarkovModel, event by event (dicts keep insertion order),
    then divided by each row's total: the probabilities markov gives."""
    rules = defaultdict(dict)
    for session in sessions:
        for prev, item in zip(session[:-1], session[1:]):
            rules[prev][item] = rules[prev].get(item, 0) + 1
    out = np.zeros((n_items + 1, n_items + 1))
    for a, successors in rules.items():
        total = sum(successors.values())
        kept = sorted(successors.items(), key=lambda kv: -kv[1])  # stable: first inserted first
        for b, count in kept[: pruning or None]:
            out[a, b] = count / total
    return torch.from_numpy(out[:, 1:]).float()


@pytest.mark.parametrize("pruning", [0, 1, 2, 3, 20])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_an_event_by_event_reference(seed, pruning):
    rng = np.random.default_rng(seed)
    sessions = [[int(x) for x in rng.integers(1, 9, size=rng.integers(1, 10))] for _ in range(40)]
    sessions.append(list(range(1, 9)))  # every item occurs
    model = MarkovChain(pruning=pruning, fallback="none").fit(dataset_from(sessions, 8))
    assert torch.allclose(rows(model, list(range(1, 9))), reference_markov(sessions, 8, pruning)[1:], atol=1e-6)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"pruning": -1}, "pruning must be an integer >= 0"),
        ({"pruning": 2.5}, "pruning must be an integer"),
        ({"pruning": True}, "pruning must be an integer"),
        ({"fallback": "zero"}, "fallback must be one of"),
    ],
)
def test_invalid_hyperparameters_are_refused_in_fit(params, message):
    model = MarkovChain(**params)  # __init__ only stores
    with pytest.raises(ConfigError, match=message):
        model.fit(dataset_from(HAND, 5))


# --------------------------------------------------------------------------- #
# a planted first-order chain
# --------------------------------------------------------------------------- #
def time_split_dataset(events: pd.DataFrame, test_share: float = 0.2) -> SessionDataset:
    """Train = the first sessions by start, test = the last ``test_share``; test
    items unseen in training and then test sessions shorter than 2 dropped."""
    events = events.sort_values(["session", "time"], kind="stable")
    sessions = events["session"].unique()
    cut = sessions[int(len(sessions) * (1 - test_share))]
    train, test = events[events["session"] < cut], events[events["session"] >= cut]
    train = train[train.groupby("session")["item"].transform("size") >= 2]
    items = np.sort(train["item"].unique())
    ids = {int(raw): k + 1 for k, raw in enumerate(items)}
    test = test[test["item"].isin(ids)]
    test = test[test.groupby("session")["item"].transform("size") >= 2]
    train, test = train.assign(item=train["item"].map(ids)), test.assign(item=test["item"].map(ids))
    tr = SessionSplit(train)
    return SessionDataset("planted", len(ids), {str(k): v for k, v in ids.items()}, tr, tr, tr, SessionSplit(test))


def hit_rate_at_1(model, data: SessionDataset) -> float:
    """Share of test prefixes whose next item alone has the top score (a tie
    at the top is a miss: pessimistic, as the harness ranks)."""
    cases = data.prefixes("test")
    hits = 0
    for part in cases.slices(2048):
        scores = model.score(cases.batch(part))[:, 1:]
        target = scores.gather(1, cases.next_items(part)[:, None] - 1)
        hits += int(((scores >= target).sum(1) == 1).sum())
    return hits / len(cases)


def test_recovers_a_planted_first_order_chain():
    events, meta = generate_events(n_sessions=20000, n_items=200, seed=7)
    optimum = optimal_next_item_hit_rate(meta)
    data = time_split_dataset(events)
    assert len(data.prefixes("test")) > 10000
    for fallback in ("pop", "none"):
        hit1 = hit_rate_at_1(MarkovChain(fallback=fallback).fit(data), data)
        # estimated on ~64k training transitions (~320 per item): within 3 points of the optimum
        assert abs(hit1 - optimum) < 0.03, (fallback, hit1, optimum)

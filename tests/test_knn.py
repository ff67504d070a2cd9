"""Session-KNN family (sknn, vsknn, stan, vstan): exact scores on hand-made
sessions, the neighbour limits, recency, the fallback, and a slow pure-Python
reference (one prefix at a time, straight from the formulas) as an oracle."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
import torch

import baselines.knn as knn
from baselines.knn import STAN, VSKNN, VSTAN, SessionKNN
from harness.data.dataset import PrefixBatch, SessionDataset, SessionSplit
from harness.errors import ConfigError
from harness.models.registry import available_models

DAY = 86400.0
E = math.exp


# -- helpers --------------------------------------------------------------------


def make_data(sessions, *, n_items=None, gap=60.0):
    """``sessions``: list of (item list, end time in seconds); events are
    ``gap`` seconds apart and the session's last event is at its end time.
    Rows are ordered by session start, as SessionSplit expects."""
    rows = []
    for sid, (items, end) in enumerate(sessions, start=1):
        for pos, item in enumerate(items):
            rows.append((sid, item, end - gap * (len(items) - 1 - pos)))
    events = pd.DataFrame(rows, columns=["session", "item", "time"])
    start = events.groupby("session")["time"].transform("min")
    events = events.assign(start=start).sort_values(["start", "session", "time"], kind="stable").drop(columns="start")
    n_items = n_items or int(events["item"].max())
    train = SessionSplit(events)
    test = SessionSplit(pd.DataFrame({"session": [0, 0], "item": [1, 2], "time": [0.0, 1.0]}))
    return SessionDataset("hand", n_items, {str(i): i for i in range(1, n_items + 1)}, train, train, train, test)


def batch(prefixes, times=None):
    """A PrefixBatch; ``times[r]`` is the time of the last event of prefix r."""
    b = PrefixBatch.from_sequences(prefixes)
    if times is None:
        return b
    t = torch.full(b.items.shape, float("nan"), dtype=torch.float64)
    for r, (seq, last) in enumerate(zip(prefixes, times)):
        t[r, : len(seq)] = torch.tensor([last - 60.0 * (len(seq) - 1 - i) for i in range(len(seq))])
    return PrefixBatch(b.items, b.lengths, torch.arange(len(prefixes)), t)


def scores_of(model, data, prefixes, times=None):
    return model.fit(data, seed=0).score(batch(prefixes, times)).double()


def expect(row, values, n_items):
    """Assert a score row equals ``values`` (dict item -> score; others 0)."""
    want = torch.zeros(n_items + 1, dtype=torch.float64)
    for item, value in values.items():
        want[item] = value
    assert torch.allclose(row[1:], want[1:], rtol=1e-6, atol=1e-9), f"got {row[1:].tolist()}, want {want[1:].tolist()}"


# Five training sessions over items 1..6, ending on days 1..5 (s4 repeats item 2):
#   s1 = [1, 2, 3]     day 1
#   s2 = [2, 4]        day 2
#   s3 = [1, 4, 5]     day 3
#   s4 = [3, 2, 2, 6]  day 4   (distinct {2, 3, 6}; pos_s4(2) = 3, its last occurrence)
#   s5 = [5, 6]        day 5
# Training clicks: item 2 four times, every other item twice; 5 sessions.
HAND = [([1, 2, 3], 1 * DAY), ([2, 4], 2 * DAY), ([1, 4, 5], 3 * DAY), ([3, 2, 2, 6], 4 * DAY), ([5, 6], 5 * DAY)]


@pytest.fixture()
def hand():
    return make_data(HAND)


# -- SKNN -------------------------------------------------------------------------


def test_sknn_cosine_scores_are_sums_of_neighbour_similarities(hand):
    # prefix [2, 3]: P = {2, 3}, |P| = 2. Candidates share an item with P:
    #   s1 {1,2,3}: 2 / sqrt(2*3) = 2/sqrt6;  s2 {2,4}: 1 / sqrt(2*2) = 1/2;
    #   s4 {2,3,6}: 2 / sqrt(2*3) = 2/sqrt6   (s3 and s5 share nothing)
    # score(j) = sum of the similarities of the neighbours holding j.
    c = 2 / math.sqrt(6)
    s = scores_of(SessionKNN(k=100, fallback="none"), hand, [[2, 3]])
    expect(s[0], {1: c, 2: c + 0.5 + c, 3: c + c, 4: 0.5, 6: c}, 6)


def test_sknn_jaccard(hand):
    # Jaccard |P & s| / |P | s|: s1 2/3, s2 1/3, s4 2/3
    s = scores_of(SessionKNN(similarity="jaccard", fallback="none"), hand, [[2, 3]])
    expect(s[0], {1: 2 / 3, 2: 2 / 3 + 1 / 3 + 2 / 3, 3: 4 / 3, 4: 1 / 3, 6: 2 / 3}, 6)


def test_k_limits_the_neighbours_and_ties_go_to_the_more_recent(hand):
    c = 2 / math.sqrt(6)
    # k=2: s1 and s4 (2/sqrt6) beat s2 (1/2); item 4 (only in s2) drops to 0
    s = scores_of(SessionKNN(k=2, fallback="none"), hand, [[2, 3]])
    expect(s[0], {1: c, 2: 2 * c, 3: 2 * c, 6: c}, 6)
    # k=1: s1 and s4 tie; s4 ends later (day 4 > day 1) and wins
    s = scores_of(SessionKNN(k=1, fallback="none"), hand, [[2, 3]])
    expect(s[0], {2: c, 3: c, 6: c}, 6)


def test_sample_size_keeps_the_most_recent_candidates(hand):
    c = 2 / math.sqrt(6)
    # candidates of [2, 3] by recency: s4 (day 4), s2 (day 2), s1 (day 1);
    # sample_size=2 drops s1, so item 1 gets nothing
    s = scores_of(SessionKNN(sample_size=2, fallback="none"), hand, [[2, 3]])
    expect(s[0], {2: c + 0.5, 3: c, 4: 0.5, 6: c}, 6)
    # sample_size=1 keeps s4 only; sample_size=0 keeps them all
    s = scores_of(SessionKNN(sample_size=1, fallback="none"), hand, [[2, 3]])
    expect(s[0], {2: c, 3: c, 6: c}, 6)
    s = scores_of(SessionKNN(sample_size=0, fallback="none"), hand, [[2, 3]])
    expect(s[0], {1: c, 2: 2 * c + 0.5, 3: 2 * c, 4: 0.5, 6: c}, 6)


def test_recency_is_the_time_of_a_sessions_last_event():
    # A (session 1) starts first, on day 1, but its last event is on day 10;
    # B (session 2) starts on day 2 and ends on day 5. Both share item 1 with
    # the prefix [1]; with sample_size=1 the one kept candidate is A.
    rows = [(1, 1, 1 * DAY), (1, 2, 10 * DAY), (2, 1, 2 * DAY), (2, 3, 5 * DAY)]
    train = SessionSplit(pd.DataFrame(rows, columns=["session", "item", "time"]))
    data = SessionDataset("r", 3, {str(i): i for i in (1, 2, 3)}, train, train, train, train)
    s = scores_of(SessionKNN(sample_size=1, fallback="none"), data, [[1]])
    # A: cosine 1 / sqrt(1 * 2) for items 1 and 2; B is not a candidate
    expect(s[0], {1: 1 / math.sqrt(2), 2: 1 / math.sqrt(2)}, 3)


def test_fallback_pop_ranks_unscored_items_by_popularity_below_the_rest(hand):
    c = 2 / math.sqrt(6)
    none = scores_of(SessionKNN(fallback="none"), hand, [[2, 3]])
    pop = scores_of(SessionKNN(fallback="pop"), hand, [[2, 3]])
    assert none[0, 5] == 0
    # item 5: 0.5 * (smallest positive score 1/2) * pop(5) = 0.5 * 0.5 * (2/4)
    expect(pop[0], {1: c, 2: 2 * c + 0.5, 3: 2 * c, 4: 0.5, 5: 0.125, 6: c}, 6)
    # a prefix no training session shares an item with: popularity only
    data = make_data(HAND, n_items=7)
    s = scores_of(SessionKNN(fallback="pop"), data, [[7]])
    pop_counts = torch.tensor([0, 2, 4, 2, 2, 2, 2, 0], dtype=torch.float64)
    expect(s[0], dict(enumerate((0.5 * pop_counts / 4).tolist())), 7)
    assert torch.all(scores_of(SessionKNN(fallback="none"), data, [[7]]) == 0)


def test_defaults_work_with_fewer_sessions_than_k(hand):
    for name in ("sknn", "vsknn", "stan", "vstan"):
        s = available_models()[name]().fit(hand, seed=0).score(batch([[2, 3], [6], [5, 5, 1]]))
        assert s.shape == (3, 7) and torch.isfinite(s[:, 1:]).all() and (s[:, 1:] > 0).all()


# -- V-SKNN ----------------------------------------------------------------------


def test_vsknn_div_weights_and_div_score(hand):
    # prefix [2, 5, 2]: n = 3, |P| = 2; last positions pos(2) = 3, pos(5) = 2
    # weighting=div: w(2) = 3/3 = 1, w(5) = 2/3; sim = sum of shared w / |P|:
    #   s1, s2, s4 share {2}: 1/2;   s3, s5 share {5}: (2/3)/2 = 1/3
    # weighting_score=div on step = n - (last shared prefix position) + 1:
    #   sharing 2: step 1 -> 1;   sharing only 5: step 2 -> 1/2
    # neighbour weights: s1, s2, s4: 1/2;  s3, s5: 1/3 * 1/2 = 1/6
    s = scores_of(VSKNN(weighting="div", weighting_score="div", fallback="none"), hand, [[2, 5, 2]])
    want = {1: 1 / 2 + 1 / 6, 2: 3 / 2, 3: 1.0, 4: 1 / 2 + 1 / 6, 5: 1 / 6 + 1 / 6, 6: 1 / 2 + 1 / 6}
    expect(s[0], want, 6)
    # idf_weighting=1: each item's score times 1 + idf(j), idf(j) = ln(5 / clicks(j))
    s = scores_of(VSKNN(weighting="div", weighting_score="div", idf_weighting=1.0, fallback="none"), hand, [[2, 5, 2]])
    idf = {j: math.log(5 / (4 if j == 2 else 2)) for j in range(1, 7)}
    expect(s[0], {j: v * (1 + idf[j]) for j, v in want.items()}, 6)


def test_vsknn_log_weights_quadratic_score_and_idf_weight(hand):
    # weighting=log: w(x) = 1 / log10(n - pos + 1.7): w(2) = 1/log10(1.7), w(5) = 1/log10(2.7)
    # weighting_score=quadratic: 1/step^2: 1 for sessions holding 2, 1/4 for those with only 5
    a = 1 / math.log10(1.7) / 2  # sim of s1, s2, s4
    b = 1 / math.log10(2.7) / 2 / 4  # sim * decay of s3, s5
    idf = {j: math.log(5 / (4 if j == 2 else 2)) for j in range(1, 7)}
    raw = {1: a + b, 2: 3 * a, 3: 2 * a, 4: a + b, 5: 2 * b, 6: a + b}
    model = VSKNN(weighting="log", weighting_score="quadratic", idf_weighting=2.0, fallback="none")
    expect(scores_of(model, hand, [[2, 5, 2]])[0], {j: v * (1 + 2 * idf[j]) for j, v in raw.items()}, 6)


def test_vsknn_weighting_functions():
    pos, n = np.array([1.0, 3.0, 4.0]), np.array([4.0, 4.0, 4.0])
    assert np.allclose(knn.POSITION_WEIGHTS["linear"](pos, n), [0.7, 0.9, 1.0])
    assert np.allclose(knn.POSITION_WEIGHTS["same"](pos, n), 1.0)
    assert np.allclose(knn.POSITION_WEIGHTS["div"](pos, n), [0.25, 0.75, 1.0])
    assert np.allclose(knn.POSITION_WEIGHTS["log"](pos, n), 1 / np.log10([4.7, 2.7, 1.7]))
    assert np.allclose(knn.POSITION_WEIGHTS["quadratic"](pos, n), [1 / 16, 9 / 16, 1.0])
    step = np.array([1.0, 2.0, 12.0])
    assert np.allclose(knn.SCORE_WEIGHTS["linear"](step), [0.9, 0.8, 0.0])
    assert np.allclose(knn.SCORE_WEIGHTS["same"](step), 1.0)
    assert np.allclose(knn.SCORE_WEIGHTS["div"](step), [1, 0.5, 1 / 12])
    assert np.allclose(knn.SCORE_WEIGHTS["log"](step), 1 / np.log10(step + 1.7))
    assert np.allclose(knn.SCORE_WEIGHTS["quadratic"](step), [1, 0.25, 1 / 144])


# -- STAN --------------------------------------------------------------------------

# prefix [2, 5, 2] whose last event is at day 6; lambda_spw = lambda_snh = lambda_inh = 1
#   w(2) = exp((3 - 3)/1) = 1, w(5) = exp((2 - 3)/1) = e^-1; norm = sqrt(1 + e^-2)
#   sim = (sum of shared w) / (norm * sqrt|s|) * exp(-(6 - end day))
#     s1: 1 / (norm sqrt3) * e^-5     s2: 1 / (norm sqrt2) * e^-4
#     s3: e^-1 / (norm sqrt3) * e^-3  s4: 1 / (norm sqrt3) * e^-2   s5: e^-1 / (norm sqrt2) * e^-1
#   i* = the latest position in s of an item of the prefix; item weight exp(-|pos_s(j) - pos_s(i*)|):
#     s1 [1,2,3]: i* = 2 @2 -> 1: e^-1, 2: 1, 3: e^-1
#     s2 [2,4]:   i* = 2 @1 -> 2: 1, 4: e^-1
#     s3 [1,4,5]: i* = 5 @3 -> 1: e^-2, 4: e^-1, 5: 1
#     s4 [3,2,2,6]: i* = 2 @3 (its last occurrence) -> 3 (@1): e^-2, 2: 1, 6 (@4): e^-1
#     s5 [5,6]:   i* = 5 @1 -> 5: 1, 6: e^-1
NORM = math.sqrt(1 + E(-2))
SIM = {
    1: 1 / (NORM * math.sqrt(3)) * E(-5),
    2: 1 / (NORM * math.sqrt(2)) * E(-4),
    3: E(-1) / (NORM * math.sqrt(3)) * E(-3),
    4: 1 / (NORM * math.sqrt(3)) * E(-2),
    5: E(-1) / (NORM * math.sqrt(2)) * E(-1),
}
INH = {
    1: {1: E(-1), 2: 1.0, 3: E(-1)},
    2: {2: 1.0, 4: E(-1)},
    3: {1: E(-2), 4: E(-1), 5: 1.0},
    4: {3: E(-2), 2: 1.0, 6: E(-1)},
    5: {5: 1.0, 6: E(-1)},
}


def stan_expected(sim=SIM, inh=INH, neighbour=lambda s: 1.0, item=lambda j: 1.0):
    out = defaultdict(float)
    for s, weights in inh.items():
        for j, wj in weights.items():
            out[j] += sim[s] * wj * neighbour(s) * item(j)
    return dict(out)


def test_stan_exact_scores(hand):
    model = STAN(lambda_spw=1.0, lambda_snh=1.0, lambda_inh=1.0, fallback="none")
    expect(scores_of(model, hand, [[2, 5, 2]], times=[6 * DAY])[0], stan_expected(), 6)


def test_stan_k_keeps_the_most_similar_after_the_time_decay(hand):
    # sims in decreasing order: s4 (e^-2/sqrt3), s5 (e^-2/sqrt2), s2 (e^-4/sqrt2), s3, s1
    model = STAN(k=2, lambda_spw=1.0, lambda_snh=1.0, lambda_inh=1.0, fallback="none")
    keep = {4: INH[4], 5: INH[5]}
    expect(scores_of(model, hand, [[2, 5, 2]], times=[6 * DAY])[0], stan_expected(inh=keep), 6)


def test_stan_lambdas_can_be_switched_off(hand):
    # no factor: plain cosine of the sets, no recency, no in-session position -> SKNN
    model = STAN(lambda_spw=None, lambda_snh=None, lambda_inh=None, fallback="none")
    expect(scores_of(model, hand, [[2, 3]], times=[6 * DAY])[0], {
        1: 2 / math.sqrt(6), 2: 4 / math.sqrt(6) + 0.5, 3: 4 / math.sqrt(6), 4: 0.5, 6: 2 / math.sqrt(6)}, 6)


def test_stan_recency_uses_the_prefix_time_or_the_end_of_training(hand):
    model = STAN(lambda_spw=1.0, lambda_snh=1.0, lambda_inh=1.0, fallback="none").fit(hand, seed=0)
    at6 = model.score(batch([[2, 5, 2]], times=[6 * DAY])).double()
    at8 = model.score(batch([[2, 5, 2]], times=[8 * DAY])).double()
    assert torch.allclose(at8, at6 * E(-2), rtol=1e-6)  # every neighbour two days older
    # without times, "now" is the end of training (day 5): s5 is 0 days old
    now5 = model.score(batch([[2, 5, 2]])).double()
    assert torch.allclose(now5, at6 * E(1), rtol=1e-6)


def test_stan_tiny_scores_keep_their_order_in_float32(hand):
    # lambda_snh = 0.01 day: at day 6 the neighbours are 100..500 lambdas old,
    # raw scores are e^-100 (3.7e-44) and below, under float32's range. The
    # row is divided by its largest score before the cast, so the order of
    # the top items survives: item 5 (s5, weight 1) and item 6 (s5, e^-1;
    # s4's share is e^-100 smaller).
    model = STAN(lambda_spw=1.0, lambda_snh=0.01, lambda_inh=1.0, fallback="none")
    s = scores_of(model, hand, [[2, 5, 2]], times=[6 * DAY])[0]
    assert s[5] == 1.0
    assert math.isclose(float(s[6]), E(-1), rel_tol=1e-6)
    assert float(s[[1, 2, 3, 4]].max()) < 1e-38


# -- V-STAN ------------------------------------------------------------------------


def test_vstan_adds_ipw_and_idf(hand):
    # lambda_ipw = 1: neighbour factor exp((p - n)/1) with p the last prefix
    # position of a shared item: p = 3 for s1, s2, s4 (they hold 2) -> 1;
    # p = 2 for s3, s5 (only 5) -> e^-1.  lambda_idf = 0.5: item factor
    # 1 + 0.5 * ln(5 / clicks(j))
    idf = {j: math.log(5 / (4 if j == 2 else 2)) for j in range(1, 7)}
    model = VSTAN(lambda_spw=1.0, lambda_snh=1.0, lambda_inh=1.0, lambda_ipw=1.0, lambda_idf=0.5, fallback="none")
    want = stan_expected(neighbour=lambda s: E(-1) if s in (3, 5) else 1.0, item=lambda j: 1 + 0.5 * idf[j])
    expect(scores_of(model, hand, [[2, 5, 2]], times=[6 * DAY])[0], want, 6)


def test_vstan_vec_similarity(hand):
    # vec: sum of shared w / |P| (no norms): s1, s2, s4: 1/2; s3, s5: e^-1/2; times the recency
    sim = {1: 0.5 * E(-5), 2: 0.5 * E(-4), 3: E(-1) / 2 * E(-3), 4: 0.5 * E(-2), 5: E(-1) / 2 * E(-1)}
    model = VSTAN(similarity="vec", lambda_spw=1.0, lambda_snh=1.0, lambda_inh=1.0, lambda_ipw=None,
                  lambda_idf=None, fallback="none")
    expect(scores_of(model, hand, [[2, 5, 2]], times=[6 * DAY])[0], stan_expected(sim=sim), 6)


def test_vstan_with_its_extras_off_is_stan(hand):
    b = [[2, 5, 2], [1, 3], [6, 6, 4]]
    times = [6 * DAY, 7 * DAY, 6.5 * DAY]
    stan = scores_of(STAN(lambda_spw=1.5, lambda_snh=2.0, lambda_inh=0.7), hand, b, times)
    vstan = scores_of(VSTAN(lambda_spw=1.5, lambda_snh=2.0, lambda_inh=0.7, lambda_ipw=None, lambda_idf=0.0), hand, b,
                      times)
    assert torch.allclose(stan, vstan, rtol=1e-6)


# -- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, params, message",
    [
        (SessionKNN, {"k": 0}, "k must be an integer >= 1"),
        (SessionKNN, {"k": 2.5}, "k must be an integer"),
        (SessionKNN, {"sample_size": -1}, "sample_size must be an integer >= 0"),
        (SessionKNN, {"similarity": "dice"}, "similarity must be one of"),
        (SessionKNN, {"fallback": "zero"}, "fallback must be one of"),
        (VSKNN, {"weighting": "exp"}, "weighting must be one of"),
        (VSKNN, {"weighting_score": "div_score"}, "weighting_score must be one of"),
        (VSKNN, {"idf_weighting": -1.0}, "idf_weighting must be a number >= 0"),
        (STAN, {"lambda_spw": 0.0}, "lambda_spw must be a number > 0"),
        (STAN, {"lambda_snh": -2.0}, "lambda_snh must be a number > 0"),
        (STAN, {"lambda_inh": float("nan")}, "lambda_inh must be a number > 0"),
        (VSTAN, {"lambda_ipw": 0.0}, "lambda_ipw must be a number > 0"),
        (VSTAN, {"lambda_idf": -0.5}, "lambda_idf must be a number >= 0"),
        (VSTAN, {"similarity": "jaccard"}, "similarity must be one of"),
    ],
)
def test_bad_hyperparameters_raise_config_errors_at_fit(hand, cls, params, message):
    model = cls(**params)  # __init__ only stores
    with pytest.raises(ConfigError, match=message):
        model.fit(hand, seed=0)


# -- the slow reference ----------------------------------------------------------------


def reference(name, params, sessions, prefix, now):
    """Scores of one prefix, straight from the formulas (pure Python).

    ``sessions``: list of (items, times) in dataset order; ``now``: the time
    of the prefix's last event. Returns {item: score}."""
    k, sample = params["k"], params["sample_size"]
    n = len(prefix)
    pos_p = {x: i + 1 for i, x in enumerate(prefix)}  # last occurrence wins
    P = sorted(pos_p)
    clicks = defaultdict(int)
    for items, _ in sessions:
        for x in items:
            clicks[x] += 1
    idf = {x: math.log(len(sessions) / c) for x, c in clicks.items()}

    def spw(lam):  # STAN position weights
        return {x: 1.0 if lam is None else math.exp((pos_p[x] - n) / lam) for x in P}

    # recency: the last event's time, ties broken by session order (start time, then id)
    cands = [(max(t), min(t), idx) for idx, (items, t) in enumerate(sessions) if set(items) & set(P)]
    cands.sort(reverse=True)  # most recent first
    if sample:
        cands = cands[:sample]
    scored = []
    for end, start, idx in cands:
        items = sessions[idx][0]
        s = set(items)
        shared = sorted(s & set(P))
        if name == "sknn":
            o = len(shared)
            sim = o / math.sqrt(len(P) * len(s)) if params["similarity"] == "cosine" else o / (len(P) + len(s) - o)
        elif name == "vsknn":
            fn = {
                "linear": lambda p: max(0.0, 1 - 0.1 * (n - p)),
                "same": lambda p: 1.0,
                "div": lambda p: p / n,
                "log": lambda p: 1 / math.log10(n - p + 1.7),
                "quadratic": lambda p: (p / n) ** 2,
            }[params["weighting"]]
            sim = sum(fn(pos_p[x]) for x in shared) / len(P)
        else:
            w = spw(params["lambda_spw"])
            if params.get("similarity", "cosine") == "cosine":
                sim = sum(w[x] for x in shared) / (math.sqrt(sum(w[x] * w[x] for x in P)) * math.sqrt(len(s)))
            else:
                sim = sum(w[x] for x in shared) / len(P)
            if params["lambda_snh"] is not None:
                sim *= math.exp(-max(0.0, now - end) / (params["lambda_snh"] * DAY))
        if sim > 0:
            scored.append((sim, end, start, idx))
    scored.sort(reverse=True)  # most similar first (ties: more recent)
    out = defaultdict(float)
    for sim, end, start, idx in scored[:k]:
        items = sessions[idx][0]
        pos_s = {x: i + 1 for i, x in enumerate(items)}
        p_max = max(pos_p[x] for x in items if x in pos_p)
        star = max(pos_s[x] for x in pos_s if x in pos_p)
        for j in pos_s:
            v = sim
            if name == "vsknn":
                step = n - p_max + 1
                v *= {
                    "linear": max(0.0, 1 - 0.1 * step),
                    "same": 1.0,
                    "div": 1 / step,
                    "log": 1 / math.log10(step + 1.7),
                    "quadratic": 1 / step**2,
                }[params["weighting_score"]]
                v *= 1 + params["idf_weighting"] * idf[j]
            if name in ("stan", "vstan") and params["lambda_inh"] is not None:
                v *= math.exp(-abs(pos_s[j] - star) / params["lambda_inh"])
            if name == "vstan":
                if params["lambda_ipw"] is not None:
                    v *= math.exp((p_max - n) / params["lambda_ipw"])
                if params["lambda_idf"]:
                    v *= 1 + params["lambda_idf"] * idf[j]
            out[j] += v
    return out


def random_sessions(rng, n_sessions, n_items, max_len):
    sessions = []
    for s in range(n_sessions):
        length = int(rng.integers(1, max_len + 1))
        items = [int(x) for x in rng.integers(1, n_items + 1, size=length)]
        end = float(rng.integers(0, 40)) * 3600.0  # coarse: equal end times happen
        sessions.append((items, end))
    return sessions


ORACLE_CASES = [
    ("sknn", dict(k=4, sample_size=12, similarity="cosine")),
    ("sknn", dict(k=50, sample_size=0, similarity="jaccard")),
    ("vsknn", dict(k=5, sample_size=15, weighting="log", weighting_score="quadratic", idf_weighting=2.0)),
    ("vsknn", dict(k=3, sample_size=0, weighting="linear", weighting_score="linear", idf_weighting=0.0)),
    ("vsknn", dict(k=8, sample_size=20, weighting="quadratic", weighting_score="log", idf_weighting=1.0)),
    ("vsknn", dict(k=6, sample_size=10, weighting="same", weighting_score="same", idf_weighting=0.0)),
    ("stan", dict(k=5, sample_size=15, lambda_spw=1.02, lambda_snh=0.5, lambda_inh=2.05)),
    ("stan", dict(k=4, sample_size=0, lambda_spw=1e-5, lambda_snh=2.5, lambda_inh=4.0)),
    ("vstan", dict(k=5, sample_size=15, similarity="cosine", lambda_spw=4.0, lambda_snh=0.7, lambda_inh=4.0,
                   lambda_ipw=1e-5, lambda_idf=1.0)),
    ("vstan", dict(k=7, sample_size=9, similarity="vec", lambda_spw=1.5, lambda_snh=None, lambda_inh=None,
                   lambda_ipw=2.0, lambda_idf=3.0)),
]


def check_against_reference(name, params, sessions, prefixes, nows, n_items):
    data = make_data(sessions, n_items=n_items, gap=1.0)
    # make_data puts events 1 s apart ending at `end`; the reference needs those times
    ref_sessions = [(items, [end - (len(items) - 1 - i) for i in range(len(items))]) for items, end in sessions]
    model = available_models()[name](**params, fallback="none").fit(data, seed=0)
    got = model.score(batch(prefixes, nows)).double()
    for row, (prefix, now) in enumerate(zip(prefixes, nows)):
        want = reference(name, params, ref_sessions, prefix, now)
        expect(got[row], want, n_items)


@pytest.mark.parametrize("name, params", ORACLE_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ORACLE_CASES)])
def test_fast_scores_match_the_slow_reference(name, params):
    rng = np.random.default_rng(7)
    n_items = 15
    sessions = random_sessions(rng, 60, n_items, 8)
    prefixes = [[int(x) for x in rng.integers(1, n_items + 1, size=int(rng.integers(1, 9)))] for _ in range(40)]
    nows = [41 * 3600.0 + float(rng.integers(0, 3)) * 3600 for _ in prefixes]
    check_against_reference(name, params, sessions, prefixes, nows, n_items)


@pytest.mark.parametrize("name, params", ORACLE_CASES[::2], ids=[n for n, _ in ORACLE_CASES[::2]])
def test_long_sessions_and_prefixes_match_the_reference(name, params):
    # sessions and prefixes sharing many items (and repeats): the latest shared
    # positions of each neighbour are found item by item over long sessions
    rng = np.random.default_rng(3)
    n_items = 70
    sessions = random_sessions(rng, 30, n_items, 6)
    sessions.append(([int(x) for x in rng.permutation(n_items)[:60] + 1], 20 * 3600.0))
    sessions.append(([int(x) for x in rng.permutation(n_items)[:55] + 1] * 2, 30 * 3600.0))
    prefixes = [[int(x) for x in rng.permutation(n_items)[:m] + 1] for m in (45, 50, 64, 3)]
    prefixes.append(prefixes[0] + prefixes[0][:10])  # repeats
    nows = [41 * 3600.0] * len(prefixes)
    check_against_reference(name, params, sessions, prefixes, nows, n_items)


def test_batch_chunks_give_the_same_scores(monkeypatch):
    rng = np.random.default_rng(11)
    sessions = random_sessions(rng, 50, 12, 6)
    data = make_data(sessions, n_items=12)
    prefixes = [[int(x) for x in rng.integers(1, 13, size=int(rng.integers(1, 7)))] for _ in range(23)]
    nows = [45 * 3600.0] * len(prefixes)
    for name, params in ORACLE_CASES[::3]:
        model = available_models()[name](**params).fit(data, seed=0)
        whole = model.score(batch(prefixes, nows))
        monkeypatch.setattr(knn, "_CHUNK_CELLS", 13 * 5)  # chunks of 5 rows
        chunked = model.score(batch(prefixes, nows))
        monkeypatch.undo()
        assert torch.equal(whole, chunked)


# -- agreement with session-rec on yoochoose-100k ------------------------------------


#: session-rec's hyper-parameters, HitRate@20 and MRR@20 on yoochoose-100k
#: (next item, 10,152 predictions, full ranking), from session-rec's own evaluation
SESSION_REC = {
    "vsknn": (dict(k=1000, sample_size=5000, weighting="log", weighting_score="quadratic", idf_weighting=2.0),
              0.6877, 0.3737),
    "vstan": (dict(k=1000, sample_size=5000, similarity="cosine", lambda_spw=4.0, lambda_snh=5.0, lambda_inh=4.0,
                   lambda_ipw=1e-5, lambda_idf=1.0), 0.6736, 0.3747),
    "stan": (dict(k=1500, sample_size=10000, lambda_spw=1e-5, lambda_snh=2.5, lambda_inh=4.0), 0.6683, 0.3718),
    "sknn": (dict(k=500, sample_size=1000, similarity="cosine"), 0.6569, 0.3214),
}


@pytest.fixture(scope="module")
def yoochoose(yoochoose_100k):
    return yoochoose_100k


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SESSION_REC))
def test_agrees_with_session_rec_on_yoochoose_100k(yoochoose, name):
    """The harness's own evaluation (pessimistic ties, default fallback="pop")
    is within 0.5 points of session-rec's HitRate@20 and MRR@20 (the
    requirement is 1.5; measured differences are at most 0.17, docs/knn.md)."""
    from harness.evaluation.evaluate import evaluate

    params, hit_rate, mrr = SESSION_REC[name]
    model = available_models()[name](**params).fit(yoochoose, seed=0)
    metrics = evaluate(model, yoochoose, protocol="next", ks=(20,)).metrics()
    assert abs(metrics["HitRate@20"] - hit_rate) < 0.005, metrics
    assert abs(metrics["MRR@20"] - mrr) < 0.005, metrics


@pytest.mark.parametrize("name, params", ORACLE_CASES[::3], ids=[n for n, _ in ORACLE_CASES[::3]])
def test_cutting_each_items_sessions_to_the_sample_changes_no_score(name, params):
    # fitted with sample_size=0 the candidate product sees every session of
    # each item; setting the sample afterwards samples from that full product
    rng = np.random.default_rng(11)
    n_items = 12
    data = make_data(random_sessions(rng, 120, n_items, 7), n_items=n_items, gap=1.0)
    prefixes = [[int(x) for x in rng.integers(1, n_items + 1, size=int(rng.integers(1, 7)))] for _ in range(30)]
    nows = [41 * 3600.0] * len(prefixes)
    for sample in (1, 4, 9):
        cut = available_models()[name](**{**params, "sample_size": sample}).fit(data, seed=0)
        assert np.diff(cut.candidate_sessions_.indptr).max() <= sample < np.diff(cut.item_sessions_.indptr).max()
        full = available_models()[name](**{**params, "sample_size": 0}).fit(data, seed=0)
        full.sample_size = sample
        assert torch.equal(cut.score(batch(prefixes, nows)), full.score(batch(prefixes, nows)))

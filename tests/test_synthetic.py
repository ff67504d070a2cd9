"""Tests of the synthetic session generator (harness/data/synthetic.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.errors import ConfigError
from harness.data.synthetic import (
    EPOCH_START,
    STRUCTURE_DEFAULTS,
    expected_successor_rate,
    first_order_oracle,
    generate_events,
    optimal_next_item_hit_rate,
)


def _pairs(events: pd.DataFrame):
    """Consecutive clicks within a session: (previous item, next item, session)."""
    s = events["session"].to_numpy()
    it = events["item"].to_numpy()
    same = s[1:] == s[:-1]
    return it[:-1][same], it[1:][same], s[:-1][same]


@pytest.fixture(scope="module")
def default_data():
    return generate_events(n_sessions=40_000, n_items=1_000, seed=7)


# --------------------------------------------------------------------------- #
# determinism
# --------------------------------------------------------------------------- #
def test_same_arguments_give_identical_output():
    kw = dict(n_sessions=3_000, n_items=200, seed=11, days=3.0, transition_prob=0.3)
    ev1, meta1 = generate_events(**kw)
    ev2, meta2 = generate_events(**kw)
    pd.testing.assert_frame_equal(ev1, ev2)
    for col in ev1.columns:
        assert ev1[col].to_numpy().tobytes() == ev2[col].to_numpy().tobytes()
    assert json.dumps(meta1, sort_keys=True) == json.dumps(meta2, sort_keys=True)


def test_different_seeds_differ():
    ev1, meta1 = generate_events(n_sessions=2_000, n_items=200, seed=1)
    ev2, meta2 = generate_events(n_sessions=2_000, n_items=200, seed=2)
    assert meta1["successor"] != meta2["successor"]
    assert meta1["popularity_rank"] != meta2["popularity_rank"]
    assert len(ev1) != len(ev2) or not np.array_equal(ev1["item"], ev2["item"])


# --------------------------------------------------------------------------- #
# schema
# --------------------------------------------------------------------------- #
def test_schema_order_and_times(default_data):
    ev, meta = default_data
    assert list(ev.columns) == ["session", "item", "time"]
    assert ev["session"].dtype == np.int64
    assert ev["item"].dtype == np.int64
    assert ev["time"].dtype == np.float64
    assert ev.index.equals(pd.RangeIndex(len(ev)))
    assert len(ev) == meta["n_events"]

    s = ev["session"].to_numpy()
    assert s[0] == 1 and s[-1] == 40_000
    assert np.all(np.diff(s) >= 0)  # sorted, hence contiguous
    assert np.array_equal(np.unique(s), np.arange(1, 40_001))

    t = ev["time"].to_numpy()
    same = s[1:] == s[:-1]
    assert np.all(np.diff(t)[same] > 0)  # strictly increasing within a session
    first = np.concatenate([[True], ~same])
    starts = t[first]
    assert np.all(np.diff(starts) >= 0)  # sessions numbered by start time
    assert starts[0] >= EPOCH_START
    assert starts[-1] < EPOCH_START + 30 * 86400

    it = ev["item"].to_numpy()
    assert it.min() >= 1 and it.max() <= 1_000


def test_meta_is_json_and_describes_the_truth(default_data):
    _, meta = default_data
    back = json.loads(json.dumps(meta))
    assert back == meta
    n = meta["params"]["n_items"]
    succ = np.asarray(meta["successor"])
    comm = np.asarray(meta["community"])
    assert len(succ) == len(comm) == len(meta["popularity"]) == n + 1
    assert succ[0] == 0 and comm[0] == -1
    items = np.arange(1, n + 1)
    assert np.all((succ[1:] >= 1) & (succ[1:] <= n))
    assert np.all(succ[1:] != items)  # never itself
    assert np.all(comm[succ[1:]] == comm[1:])  # within its community
    sizes = np.bincount(comm[1:])
    assert len(sizes) == meta["params"]["n_communities"] == 20
    assert sizes.max() - sizes.min() <= 1
    assert math.isclose(sum(meta["popularity"]), 1.0)
    assert math.isclose(sum(meta["length_pmf"]), 1.0)
    # the analysis works from the JSON round trip and matches the stored value
    assert optimal_next_item_hit_rate(back) == meta["first_order_optimal_hit_rate"]
    assert set(STRUCTURE_DEFAULTS) <= set(meta["params"])


# --------------------------------------------------------------------------- #
# popularity
# --------------------------------------------------------------------------- #
def test_zipf_frequency_follows_planted_rank(default_data):
    ev, meta = default_data
    freq = np.bincount(ev["item"].to_numpy(), minlength=1_001)[1:]
    rank = np.asarray(meta["popularity_rank"])[1:]
    rho = stats.spearmanr(rank, freq).statistic
    assert rho < -0.8
    # head items: log-frequency falls with log-rank at about the Zipf exponent
    top = rank <= 30
    slope = np.polyfit(np.log(rank[top]), np.log(freq[top]), 1)[0]
    assert -1.4 < slope < -0.6


@pytest.mark.parametrize("structure", [{}, {"community_leak": 0.0, "zipf_exponent": 1.5}])
def test_first_clicks_follow_planted_popularity(structure):
    # a session's first click is drawn from q_c with c ~ w, whose mixture is
    # exactly g; first clicks of different sessions are independent
    ev, meta = generate_events(n_sessions=30_000, n_items=50, seed=3, **structure)
    g = np.asarray(meta["popularity"])[1:]
    s = ev["session"].to_numpy()
    first = ev["item"].to_numpy()[np.concatenate([[True], s[1:] != s[:-1]])]
    counts = np.bincount(first, minlength=51)[1:]
    assert stats.chisquare(counts, g * counts.sum()).pvalue > 1e-3


def test_without_chain_or_communities_clicks_are_iid_popularity():
    ev, meta = generate_events(
        n_sessions=20_000, n_items=50, seed=3, transition_prob=0.0, community_leak=1.0
    )
    g = np.asarray(meta["popularity"])[1:]
    counts = np.bincount(ev["item"].to_numpy(), minlength=51)[1:]
    assert stats.chisquare(counts, g * counts.sum()).pvalue > 1e-3


# --------------------------------------------------------------------------- #
# planted chain and the first-order optimum
# --------------------------------------------------------------------------- #
def test_successor_transitions_match_theory(default_data):
    ev, meta = default_data
    a, b, _ = _pairs(ev)
    succ = np.asarray(meta["successor"])
    observed = np.mean(succ[a] == b)
    expected = expected_successor_rate(meta)
    assert meta["expected_successor_rate"] == expected
    assert expected > meta["params"]["transition_prob"]
    sd = math.sqrt(expected * (1 - expected) / len(a))
    assert abs(observed - expected) < 5 * sd + 0.002


@pytest.mark.parametrize(
    "structure",
    [
        {},  # the successor is the best guess everywhere
        {"transition_prob": 0.1},  # successor for some items, top item for others
        {"transition_prob": 0.05, "zipf_exponent": 1.3, "community_leak": 0.0},
    ],
)
def test_optimal_hit_rate_agrees_with_simulation(structure):
    ev, meta = generate_events(n_sessions=50_000, n_items=300, seed=5, **structure)
    a, b, s = _pairs(ev)
    optimum = optimal_next_item_hit_rate(meta)
    sd = math.sqrt(optimum * (1 - optimum) / len(a))

    # the oracle's own predictions hit at the computed rate
    oracle = first_order_oracle(meta)
    assert abs(np.mean(oracle["prediction"][a] == b) - optimum) < 5 * sd + 0.002

    # an empirical first-order Markov model (argmax of counted successors),
    # fitted on the first half of the sessions, comes close on the second half
    train = s <= 25_000
    counts = np.zeros((301, 301))
    np.add.at(counts, (a[train], b[train]), 1.0)
    pred = counts.argmax(axis=1)
    hit = np.mean(pred[a[~train]] == b[~train])
    assert abs(hit - optimum) < 0.015
    # and no first-order predictor beats the optimum on fresh data (beyond noise)
    assert hit < optimum + 5 * sd * math.sqrt(2) + 0.002


def test_oracle_per_item_statistics_match_simulation():
    # a regime where the community posterior matters: strong leak, weak chain,
    # few communities; check the oracle item by item, not only on average
    ev, meta = generate_events(
        n_sessions=60_000,
        n_items=60,
        seed=8,
        transition_prob=0.15,
        community_leak=0.5,
        n_communities=4,
        zipf_exponent=0.8,
    )
    a, b, _ = _pairs(ev)
    oracle = first_order_oracle(meta)
    # the pooled share of transitions leaving each item
    share = oracle["weight"][1:] / oracle["weight"].sum()
    n_from = np.bincount(a, minlength=61)[1:]
    assert math.isclose(oracle["weight"].sum(), np.dot(np.arange(51), meta["length_pmf"]) - 1)
    sd = np.sqrt(share * (1 - share) / len(a))
    assert np.all(np.abs(n_from / len(a) - share) < 5 * sd + 1e-4)
    # P(next = prediction | last) and P(next = successor | last), per item
    succ = np.asarray(meta["successor"])
    for key, target in (("hit_prob", oracle["prediction"]), ("successor_prob", succ)):
        hits = np.bincount(a, weights=(target[a] == b), minlength=61)[1:]
        prob = oracle[key][1:]
        z = (hits / n_from - prob) / np.sqrt(prob * (1 - prob) / n_from)
        assert np.abs(z).max() < 5, key
    # the argmax is not always the successor here, so the test has teeth
    assert 0 < np.mean(oracle["prediction"][1:] != succ[1:]) < 1


def test_optimum_special_cases():
    # no chain, no communities: the best guess is the most popular item
    _, meta = generate_events(
        n_sessions=10, n_items=100, seed=0, transition_prob=0.0, community_leak=1.0
    )
    harmonic = sum(1.0 / k for k in range(1, 101))
    assert math.isclose(optimal_next_item_hit_rate(meta), 1.0 / harmonic, rel_tol=1e-9)
    # a deterministic chain: every next click is the successor
    ev, meta = generate_events(n_sessions=500, n_items=100, seed=0, transition_prob=1.0)
    assert math.isclose(optimal_next_item_hit_rate(meta), 1.0)
    a, b, _ = _pairs(ev)
    assert np.all(np.asarray(meta["successor"])[a] == b)


# --------------------------------------------------------------------------- #
# communities
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(("leak", "lo", "hi"), [(0.02, 0.93, 1.0), (1.0, 0.0, 0.25)])
def test_non_chain_pairs_share_a_community(leak, lo, hi):
    ev, meta = generate_events(n_sessions=20_000, n_items=500, seed=9, community_leak=leak)
    a, b, _ = _pairs(ev)
    succ = np.asarray(meta["successor"])
    comm = np.asarray(meta["community"])
    non_chain = succ[a] != b
    share = np.mean(comm[a[non_chain]] == comm[b[non_chain]])
    assert lo <= share <= hi


def test_without_leak_a_session_stays_in_one_community():
    ev, meta = generate_events(n_sessions=5_000, n_items=400, seed=2, community_leak=0.0)
    comm = np.asarray(meta["community"])
    per_session = pd.Series(comm[ev["item"].to_numpy()]).groupby(ev["session"].to_numpy()).nunique()
    assert per_session.max() == 1


# --------------------------------------------------------------------------- #
# lengths and times
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "structure",
    [{}, {"mean_length": 4.0, "length_dispersion": 0.5}, {"mean_length": 6.0, "max_length": 10}],
)
def test_length_distribution(structure):
    ev, meta = generate_events(n_sessions=40_000, n_items=100, seed=4, **structure)
    lengths = ev.groupby("session").size().to_numpy()
    p = meta["params"]
    assert abs(lengths.mean() - p["mean_length"]) < 0.1
    assert lengths.min() == 1 and np.mean(lengths == 1) > 0.1
    assert lengths.max() <= p["max_length"]
    # the empirical length distribution matches the stored pmf
    pmf = np.asarray(meta["length_pmf"])
    observed = np.bincount(lengths, minlength=len(pmf))
    assert np.abs(observed / len(lengths) - pmf).max() < 0.01


def test_lengths_have_a_tail_and_the_cap_can_bind():
    ev, meta = generate_events(n_sessions=20_000, n_items=100, seed=4)
    lengths = ev.groupby("session").size().to_numpy()
    assert np.quantile(lengths, 0.99) >= 15  # heavy tail
    ev, meta = generate_events(n_sessions=200, n_items=100, seed=4, mean_length=8, max_length=8)
    assert np.all(ev.groupby("session").size().to_numpy() == 8)


def test_gaps_and_daily_cycle(default_data):
    ev, _ = default_data
    s = ev["session"].to_numpy()
    t = ev["time"].to_numpy()
    same = s[1:] == s[:-1]
    gaps = np.diff(t)[same]
    assert 55.0 < gaps.mean() < 65.0
    assert np.median(gaps) < gaps.mean()  # exponential, not constant
    starts = t[np.concatenate([[True], ~same])]
    hour = ((starts - EPOCH_START) % 86400) / 3600
    near_peak = np.mean(np.abs(hour - 20.0) < 2)
    near_trough = np.mean(np.abs(hour - 8.0) < 2)
    assert near_peak > 2 * near_trough
    day = (starts - EPOCH_START) // 86400
    assert day.min() == 0 and day.max() == 29


def test_days_bounds_the_starts():
    ev, _ = generate_events(n_sessions=2_000, n_items=50, seed=1, days=0.5, daily_amplitude=0.0)
    first = ev.groupby("session")["time"].min().to_numpy()
    assert first.min() >= EPOCH_START and first.max() < EPOCH_START + 43_200
    assert first.max() > EPOCH_START + 40_000


# --------------------------------------------------------------------------- #
# validation and speed
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"n_sessions": -5}, "n_sessions"),
        ({"n_sessions": 0}, "n_sessions"),
        ({"n_items": 1}, "n_items"),
        ({"n_items": 10.5}, "n_items"),
        ({"seed": -1}, "seed"),
        ({"days": 0}, "days"),
        ({"transition_prob": 1.5}, "transition_prob"),
        ({"transition_prob": -0.1}, "transition_prob"),
        ({"community_leak": 2.0}, "community_leak"),
        ({"community_leak": float("nan")}, "community_leak"),
        ({"zipf_exponent": -1.0}, "zipf_exponent"),
        ({"n_communities": 0}, "n_communities"),
        ({"n_communities": 51}, "n_communities"),  # 100 items: at most 50
        ({"n_communities": True}, "n_communities"),
        ({"mean_length": 1.0}, "mean_length"),
        ({"mean_length": 60.0}, "mean_length"),
        ({"max_length": 1}, "max_length"),
        ({"length_dispersion": 0.0}, "length_dispersion"),
        ({"mean_gap_seconds": 0.0}, "mean_gap_seconds"),
        ({"daily_amplitude": 1.2}, "daily_amplitude"),
        ({"peak_hour": 24.0}, "peak_hour"),
        ({"successor_prob": 0.5}, "unknown parameter"),
    ],
)
def test_bad_parameters_raise_config_error(kwargs, needle):
    args = {"n_sessions": 10, "n_items": 100, "seed": 0, **kwargs}
    with pytest.raises(ConfigError, match=needle):
        generate_events(**args)


def test_default_communities_adapt_to_few_items():
    _, meta = generate_events(n_sessions=50, n_items=9, seed=0)
    assert meta["params"]["n_communities"] == 4

"""Session-clustered statistics: the bootstrap resamples test sessions (the
prefixes of one session are correlated cases) and the paired t-test is
cluster-robust over sessions, in the report and in ``sessionbench compare``."""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import product

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness import report
from harness.report.statistics import Sessions, bootstrap_ci, clustered_replicates, paired_ttest


def _per_session(values: np.ndarray, sessions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-session sums and case counts, written with pandas (independent of Sessions)."""
    frame = pd.DataFrame({"s": sessions, "x": values}).groupby("s", sort=False)["x"].agg(["sum", "size"])
    return frame["sum"].to_numpy(np.float64), frame["size"].to_numpy(np.float64)


def test_session_sums_follow_first_appearance():
    groups = Sessions(np.array([5, 2, 5, 2, 9, 5]))
    assert groups.n_sessions == 3 and groups.n_cases == 6
    assert groups.codes.tolist() == [0, 1, 0, 1, 2, 0]
    assert groups.sizes.tolist() == [3, 2, 1]
    x = np.array([[1.0, 10], [2, 20], [3, 30], [4, 40], [5, 50], [6, 60]])
    np.testing.assert_array_equal(groups.sums(x), [[10, 100], [6, 60], [5, 50]])
    single = Sessions(None, 4)
    assert single.n_sessions == 4 and single.sums(np.arange(4.0)).tolist() == [0, 1, 2, 3]


def test_clustered_replicates_by_hand():
    """Three sessions with 3, 1 and 2 cases, per-session sums X = (3, 0, 1).
    A replicate draws 3 sessions; with v_g draws of session g it is
    sum v_g X_g / sum v_g n_g. All 10 draws, by hand:"""
    values = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    sessions = np.array([7, 7, 7, 3, 4, 4])
    by_hand = {  # (v_7, v_3, v_4): value
        (3, 0, 0): Fraction(9, 9), (0, 3, 0): Fraction(0, 3), (0, 0, 3): Fraction(3, 6),
        (2, 1, 0): Fraction(6, 7), (2, 0, 1): Fraction(7, 8), (1, 2, 0): Fraction(3, 5),
        (0, 2, 1): Fraction(1, 4), (1, 0, 2): Fraction(5, 7), (0, 1, 2): Fraction(2, 5),
        (1, 1, 1): Fraction(4, 6),
    }
    # the hand values agree with the formula for every multinomial outcome
    x_g, n_g = np.array([3, 0, 1]), np.array([3, 1, 2])
    for v in (v for v in product(range(4), repeat=3) if sum(v) == 3):
        assert by_hand[v] == Fraction(int(np.dot(v, x_g)), int(np.dot(v, n_g)))
    n_boot = 6000
    (reps,) = clustered_replicates([values[:, None]], Sessions(sessions), n_boot, np.random.default_rng(1))
    reps = reps[:, 0]
    # every replicate is one of the 10 session draws (a case bootstrap would give k/6, e.g. 1/6 or 5/6)
    hand = np.array([float(f) for f in by_hand.values()])
    assert np.abs(reps[:, None] - hand[None, :]).min(1).max() < 1e-12
    # and each comes with its multinomial probability 3! / (v1! v2! v3!) / 27
    for v, f in by_hand.items():
        prob = math.factorial(3) / math.prod(math.factorial(k) for k in v) / 27
        share = np.mean(np.isclose(reps, float(f)))
        assert share == pytest.approx(prob, abs=4 * math.sqrt(prob * (1 - prob) / n_boot)), v


def test_one_case_per_session_is_the_case_bootstrap():
    x = np.random.default_rng(0).binomial(1, 0.4, size=300).astype(float)
    assert bootstrap_ci(x, sessions=np.arange(300)[::-1], n_bootstrap=400, seed=3) == pytest.approx(
        bootstrap_ci(x, n_bootstrap=400, seed=3), rel=1e-12)


def test_intervals_widen_when_prefixes_of_a_session_are_perfectly_correlated():
    """200 sessions of 10 cases, every case of a session with the session's
    value: the case bootstrap sees 2,000 independent cases, the session
    bootstrap 200 (its interval is about sqrt(10) times wider)."""
    rng = np.random.default_rng(5)
    per_session = rng.binomial(1, 0.4, size=200).astype(float)
    x = np.repeat(per_session, 10)
    sessions = np.repeat(rng.permutation(10_000)[:200], 10)
    m_case, lo_case, hi_case = bootstrap_ci(x, n_bootstrap=2000, seed=0)
    m_sess, lo_sess, hi_sess = bootstrap_ci(x, sessions=sessions, n_bootstrap=2000, seed=0)
    assert m_case == m_sess == pytest.approx(per_session.mean())
    assert lo_sess <= m_sess <= hi_sess
    ratio = (hi_sess - lo_sess) / (hi_case - lo_case)
    assert 2.5 < ratio < 4.0, ratio
    # the session interval is the one a bootstrap of the 200 session values gives
    _, lo_ref, hi_ref = bootstrap_ci(per_session, n_bootstrap=2000, seed=0)
    assert (hi_sess - lo_sess) == pytest.approx(hi_ref - lo_ref, rel=0.15)


def test_bootstrap_is_deterministic_given_its_seed():
    rng = np.random.default_rng(2)
    x = rng.random((2, 500))
    sessions = rng.integers(0, 60, size=500)
    first = bootstrap_ci(x, sessions=sessions, n_bootstrap=300, seed=11)
    assert bootstrap_ci(x, sessions=sessions, n_bootstrap=300, seed=11) == first
    assert bootstrap_ci(x, sessions=sessions, n_bootstrap=300, seed=12) != first


def test_paired_ttest_equals_scipy_on_per_session_data():
    rng = np.random.default_rng(4)
    sizes = rng.integers(1, 12, size=40)
    sessions = np.repeat(rng.permutation(1000)[:40], sizes)
    shift = np.repeat(rng.normal(0.05, 0.3, size=40), sizes)  # a session effect shared by its prefixes
    a = rng.random(len(sessions)) + shift
    b = rng.random(len(sessions))
    t, p = paired_ttest(a, b, sessions)
    d_g, n_g = _per_session(a - b, sessions)
    g, c = len(d_g), n_g.sum()
    dbar = d_g.sum() / c
    # 1. the CR1 formula, with scipy's t distribution on G - 1 degrees of freedom
    t_ref = dbar / math.sqrt(g / (g - 1) * np.sum((d_g - n_g * dbar) ** 2) / c**2)
    assert t == pytest.approx(t_ref, rel=1e-10)
    assert p == pytest.approx(2 * stats.t.sf(abs(t_ref), g - 1), rel=1e-10)
    # 2. the same as scipy's one-sample t-test of the linearised session values
    z = dbar + (d_g - n_g * dbar) / (c / g)
    res = stats.ttest_1samp(z, 0.0)
    assert (t, p) == pytest.approx((res.statistic, res.pvalue), rel=1e-9)
    # 3. with equal session sizes: scipy's paired t-test of the per-session means
    eq = np.repeat(np.arange(30), 4)
    a4, b4 = rng.random(120), rng.random(120)
    res = stats.ttest_rel(pd.Series(a4).groupby(eq).mean(), pd.Series(b4).groupby(eq).mean())
    assert paired_ttest(a4, b4, eq) == pytest.approx((res.statistic, res.pvalue), rel=1e-9)
    # 4. without sessions (one case each) it is scipy's ttest_rel over cases
    res = stats.ttest_rel(a, b)
    assert paired_ttest(a, b) == pytest.approx((res.statistic, res.pvalue), rel=1e-10)


def test_paired_ttest_edge_cases():
    a = np.array([1.0, 0.0, 1.0, 1.0])
    s = np.array([1, 1, 2, 2])
    assert paired_ttest(a, a, s) == (0.0, 1.0)
    assert all(math.isnan(v) for v in paired_ttest(a, a - 1, np.zeros(4)))  # one session: no test
    # every session's mean difference equal: no spread, a certain difference
    assert paired_ttest(a + 0.5, a, s) == (math.inf, 0.0)
    # correlated prefixes count less: the case test is more confident than the session test
    rng = np.random.default_rng(8)
    d = np.repeat(rng.normal(0.1, 1.0, size=50), 8)
    sess = np.repeat(np.arange(50), 8)
    assert paired_ttest(d, np.zeros_like(d), sess)[1] > paired_ttest(d, np.zeros_like(d))[1]


# --------------------------------------------------------------------------- #
# the report and compare use the session statistics
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from report_fixtures import add_run

    from harness.models.testing import tiny_dataset

    data = tiny_dataset(n_test=60, seed=0)
    out = tmp_path_factory.mktemp("clustered")
    add_run(out, data, "pop", 0, kind="pop")
    add_run(out, data, "markov", 0, kind="markov")
    for seed in (0, 1):
        add_run(out, data, "gru4rec", seed, kind="markov")
    return out


def _label_cases(folder, label: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-case values of ``key`` averaged over the label's seeds, and the session of each case."""
    from harness.report.provenance import label_of, select_runs

    metric, k = key.split("@")
    records = [r for r in select_runs(folder).test if label_of(r) == label]
    frames = [r.evaluation.per_case([int(k)], names=[metric]) for r in records]
    return np.mean([f[key].to_numpy(np.float64) for f in frames], axis=0), frames[0]["session"].to_numpy()


def test_report_p_values_and_intervals_are_over_sessions(folder):
    results = report.collect(folder, n_bootstrap=400, seed=0)
    group = results.groups[0]
    sig = group.significance
    assert group.n_sessions["pop"] < group.n_cases["pop"]  # several prefixes per session
    checked = 0
    for row in sig.itertuples(index=False):
        xa, sessions = _label_cases(folder, row.label, row.metric)
        xb, _ = _label_cases(folder, row.best, row.metric)
        d_g, n_g = _per_session(xa - xb, sessions)
        if np.all(d_g == 0) and np.all(xa == xb):
            continue
        g, c = len(d_g), n_g.sum()
        dbar = d_g.sum() / c
        se = math.sqrt(g / (g - 1) * np.sum((d_g - n_g * dbar) ** 2) / c**2)
        assert row.t == pytest.approx(dbar / se, rel=1e-9), (row.label, row.metric)
        assert row.p == pytest.approx(2 * stats.t.sf(abs(dbar / se), g - 1), rel=1e-9, abs=1e-300)
        checked += 1
    assert checked
    # the CI of a label's mean is the session bootstrap of its per-case values
    x, sessions = _label_cases(folder, "markov", "MRR@20")
    _, lo, hi = bootstrap_ci(x, sessions=sessions, n_bootstrap=4000, seed=1)
    width = group.ci_high.loc["markov", "MRR@20"] - group.ci_low.loc["markov", "MRR@20"]
    assert width == pytest.approx(hi - lo, rel=0.2)


def test_report_is_deterministic_and_labels_its_unit(folder):
    a = report.collect(folder, n_bootstrap=100, seed=3).groups[0]
    b = report.collect(folder, n_bootstrap=100, seed=3).groups[0]
    pd.testing.assert_frame_equal(a.ci_low, b.ci_low)
    pd.testing.assert_frame_equal(a.significance, b.significance)
    summary = report.write_report(folder, n_bootstrap=50, seed=0)
    md = summary.path / "summary.md"
    text = md.read_text()
    assert "resamples the test sessions" in text and "significantly worse than the column's best" in text
    assert "significantly different" not in text
    table = (summary.path / "tables" / f"{a.slug}.md").read_text()
    assert "test sessions" in table and "significantly worse" in table
    csv = pd.read_csv(summary.path / "tables" / f"{a.slug}.csv").set_index("label")
    assert (csv["n_sessions"] == a.n_sessions["pop"]).all()


def test_compare_uses_the_session_statistics(folder):
    from harness.report.compare import compare

    result = compare(folder, folder, labels=("markov", "gru4rec"), metrics=["mrr"], ks=[20], n_bootstrap=200)
    row = result.table.iloc[0]
    xa, sessions = _label_cases(folder, "markov", "MRR@20")
    xb, _ = _label_cases(folder, "gru4rec", "MRR@20")
    t, p = paired_ttest(xb, xa, sessions)
    assert (row.t, row.p) == pytest.approx((t, p), rel=1e-12)
    assert row.n_sessions == len(np.unique(sessions)) < row.n_cases
    assert "test sessions" in result.text()


def test_one_test_session_gives_no_intervals_or_tests_and_says_so(tmp_path):
    """Resampling one session returns it: a zero-width '95% CI' and a p-value
    from one unit would be nonsense; the report says why they are missing
    and compare draws its figure (it crashed on a CI a rounding away from
    its estimate)."""
    from report_fixtures import add_run

    from harness import report
    from harness.models.testing import tiny_dataset
    from harness.report.compare import compare, write_comparison
    from harness.report.statistics import paired_ttest

    data = tiny_dataset(n_test=1, seed=0)
    for label in ("pop", "markov"):
        add_run(tmp_path, data, label, 0)
    results = report.collect(tmp_path, n_bootstrap=50)
    (group,) = results.groups
    assert group.n_sessions["pop"] == 1
    assert group.ci_low.isna().all().all() and group.ci_high.isna().all().all()
    assert any("in 1 test session: no confidence intervals or tests" in n for n in group.notes)
    result = compare(tmp_path, tmp_path, labels=("pop", "markov"), n_bootstrap=50)
    assert result.table["p"].isna().all() and result.table["diff_ci_low"].isna().all()
    assert write_comparison(result, tmp_path / "cmp")  # the figure is drawn
    assert all(np.isnan(v) for v in paired_ttest(np.zeros(3), np.zeros(3), np.ones(3)))

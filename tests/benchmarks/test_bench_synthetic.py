"""Time to generate a large synthetic log (100,000 sessions, 5,000 items).

Measure with ``.venv/bin/pytest tests/benchmarks/test_bench_synthetic.py --benchmark-enable``.
"""

from harness.data.synthetic import generate_events


def test_generate_100k_sessions(benchmark):
    events, meta = benchmark(generate_events, n_sessions=100_000, n_items=5_000, seed=0)
    assert events["session"].nunique() == 100_000
    assert len(events) == meta["n_events"] > 300_000

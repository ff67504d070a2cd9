"""Small datasets for tests: hand-made session sets (exact-score tests of the
rule and KNN models), cuts of a real dataset (benchmarks) and a synthetic
catalogue in YOOCHOOSE 1/64's shape (the GEMM-bound benchmarks)."""

from pathlib import Path

import pandas as pd

from harness.data.dataset import PrefixBatch, SessionDataset, SessionSplit
from harness.data.specs import load_dataset

BOUND_SPEC = """\
name: bound-{n_items}
description: synthetic, the shape of YOOCHOOSE 1/64 for the GEMM-bound benchmarks
source: generated
format: synthetic
generator: {{n_sessions: {n_sessions}, n_items: {n_items}, seed: 0, days: 30, zipf_exponent: 0.0,
            n_communities: 50, community_leak: 0.1, transition_prob: 0.5, mean_length: 4.0, max_length: 50}}
preprocess: {{method: standard, test_days: 2, valid_days: 2, min_session_length: 2,
             min_item_support: 5, filter_iterations: 1}}
"""


def bound_dataset(folder: Path, full: bool) -> SessionDataset:
    """The seeded synthetic dataset of the GEMM-bound benchmarks, generated
    in ``folder``: with ``full``, YOOCHOOSE 1/64's shape (about 12,000 items
    and 90,000 training prefixes); otherwise 300 items for a quick run."""
    n_sessions, n_items = (36_000, 14_500) if full else (800, 300)
    path = Path(folder) / "spec.yaml"
    path.write_text(BOUND_SPEC.format(n_sessions=n_sessions, n_items=n_items))
    return load_dataset(path)


def split_from(sessions, first_id=1, start=0.0):
    """A split of the given item lists, one click per second."""
    rows, clock = [], start
    for offset, items in enumerate(sessions):
        for item in items:
            rows.append((first_id + offset, int(item), clock))
            clock += 1.0
    return SessionSplit(pd.DataFrame(rows, columns=["session", "item", "time"]))


def dataset_from(sessions, n_items):
    """A dataset whose train (= train_tr = valid) holds ``sessions`` and whose test is [[1, 2]]."""
    train = split_from(sessions)
    test = split_from([[1, 2]], first_id=len(sessions) + 1, start=1e6)
    return SessionDataset("hand", n_items, {str(i): i for i in range(1, n_items + 1)}, train, train, train, test)


def rows(model, last_items):
    """Scores of items 1..n for one-item prefixes."""
    return model.score(PrefixBatch.from_sequences([[i] for i in last_items]))[:, 1:]


def first_sessions(data: SessionDataset, count: int) -> SessionDataset:
    """``data`` with ``train`` cut to its first ``count`` sessions (same items, same test)."""
    keep = data.train.head(count)
    return SessionDataset(data.name, data.n_items, data.item_map, keep, keep, data.valid, data.test, data.meta)


def prefix_batches(data: SessionDataset, batch_size: int, *, with_times: bool = True) -> list[PrefixBatch]:
    """The test prefixes of ``data`` as batches, built before any timing starts."""
    cases = data.prefixes("test")
    return [cases.batch(part, with_times=with_times) for part in cases.slices(batch_size)]

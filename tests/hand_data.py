"""Small datasets for tests: hand-made session sets (exact-score tests of the
rule and KNN models) and cuts of a real dataset (benchmarks)."""

import pandas as pd

from harness.dataset import PrefixBatch, SessionDataset, SessionSplit


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
    events = data.train.events
    keep = SessionSplit(events[events["session"].isin(data.train.session_ids[:count])])
    return SessionDataset(data.name, data.n_items, data.item_map, keep, keep, data.valid, data.test, data.meta)


def prefix_batches(data: SessionDataset, batch_size: int, *, with_times: bool = True) -> list[PrefixBatch]:
    """The test prefixes of ``data`` as batches, built before any timing starts."""
    cases = data.prefixes("test")
    return [cases.batch(part, with_times=with_times) for part in cases.slices(batch_size)]

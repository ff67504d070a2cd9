"""POP and S-POP: exact scores on a hand-made dataset."""

import pandas as pd
import pytest
import torch

from baselines.popularity import Popularity, SessionPopularity
from harness.data.dataset import PrefixBatch, SessionDataset, SessionSplit
from harness.errors import ConfigError


def split(rows):
    return SessionSplit(pd.DataFrame(rows, columns=["session", "item", "time"]))


@pytest.fixture()
def data():
    # train clicks: item 1 once, item 2 three times, item 3 once, item 4 never
    train = split([(1, 1, 0.0), (1, 2, 1.0), (2, 2, 2.0), (2, 3, 3.0), (3, 2, 4.0), (3, 2, 5.0)])
    train = split([(1, 1, 0.0), (1, 2, 1.0), (2, 2, 2.0), (2, 3, 3.0), (3, 2, 4.0)])
    test = split([(9, 1, 10.0), (9, 3, 11.0)])
    return SessionDataset("hand", 4, {str(i): i for i in range(1, 5)}, train, train, train, test)


def test_pop_scores_are_counts_over_the_largest(data):
    scores = Popularity().fit(data).score(PrefixBatch.from_sequences([[1], [3, 4]]))
    expected = torch.tensor([0.0, 1 / 3, 1.0, 1 / 3, 0.0])
    assert torch.allclose(scores, expected.expand(2, -1))


def test_spop_counts_the_prefix_then_popularity(data):
    model = SessionPopularity(tiebreak=0.5).fit(data)
    scores = model.score(PrefixBatch.from_sequences([[3, 3, 1], [4]]))
    # row 0: item1 1 + 0.5/3, item2 0 + 0.5, item3 2 + 0.5/3, item4 0
    assert torch.allclose(scores[0, 1:], torch.tensor([1 + 0.5 / 3, 0.5, 2 + 0.5 / 3, 0.0]))
    assert torch.allclose(scores[1, 1:], torch.tensor([0.5 / 3, 0.5, 0.5 / 3, 1.0]))


def test_spop_refuses_a_tiebreak_that_could_reorder_counts(data):
    with pytest.raises(ConfigError, match="tiebreak must be in"):
        SessionPopularity(tiebreak=1.5).fit(data)

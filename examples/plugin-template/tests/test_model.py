"""The plugin's own tests: sessionbench's conformance suite plus exact scores."""

import torch

from harness.dataset import PrefixBatch
from harness.testing import check_recommender, tiny_dataset
from mysessionrec.model import RepeatRecent


def test_conforms_to_the_sessionbench_contract():
    check_recommender(RepeatRecent, decay=0.5)


def test_most_recent_prefix_items_first_then_popularity():
    model = RepeatRecent(decay=0.5).fit(tiny_dataset(), seed=0)
    scores = model.score(PrefixBatch.from_sequences([[3, 7, 3, 5]]))[0]
    assert scores[5] == 2.0 and scores[3] == 1.5 and scores[7] == 1.25
    outside = torch.ones_like(scores, dtype=torch.bool)
    outside[[0, 3, 5, 7]] = False
    assert scores[outside].max() < 1.0

"""RepeatRecent: recommend what the user already looked at, most recent
first, then the most popular items.

A strong floor on e-commerce logs, where users often return to an item.
"""

from typing import ClassVar

import torch

from harness.dataset import PrefixBatch, SessionDataset
from harness.plugin import SessionRecommender
from harness.registry import Range


class RepeatRecent(SessionRecommender):
    """Repeat: the prefix's items, most recent first, then by training popularity.

    score(i) = 1 + decay ** (age of i's last click in the prefix)  if i is in the prefix
    score(i) = pop(i) / (max pop + 1)                              otherwise

    The age of the last item is 0, so it ranks first; older items follow.
    Items outside the prefix are ordered by training popularity, below all
    items in it.

    Args:
        decay: weight ratio between consecutive positions, in (0, 1].
    """

    # checked when a suite is loaded or --param is given: `decay: 0` stops before anything runs
    hyperparameter_ranges: ClassVar[dict[str, Range]] = {"decay": Range(0, 1, low_open=True)}

    def __init__(self, *, decay: float = 0.5):
        self.decay = decay  # __init__ only stores hyper-parameters

    def _fit(self, data: SessionDataset, *, seed: int) -> None:
        counts = torch.from_numpy(data.item_popularity("train")).float()
        self.popularity_ = counts / (counts.max() + 1.0)

    def _score(self, batch: PrefixBatch) -> torch.Tensor:
        scores = self.popularity_.expand(len(batch), -1).clone()
        positions = torch.arange(batch.items.shape[1])
        age = (batch.lengths.unsqueeze(1) - 1 - positions).clamp(min=0).float()
        weight = torch.where(batch.items > 0, 1.0 + self.decay**age, torch.zeros_like(age))
        # the most recent click of an item wins: scatter_reduce with amax
        recent = torch.zeros_like(scores).scatter_reduce_(1, batch.items, weight, reduce="amax")
        recent[:, 0] = 0.0
        return torch.where(recent > 0, recent, scores)

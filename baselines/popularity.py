"""Popularity baselines: POP and S-POP.

They set the floor every other model must clear and, through the harness's
pessimistic tie rule, show what a model gains from ranking more than a
handful of items.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from baselines.common import training_popularity
from harness.data.dataset import PrefixBatch, SessionDataset
from harness.errors import ConfigError
from harness.models.plugin import SessionRecommender
from harness.models.registry import Range, register


def _rows_of(row: torch.Tensor, n_rows: int) -> torch.Tensor:
    """A new [n_rows, len(row)] tensor, every row a copy of ``row`` (CPU).

    NumPy's broadcast copy: on CPU several times faster than
    ``row.expand(n_rows, -1).clone()`` for a batch of full-catalogue rows.
    """
    return torch.from_numpy(np.broadcast_to(row.numpy(), (n_rows, len(row))).copy())


@register("pop")
class Popularity(SessionRecommender):
    """POP: every prefix gets the same list, items by training click count.

    score(i) = count_train(i) / max_j count_train(j)
    """

    def __init__(self) -> None:
        pass

    def _fit(self, data: SessionDataset, *, seed: int) -> None:
        self.popularity_ = training_popularity(data)

    def _score(self, batch: PrefixBatch) -> torch.Tensor:
        return _rows_of(self.popularity_, len(batch))


@register("spop")
class SessionPopularity(SessionRecommender):
    """S-POP: items clicked most often in the current prefix first, then by
    training popularity.

    score(i) = count_prefix(i) + tiebreak * pop(i),  pop(i) in [0, 1]

    With ``tiebreak < 1`` the global term only orders items with the same
    count in the prefix (including the many items not in it).

    Args:
        tiebreak: weight of the normalised global popularity, in [0, 1).
    """

    #: checked when a suite or --param sets them
    hyperparameter_ranges: ClassVar[dict[str, Range]] = {"tiebreak": Range(0, 1, high_open=True)}

    def __init__(self, *, tiebreak: float = 0.5) -> None:
        self.tiebreak = tiebreak

    def _fit(self, data: SessionDataset, *, seed: int) -> None:
        if not 0.0 <= self.tiebreak < 1.0:
            raise ConfigError(f"spop: tiebreak must be in [0, 1), got {self.tiebreak}")
        self.popularity_ = training_popularity(data)

    def _score(self, batch: PrefixBatch) -> torch.Tensor:
        scores = _rows_of(self.tiebreak * self.popularity_, len(batch))
        in_prefix = (batch.items > 0).float()
        return scores.scatter_add_(1, batch.items, in_prefix)

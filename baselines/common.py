"""Pieces shared by the baselines: training popularity and the fallback.

The harness ranks ties pessimistically, so a model that gives fewer than K
items a positive score is punished for the tie among all the rest. Rule and
neighbourhood models therefore take ``fallback``:

- ``"pop"`` (default): items the model gives no positive score are ranked
  after every positive one, by training popularity;
- ``"none"``: they stay tied at 0 (what the raw method gives; with
  pessimistic ties, they rank last).
"""

from __future__ import annotations

import torch

from harness.dataset import SessionDataset
from harness.errors import ConfigError

FALLBACKS = ("pop", "none")


def training_popularity(data: SessionDataset, split: str = "train") -> torch.Tensor:
    """float [n_items + 1]: click counts in ``split`` divided by the largest
    count, so in [0, 1]; column 0 (padding) is 0."""
    counts = torch.from_numpy(data.item_popularity(split)).double()
    return (counts / counts.max().clamp(min=1)).float()


def check_fallback(model_name: str, fallback: str) -> None:
    """Raise :class:`ConfigError` unless ``fallback`` is one of :data:`FALLBACKS`."""
    if fallback not in FALLBACKS:
        raise ConfigError(f"{model_name}: fallback must be one of {FALLBACKS}, got {fallback!r}")


def apply_fallback(scores: torch.Tensor, popularity: torch.Tensor, fallback: str) -> torch.Tensor:
    """Rank items without a positive score by popularity, below all positive ones.

    scores: float [B, n_items + 1], non-negative; popularity: float
    [n_items + 1] in [0, 1]. With ``fallback="pop"`` an item with score 0 in a
    row gets ``0.5 * m * pop(i)``, where ``m`` is the row's smallest positive
    score (1 if it has none): strictly below every positive score, so the
    model's own order is untouched, and ordered by popularity. Returns a new
    tensor; ``"none"`` returns ``scores`` unchanged.
    """
    if fallback == "none":
        return scores
    positive = scores > 0
    smallest = torch.where(positive, scores, torch.full_like(scores, float("inf"))).min(dim=1, keepdim=True).values
    smallest = torch.where(torch.isinf(smallest), torch.ones_like(smallest), smallest)
    return torch.where(positive, scores, 0.5 * smallest * popularity.to(scores.dtype).unsqueeze(0))

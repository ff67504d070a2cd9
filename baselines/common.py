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

import numpy as np
import scipy.sparse as sp
import torch

from harness.data.dataset import SessionDataset
from harness.errors import ConfigError
from harness.evaluation.metrics import row_blocks

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
    popularity = popularity.to(scores.dtype).unsqueeze(0)
    blocks = row_blocks(scores)  # five [B, n_items + 1] temporaries: a block of rows at a time on CPU
    if len(blocks) == 1:
        return _fallback_rows(scores, popularity)
    out = torch.empty_like(scores)
    for block in blocks:
        out[block] = _fallback_rows(scores[block], popularity)
    return out


def sparse_fallback(rows: sp.csr_matrix, popularity: torch.Tensor, fallback: str) -> torch.Tensor:
    """``apply_fallback(torch.from_numpy(rows.toarray()), popularity, fallback)``,
    computed from the sparse rows.

    rows: float CSR [B, n_items + 1] of non-negative scores (a model's
    scores with few positive entries per row, such as the rules' and the
    neighbourhood models'). The dense result is written once: every cell
    gets the fallback value ``0.5 * m * pop(i)`` and the positive entries
    are copied over it, instead of the five [B, n_items + 1] passes of the
    dense version. The values are bit for bit those of :func:`apply_fallback`
    (the same float operations in the same order).
    """
    if fallback == "none":
        return torch.from_numpy(rows.toarray())
    rows = rows.tocsr()
    data, indptr = rows.data, rows.indptr
    positive = data > 0
    smallest = np.full(rows.shape[0], np.inf, dtype=data.dtype)
    counts = np.diff(indptr)
    filled = counts > 0
    if filled.any():
        smallest[filled] = np.minimum.reduceat(np.where(positive, data, np.inf), indptr[:-1][filled])
    smallest[np.isinf(smallest)] = 1
    pop = popularity.detach().cpu().numpy().astype(data.dtype)  # exact, as Tensor.to
    out = np.multiply((smallest * data.dtype.type(0.5))[:, None], pop[None, :])
    row_of = np.repeat(np.arange(rows.shape[0]), counts)
    out[row_of[positive], rows.indices[positive]] = data[positive]
    return torch.from_numpy(out)


def _fallback_rows(scores: torch.Tensor, popularity: torch.Tensor) -> torch.Tensor:
    """:func:`apply_fallback` with ``"pop"`` on rows ``scores`` [b, n_items + 1];
    ``popularity`` is [1, n_items + 1] in the scores' dtype."""
    positive = scores > 0
    smallest = torch.where(positive, scores, torch.full_like(scores, float("inf"))).min(dim=1, keepdim=True).values
    smallest = torch.where(torch.isinf(smallest), torch.ones_like(smallest), smallest)
    return torch.where(positive, scores, 0.5 * smallest * popularity)

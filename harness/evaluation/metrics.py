"""Ranking and metrics: full ranking over all items, pessimistic ties, per case.

Everything here is vectorised in torch and works on whole batches (or on all
stored evaluation cases at once); nothing loops over cases in Python.

Ranking conventions
-------------------
Scores are float ``[B, n_items + 1]``; column 0 is the padding id and is
ignored entirely: it never ranks and never appears in a top-K list, whatever
its score. Ranks are 1-based positions in the ranking of items
``1..n_items`` (full ranking, no sampled negatives).

* **Pessimistic ties.** A target ranks below every non-target item whose score
  equals its own. Several distinct targets tied with each other take
  consecutive positions (the one with the smaller item id first), so the
  ranking stays a permutation and a perfect scorer gets Recall 1.
  A target id that occurs twice in a row of ``targets`` gets the same rank
  both times (it is one item); use :func:`unique_targets` to count each
  distinct item once.
* **NaN scores** are treated as ``-inf``: the lowest possible score (and, with
  pessimistic ties, a NaN target ranks below every other such item).
* **Sentinels.** A padding target (id 0) gets rank :data:`PAD_RANK` (0) and is
  not a target at all. A target removed by ``exclude`` (the option "remove
  items already in the prefix") gets rank :data:`UNRANKED` (``2**31 - 1``):
  it is still a target (it counts in the number of targets) but it is a miss
  at every K. Both fit in int32, which is how ranks are stored on disk.
* **Exclusion.** Excluded items are removed from the ranking: they neither
  push targets down nor appear in top-K lists.

Top-K lists
-----------
:func:`top_items` returns item ids ordered by score descending, ties broken
by item id ascending (deterministic, unlike a bare ``torch.topk``). If fewer
than K items are available (K > n_items, or exclusion), the list is padded at
the end with 0.

Metrics
-------
The registry :data:`METRICS` defines every metric once (printed name,
direction, axis label, kind, formula); tables, bold-best and axes elsewhere are
driven by it. Keys of result dicts are ``f"{name}@{K}"`` (:func:`metric_key`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from harness.errors import UnknownNameError, did_you_mean

#: Rank of a padding target (id 0): not a target, never counted.
PAD_RANK = 0
#: Rank of a target that was excluded from the ranking (it is in the prefix and
#: "remove items already in the prefix" is on): a miss at every K.
UNRANKED = 2**31 - 1

#: The cut-offs of an evaluation (and of a suite) that names none.
DEFAULT_KS: tuple[int, ...] = (5, 10, 20, 50)
#: The narrowest top list a suite's runs store per case: metrics at K up to
#: 50 (Coverage@K, Popularity@K) come from the stored lists whatever a
#: suite's ``ks``, so every suite whose K stay at or below it shares its runs
#: (see :func:`harness.evaluation.evaluate.stored_top_width`).
DEFAULT_TOP_WIDTH = 50

# Rows of the [B, N] working tensors processed at once (bounds the temporaries).
_CHUNK_ELEMENTS = 1 << 22
# Up to this many target columns, count "items scoring >= target" by direct
# comparison, one column at a time; above it, by binning all items into the
# sorted target scores (one searchsorted pass).
_DIRECT_COLUMNS = 4
# The top-k of a wide CPU row (at least 16 scores per chunk) is
# taken from the chunks that can hold it (:func:`_largest`); chunks per row
# = this times k.
_CHUNKS_PER_K = 32


# --------------------------------------------------------------------------- #
# Metric registry
# --------------------------------------------------------------------------- #

MetricKind = Literal["rank", "list", "aggregate"]
Direction = Literal["higher", "lower", "neutral"]


@dataclass(frozen=True)
class MetricSpec:
    """What the rest of sessionbench needs to know about a metric.

    Attributes:
        name: the name as printed and used in keys (``"HitRate"``).
        label: a human axis label with the cut-off left symbolic (``"HitRate@K"``).
        direction: ``"higher"`` (higher is better), ``"lower"``, or
            ``"neutral"`` (descriptive: no best, never bolded).
        kind: ``"rank"`` (per case, from the target ranks), ``"list"`` (per
            case, from the case's top-K list) or ``"aggregate"`` (one number
            over all top-K lists; no per-case value, no bootstrap).
        protocols: the protocols whose default report includes it.
        formula: the definition, in words and symbols.
    """

    name: str
    label: str
    direction: Direction
    kind: MetricKind
    protocols: tuple[str, ...]
    formula: str

    @property
    def higher_is_better(self) -> bool | None:
        """True / False for a directed metric, None for a neutral one."""
        return {"higher": True, "lower": False, "neutral": None}[self.direction]

    @property
    def per_case(self) -> bool:
        """Whether the metric has one value per evaluation case (then the
        reported number is the mean over cases)."""
        return self.kind != "aggregate"

    def key(self, k: int) -> str:
        return metric_key(self.name, k)

    def best(self, values: Sequence[float]) -> int | None:
        """Index of the best value (first on ties), or None for a neutral metric
        or when every value is NaN."""
        arr = np.asarray(values, dtype=np.float64)
        if self.direction == "neutral" or arr.size == 0 or np.all(np.isnan(arr)):
            return None
        return int(np.nanargmax(arr) if self.direction == "higher" else np.nanargmin(arr))


def _spec(name: str, label: str, direction: Direction, kind: MetricKind, protocols: tuple[str, ...], formula: str):
    return MetricSpec(name, label, direction, kind, protocols, formula)


#: Every metric, in the order tables list them. Formulas use r_j for the ranks
#: of the case's targets, T_c for its number of (distinct) targets, L_K for its
#: top-K list and pop(i) = count_train(i) / max_i' count_train(i').
METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        _spec("HitRate", "HitRate@K", "higher", "rank", ("next", "rest"),
              "HitRate@K = 1 if min_j r_j <= K else 0"),
        _spec("Recall", "Recall@K", "higher", "rank", ("next", "rest"),
              "Recall@K = |{j : r_j <= K}| / T_c  (equals HitRate@K when T_c = 1)"),
        _spec("MRR", "MRR@K", "higher", "rank", ("next", "rest"),
              "MRR@K = 1 / min_j r_j if min_j r_j <= K else 0  (reciprocal rank of the first hit)"),
        _spec("NDCG", "NDCG@K", "higher", "rank", ("next", "rest"),
              "NDCG@K = sum_{j: r_j <= K} 1/log2(r_j + 1) / sum_{i=1}^{min(K, T_c)} 1/log2(i + 1)"
              "  (binary relevance)"),
        _spec("Coverage", "Coverage@K", "higher", "aggregate", ("next", "rest"),
              "Coverage@K = |union over cases of L_K| / n_items"),
        _spec("Popularity", "Popularity@K", "neutral", "list", ("next", "rest"),
              "Popularity@K = mean over cases of (1/|L_K|) sum_{i in L_K} pop(i),"
              " pop(i) = train count(i) / max train count (as in session-rec)"),
    )
}

RANK_METRICS: tuple[str, ...] = tuple(n for n, s in METRICS.items() if s.kind == "rank")
LIST_METRICS: tuple[str, ...] = tuple(n for n, s in METRICS.items() if s.kind != "rank")
PROTOCOLS: tuple[str, ...] = ("next", "rest")


def protocol_metrics(protocol: str) -> tuple[str, ...]:
    """The metrics reported by default for ``protocol`` (registry order)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    return tuple(n for n, s in METRICS.items() if protocol in s.protocols)


def metric_spec(name: str) -> MetricSpec:
    """The spec of a metric by name (``"NDCG"``) or key (``"NDCG@20"``)."""
    base = name.split("@", 1)[0]
    try:
        return METRICS[base]
    except KeyError:
        raise UnknownNameError(
            f"unknown metric {base!r}{did_you_mean(base, METRICS)}; known metrics: {', '.join(METRICS)}"
        ) from None


def metric_key(name: str, k: int) -> str:
    """``metric_key("NDCG", 20) == "NDCG@20"``."""
    return f"{name}@{int(k)}"


_KEY_RE = re.compile(r"^([A-Za-z]+)@(\d+)$")


def parse_metric_key(key: str) -> tuple[MetricSpec, int]:
    """``"NDCG@20"`` -> (spec of NDCG, 20)."""
    m = _KEY_RE.match(key)
    if not m:
        raise ValueError(f"not a metric key {key!r}; expected NAME@K such as 'HitRate@20'")
    return metric_spec(m.group(1)), int(m.group(2))


def normalise_ks(ks: int | Iterable[int]) -> tuple[int, ...]:
    """Sorted, de-duplicated positive cut-offs."""
    if isinstance(ks, (int, np.integer)):
        ks = (int(ks),)
    out = tuple(sorted({int(k) for k in ks}))
    if not out or out[0] < 1:
        raise ValueError(f"cut-offs K must be positive integers, got {ks!r}")
    return out


def _check_names(names: Iterable[str] | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if names is None:
        return allowed
    names = tuple(metric_spec(n).name for n in names)
    wrong = [n for n in names if n not in allowed]
    if wrong:
        raise ValueError(f"metrics {wrong} are not allowed here; expected some of {allowed}")
    return tuple(n for n in METRICS if n in names)


# --------------------------------------------------------------------------- #
# Ranking
# --------------------------------------------------------------------------- #


def _prepare(scores: torch.Tensor, exclude: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scores of items 1..N (padding column dropped), NaN -> -inf, excluded
    items -> -inf; plus the bool [B, N] mask of excluded items (or None).
    Without exclusions and NaN, a view of ``scores``: callers only read it."""
    if scores.dim() != 2 or scores.shape[1] < 2:
        raise ValueError(f"scores must be [B, n_items + 1] with n_items >= 1, got shape {tuple(scores.shape)}")
    s = scores[:, 1:]
    if s.dtype in (torch.float16, torch.bfloat16):
        s = s.float()  # exact: keeps every tie and every order
    elif not s.is_floating_point():
        s = s.double()
    if exclude is None:
        # read only from here on: without NaN, the view needs no copy
        if s.numel() == 0 or not _has_nan(s):
            return s, None
        return torch.nan_to_num(s, nan=-math.inf, posinf=math.inf, neginf=-math.inf), None
    # a fresh copy: excluded items are written into it below
    s = torch.nan_to_num(s, nan=-math.inf, posinf=math.inf, neginf=-math.inf).contiguous()
    exclude = exclude.to(device=s.device, dtype=torch.long)
    if exclude.dim() != 2 or exclude.shape[0] != s.shape[0]:
        raise ValueError(f"exclude must be [B, L] with B = {s.shape[0]}, got shape {tuple(exclude.shape)}")
    if exclude.numel() and (exclude.min() < 0 or exclude.max() > s.shape[1]):
        raise ValueError(f"exclude holds item ids outside 0..{s.shape[1]}")
    mask = torch.zeros(s.shape[0], s.shape[1] + 1, dtype=torch.bool, device=s.device)
    mask.scatter_(1, exclude, True)
    mask = mask[:, 1:].contiguous()
    s.masked_fill_(mask, -math.inf)
    return s, mask


def _has_nan(s: torch.Tensor) -> bool:
    """Whether ``s`` holds a NaN: on CPU one NumPy max over the (strided)
    tensor, which propagates NaN, several times faster than ``isnan().any()``."""
    if s.device.type == "cpu" and s.dtype in (torch.float32, torch.float64):
        return bool(np.isnan(s.detach().numpy().max()))
    return bool(torch.isnan(s).any())


def _count_ge(s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """LongTensor [B, T]: for each v[b, t], the number of items i with s[b, i] >= v[b, t]."""
    B, N = s.shape
    T = v.shape[1]
    if T <= _DIRECT_COLUMNS:
        if s.device.type == "cpu" and s.dtype in (torch.float32, torch.float64):
            # NumPy's count over a bool mask is several times faster than
            # torch's on CPU, and its count over a whole 1-D row several
            # times faster than its count along an axis
            sn, vn = s.detach().numpy(), v.detach().numpy()
            mask = np.empty(sn.shape, dtype=bool)
            counts = np.empty((B, T), dtype=np.int64)
            for t in range(T):
                np.greater_equal(sn, vn[:, t : t + 1], out=mask)
                counts[:, t] = [np.count_nonzero(row) for row in mask]
            return torch.from_numpy(counts)
        return torch.stack([torch.count_nonzero(s >= v[:, t : t + 1], dim=1) for t in range(T)], dim=1)
    # Bin every item into the sorted target scores: p_i = #{t : v_t <= s_i};
    # then #{i : s_i >= v_(j)} = #{i : p_i >= j + 1} for the j-th smallest v.
    sv, order = torch.sort(v, dim=1)
    out = torch.empty(B, T, dtype=torch.long, device=s.device)
    step = max(1, _CHUNK_ELEMENTS // max(N, 1))
    for lo in range(0, B, step):
        hi = min(lo + step, B)
        p = torch.searchsorted(sv[lo:hi].contiguous(), s[lo:hi].contiguous(), right=True)
        hist = torch.zeros(hi - lo, T + 1, dtype=torch.long, device=s.device)
        hist.scatter_add_(1, p, torch.ones_like(p))
        tail = hist.flip(1).cumsum(1).flip(1)  # tail[:, m] = #{i : p_i >= m}
        out[lo:hi].scatter_(1, order[lo:hi], tail[:, 1:])
    return out


def _first_occurrence(targets: torch.Tensor) -> torch.Tensor:
    """bool [B, T]: True where targets[b, t] is not 0 and does not occur earlier in its row."""
    T = targets.shape[1]
    same = targets[:, :, None] == targets[:, None, :]  # [B, t, j]
    earlier = torch.ones(T, T, dtype=torch.bool, device=targets.device).tril(-1)
    return (targets != 0) & ~(same & earlier).any(2)


def target_ranks(scores: torch.Tensor, targets: torch.Tensor, *, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """1-based pessimistic rank of each target in the full ranking of items 1..n_items.

    Args:
        scores: float [B, n_items + 1]; column 0 (padding) is ignored.
        targets: LongTensor [B, T] of item ids, padded with 0 (or [B] for one
            target per row).
        exclude: optional LongTensor [B, L] of item ids (padded with 0) removed
            from the ranking of their row (e.g. the prefix).

    Returns:
        LongTensor [B, T] (or [B]): for a target t,
        ``1 + #{non-target, non-excluded i : s_i >= s_t}
        + #{distinct non-excluded targets u : s_u > s_t or (s_u == s_t and u < t)}``;
        :data:`PAD_RANK` (0) for padding targets; :data:`UNRANKED` for
        excluded targets. Memory is O(B * (n_items + T^2)); nothing [B, T, n_items] is built.
    """
    return _target_ranks(*_prepare(scores, exclude), targets)


def _target_ranks(s: torch.Tensor, excluded: torch.Tensor | None, targets: torch.Tensor) -> torch.Tensor:
    squeeze = targets.dim() == 1
    if squeeze:
        targets = targets[:, None]
    if targets.dim() != 2 or targets.shape[0] != s.shape[0]:
        raise ValueError(f"targets must be [B, T] with B = {s.shape[0]}, got shape {tuple(targets.shape)}")
    B, N = s.shape
    tgt = targets.to(device=s.device, dtype=torch.long)
    if tgt.numel() and (tgt.min() < 0 or tgt.max() > N):
        raise ValueError(f"targets hold item ids outside 0..{N}")
    if tgt.shape[1] == 0:
        return tgt.clone().squeeze(1) if squeeze else tgt.clone()
    pad = tgt == 0
    idx = (tgt - 1).clamp(min=0)
    v = s.gather(1, idx)  # [B, T] target scores (-inf if excluded)

    ge_all = _count_ge(s, v)  # every item scoring >= the target, target itself included
    if excluded is not None:
        t_excluded = excluded.gather(1, idx) & ~pad
        # excluded items all sit at -inf, so they are >= v only when v == -inf
        n_excluded = excluded.sum(1, keepdim=True)
        ge_all = ge_all - n_excluded * (v == -math.inf)
    else:
        t_excluded = torch.zeros_like(pad)

    real = _first_occurrence(tgt) & ~t_excluded  # distinct targets still in the ranking
    vt, vu = v[:, :, None], v[:, None, :]
    real_u = real[:, None, :]
    targets_ge = (real_u & (vu >= vt)).sum(2)  # distinct targets >= t, t itself included
    ahead = (real_u & ((vu > vt) | ((vu == vt) & (tgt[:, None, :] < tgt[:, :, None])))).sum(2)
    ranks = 1 + ge_all - targets_ge + ahead
    ranks = ranks.masked_fill(t_excluded, UNRANKED).masked_fill(pad, PAD_RANK)
    return ranks.squeeze(1) if squeeze else ranks


def unique_targets(remaining: torch.Tensor) -> torch.Tensor:
    """De-duplicate each row of item ids, keeping first occurrences in their
    original order and moving the 0 padding to the end.

    ``[[3, 5, 3, 0], [7, 7, 7, 2]] -> [[3, 5], [7, 2]]``: the width shrinks to
    the largest number of distinct items in a row (at least 1).
    """
    if remaining.dim() != 2:
        raise ValueError(f"remaining must be [B, R], got shape {tuple(remaining.shape)}")
    B, R = remaining.shape
    if R == 0:
        return torch.zeros(B, 1, dtype=torch.long, device=remaining.device)
    rem = remaining.long()
    # stable sort by id: within a run of equal ids the first occurrence comes first
    sorted_ids, order = torch.sort(rem, dim=1, stable=True)
    dup_sorted = torch.zeros_like(sorted_ids, dtype=torch.bool)
    dup_sorted[:, 1:] = sorted_ids[:, 1:] == sorted_ids[:, :-1]
    keep = torch.zeros_like(dup_sorted)
    keep.scatter_(1, order, ~dup_sorted)
    keep &= rem != 0
    # compact: kept items first, original order preserved (stable sort on ~keep)
    pos = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices
    out = rem.gather(1, pos).masked_fill(~keep.gather(1, pos), 0)
    width = max(1, int(keep.sum(1).max()))
    return out[:, :width].contiguous()


def top_items(scores: torch.Tensor, k: int, *, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """LongTensor [B, min(k, n_items)]: the top-k item ids of each row.

    Ordered by score descending, ties broken by item id ascending; padding
    (column 0) and excluded items never appear. A row with fewer than k
    rankable items is padded at the end with 0.
    """
    return _top_items(*_prepare(scores, exclude), k)


def rank_and_top(
    scores: torch.Tensor, targets: torch.Tensor, k: int, *, exclude: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(target_ranks(scores, targets, exclude=exclude), top_items(scores, k, exclude=exclude))``
    with the scores prepared once (what the evaluator calls per batch)."""
    s, excluded = _prepare(scores, exclude)
    return _target_ranks(s, excluded, targets), _top_items(s, excluded, k)


def _largest(s: torch.Tensor, kk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk(s, kk, dim=1)`` of a float [B, N] tensor: the kk largest
    values of each row, descending, and columns holding them (which of tied
    columns is unspecified, as for ``torch.topk``).

    On CPU, for rows of at least ``16 M`` scores: the first ``M c`` columns of a row
    are split into ``M = _CHUNKS_PER_K * kk`` disjoint chunks of ``c``
    columns (chunk ``m`` = columns ``m, m + M, m + 2M, ...``, so that the
    chunk maxima are one vectorised pass over the row); the last ``N - M c``
    columns are always kept. The kk-th largest chunk maximum ``L`` is at most
    the kk-th largest score (those kk maxima are kk distinct scores), so a
    chunk whose maximum is below ``L`` holds none of the kk largest, and the
    top-kk is taken over the chunks reaching ``L``: usually about kk chunks
    instead of the whole row, where ``torch.topk``'s selection over every
    score costs several reading passes.
    """
    B, N = s.shape
    chunks = _CHUNKS_PER_K * kk
    width = N // chunks
    if s.device.type != "cpu" or width < 16 or B == 0:  # narrow rows: topk is as fast
        return torch.topk(s, kk, dim=1)
    a = s.detach().numpy()  # a strided view of the scores is fine
    body = a[:, : chunks * width].reshape(B, width, chunks)
    maxima = body.max(axis=1)  # [B, M]
    bound = np.partition(maxima, chunks - kk, axis=1)[:, chunks - kk : chunks - kk + 1]  # L per row
    reach = maxima >= bound
    n_reach = np.count_nonzero(reach, axis=1)
    most = int(n_reach.max())
    # the reaching chunks of each row first, then the others (masked below)
    order = np.argsort(~reach, axis=1, kind="stable")[:, :most]
    picked = body.transpose(0, 2, 1)[np.arange(B)[:, None], order]  # [B, most, c]
    picked[np.arange(most)[None, :] >= n_reach[:, None]] = -np.inf  # below L: never among the kk
    values = np.concatenate([picked.reshape(B, most * width), a[:, chunks * width :]], axis=1)
    vals, at = torch.topk(torch.from_numpy(values), kk, dim=1)
    at = at.numpy()
    in_body = at < most * width
    chunk = np.take_along_axis(order, np.minimum(at // width, most - 1), axis=1)
    column = np.where(in_body, chunk + (at % width) * chunks, at - most * width + chunks * width)
    return vals, torch.from_numpy(column)


def _tied_by_key(
    s: torch.Tensor, excluded: torch.Tensor | None, tie_rows: torch.Tensor, kth: torch.Tensor, k: int
) -> torch.Tensor:
    """LongTensor [T, k]: for each row ``tie_rows[t]``, the columns whose
    score equals ``kth[t]``, non-excluded first, then by column; the entries
    after the tied columns are unspecified. One top-k over a key per row."""
    N = s.shape[1]
    eq = s[tie_rows] == kth
    # key: larger for smaller ids (N..1); excluded tied items below every
    # non-excluded one (-N..-1); items not tied lowest (-N - 2). Exact in
    # float32 while 2N < 2**24.
    kdt = torch.float32 if 2 * N < 2**24 else torch.float64
    base = torch.arange(N, 0, -1, device=s.device, dtype=kdt)
    key = torch.where(eq, base, -float(N + 2))
    if excluded is not None:
        # excluded items sit at -inf, so they can only tie where the k-th score is -inf
        at_floor = torch.nonzero(kth.squeeze(1) == -math.inf).flatten()
        if at_floor.numel():
            ex = excluded[tie_rows[at_floor]] & eq[at_floor]
            key[at_floor] = torch.where(ex, base - float(N + 1), key[at_floor])
    # the keys of tied columns are distinct: only the filler after them comes in any order
    return torch.topk(key, k, dim=1).indices


def _tied_by_scan(
    s: torch.Tensor, excluded: torch.Tensor | None, tie_rows: torch.Tensor, kth: torch.Tensor, k: int
) -> torch.Tensor:
    """:func:`_tied_by_key` on CPU, a row at a time: NumPy's list of the
    columns equal to the k-th score is already in column order, and costs
    one comparison pass instead of building and selecting from a key."""
    a = s.detach().numpy()
    ex_all = None if excluded is None else excluded.numpy()
    out = np.zeros((len(tie_rows), k), dtype=np.int64)
    for t, (row, value) in enumerate(zip(tie_rows.tolist(), kth[:, 0].tolist())):
        hit = np.flatnonzero(a[row] == value)
        if ex_all is not None and value == -math.inf:  # excluded items tie only at -inf
            ex = ex_all[row, hit]
            hit = np.concatenate([hit[~ex], hit[ex]])
        hit = hit[:k]
        out[t, : len(hit)] = hit
    return torch.from_numpy(out)


def _top_items(s: torch.Tensor, excluded: torch.Tensor | None, k: int) -> torch.Tensor:
    B, N = s.shape
    k = min(int(k), N)
    if k <= 0:
        return torch.zeros(B, 0, dtype=torch.long, device=s.device)
    kk = min(k + 1, N)
    vals, idx = _largest(s, kk)  # sorted: descending values
    idx = idx[:, :k].clone()
    if kk > k:
        # rows whose k-th and (k+1)-th scores tie: which tied items make the
        # list is ambiguous; take those with the smallest ids (non-excluded first)
        tie_rows = torch.nonzero(vals[:, k] == vals[:, k - 1]).flatten()
        if tie_rows.numel():
            kth = vals[tie_rows, k - 1 : k]
            n_greater = (vals[tie_rows, :k] > kth).sum(1, keepdim=True)  # these stay, in front
            tied = _tied_by_scan if s.device.type == "cpu" else _tied_by_key
            tied_first = tied(s, excluded, tie_rows, kth, k)
            col = torch.arange(k, device=s.device).expand(len(tie_rows), k)
            from_tied = tied_first.gather(1, (col - n_greater).clamp(min=0))
            idx[tie_rows] = torch.where(col >= n_greater, from_tied, idx[tie_rows])
    # order: score descending, then non-excluded first, then id ascending
    idx = torch.sort(idx, dim=1).values
    if excluded is not None:
        flag = excluded.gather(1, idx).to(torch.uint8)
        idx = idx.gather(1, torch.sort(flag, dim=1, stable=True).indices)
    order = torch.sort(s.gather(1, idx), dim=1, descending=True, stable=True).indices
    idx = idx.gather(1, order)
    items = idx + 1
    if excluded is not None:
        items = items.masked_fill(excluded.gather(1, idx), 0)
    return items


# --------------------------------------------------------------------------- #
# Per-case metrics from ranks
# --------------------------------------------------------------------------- #


def _ideal_dcg_table(max_targets: int, device) -> torch.Tensor:
    """float64 [max_targets + 1]: table[m] = sum_{i=1}^{m} 1/log2(i + 1)."""
    i = torch.arange(1, max_targets + 1, dtype=torch.float64, device=device)
    return torch.cat([torch.zeros(1, dtype=torch.float64, device=device), torch.cumsum(1.0 / torch.log2(i + 1), 0)])


def _rank_metrics_flat(
    flat: torch.Tensor,
    case_index: torch.Tensor,
    n_targets: torch.Tensor,
    ks: tuple[int, ...],
    names: tuple[str, ...],
) -> dict[str, torch.Tensor]:
    """Per-case rank metrics from ranks in long format (one entry per target)."""
    C = n_targets.shape[0]
    dev = flat.device
    flat = flat.long()
    valid = (flat >= 1) & (flat != UNRANKED)
    out: dict[str, torch.Tensor] = {}
    n_t = n_targets.to(device=dev, dtype=torch.float64)
    best = torch.full((C,), UNRANKED, dtype=torch.long, device=dev)
    best.scatter_reduce_(0, case_index, torch.where(valid, flat, UNRANKED), reduce="amin")
    discount = torch.where(valid, 1.0 / torch.log2(flat.clamp(min=1).double() + 1.0), 0.0)
    ideal = _ideal_dcg_table(max(ks), dev) if "NDCG" in names else None
    for name in names:
        for k in ks:
            hit = valid & (flat <= k)
            if name == "HitRate":
                val = (best <= k).double()
            elif name == "Recall":
                hits = torch.zeros(C, dtype=torch.float64, device=dev).index_add_(0, case_index, hit.double())
                val = torch.where(n_t > 0, hits / n_t.clamp(min=1), 0.0)
            elif name == "MRR":
                val = torch.where(best <= k, 1.0 / best.double(), 0.0)
            elif name == "NDCG":
                dcg = torch.zeros(C, dtype=torch.float64, device=dev).index_add_(
                    0, case_index, torch.where(hit, discount, 0.0)
                )
                idcg = ideal[n_targets.to(dev).long().clamp(min=0, max=k)]
                val = torch.where(idcg > 0, (dcg / idcg.clamp(min=1e-300)).clamp(max=1.0), 0.0)
            else:  # pragma: no cover - guarded by _check_names
                raise AssertionError(name)
            out[metric_key(name, k)] = val
    return out


def case_metrics(
    ranks: torch.Tensor,
    n_targets: torch.Tensor | None = None,
    ks: int | Iterable[int] = DEFAULT_KS,
    *,
    names: Iterable[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Per-case rank metrics for every K, all cases at once.

    Args:
        ranks: LongTensor [C, T] from :func:`target_ranks` (0 = padding,
            :data:`UNRANKED` = excluded target, a miss), or [C] for one target
            per case.
        n_targets: LongTensor [C], number of targets T_c of each case; by
            default the number of non-padding entries of its row.
        ks: the cut-offs.
        names: rank metrics to compute (default: all of :data:`RANK_METRICS`).

    Returns:
        ``{"HitRate@5": float64 Tensor[C], ...}``, metric-major, K ascending.
        A case with no target scores 0 everywhere.
    """
    if ranks.dim() == 1:
        ranks = ranks[:, None]
    ranks = ranks.long()
    mask = ranks != PAD_RANK
    if n_targets is None:
        n_targets = mask.sum(1)
    rows = torch.arange(ranks.shape[0], device=ranks.device)[:, None].expand_as(ranks)
    return _rank_metrics_flat(
        ranks[mask], rows[mask], n_targets.long(), normalise_ks(ks), _check_names(names, RANK_METRICS)
    )


def case_metrics_ragged(
    flat_ranks: torch.Tensor,
    n_targets: torch.Tensor,
    ks: int | Iterable[int] = DEFAULT_KS,
    *,
    names: Iterable[str] | None = None,
) -> dict[str, torch.Tensor]:
    """:func:`case_metrics` for ranks stored ragged: ``flat_ranks`` holds the
    ranks of case 0's targets, then case 1's, ... and ``n_targets[c]`` how many
    belong to case c (``len(flat_ranks) == n_targets.sum()``)."""
    n_targets = n_targets.long()
    if int(n_targets.sum()) != flat_ranks.shape[0]:
        raise ValueError("n_targets must sum to the number of ranks")
    case_index = torch.repeat_interleave(torch.arange(n_targets.shape[0], device=n_targets.device), n_targets)
    return _rank_metrics_flat(
        flat_ranks.long(), case_index.to(flat_ranks.device), n_targets.to(flat_ranks.device),
        normalise_ks(ks), _check_names(names, RANK_METRICS),
    )


# --------------------------------------------------------------------------- #
# Beyond accuracy: metrics of the top-K lists
# --------------------------------------------------------------------------- #


def _check_list_k(top: torch.Tensor, k: int, top_k: int | None) -> None:
    limit = top.shape[1] if top_k is None else top_k
    if k > limit:
        raise ValueError(f"K={k} exceeds the {limit} items kept per top-K list; evaluate with a larger top_k")


def coverage(top: torch.Tensor, k: int, n_items: int, *, top_k: int | None = None) -> float:
    """Coverage@K = |union of the cases' top-K lists| / n_items (0 entries ignored).

    ``top`` is LongTensor [C, Kmax] from :func:`top_items`; ``top_k`` is the
    Kmax the lists were made with (a list may be narrower when n_items < Kmax).
    """
    _check_list_k(top, k, top_k)
    seen = torch.zeros(n_items + 1, dtype=torch.bool, device=top.device)
    seen[top[:, :k].reshape(-1).long()] = True
    seen[0] = False
    return float(seen.sum()) / n_items if n_items else float("nan")


def normalised_popularity(item_popularity: np.ndarray | torch.Tensor) -> torch.Tensor:
    """float64 [n_items + 1]: pop(i) = count(i) / max count (0 for padding; all
    zeros when every count is 0)."""
    pop = torch.as_tensor(np.asarray(item_popularity), dtype=torch.float64).clone()
    pop[0] = 0.0
    top = float(pop.max()) if pop.numel() else 0.0
    return pop / top if top > 0 else pop


def popularity(
    top: torch.Tensor, k: int, item_popularity: np.ndarray | torch.Tensor, *, top_k: int | None = None
) -> torch.Tensor:
    """Per-case Popularity@K (float64 [C]): mean normalised training popularity
    of the items of the case's top-K list (0 entries ignored; an empty list
    scores 0)."""
    _check_list_k(top, k, top_k)
    pop = normalised_popularity(item_popularity).to(top.device)
    t = top[:, :k].long()
    real = t > 0
    total = (pop[t] * real).sum(1)
    return torch.where(real.any(1), total / real.sum(1).clamp(min=1), 0.0)


# --------------------------------------------------------------------------- #
# Summary
# --------------------------------------------------------------------------- #


def _list_metrics(
    top: torch.Tensor,
    ks: tuple[int, ...],
    names: tuple[str, ...],
    n_items: int | None,
    item_popularity,
    top_k: int | None,
    per_case_only: bool,
) -> dict[str, torch.Tensor | float]:
    out: dict[str, torch.Tensor | float] = {}
    for name in names:
        for k in ks:
            if name == "Coverage" and not per_case_only:
                if n_items is None:
                    raise ValueError("Coverage needs n_items")
                out[metric_key(name, k)] = coverage(top, k, n_items, top_k=top_k)
            elif name == "Popularity":
                if item_popularity is None:
                    raise ValueError("Popularity needs item_popularity")
                out[metric_key(name, k)] = popularity(top, k, item_popularity, top_k=top_k)
    return out


def _mean(x: torch.Tensor) -> float:
    return float(x.mean()) if x.numel() else float("nan")


def summarise(
    ranks: torch.Tensor,
    top: torch.Tensor | None = None,
    *,
    ks: int | Iterable[int] = DEFAULT_KS,
    n_items: int | None = None,
    item_popularity: np.ndarray | torch.Tensor | None = None,
    n_targets: torch.Tensor | None = None,
    names: Iterable[str] | None = None,
    protocol: str | None = None,
) -> dict[str, float]:
    """Mean of every per-case metric plus the aggregates, as a flat dict.

    Args:
        ranks: [C, T] or [C] target ranks (see :func:`case_metrics`).
        top: optional [C, Kmax] top-K lists (:func:`top_items`); needed for
            Coverage and Popularity.
        ks: the cut-offs.
        n_items: catalogue size (for Coverage).
        item_popularity: [n_items + 1] training counts (for Popularity).
        n_targets: see :func:`case_metrics`.
        names: metrics to report; default: those of ``protocol`` (all rank
            metrics when no protocol is given), plus Coverage and Popularity
            when ``top`` (and, for Popularity, ``item_popularity``) is given.
        protocol: ``"next"`` or ``"rest"``, for the default ``names``.

    Returns:
        ``{"HitRate@5": 0.41, ..., "Coverage@20": 0.33, ...}`` in registry
        order, K ascending; NaN means for an empty evaluation.
    """
    ks = normalise_ks(ks)
    if names is None:
        default = protocol_metrics(protocol) if protocol else tuple(METRICS)
        wanted = [n for n in default if METRICS[n].kind == "rank"]
        if top is not None:
            wanted += [n for n in default if n == "Coverage" and n_items is not None]
            wanted += [n for n in default if n == "Popularity" and item_popularity is not None]
        names = tuple(wanted)
    else:
        names = _check_names(names, tuple(METRICS))
    rank_names = tuple(n for n in names if METRICS[n].kind == "rank")
    list_names = tuple(n for n in names if METRICS[n].kind != "rank")
    out: dict[str, float] = {}
    if rank_names:
        for key, val in case_metrics(ranks, n_targets, ks, names=rank_names).items():
            out[key] = _mean(val)
    if list_names:
        if top is None:
            raise ValueError(f"{', '.join(list_names)} need the top-K lists")
        for key, val in _list_metrics(top, ks, list_names, n_items, item_popularity, None, False).items():
            out[key] = val if isinstance(val, float) else _mean(val)
    return order_keys(out)


def order_keys(values: Mapping[str, float]) -> dict[str, float]:
    """Re-order a metric dict: registry order, then K ascending."""
    names = list(METRICS)

    def sort_key(key: str):
        spec, k = parse_metric_key(key)
        return names.index(spec.name), k

    return {k: values[k] for k in sorted(values, key=sort_key)}


#: Rows of a CPU score batch handled together hold at most this many scores
#: (8 MiB of float32): a whole batch of 500 x 50,000 scores at once spends
#: more time faulting in fresh pages for its temporaries than computing.
ROW_BLOCK_CELLS = 1 << 21


def row_blocks(scores: torch.Tensor) -> list[slice]:
    """The row slices in which to process ``scores`` [B, N]: blocks of at
    most :data:`ROW_BLOCK_CELLS` scores on CPU, the whole batch on another
    device or when it is that small. Used where a per-row computation (the
    ranking, the popularity fallback) builds several [B, N] temporaries."""
    rows = max(1, ROW_BLOCK_CELLS // max(1, scores.shape[-1]))
    if scores.device.type != "cpu" or len(scores) <= rows:
        return [slice(0, len(scores))]
    return [slice(lo, lo + rows) for lo in range(0, len(scores), rows)]


__all__ = [
    "ROW_BLOCK_CELLS",
    "DEFAULT_KS",
    "DEFAULT_TOP_WIDTH",
    "LIST_METRICS",
    "METRICS",
    "PAD_RANK",
    "PROTOCOLS",
    "RANK_METRICS",
    "UNRANKED",
    "MetricSpec",
    "case_metrics",
    "case_metrics_ragged",
    "coverage",
    "metric_key",
    "metric_spec",
    "normalise_ks",
    "normalised_popularity",
    "order_keys",
    "parse_metric_key",
    "popularity",
    "protocol_metrics",
    "rank_and_top",
    "summarise",
    "target_ranks",
    "top_items",
    "unique_targets",
    "row_blocks",
]

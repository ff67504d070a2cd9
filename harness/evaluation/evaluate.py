"""The evaluator: run a fitted model over a split and keep every case's result.

:func:`evaluate` scores every prefix of a split (see
:class:`~harness.data.dataset.PrefixCases`) in batches, ranks the targets over the
full catalogue (:func:`harness.evaluation.metrics.target_ranks`: pessimistic ties, padding
never ranks) and keeps the RAW per-case data in an :class:`EvaluationResult`:
the target ranks and the top-Kmax list of every case. Metrics at any K (any
K for the rank metrics, K <= ``top_k`` for Coverage and Popularity) are
computed from it later, without running the model again.

Storage format
--------------
:meth:`EvaluationResult.to_table` / :meth:`~EvaluationResult.save` give one
row per evaluation case, in case order (session order, then prefix length):

==============  ===============  =============================================
column          type             meaning
==============  ===============  =============================================
session         int64            session id
prefix_length   int64            t: the prefix holds the session's first t items
n_targets       int64            T_c: 1 for ``next``; distinct remaining items for ``rest``
rank            int64            best (smallest) target rank; derived, for
                                 convenience (= the rank for ``next``)
ranks           list<int32>      the T_c target ranks (ragged, no padding)
top_items       list<int32>      the case's top-``top_k`` item ids, best first
                                 (0-padded at the end if fewer items could rank)
==============  ===============  =============================================

The schema metadata key ``sessionbench.evaluation`` holds a JSON object with
``format``, ``protocol``, ``split``, ``n_items``, ``ks``, ``top_k``,
``exclude_seen``, ``popularity_split``, ``item_popularity`` (the int counts,
index 0 = padding), ``timings`` and ``meta``. :meth:`~EvaluationResult.to_frame`
gives the same table as a pandas DataFrame (list columns hold NumPy arrays)
with that object in ``DataFrame.attrs["sessionbench.evaluation"]``.
Save/load and to_frame/from_frame round-trip exactly.

Rank sentinels (from :mod:`harness.evaluation.metrics`): :data:`~harness.evaluation.metrics.UNRANKED`
(``2**31 - 1``) marks a target that was removed from the ranking because it is
in the prefix (``exclude_seen=True``); it is a miss at every K. No padding is
stored (ragged lists), so :data:`~harness.evaluation.metrics.PAD_RANK` never appears.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from harness.data.dataset import SessionDataset
from harness.errors import ConfigError, DataError, quote
from harness.evaluation.metrics import (
    DEFAULT_KS,
    DEFAULT_TOP_WIDTH,
    METRICS,
    PROTOCOLS,
    UNRANKED,
    _list_metrics,
    case_metrics_ragged,
    metric_spec,
    normalise_ks,
    order_keys,
    protocol_metrics,
    rank_and_top,
    row_blocks,
    unique_targets,
)
from harness.models.plugin import SessionRecommender, calling_model, check_scores, model_label

FORMAT_VERSION = 1
METADATA_KEY = "sessionbench.evaluation"

#: The split whose item counts define Popularity@K, by evaluated split: a
#: model evaluated on ``valid`` was trained on ``train_tr``.
POPULARITY_SPLIT = {"test": "train", "valid": "train_tr", "train": "train", "train_tr": "train_tr"}

SCHEMA = pa.schema(
    [
        ("session", pa.int64()),
        ("prefix_length", pa.int64()),
        ("n_targets", pa.int64()),
        ("rank", pa.int64()),
        ("ranks", pa.list_(pa.int32())),
        ("top_items", pa.list_(pa.int32())),
    ]
)

#: The columns of case ids and counts, read as int64: a float column would be
#: truncated and a null one become NaN, so they must be integer and complete.
ID_COLUMNS = ("session", "prefix_length", "n_targets")
_LIST_COLUMNS = ("ranks", "top_items")
#: The metadata keys :meth:`EvaluationResult.from_table` reads without a default.
_METADATA_KEYS = ("protocol", "split", "n_items", "ks", "top_k", "item_popularity")


class EvaluationFormatError(DataError, ValueError):
    """A stored evaluation table that is not what :meth:`EvaluationResult.to_table`
    writes (a hand-edited or foreign ``ranks.parquet``). Also a ValueError,
    which is what :meth:`EvaluationResult.from_table` raised before."""


def schema_problem(schema: pa.Schema) -> str | None:
    """One line on why ``schema`` (with its metadata) is not that of an
    evaluation table, else None. Reads the schema only, so a run's
    ``ranks.parquet`` can be checked from its footer when the run is verified."""
    raw = (schema.metadata or {}).get(METADATA_KEY.encode())
    if raw is None:
        return f"no {METADATA_KEY!r} schema metadata; not an evaluation result"
    try:
        metadata = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return f"the {METADATA_KEY!r} schema metadata is not JSON"
    return _metadata_problem(metadata) or _columns_problem(schema)


def _metadata_problem(metadata: Any) -> str | None:
    if not isinstance(metadata, dict):
        return f"the {METADATA_KEY!r} metadata: expected a JSON object, got {type(metadata).__name__}"
    if metadata.get("format") != FORMAT_VERSION:
        return f"unsupported evaluation format {quote(metadata.get('format'), 60)}, expected {FORMAT_VERSION}"
    missing = [k for k in _METADATA_KEYS if k not in metadata]
    if missing:
        return f"the {METADATA_KEY!r} metadata lacks keys {missing}"
    for key in ("n_items", "top_k"):
        if not _is_int(metadata[key]) or metadata[key] < 0:
            return (f"the {METADATA_KEY!r} metadata: key {key!r}: expected a non-negative integer, "
                    f"got {quote(metadata[key], 60)}")
    for key in ("ks", "item_popularity"):
        if not isinstance(metadata[key], list) or not all(_is_int(v) for v in metadata[key]):
            return f"the {METADATA_KEY!r} metadata: key {key!r}: expected a list of integers"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _columns_problem(schema: pa.Schema) -> str | None:
    missing = [c for c in SCHEMA.names if c != "rank" and c not in schema.names]
    if missing:
        return f"lacks columns {missing}"
    for name in ID_COLUMNS:
        kind = schema.field(name).type
        if not pa.types.is_integer(kind):
            return f"column {name!r}: expected integers, got {kind}"
    for name in _LIST_COLUMNS:
        kind = schema.field(name).type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not pa.types.is_integer(kind.value_type):
            return f"column {name!r}: expected lists of integers, got {kind}"
    return None


def _nulls_problem(table: pa.Table) -> str | None:
    """Nulls would be read as NaN ids (every case in one session) or as lists of no targets."""
    for name in (*ID_COLUMNS, *_LIST_COLUMNS):
        column = table.column(name)
        nulls = column.null_count
        if name in _LIST_COLUMNS and column.num_chunks:
            nulls += column.combine_chunks().flatten().null_count
        if nulls:
            return f"column {name!r}: {nulls:,} null values, expected none"
    return None


@dataclass(eq=False)
class EvaluationResult:
    """Raw per-case results of one evaluation, plus what is needed to compute
    any metric from them.

    Attributes:
        protocol: ``"next"`` or ``"rest"``.
        split: the evaluated split.
        n_items: catalogue size (items 1..n_items).
        ks: the cut-offs asked for (default for :meth:`metrics`).
        top_k: the length of the stored top lists (max K for Coverage/Popularity).
        session_ids: int64 [C], the session of each case.
        prefix_lengths: int64 [C], prefix length t of each case.
        n_targets: int64 [C], number of (distinct) targets of each case.
        ranks: int64 [n_targets.sum()], the target ranks, case after case
            (ragged; case c owns ``ranks[offsets[c]:offsets[c+1]]``).
        top: int64 [C, min(top_k, n_items)], each case's top list, best first.
        item_popularity: int64 [n_items + 1], training counts used for Popularity.
        popularity_split: the split those counts come from (None if given directly).
        exclude_seen: whether items of the prefix were removed from the ranking.
        timings: ``score_seconds`` (time inside ``model.score``),
            ``rank_seconds`` (ranking and top lists), ``total_seconds``,
            ``prefixes_per_second`` (cases / score_seconds), ``n_batches``.
        meta: free-form (model name, dataset name, batch size).
    """

    protocol: str
    split: str
    n_items: int
    ks: tuple[int, ...]
    top_k: int
    session_ids: np.ndarray
    prefix_lengths: np.ndarray
    n_targets: np.ndarray
    ranks: np.ndarray
    top: np.ndarray
    item_popularity: np.ndarray
    popularity_split: str | None = None
    exclude_seen: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ views

    @property
    def n_cases(self) -> int:
        return len(self.session_ids)

    def __len__(self) -> int:
        return self.n_cases

    @property
    def offsets(self) -> np.ndarray:
        """int64 [C + 1]: case c's ranks are ``ranks[offsets[c]:offsets[c + 1]]``."""
        return np.concatenate([[0], np.cumsum(self.n_targets)]).astype(np.int64)

    @property
    def best_rank(self) -> np.ndarray:
        """int64 [C]: the smallest target rank of each case (UNRANKED if none ranks)."""
        out = np.full(self.n_cases, UNRANKED, dtype=np.int64)
        has = self.n_targets > 0
        if has.any():
            out[has] = np.minimum.reduceat(self.ranks, self.offsets[:-1][has])
        return out

    def ranks_padded(self) -> np.ndarray:
        """int64 [C, max T_c]: the ranks padded with 0 (PAD_RANK), the layout
        :func:`harness.evaluation.metrics.case_metrics` takes."""
        width = int(self.n_targets.max()) if self.n_cases else 0
        out = np.zeros((self.n_cases, max(width, 1)), dtype=np.int64)
        col = np.arange(len(self.ranks)) - np.repeat(self.offsets[:-1], self.n_targets)
        out[np.repeat(np.arange(self.n_cases), self.n_targets), col] = self.ranks
        return out

    # --------------------------------------------------------------- metrics

    def _names(self, names: Iterable[str] | None) -> tuple[tuple[str, ...], bool]:
        if names is None:
            return protocol_metrics(self.protocol), False
        return tuple(n for n in METRICS if n in {metric_spec(x).name for x in names}), True

    def _compute(self, ks, names, *, per_case_only: bool) -> dict[str, Any]:
        ks = normalise_ks(self.ks if ks is None else ks)
        names, explicit = self._names(names)
        rank_names = tuple(n for n in names if METRICS[n].kind == "rank")
        list_names = tuple(n for n in names if METRICS[n].kind != "rank")
        out: dict[str, Any] = {}
        if rank_names:
            out.update(
                case_metrics_ragged(
                    torch.from_numpy(self.ranks), torch.from_numpy(self.n_targets), ks, names=rank_names
                )
            )
        if list_names:
            list_ks = ks if explicit else tuple(k for k in ks if k <= self.top_k)
            if list_ks:
                top = torch.from_numpy(self.top)
                out.update(
                    _list_metrics(
                        top, list_ks, list_names, self.n_items, self.item_popularity, self.top_k, per_case_only
                    )
                )
        return out

    def metrics(self, ks: Iterable[int] | int | None = None, names: Iterable[str] | None = None) -> dict[str, float]:
        """Mean of each per-case metric plus the aggregates (Coverage), flat:
        ``{"HitRate@5": ..., "Coverage@20": ...}``.

        ``ks`` defaults to the evaluated ones; ``names`` to the protocol's
        metrics (:func:`harness.evaluation.metrics.protocol_metrics`). With default names,
        Coverage/Popularity are left out at K > ``top_k``; asked for by name
        there, they raise ValueError. Means over zero cases are NaN.
        """
        out = {}
        for key, val in self._compute(ks, names, per_case_only=False).items():
            if isinstance(val, torch.Tensor):
                val = float(val.mean()) if val.numel() else float("nan")
            out[key] = float(val)
        return order_keys(out)

    def per_case(self, ks: Iterable[int] | int | None = None, names: Iterable[str] | None = None) -> pd.DataFrame:
        """One row per case (``session``, ``prefix_length``, ``n_targets``),
        one float64 column per per-case metric and K (aggregates such as
        Coverage have no per-case value and are left out)."""
        values = self._compute(ks, names, per_case_only=True)
        frame = pd.DataFrame(
            {"session": self.session_ids, "prefix_length": self.prefix_lengths, "n_targets": self.n_targets}
        )
        for key in order_keys({k: 0.0 for k in values}):
            frame[key] = values[key].numpy()
        return frame

    # --------------------------------------------------------------- storage

    def _metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "protocol": self.protocol,
            "split": self.split,
            "n_items": int(self.n_items),
            "ks": [int(k) for k in self.ks],
            "top_k": int(self.top_k),
            "exclude_seen": bool(self.exclude_seen),
            "popularity_split": self.popularity_split,
            "item_popularity": [int(x) for x in self.item_popularity],
            "timings": {k: float(v) for k, v in self.timings.items()},
            "meta": self.meta,
        }

    def to_table(self) -> pa.Table:
        """The per-case table as Arrow, metadata in the schema (see module doc)."""
        offsets = pa.array(self.offsets.astype(np.int32))
        width = self.top.shape[1]
        top_offsets = pa.array((np.arange(self.n_cases + 1) * width).astype(np.int32))
        table = pa.table(
            {
                "session": pa.array(self.session_ids.astype(np.int64)),
                "prefix_length": pa.array(self.prefix_lengths.astype(np.int64)),
                "n_targets": pa.array(self.n_targets.astype(np.int64)),
                "rank": pa.array(self.best_rank),
                "ranks": pa.ListArray.from_arrays(offsets, pa.array(self.ranks.astype(np.int32))),
                "top_items": pa.ListArray.from_arrays(top_offsets, pa.array(self.top.reshape(-1).astype(np.int32))),
            },
            schema=SCHEMA,
        )
        return table.replace_schema_metadata({METADATA_KEY: json.dumps(self._metadata())})

    @classmethod
    def from_table(cls, table: pa.Table, metadata: dict[str, Any] | None = None) -> EvaluationResult:
        """Inverse of :meth:`to_table` (``metadata`` overrides the schema's).
        Raises :class:`EvaluationFormatError` for a table :meth:`to_table`
        would not write: metadata or columns missing, id columns that are not
        integers or hold nulls, ragged lists that do not match ``n_targets``."""
        if metadata is None:
            problem = schema_problem(table.schema)
            metadata = None if problem else json.loads(table.schema.metadata[METADATA_KEY.encode()])
        else:
            problem = _metadata_problem(metadata) or _columns_problem(table.schema)
        problem = problem or _nulls_problem(table)
        if problem:
            raise EvaluationFormatError(f"evaluation table: {problem}")

        def col(name: str) -> np.ndarray:
            return table.column(name).to_numpy().astype(np.int64)

        def flat(name: str) -> tuple[np.ndarray, np.ndarray]:
            arr = table.column(name).combine_chunks()
            if isinstance(arr, pa.ChunkedArray):  # empty table
                arr = pa.array([], type=pa.list_(pa.int32()))
            lengths = arr.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            return arr.flatten().to_numpy(zero_copy_only=False).astype(np.int64), lengths

        ranks, lengths = flat("ranks")
        n_targets = col("n_targets")
        if not np.array_equal(lengths, n_targets):
            raise EvaluationFormatError("evaluation table: column 'ranks' does not hold n_targets ranks per case")
        top_flat, top_lengths = flat("top_items")
        width = int(top_lengths[0]) if len(top_lengths) else min(metadata["top_k"], metadata["n_items"])
        if np.any(top_lengths != width):
            raise EvaluationFormatError("evaluation table: column 'top_items' must hold lists of one length")
        return cls(
            protocol=metadata["protocol"],
            split=metadata["split"],
            n_items=int(metadata["n_items"]),
            ks=tuple(int(k) for k in metadata["ks"]),
            top_k=int(metadata["top_k"]),
            session_ids=col("session"),
            prefix_lengths=col("prefix_length"),
            n_targets=n_targets,
            ranks=ranks,
            top=top_flat.reshape(len(top_lengths), width),
            item_popularity=np.asarray(metadata["item_popularity"], dtype=np.int64),
            popularity_split=metadata.get("popularity_split"),
            exclude_seen=bool(metadata.get("exclude_seen", False)),
            timings={k: float(v) for k, v in metadata.get("timings", {}).items()},
            meta=dict(metadata.get("meta", {})),
        )

    def to_frame(self) -> pd.DataFrame:
        """The per-case table as pandas (list columns hold int32 NumPy arrays);
        metadata in ``attrs[METADATA_KEY]``."""
        table = self.to_table()
        frame = table.replace_schema_metadata(None).to_pandas()
        frame.attrs[METADATA_KEY] = self._metadata()
        return frame

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, metadata: dict[str, Any] | None = None) -> EvaluationResult:
        """Inverse of :meth:`to_frame` (metadata from ``frame.attrs`` unless given)."""
        if metadata is None:
            metadata = frame.attrs.get(METADATA_KEY)
            if metadata is None:
                raise ValueError(f"frame has no attrs[{METADATA_KEY!r}]; pass metadata=")
        columns = [c for c in SCHEMA.names if c in frame.columns]
        schema = pa.schema([SCHEMA.field(c) for c in columns])
        table = pa.Table.from_pandas(frame[columns], schema=schema, preserve_index=False)
        return cls.from_table(table, metadata)

    def save(self, path: str | Path) -> Path:
        """Write the Parquet file (see module doc); returns the path."""
        path = Path(path)
        pq.write_table(self.to_table(), path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> EvaluationResult:
        """Read a file written by :meth:`save`; :class:`EvaluationFormatError`
        naming ``path`` for a file that is not one."""
        try:
            return cls.from_table(pq.read_table(path))
        except EvaluationFormatError as err:
            raise EvaluationFormatError(err.reason, path=path) from None
        except (OSError, pa.ArrowException) as err:  # ArrowInvalid: not Parquet, truncated
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise EvaluationFormatError(f"not a readable Parquet file ({quote(first, 120)})", path=path) from None

    def equals(self, other: EvaluationResult) -> bool:
        """Exact equality of every field (arrays element-wise)."""
        if not isinstance(other, EvaluationResult):
            return False
        arrays = ("session_ids", "prefix_lengths", "n_targets", "ranks", "top", "item_popularity")
        scalars = ("protocol", "split", "n_items", "ks", "top_k", "popularity_split", "exclude_seen", "meta")
        return (
            all(np.array_equal(getattr(self, a), getattr(other, a)) for a in arrays)
            and all(getattr(self, a) == getattr(other, a) for a in scalars)
            and json.dumps(self.timings, sort_keys=True) == json.dumps(other.timings, sort_keys=True)
        )


def _model_name(model: Any) -> str:
    return str(getattr(model, "name", None) or type(model).__name__)


def _checks_its_scores(model: Any) -> bool:
    """True when ``model.score`` is the base class's, which already copies
    the batch and runs :func:`~harness.models.plugin.check_scores`."""
    return isinstance(model, SessionRecommender) and type(model).score is SessionRecommender.score


def _rank_in_chunks(
    scores: torch.Tensor, targets: torch.Tensor, width: int, exclude: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`harness.evaluation.metrics.rank_and_top` of a batch, a block of rows at a
    time (:func:`harness.evaluation.metrics.row_blocks`; ranks and top lists are per row,
    so the result is the same)."""
    blocks = row_blocks(scores)
    if len(blocks) == 1:
        return rank_and_top(scores, targets, width, exclude=exclude)
    parts = [rank_and_top(scores[b], targets[b], width, exclude=None if exclude is None else exclude[b])
             for b in blocks]  # fmt: skip
    return torch.cat([r for r, _ in parts]), torch.cat([t for _, t in parts])


def check_ks(ks: Iterable[int], data: SessionDataset, where: str) -> None:
    """Refuse a cut-off K above the dataset's number of items.

    Every list is a full ranking of ``n_items`` items, so a K beyond it
    gives HitRate@K = 1 for every model: a number that looks like a result
    but measures nothing. ``where`` names the option or key in the error.
    """
    check_k_limit(ks, data.n_items, data.name, where)


def check_k_limit(ks: Iterable[int], n_items: int, dataset: str, where: str) -> None:
    """:func:`check_ks` for a dataset known by its name and number of items
    (a report's stored runs, for instance)."""
    too_large = [k for k in ks if k > n_items]
    if too_large:
        raise ConfigError(f"{where}: K={too_large[0]} exceeds the {n_items:,} items of dataset {dataset!r} "
                          f"(every model would score HitRate@{too_large[0]} = 1); expected K <= {n_items:,}")


def stored_top_width(ks: Iterable[int] | int) -> int:
    """The length of the top lists a suite's runs store per case:
    ``max(DEFAULT_TOP_WIDTH, max(ks))``.

    It is part of a run's identity instead of ``ks`` itself: the target
    ranks are full ranks (rank metrics at any K) and the top lists serve
    Coverage@K and Popularity@K at every K up to this width, so any ``ks``
    with max(ks) <= :data:`~harness.evaluation.metrics.DEFAULT_TOP_WIDTH` gives the same
    runs, and only a wider K asks for new (wider) ones.
    """
    return max(DEFAULT_TOP_WIDTH, *normalise_ks(ks))


def evaluate(
    model: Any,
    dataset: SessionDataset,
    *,
    split: str = "test",
    protocol: str = "next",
    ks: Iterable[int] | int = DEFAULT_KS,
    batch_size: int = 500,
    exclude_seen: bool = False,
    progress: bool = False,
    top_k: int | None = None,
    popularity_split: str | None = None,
    retrieval: Any = None,
) -> EvaluationResult:
    """Score every prefix of ``split`` with ``model`` and keep per-case results.

    Args:
        model: any object with ``score(batch: PrefixBatch) -> Tensor[B, n_items + 1]``
            (higher is better; column 0 ignored). The model only ever receives
            prefixes: nothing at or after a case's target. It receives a copy
            of each batch; the evaluator ranks against its own (a model that
            writes into its batch cannot change ``exclude_seen``).
        dataset: the prepared dataset.
        split: the split to evaluate (``test``; ``valid`` for model selection).
        protocol: ``"next"`` (target: the next item) or ``"rest"`` (targets:
            the distinct remaining items of the session).
        ks: cut-offs; the default for :meth:`EvaluationResult.metrics`.
        batch_size: prefixes per ``score`` call. Each case is ranked on its
            own row, so it changes no rank by itself; a model whose scores
            differ in their last bits between batch sizes (float32 matrix
            products) can swap items that close (docs/metrics.md).
        exclude_seen: remove the items of the prefix from the ranking (a
            target in its own prefix then gets rank UNRANKED: a miss).
        progress: show a tqdm bar (only when stderr is a terminal).
        top_k: length of the top lists kept per case (default max(ks)).
        popularity_split: split whose counts define Popularity@K; default
            the training split of ``split`` (test -> train, valid -> train_tr).
        retrieval: a :class:`harness.evaluation.retrieval.Retrieval`: rank only the
            top-``top_k`` items its index retrieves (a target not retrieved
            is a miss); its summary (ANN recall, build time, index size,
            search latency) goes to ``meta["retrieval"]``.

    Raises:
        ConfigError: bad protocol, ks, batch size or top_k.
        ContractError: the model's scores are not a finite float tensor
            [B, n_items + 1] (:func:`harness.models.plugin.check_scores`).
        ModelFailure: the model's ``score`` raised (type and message named;
            the original is the ``__cause__``).
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    try:
        ks = normalise_ks(ks)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"ks: {exc}") from None
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    top_k = max(ks) if top_k is None else int(top_k)
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    if retrieval is not None and max(ks) > top_k:  # an item past the retrieved top_k has no rank to count
        raise ConfigError(f"ks: K = {max(ks)} is beyond the retrieval depth top_k = {top_k}; expected K <= top_k "
                          "(a search returns top_k items, so the metric at a larger K would count misses)")
    if popularity_split is None:
        popularity_split = POPULARITY_SPLIT[split] if split in POPULARITY_SPLIT else "train"
    n_items = int(dataset.n_items)
    label = model_label(model)
    check = not _checks_its_scores(model)
    item_popularity = np.asarray(dataset.item_popularity(popularity_split), dtype=np.int64)

    cases = dataset.prefixes(split)
    n_cases = len(cases)
    width = min(top_k, n_items)
    rank_parts: list[np.ndarray] = []
    count_parts: list[np.ndarray] = []
    top_parts: list[np.ndarray] = []
    score_seconds = rank_seconds = 0.0
    n_batches = 0

    from tqdm import tqdm

    bar = tqdm(
        total=n_cases,
        desc=f"{_model_name(model)} {split}/{protocol}",
        unit="prefix",
        disable=(not progress) or not sys.stderr.isatty(),
        leave=False,
    )
    if retrieval is not None:
        retrieval.start(model, n_items, top_k)
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            for sl in cases.slices(int(batch_size)):
                batch = cases.batch(sl)
                given = batch.clone() if check else batch  # the base class's score copies it itself
                t0 = time.perf_counter()
                with calling_model(model, "score"):
                    scores = model.score(given)
                    if isinstance(scores, torch.Tensor) and scores.is_cuda:
                        torch.cuda.synchronize(scores.device)
                t1 = time.perf_counter()
                if check:
                    check_scores(scores, len(batch), n_items, label)
                if protocol == "next":
                    targets = cases.next_items(sl)[:, None]
                else:
                    targets = unique_targets(cases.remaining_items(sl))
                exclude = batch.items if exclude_seen else None
                if retrieval is None:
                    ranks, top = _rank_in_chunks(scores, targets, width, exclude)
                else:
                    ranks, top = retrieval.rank_batch(batch, scores, targets, width, exclude)
                ranks, top = ranks.cpu(), top.cpu()
                real = ranks != 0
                rank_parts.append(ranks[real].numpy().astype(np.int64))
                count_parts.append(real.sum(1).numpy().astype(np.int64))
                top_parts.append(top.numpy().astype(np.int64))
                t2 = time.perf_counter()
                score_seconds += t1 - t0
                rank_seconds += t2 - t1
                n_batches += 1
                bar.update(len(batch))
    finally:
        bar.close()
    total = time.perf_counter() - start
    meta = {"model": _model_name(model), "dataset": getattr(dataset, "name", None), "batch_size": int(batch_size)}
    if retrieval is not None:
        meta["retrieval"] = retrieval.finish(ks)

    def cat(parts: list[np.ndarray], empty_shape: tuple[int, ...]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(empty_shape, dtype=np.int64)

    return EvaluationResult(
        protocol=protocol,
        split=split,
        n_items=n_items,
        ks=ks,
        top_k=top_k,
        session_ids=np.asarray(cases.session_ids, dtype=np.int64),
        prefix_lengths=np.asarray(cases.prefix_length, dtype=np.int64),
        n_targets=cat(count_parts, (0,)),
        ranks=cat(rank_parts, (0,)),
        top=cat(top_parts, (0, width)),
        item_popularity=item_popularity,
        popularity_split=popularity_split,
        exclude_seen=bool(exclude_seen),
        timings={
            "score_seconds": score_seconds,
            "rank_seconds": rank_seconds,
            "total_seconds": total,
            "prefixes_per_second": n_cases / score_seconds if score_seconds > 0 else float("nan"),
            "n_batches": float(n_batches),
        },
        meta=meta,
    )


__all__ = [
    "EvaluationFormatError", "EvaluationResult", "FORMAT_VERSION", "METADATA_KEY", "POPULARITY_SPLIT", "SCHEMA",
    "check_ks", "evaluate", "schema_problem", "stored_top_width",
]

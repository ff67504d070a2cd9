"""Prepared session data: splits, evaluation prefixes and batches.

A :class:`SessionDataset` is what every model trains on and every evaluation
reads. Its splits follow one timeline::

      first event                                         last event
      |------------------ train ------------------|-- gap? --|-- test --|
      |------------ train_tr ------------|- valid -|
                                          ^ valid split        ^ test split

``train`` is everything before the test split; ``valid`` is the last slice of
``train`` by time (or the dataset's own validation file) and ``train_tr`` is
``train`` minus ``valid``. Model selection (early stopping, tuning) trains on
``train_tr`` and scores on ``valid``; the test split is only read by the
evaluator. Item ids run 1..n_items and come from ``train`` only; id 0 is
padding.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import torch

from harness.errors import ContractError

SPLIT_NAMES = ("train", "train_tr", "valid", "test")
EVENT_COLUMNS = ("session", "item", "time")


class SessionSplit:
    """The events of one split, grouped into sessions.

    ``events`` is a DataFrame with int64 ``session``, int64 ``item``
    (1..n_items) and float64 ``time`` (epoch seconds), ordered by session start
    then time, each session's rows contiguous.
    """

    def __init__(self, events: pd.DataFrame) -> None:
        missing = [c for c in EVENT_COLUMNS if c not in events.columns]
        if missing:
            raise ValueError(f"split events lack columns {missing}")
        self.events = events.loc[:, list(EVENT_COLUMNS)].reset_index(drop=True)

    def shallow_copy(self) -> SessionSplit:
        """A split with a DataFrame object of its own over the same data, in
        O(1): with pandas' copy-on-write (pandas >= 3) a write into its
        ``events`` copies first, so the original split never changes; with
        older pandas only replacing a column is kept from the original."""
        copy = object.__new__(SessionSplit)
        copy.events = self.events.copy(deep=False)
        return copy

    @cached_property
    def item_array(self) -> np.ndarray:
        """int64 [n_events]: item ids in session order."""
        return self.events["item"].to_numpy(dtype=np.int64)

    @cached_property
    def time_array(self) -> np.ndarray:
        """float64 [n_events]: event times, epoch seconds."""
        return self.events["time"].to_numpy(dtype=np.float64)

    @cached_property
    def offsets(self) -> np.ndarray:
        """int64 [n_sessions + 1]: session s is ``item_array[offsets[s]:offsets[s+1]]``."""
        sess = self.events["session"].to_numpy()
        if len(sess) == 0:
            return np.zeros(1, dtype=np.int64)
        starts = np.flatnonzero(sess[1:] != sess[:-1]) + 1
        return np.concatenate([[0], starts, [len(sess)]]).astype(np.int64)

    @cached_property
    def session_ids(self) -> np.ndarray:
        """int64 [n_sessions]: the session id of each session, in order."""
        return self.events["session"].to_numpy(dtype=np.int64)[self.offsets[:-1]]

    @property
    def lengths(self) -> np.ndarray:
        """int64 [n_sessions]: events per session."""
        return np.diff(self.offsets)

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_events(self) -> int:
        return len(self.events)

    @property
    def n_prefixes(self) -> int:
        """Evaluation cases: a session of length n gives n - 1 prefixes."""
        return int(np.maximum(self.lengths - 1, 0).sum())

    def sessions(self) -> Iterator[np.ndarray]:
        """Yield each session as an int64 array of item ids."""
        items, off = self.item_array, self.offsets
        for s in range(self.n_sessions):
            yield items[off[s] : off[s + 1]]

    def head(self, n_sessions: int) -> SessionSplit:
        """A split of the first ``n_sessions`` sessions (all of them if there
        are fewer), in this split's order: a sample that keeps every
        session whole, for timing on a part of a large split."""
        n = max(0, min(int(n_sessions), self.n_sessions))
        return SessionSplit(self.events.iloc[: int(self.offsets[n])])

    def item_counts(self, n_items: int) -> np.ndarray:
        """int64 [n_items + 1]: occurrences of each item id (index 0 = padding, always 0)."""
        return np.bincount(self.item_array, minlength=n_items + 1)[: n_items + 1]

    def stats(self) -> dict[str, Any]:
        """Sessions, events, items, prefixes, mean/median length and date range."""
        lengths = self.lengths
        times = self.time_array
        fmt = lambda t: pd.Timestamp(t, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M")  # noqa: E731
        return {
            "sessions": self.n_sessions,
            "events": self.n_events,
            "items": int(self.events["item"].nunique()),
            "prefixes": self.n_prefixes,
            "mean_length": float(lengths.mean()) if len(lengths) else 0.0,
            "median_length": float(np.median(lengths)) if len(lengths) else 0.0,
            "first_event": fmt(times.min()) if len(times) else None,
            "last_event": fmt(times.max()) if len(times) else None,
        }

    def prefixes(self) -> PrefixCases:
        """The evaluation cases of this split (see :class:`PrefixCases`)."""
        return PrefixCases(self)


@dataclass(frozen=True)
class PrefixBatch:
    """A batch of session prefixes, the only thing a model sees when scoring.

    Attributes:
        items: LongTensor [B, L], item ids left-aligned, padded with 0.
        lengths: LongTensor [B], number of real items per row (>= 1).
        session_ids: LongTensor [B] or None, the session each prefix comes from.
        times: DoubleTensor [B, L] or None, event times (epoch s), NaN padded.
    """

    items: torch.Tensor
    lengths: torch.Tensor
    session_ids: torch.Tensor | None = None
    times: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.items.shape[0])

    @property
    def last_items(self) -> torch.Tensor:
        """LongTensor [B]: the most recent item of each prefix."""
        return self.items.gather(1, (self.lengths - 1).unsqueeze(1)).squeeze(1)

    def clone(self) -> PrefixBatch:
        """A copy with tensors of its own: what a model is handed, so that
        writing into it cannot change what the evaluator ranks against."""
        copy = lambda t: None if t is None else t.clone()  # noqa: E731
        return PrefixBatch(copy(self.items), copy(self.lengths), copy(self.session_ids), copy(self.times))

    def to(self, device: torch.device | str) -> PrefixBatch:
        """A copy on ``device``."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return PrefixBatch(move(self.items), move(self.lengths), move(self.session_ids), move(self.times))

    @classmethod
    def from_sequences(cls, sequences: list[list[int]] | list[np.ndarray]) -> PrefixBatch:
        """Build a batch from a list of item-id sequences (for tests and examples)."""
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        if len(lengths) == 0 or lengths.min() < 1:
            raise ValueError("every prefix needs at least one item")
        items = np.zeros((len(sequences), lengths.max()), dtype=np.int64)
        for row, seq in enumerate(sequences):
            items[row, : len(seq)] = seq
        return cls(torch.from_numpy(items), torch.from_numpy(lengths))


class PrefixCases:
    """Every evaluation case of a split: for a session ``[i1..in]`` the
    prefixes ``[i1..it]`` for t = 1..n-1, with the next item ``i(t+1)`` and the
    remaining items ``i(t+1..n)``. Cases are ordered by session, then t.

    Only :meth:`batch` reaches a model, and it copies nothing past position t,
    so a prefix never sees its own target or anything after it.
    """

    def __init__(self, split: SessionSplit) -> None:
        self.split = split
        lengths = split.lengths
        n_cases = np.maximum(lengths - 1, 0)
        #: int64 [C]: index of the session each case comes from
        self.session_index = np.repeat(np.arange(len(lengths)), n_cases)
        first_case = np.cumsum(n_cases) - n_cases
        #: int64 [C]: prefix length t of each case (1..n-1)
        self.prefix_length = np.arange(len(self.session_index)) - np.repeat(first_case, n_cases) + 1
        self._starts = split.offsets[:-1][self.session_index]
        self._ends = split.offsets[1:][self.session_index]

    def __len__(self) -> int:
        return len(self.session_index)

    @property
    def session_ids(self) -> np.ndarray:
        """int64 [C]: the session id of each case."""
        return self.split.session_ids[self.session_index]

    def slices(self, batch_size: int) -> Iterator[slice]:
        """Consecutive case slices of at most ``batch_size``."""
        for start in range(0, len(self), batch_size):
            yield slice(start, min(start + batch_size, len(self)))

    def batch(self, cases: slice | np.ndarray, *, with_times: bool = True) -> PrefixBatch:
        """The :class:`PrefixBatch` of the selected cases."""
        starts, lengths = self._starts[cases], self.prefix_length[cases]
        width = int(lengths.max()) if len(lengths) else 1
        pos = np.arange(width)
        mask = pos[None, :] < lengths[:, None]
        idx = np.where(mask, starts[:, None] + pos[None, :], 0)
        items = np.where(mask, self.split.item_array[idx], 0)
        times = None
        if with_times:
            times = torch.from_numpy(np.where(mask, self.split.time_array[idx], np.nan))
        return PrefixBatch(
            items=torch.from_numpy(items),
            lengths=torch.from_numpy(lengths.copy()),
            session_ids=torch.from_numpy(self.session_ids[cases].copy()),
            times=times,
        )

    def next_items(self, cases: slice | np.ndarray) -> torch.Tensor:
        """LongTensor [B]: the target of the ``next`` protocol."""
        return torch.from_numpy(self.split.item_array[self._starts[cases] + self.prefix_length[cases]])

    def remaining_items(self, cases: slice | np.ndarray) -> torch.Tensor:
        """LongTensor [B, R]: the items after each prefix (``rest`` protocol),
        in session order, padded with 0. Repeats are kept; the evaluator
        decides how to count them."""
        begin = self._starts[cases] + self.prefix_length[cases]
        count = self._ends[cases] - begin
        width = int(count.max()) if len(count) else 1
        pos = np.arange(width)
        mask = pos[None, :] < count[:, None]
        idx = np.where(mask, begin[:, None] + pos[None, :], 0)
        return torch.from_numpy(np.where(mask, self.split.item_array[idx], 0))


class _HiddenSplit:
    """Stands in for the test split while a model is fitted; it holds no data
    and no reference to any."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # protocol look-ups (copy, pickle, hasattr) see a plain empty object
            raise AttributeError(name)
        raise ContractError(
            "a model read the test split during fit; models may train and select "
            "only on 'train', 'train_tr' and 'valid'"
        )


#: meta keys that hold file locations (raw files, spec file, prepared-data
#: cache); the view handed to ``fit`` leaves them out
PATH_KEYS = frozenset({"path", "source", "sources", "spec_file", "raw_files", "cache"})


def meta_without_paths(value: Any) -> Any:
    """A deep copy of ``value`` (JSON-like meta) without the entries of
    :data:`PATH_KEYS` and without any string that holds a path separator."""
    if isinstance(value, Mapping):
        return {k: meta_without_paths(v) for k, v in value.items() if k not in PATH_KEYS and not _is_path(v)}
    if isinstance(value, (list, tuple)):
        return [meta_without_paths(v) for v in value if not _is_path(v)]
    return value


def _is_path(value: Any) -> bool:
    return isinstance(value, str) and ("/" in value or "\\" in value)


@dataclass(frozen=True, eq=False)
class SessionDataset:
    """A prepared dataset: four splits, the item vocabulary and provenance.

    Attributes:
        name: preset or spec name.
        n_items: number of items; ids are 1..n_items, 0 is padding.
        item_map: raw item id (as a string) -> item id, built from ``train`` only.
        train, train_tr, valid, test: the splits (see the module timeline).
        meta: provenance (spec, raw file hashes, split dates).
    """

    name: str
    n_items: int
    item_map: Mapping[str, int]
    train: SessionSplit
    train_tr: SessionSplit
    valid: SessionSplit
    test: SessionSplit
    meta: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> SessionSplit:
        """The split called ``name`` (one of train, train_tr, valid, test)."""
        if name not in SPLIT_NAMES:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLIT_NAMES}")
        return getattr(self, name)

    def prefixes(self, split: str = "test") -> PrefixCases:
        """The evaluation cases of ``split``."""
        return self.split(split).prefixes()

    def item_popularity(self, split: str = "train") -> np.ndarray:
        """int64 [n_items + 1]: click counts of each item in ``split``."""
        return self.split(split).item_counts(self.n_items)

    def stats(self) -> dict[str, Any]:
        """Per-split statistics plus the item count (no test split in the
        view handed to ``fit``)."""
        names = [s for s in SPLIT_NAMES if not isinstance(getattr(self, s), _HiddenSplit)]
        return {"dataset": self.name, "n_items": self.n_items, **{s: self.split(s).stats() for s in names}}

    def validation_view(self) -> SessionDataset:
        """The dataset as hyper-parameter tuning sees it: ``train_tr`` plays
        ``train`` and ``valid`` plays ``test``; there is no validation split
        inside it (models trained by epoch tune with ``patience=0``)::

            train_tr ---------------|  valid  |     (test is not part of it)
            view:  train -----------|  test   |
        """
        empty = SessionSplit(self.valid.events.iloc[0:0])
        meta = {**self.meta, "view": "validation (train = train_tr, test = valid)"}
        return SessionDataset(self.name, self.n_items, self.item_map, self.train_tr, self.train_tr, empty, self.valid, meta)

    def without_test(self) -> SessionDataset:
        """What ``fit`` hands to models: ``train``, ``train_tr`` and ``valid``
        as shallow copies (:meth:`SessionSplit.shallow_copy`), a ``test``
        placeholder that holds no data and raises :class:`ContractError` on
        any access, and a copy of ``meta`` without file locations
        (:func:`meta_without_paths`), so that nothing reachable from the view
        leads to the test events, in memory or on disk."""
        return SessionDataset(
            self.name, self.n_items, dict(self.item_map), self.train.shallow_copy(), self.train_tr.shallow_copy(),
            self.valid.shallow_copy(), _HiddenSplit(), meta_without_paths(self.meta),
        )  # fmt: skip

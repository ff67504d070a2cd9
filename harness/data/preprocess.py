"""From raw events to a :class:`~harness.data.dataset.SessionDataset`.

Three methods, chosen by a dataset spec's ``preprocess.method``:

``srgnn``
    The SR-GNN reference preprocessing (``preprocess.py`` of the SR-GNN
    code), reproduced exactly; see :func:`prepare_srgnn`.
``standard``
    The session-rec style pipeline for generic and synthetic logs; see
    :func:`prepare_standard`.
``presplit``
    Files that come already split (the session-rec YOOCHOOSE 100k sample);
    see :func:`prepare_presplit`.

All three work on integer codes and NumPy index arrays: a session is never
visited by a Python loop. Every output split has int64 ``session``, int64
``item`` (1..n_items, from ``train`` only) and float64 ``time``, ordered by
session start (for ``srgnn``: session date) then click order, each session's
rows contiguous. ``meta`` records the method, its settings, the split times
(ISO-8601, UTC) and how many sessions, items and events each rule dropped.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from harness.data.dataset import SessionDataset, SessionSplit
from harness.errors import DataError

__all__ = [
    "PREPROCESS_VERSION",
    "METHODS",
    "SrgnnConfig",
    "StandardConfig",
    "PresplitConfig",
    "prepare",
    "prepare_srgnn",
    "prepare_standard",
    "prepare_presplit",
    "require_disjoint_sessions",
]

#: Bumped whenever a rule changes the output, so that cached data re-prepare.
PREPROCESS_VERSION = 2

DAY = 86400.0


# --------------------------------------------------------------------------- #
# settings
# --------------------------------------------------------------------------- #


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class SrgnnConfig:
    """Settings of the SR-GNN reference preprocessing.

    Attributes:
        test_days: the test split holds the sessions dated after the latest
            session date minus this many days (7 for DIGINETICA, 1 for
            YOOCHOOSE in the reference).
        valid_days: the same rule applied to the training sessions' dates
            gives the validation split.
        train_fraction: keep only the most recent fraction of the training
            prefixes (1/64 and 1/4 for YOOCHOOSE); ``None`` keeps all.
    """

    test_days: float = 7.0
    valid_days: float = 7.0
    train_fraction: Fraction | None = None

    def __post_init__(self) -> None:
        _check(self.test_days > 0, f"test_days: expected a positive number of days, got {self.test_days}")
        _check(self.valid_days > 0, f"valid_days: expected a positive number of days, got {self.valid_days}")
        if self.train_fraction is not None:
            _check(
                0 < self.train_fraction <= 1,
                f"train_fraction: expected a fraction in (0, 1] such as 1/64, got {self.train_fraction}",
            )


@dataclass(frozen=True)
class StandardConfig:
    """Settings of the session-rec style pipeline.

    Attributes:
        test_days: sessions whose last event lies in the last ``test_days``
            of the log form the test split.
        valid_days: the same rule on ``train`` gives the validation split.
        min_session_length: shorter sessions are dropped (before and after
            the item filter).
        min_item_support: items with fewer events are dropped.
        filter_iterations: at most how many times the three filters
            (sessions, items, sessions) run. 1, as in session-rec, can leave
            an item under the support threshold once short sessions are gone;
            more iterations move towards the fixed point where both rules
            hold, and the loop stops early at the first iteration that drops
            nothing (so a large value means "until the fixed point").
    """

    test_days: float = 1.0
    valid_days: float = 1.0
    min_session_length: int = 2
    min_item_support: int = 5
    filter_iterations: int = 1

    def __post_init__(self) -> None:
        _check(self.test_days > 0, f"test_days: expected a positive number of days, got {self.test_days}")
        _check(self.valid_days > 0, f"valid_days: expected a positive number of days, got {self.valid_days}")
        _check(self.min_session_length >= 2, f"min_session_length: expected >= 2, got {self.min_session_length}")
        _check(self.min_item_support >= 1, f"min_item_support: expected >= 1, got {self.min_item_support}")
        _check(self.filter_iterations >= 1, f"filter_iterations: expected >= 1, got {self.filter_iterations}")


@dataclass(frozen=True)
class PresplitConfig:
    """Settings for files that come already split.

    Attributes:
        valid_days: only used when the files include no ``train_tr`` and
            ``valid``: the validation split is then cut from ``train`` by the
            ``standard`` rule (sessions ending in the last ``valid_days``).
    """

    valid_days: float = 1.0

    def __post_init__(self) -> None:
        _check(self.valid_days > 0, f"valid_days: expected a positive number of days, got {self.valid_days}")


#: method name -> settings class
METHODS: dict[str, type] = {"srgnn": SrgnnConfig, "standard": StandardConfig, "presplit": PresplitConfig}


def prepare(
    config: SrgnnConfig | StandardConfig | PresplitConfig,
    events: Mapping[str, pd.DataFrame],
    *,
    name: str,
    sources: Mapping[str, str],
) -> SessionDataset:
    """Run the method that ``config`` belongs to.

    ``events`` maps a file role to the reader's output: ``events`` for
    ``srgnn`` and ``standard``; ``train``, ``test`` and optionally
    ``train_tr`` and ``valid`` for ``presplit``. ``sources`` maps the same
    roles to the file each came from (used in error messages and meta).
    """
    if isinstance(config, SrgnnConfig):
        return prepare_srgnn(events["events"], config, name=name, source=sources["events"])
    if isinstance(config, StandardConfig):
        return prepare_standard(events["events"], config, name=name, source=sources["events"])
    if isinstance(config, PresplitConfig):
        return prepare_presplit(events, config, name=name, sources=sources)
    raise TypeError(f"unknown preprocessing settings {type(config).__name__}")


# --------------------------------------------------------------------------- #
# encoded log and array helpers
# --------------------------------------------------------------------------- #


@dataclass
class _Log:
    """Events as integer codes.

    Session codes follow the order of first appearance in the input (so a
    stable sort on them keeps "order of first appearance" as tie-break);
    item codes likewise.
    """

    sid: np.ndarray  # int64 [n]: session code of each event
    iid: np.ndarray  # int64 [n]: item code of each event
    time: np.ndarray  # float64 [n]
    session_ids: np.ndarray  # int64 [n_sessions]: output id of each session code
    item_raw: np.ndarray  # [n_item_codes]: raw item id (str) of each item code

    @property
    def n_sessions(self) -> int:
        return len(self.session_ids)

    @property
    def n_item_codes(self) -> int:
        return len(self.item_raw)


def _encode(frame: pd.DataFrame) -> _Log:
    sid, sessions = pd.factorize(frame["session"], sort=False)
    iid, items = pd.factorize(frame["item"].astype(str), sort=False)
    if pd.api.types.is_integer_dtype(sessions.dtype):
        session_ids = np.asarray(sessions, dtype=np.int64)
    else:  # string ids: number sessions 1.. in order of first appearance
        session_ids = np.arange(1, len(sessions) + 1, dtype=np.int64)
    return _Log(
        sid=sid.astype(np.int64),
        iid=iid.astype(np.int64),
        time=frame["time"].to_numpy(dtype=np.float64),
        session_ids=session_ids,
        item_raw=np.asarray(items, dtype=object),
    )


def _stable_sort(idx: np.ndarray, *keys: np.ndarray) -> np.ndarray:
    """``idx`` reordered by ``keys`` (event-indexed arrays, most significant
    first); events with equal keys keep their order in ``idx``."""
    for key in reversed(keys):
        idx = idx[np.argsort(key[idx], kind="stable")]
    return idx


def _session_lengths(log: _Log, idx: np.ndarray) -> np.ndarray:
    return np.bincount(log.sid[idx], minlength=log.n_sessions)


def _drop_short(log: _Log, idx: np.ndarray, min_length: int) -> tuple[np.ndarray, int]:
    """Drop the events of sessions with fewer than ``min_length`` events in ``idx``."""
    lengths = _session_lengths(log, idx)
    short = (lengths > 0) & (lengths < min_length)
    return idx[~short[log.sid[idx]]], int(short.sum())


def _drop_rare(log: _Log, idx: np.ndarray, min_support: int) -> tuple[np.ndarray, int, int]:
    """Drop the events of items with fewer than ``min_support`` events in ``idx``."""
    counts = np.bincount(log.iid[idx], minlength=log.n_item_codes)
    rare = (counts > 0) & (counts < min_support)
    keep = ~rare[log.iid[idx]]
    return idx[keep], int(rare.sum()), int((~keep).sum())


def _keep_items(log: _Log, idx: np.ndarray, allowed: np.ndarray, min_length: int = 2) -> tuple[np.ndarray, dict]:
    """Drop events whose item code is not ``allowed``, then sessions left shorter than ``min_length``."""
    known = idx[allowed[log.iid[idx]]]
    kept, short = _drop_short(log, known, min_length)
    return kept, {"unseen_item_events": int(len(idx) - len(known)), "short_sessions": short}


def _per_session(log: _Log, idx: np.ndarray, values: np.ndarray, reduce: np.ufunc, fill: float) -> np.ndarray:
    """Reduce event ``values`` over each session's events in ``idx``."""
    out = np.full(log.n_sessions, fill, dtype=np.float64)
    reduce.at(out, log.sid[idx], values[idx])
    return out


def _vocabulary(log: _Log, train_idx: np.ndarray) -> np.ndarray:
    """int64 [n_item_codes]: item id 1..n of each item code in order of first
    appearance in ``train_idx`` (0 = not in train)."""
    first_seen = pd.unique(log.iid[train_idx])
    ids = np.zeros(log.n_item_codes, dtype=np.int64)
    ids[first_seen] = np.arange(1, len(first_seen) + 1)
    return ids


def _item_map(log: _Log, ids: np.ndarray) -> dict[str, int]:
    codes = np.flatnonzero(ids)
    codes = codes[np.argsort(ids[codes])]
    return {str(log.item_raw[c]): int(ids[c]) for c in codes}


def _split(log: _Log, idx: np.ndarray, ids: np.ndarray, time: np.ndarray) -> SessionSplit:
    return SessionSplit(
        pd.DataFrame(
            {
                "session": log.session_ids[log.sid[idx]],
                "item": ids[log.iid[idx]],
                "time": time[idx].astype(np.float64),
            }
        )
    )


def _iso(t: float) -> str:
    """ISO-8601 (UTC) of epoch seconds ``t``; a time outside the calendar
    range of pandas (years 1677-2262), which a large ``test_days`` can give,
    is written as seconds since 1970 instead."""
    try:
        return pd.Timestamp(t, unit="s", tz="UTC").isoformat()
    except (OverflowError, ValueError):  # OutOfBoundsDatetime is a ValueError
        return f"{t:.6g} s since 1970-01-01T00:00:00+00:00"


def _later_sessions(log: _Log, idx: np.ndarray, session_time: np.ndarray, days: float) -> tuple[np.ndarray, float]:
    """Mask over session codes: sessions in ``idx`` whose ``session_time`` is
    after (strictly) the latest one minus ``days``; and that split time."""
    present = _session_lengths(log, idx) > 0
    cut = float(session_time[present].max()) - days * DAY
    return present & (session_time > cut), cut


def _require(log_idx: np.ndarray, what: str, source: str, expected: str) -> None:
    if len(log_idx) == 0:
        what = f"{what} " if what else ""
        raise DataError(f"no {what}sessions left after preprocessing; expected {expected}", path=source)


def require_disjoint_sessions(first_ids: np.ndarray, second_ids: np.ndarray, first: str, second: str,
                              sources: Mapping[str, str]) -> None:
    """Refuse a session that is in both the ``first`` and the ``second``
    file of presplit data (session ids compared): a model would be scored on
    sessions it was trained on, which is what giving one file for both roles
    does. ``sources`` maps each role to its file, for the message."""
    shared = np.intersect1d(first_ids, second_ids)
    if shared.size:
        total = np.unique(second_ids).size
        raise DataError(f"{shared.size:,} of the {total:,} sessions of the {second} file are also in the {first} "
                        f"file {sources[first]}; expected {first} and {second} files without common sessions "
                        "(is one file given for both?)", path=sources[second])


def _warn_if_empty(idx: np.ndarray, split: str, source: str, meta: dict) -> None:
    # an empty validation split only hurts models that select on it, so it is
    # a warning recorded in meta, not an error
    if len(idx) == 0:
        message = f"{source}: the {split} split is empty; early stopping and tuning cannot use it"
        meta.setdefault("warnings", []).append(message)
        warnings.warn(message, stacklevel=3)


def _dataset(
    name: str, log: _Log, ids: np.ndarray, parts: Mapping[str, np.ndarray], time: np.ndarray, meta: dict
) -> SessionDataset:
    splits = {split: _split(log, idx, ids, time) for split, idx in parts.items()}
    return SessionDataset(
        name=name, n_items=int(ids.max(initial=0)), item_map=_item_map(log, ids), meta=meta, **splits
    )


# --------------------------------------------------------------------------- #
# srgnn
# --------------------------------------------------------------------------- #


def prepare_srgnn(events: pd.DataFrame, config: SrgnnConfig, *, name: str, source: str) -> SessionDataset:
    """The SR-GNN reference preprocessing, rule for rule.

    1. Each session's clicks are ordered by ``timeframe`` with a stable sort
       (DIGINETICA; YOOCHOOSE clicks keep file order). Rows of a session need
       not be contiguous: they are gathered in file order first, as the
       reference appends to a per-session list. A session's *date* is the
       ``eventdate`` of its last row in file order (YOOCHOOSE: that row's
       timestamp truncated to whole seconds).
    2. Sessions of length 1 are dropped.
    3. Item occurrences are counted over what is left; items seen fewer than
       5 times are dropped (one pass) and then sessions left shorter than 2.
    4. split date = latest session date - ``test_days`` days; train = dated
       strictly before it, test = strictly after; a session dated exactly on
       it is in neither (counted in meta).
    5. Train sessions are sorted by date (stable: ties keep the order of
       the session's first appearance in the file); items get ids 1.. in
       order of first appearance in that order.
    6. Test sessions (sorted the same way) lose items unseen in train, then
       sessions shorter than 2.

    Dates are taken in UTC. The reference uses ``time.mktime`` (local time);
    in a zone without daylight saving, such as the authors' UTC+8, the
    differences between dates and so every split are the same as in UTC.

    ``train_fraction`` (YOOCHOOSE 1/64, 1/4): the reference lists all
    training prefixes, sessions in date order and within a session longest
    first (``seq[:-1], seq[:-2], ..., seq[:1]``), and keeps the last
    ``int(n_prefixes * fraction)`` of them. As sessions that is: the most
    recent sessions whose prefixes are all kept, plus, when the cut falls
    inside a session, that session truncated to its first ``m + 1`` items,
    where ``m`` is the number of its prefixes kept (its shortest ones). A cut
    that keeps no prefix is a ``DataError`` (the reference's ``seqs[-0:]``
    would silently keep everything). The item vocabulary stays the full
    training vocabulary, as the reference's ``n_node`` does (37,484 = 37,483
    items + padding for both YOOCHOOSE fractions), so ``n_items`` counts items
    absent from the fraction and test items are kept when they occur anywhere
    in the full training period. The paper's Table 1 (16,766 items for 1/64,
    29,618 for 1/4) instead counts the items occurring in the fraction.

    Validation: ``valid`` holds the (fraction-cut) train sessions dated after
    the latest train date minus ``valid_days``; ``train_tr`` is the rest
    (sessions dated exactly on that cut go to ``train_tr``, so that
    ``train_tr`` and ``valid`` partition ``train``). Valid items unseen in
    ``train_tr`` are dropped, then valid sessions shorter than 2.

    Event times: DIGINETICA has only a day and an offset, so ``time`` is the
    session date + ``timeframe`` / 1000, non-decreasing in click order (ties
    keep it); YOOCHOOSE keeps the click timestamps.
    """
    log = _encode(events)
    n_events = len(log.sid)
    everything = np.arange(n_events)
    # rule 1: the session date comes from the session's last row in file order
    last_row = np.full(log.n_sessions, -1, dtype=np.int64)
    np.maximum.at(last_row, log.sid, everything)
    if "eventdate" in events.columns:
        row_date = events["eventdate"].to_numpy(dtype=np.float64)
    else:
        row_date = np.floor(log.time)
    date = row_date[last_row]
    if "timeframe" in events.columns:
        timeframe = events["timeframe"].to_numpy(dtype=np.int64)
        idx = _stable_sort(everything, log.sid, timeframe)
        time = date[log.sid] + timeframe / 1000.0
    else:
        idx = _stable_sort(everything, log.sid)
        time = log.time

    dropped: dict[str, Any] = {}
    idx, dropped["length_1_sessions"] = _drop_short(log, idx, 2)  # rule 2
    idx, dropped["rare_items"], dropped["rare_item_events"] = _drop_rare(log, idx, 5)  # rule 3
    idx, dropped["short_sessions_after_item_filter"] = _drop_short(log, idx, 2)
    _require(idx, "", source, "sessions of >= 2 clicks on items seen >= 5 times")

    # rule 4: split on session dates
    present = _session_lengths(log, idx) > 0
    split_date = float(date[present].max()) - config.test_days * DAY
    in_train = present & (date < split_date)
    in_test = present & (date > split_date)
    dropped["sessions_on_split_date"] = int((present & (date == split_date)).sum())

    # rule 5: sessions by date, stable (ties: first appearance), then vocabulary
    date_ev = date[log.sid]
    train_idx = _stable_sort(idx[in_train[log.sid[idx]]], date_ev, log.sid)
    _require(train_idx, "train", source, f"sessions dated before the split date {_iso(split_date)}")
    ids = _vocabulary(log, train_idx)
    fraction_meta = None
    if config.train_fraction is not None:
        train_idx, fraction_meta = _train_fraction(log, train_idx, config.train_fraction, source)

    # rule 6: test keeps known items and sessions of >= 2
    test_idx = _stable_sort(idx[in_test[log.sid[idx]]], date_ev, log.sid)
    test_idx, dropped["test"] = _keep_items(log, test_idx, ids > 0)
    _require(test_idx, "test", source, f"sessions dated after {_iso(split_date)} with >= 2 training items")

    in_valid, valid_date = _later_sessions(log, train_idx, date, config.valid_days)
    train_tr_idx = train_idx[~in_valid[log.sid[train_idx]]]
    seen_tr = np.bincount(log.iid[train_tr_idx], minlength=log.n_item_codes) > 0
    valid_idx, dropped["valid"] = _keep_items(log, train_idx[in_valid[log.sid[train_idx]]], seen_tr)

    meta: dict[str, Any] = {
        "method": "srgnn",
        "settings": _settings(config),
        "source": source,
        "session_time": "session date: eventdate (or timestamp cut to seconds) of the session's last row in the file",
        "test_split": {
            "time": _iso(split_date),
            "rule": "train: session date < time; test: session date > time; equal: neither",
        },
        "valid_split": {
            "time": _iso(valid_date),
            "rule": "valid: train session date > time; train_tr: the other train sessions",
        },
        "dropped": dropped,
    }
    if fraction_meta is not None:
        meta["train_fraction"] = fraction_meta
    _warn_if_empty(valid_idx, "valid", source, meta)
    _warn_if_empty(train_tr_idx, "train_tr", source, meta)
    parts = {"train": train_idx, "train_tr": train_tr_idx, "valid": valid_idx, "test": test_idx}
    return _dataset(name, log, ids, parts, time, meta)


def _train_fraction(log: _Log, train_idx: np.ndarray, fraction: Fraction, source: str) -> tuple[np.ndarray, dict]:
    """Keep the most recent ``fraction`` of the training prefixes, as sessions.

    ``train_idx`` holds the training events in final order, each session
    contiguous. See :func:`prepare_srgnn` for the rule.
    """
    sid = log.sid[train_idx]
    starts = np.concatenate([[0], np.flatnonzero(sid[1:] != sid[:-1]) + 1])
    lengths = np.diff(np.append(starts, len(sid)))
    prefixes = lengths - 1
    total = int(prefixes.sum())
    keep = math.floor(total * Fraction(fraction))  # exact, like int(n / 64) in the reference
    if keep == 0:
        raise DataError(
            f"train_fraction {fraction} of {total} training prefixes keeps none; expected a larger dataset or fraction",
            path=source,
        )
    from_here = np.cumsum(prefixes[::-1])[::-1]  # prefixes of this session and all later ones
    # from_here falls strictly (every session has >= 1 prefix): the wholly kept
    # sessions are the ones from the first index where it is <= keep
    first_full = int(np.argmax(from_here <= keep))
    if from_here[first_full] > keep:  # not even the last session is wholly kept
        first_full = len(lengths)
    kept_full = int(from_here[first_full]) if first_full < len(lengths) else 0
    allowed = np.zeros(len(lengths), dtype=np.int64)
    allowed[first_full:] = lengths[first_full:]
    partial = keep - kept_full  # prefixes of the cut session that are kept (its shortest)
    if partial > 0:
        allowed[first_full - 1] = partial + 1
    position = np.arange(len(sid)) - np.repeat(starts, lengths)
    kept = train_idx[position < np.repeat(allowed, lengths)]
    info = {
        "fraction": str(fraction),
        "prefixes_total": total,
        "prefixes_kept": keep,
        "sessions_total": int(len(lengths)),
        "sessions_kept": int(np.count_nonzero(allowed)),
        "truncated_session_items": int(partial + 1) if partial > 0 else None,
    }
    return kept, info


# --------------------------------------------------------------------------- #
# standard
# --------------------------------------------------------------------------- #


def prepare_standard(events: pd.DataFrame, config: StandardConfig, *, name: str, source: str) -> SessionDataset:
    """Session-rec style preprocessing for generic and synthetic logs.

    Clicks of a session are ordered by time (stable: equal times keep file
    order). ``filter_iterations`` times: drop sessions shorter than
    ``min_session_length``, drop items with fewer than ``min_item_support``
    events, drop sessions left shorter than ``min_session_length``.

    Split at ``t_s = T - test_days`` days, ``T`` = the latest event time::

        train: sessions that END at or before t_s   |----|  |---|
        test:  sessions that START after t_s                      |--| |---|
        dropped: sessions that straddle t_s                    |----|
                                                          t_s ^

    so no test event precedes any train event's split time and no train
    session sees what happened after it (the count of straddling sessions is
    in ``meta["dropped"]``). Sessions are ordered by start time (ties: first
    appearance); item ids 1.. follow first appearance in ``train``. Test
    events with items unseen in train are dropped, then test sessions shorter
    than 2.

    Validation: the same rule inside ``train`` at ``t_v`` = the latest train
    event minus ``valid_days`` gives ``valid`` (sessions starting after t_v)
    and ``train_tr`` (sessions ending at or before it); train sessions that
    straddle t_v are in ``train`` but in neither of the two. Valid items
    unseen in ``train_tr`` are dropped, then valid sessions shorter than 2.
    """
    log = _encode(events)
    idx = _stable_sort(np.arange(len(log.sid)), log.sid, log.time)
    dropped = {"short_sessions": 0, "rare_items": 0, "rare_item_events": 0}
    for _ in range(config.filter_iterations):
        before = len(idx)
        idx, short_before = _drop_short(log, idx, config.min_session_length)
        idx, rare_items, rare_events = _drop_rare(log, idx, config.min_item_support)
        idx, short_after = _drop_short(log, idx, config.min_session_length)
        dropped["short_sessions"] += short_before + short_after
        dropped["rare_items"] += rare_items
        dropped["rare_item_events"] += rare_events
        if len(idx) == before:  # a fixed point: further iterations would drop nothing
            break
    expected = f"sessions of >= {config.min_session_length} events on items with support >= {config.min_item_support}"
    _require(idx, "", source, expected)

    end = _per_session(log, idx, log.time, np.maximum, -np.inf)
    start = _per_session(log, idx, log.time, np.minimum, np.inf)
    in_train, in_test, split_time, dropped["straddling_test_split"] = _time_split(
        log, idx, start, end, config.test_days
    )
    start_ev = start[log.sid]
    train_idx = _stable_sort(idx[in_train[log.sid[idx]]], start_ev, log.sid)
    _require(train_idx, "train", source, f"sessions ending at or before the split time {_iso(split_time)}")
    ids = _vocabulary(log, train_idx)
    test_idx = _stable_sort(idx[in_test[log.sid[idx]]], start_ev, log.sid)
    test_idx, dropped["test"] = _keep_items(log, test_idx, ids > 0)
    _require(test_idx, "test", source, f"sessions starting after {_iso(split_time)} with >= 2 training items")

    train_tr_idx, valid_idx, valid_time, dropped["valid"] = _valid_by_time(log, train_idx, start, end, config.valid_days)
    meta: dict[str, Any] = {
        "method": "standard",
        "settings": _settings(config),
        "source": source,
        "test_split": {"time": _iso(split_time), "rule": TIME_SPLIT_RULE},
        "valid_split": {"time": _iso(valid_time), "rule": TIME_SPLIT_RULE},
        "dropped": dropped,
    }
    _warn_if_empty(valid_idx, "valid", source, meta)
    _warn_if_empty(train_tr_idx, "train_tr", source, meta)
    parts = {"train": train_idx, "train_tr": train_tr_idx, "valid": valid_idx, "test": test_idx}
    return _dataset(name, log, ids, parts, log.time, meta)


TIME_SPLIT_RULE = "later: sessions starting after the time; earlier: sessions ending at or before it; others dropped"


def _time_split(
    log: _Log, idx: np.ndarray, start: np.ndarray, end: np.ndarray, days: float
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Masks over session codes (earlier, later), the split time
    ``latest end - days``, and the number of sessions straddling it."""
    present = _session_lengths(log, idx) > 0
    cut = float(end[present].max()) - days * DAY
    earlier = present & (end <= cut)
    later = present & (start > cut)
    return earlier, later, cut, int((present & ~earlier & ~later).sum())


def _valid_by_time(
    log: _Log, train_idx: np.ndarray, start: np.ndarray, end: np.ndarray, days: float
) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """Cut ``valid`` (sessions starting in the last ``days`` of train) and
    ``train_tr`` (sessions ending before that) from ``train_idx``."""
    earlier, later, valid_time, straddling = _time_split(log, train_idx, start, end, days)
    sid = log.sid[train_idx]
    train_tr_idx = train_idx[earlier[sid]]
    seen_tr = np.bincount(log.iid[train_tr_idx], minlength=log.n_item_codes) > 0
    valid_idx, dropped = _keep_items(log, train_idx[later[sid]], seen_tr)
    dropped = {**dropped, "straddling": straddling}
    return train_tr_idx, valid_idx, valid_time, dropped


# --------------------------------------------------------------------------- #
# presplit
# --------------------------------------------------------------------------- #


def prepare_presplit(
    files: Mapping[str, pd.DataFrame], config: PresplitConfig, *, name: str, sources: Mapping[str, str]
) -> SessionDataset:
    """Files that come split: ``train`` and ``test``, optionally ``train_tr``
    and ``valid`` (the session-rec YOOCHOOSE 100k sample).

    The splits are taken as given; only what the contract needs is applied.
    Inside each file, clicks of a session are ordered by time (stable) and
    sessions by start time (ties: first appearance). Item ids 1.. follow first
    appearance in ``train``. ``test`` events with items unseen in ``train``
    are dropped, ``valid`` events with items unseen in ``train_tr`` likewise
    (and ``train_tr`` events unseen in ``train``, which a consistent sample
    never has); then every split drops sessions shorter than 2. Counts are in
    ``meta["dropped"]``. Without ``train_tr``/``valid`` files, the validation
    split is cut from ``train`` as in :func:`prepare_standard`.
    """
    roles = [role for role in ("train", "test", "train_tr", "valid") if role in files]
    lengths = [len(files[role]) for role in roles]
    log = _encode(pd.concat([files[role].loc[:, ["session", "item", "time"]] for role in roles], ignore_index=True))
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    end = np.full(log.n_sessions, -np.inf)
    start_all = np.full(log.n_sessions, np.inf)
    parts: dict[str, np.ndarray] = {}
    dropped: dict[str, Any] = {}
    for k, role in enumerate(roles):
        idx = _stable_sort(np.arange(bounds[k], bounds[k + 1]), log.sid, log.time)
        start = _per_session(log, idx, log.time, np.minimum, np.inf)
        parts[role] = _stable_sort(idx, start[log.sid], log.sid)
        if role == "train":
            end = _per_session(log, idx, log.time, np.maximum, -np.inf)
            start_all = start

    for first, second in (("train", "test"), ("train_tr", "valid")):
        if first in parts and second in parts:
            require_disjoint_sessions(log.sid[parts[first]], log.sid[parts[second]], first, second, sources)
    train_idx, short = _drop_short(log, parts["train"], 2)
    dropped["train"] = {"short_sessions": short}
    _require(train_idx, "train", sources["train"], "sessions of >= 2 events")
    ids = _vocabulary(log, train_idx)
    test_idx, dropped["test"] = _keep_items(log, parts["test"], ids > 0)
    _require(test_idx, "test", sources["test"], "sessions with >= 2 items that occur in the train file")
    meta: dict[str, Any] = {"method": "presplit", "settings": _settings(config), "source": dict(sources)}
    if "train_tr" in parts and "valid" in parts:
        train_tr_idx, dropped["train_tr"] = _keep_items(log, parts["train_tr"], ids > 0)
        seen_tr = np.bincount(log.iid[train_tr_idx], minlength=log.n_item_codes) > 0
        valid_idx, dropped["valid"] = _keep_items(log, parts["valid"], seen_tr)
        meta["valid_split"] = {"rule": "given by the train_tr and valid files"}
    else:
        train_tr_idx, valid_idx, valid_time, dropped["valid"] = _valid_by_time(
            log, train_idx, start_all, end, config.valid_days
        )
        meta["valid_split"] = {"time": _iso(valid_time), "rule": TIME_SPLIT_RULE}
    meta["test_split"] = {
        "rule": "given by the train and test files",
        "train_last_event": _iso(float(log.time[train_idx].max())),
        "test_first_event": _iso(float(log.time[test_idx].min())),
    }
    meta["dropped"] = dropped
    _warn_if_empty(valid_idx, "valid", sources["train"], meta)
    _warn_if_empty(train_tr_idx, "train_tr", sources["train"], meta)
    parts = {"train": train_idx, "train_tr": train_tr_idx, "valid": valid_idx, "test": test_idx}
    return _dataset(name, log, ids, parts, log.time, meta)


def _settings(config: Any) -> dict[str, Any]:
    """JSON-ready settings (fractions as 'a/b' strings)."""
    return {k: (str(v) if isinstance(v, Fraction) else v) for k, v in asdict(config).items()}

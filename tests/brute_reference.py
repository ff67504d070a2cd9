"""An independent brute-force reference for the evaluation pipeline.

Written from the definitions in docs/datasets.md and docs/metrics.md, not
from sessionbench's code: preprocessing with plain pandas from the raw
files, ranks by counting scores one case at a time, metrics by their
formulas. tests/test_brute_reference.py compares sessionbench with it.

Every function returns plain Python or NumPy values so that a mismatch is
easy to read by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

DAY = 86400


# --------------------------------------------------------------------------- #
# preprocessing
# --------------------------------------------------------------------------- #


def _number_items(train_sessions: list[tuple[int, list[str]]]) -> dict[str, int]:
    """Raw item id -> 1.. in order of first appearance over the train
    sessions in their final order."""
    ids: dict[str, int] = {}
    for _, items in train_sessions:
        for item in items:
            ids.setdefault(item, len(ids) + 1)
    return ids


def _known_only(sessions, known) -> list[tuple[int, list[str]]]:
    """Drop items not in ``known``, then sessions left with fewer than 2 items."""
    out = []
    for sid, items in sessions:
        kept = [i for i in items if i in known]
        if len(kept) >= 2:
            out.append((sid, kept))
    return out


def _encode(sessions, ids) -> list[tuple[int, list[int]]]:
    return [(sid, [ids[i] for i in items]) for sid, items in sessions]


def srgnn_reference(path: Path, test_days: float, valid_days: float) -> dict:
    """The SR-GNN rules of docs/datasets.md (steps 1-7 and *Validation*) on a
    DIGINETICA file, with pandas.

    Returns ``{"items": raw -> id, "train"/"test"/"train_tr"/"valid":
    [(session, [item ids])] in split order, "split_date": epoch s,
    "valid_date": epoch s, "dates": session -> epoch s}``.
    """
    raw = pd.read_csv(path, sep=";", dtype=str)
    raw = raw.rename(columns={"sessionId": "session_id", "itemId": "item_id"})
    raw["row"] = np.arange(len(raw))
    raw["session"] = raw["session_id"].astype(np.int64)
    raw["timeframe"] = raw["timeframe"].astype(np.int64)
    raw["day"] = (pd.to_datetime(raw["eventdate"], format="%Y-%m-%d", utc=True) - pd.Timestamp(0, tz="UTC")) \
        // pd.Timedelta(seconds=1)
    per_session = raw.groupby("session", sort=False)
    # step 1: clicks by timeframe (ties: file order); date of the last row in file order
    last_row = per_session["row"].max()
    date = raw.set_index("row").loc[last_row.to_numpy(), "day"].set_axis(last_row.index)
    first_row = per_session["row"].min()
    clicks = raw.sort_values(["timeframe", "row"], kind="stable")
    sessions = {s: g["item_id"].tolist() for s, g in clicks.groupby("session", sort=False)}
    # step 2
    sessions = {s: items for s, items in sessions.items() if len(items) > 1}
    # step 3: one pass of item support over what is left
    counts = pd.Series([i for items in sessions.values() for i in items]).value_counts()
    frequent = set(counts[counts >= 5].index)
    sessions = {s: [i for i in items if i in frequent] for s, items in sessions.items()}
    sessions = {s: items for s, items in sessions.items() if len(items) >= 2}
    # step 4
    dated = pd.DataFrame({"date": date.loc[list(sessions)], "first": first_row.loc[list(sessions)]})
    split_date = int(dated["date"].max()) - test_days * DAY
    # step 5: by date, ties by first appearance in the file
    dated = dated.sort_values(["date", "first"], kind="stable")
    train = [(s, sessions[s]) for s in dated.index[dated["date"] < split_date]]
    test = [(s, sessions[s]) for s in dated.index[dated["date"] > split_date]]
    ids = _number_items(train)
    # step 6
    test = _known_only(test, ids)
    # validation: train sessions dated after the latest train date minus valid_days
    train_dates = dated.loc[[s for s, _ in train], "date"]
    valid_date = int(train_dates.max()) - valid_days * DAY
    valid = [(s, items) for s, items in train if train_dates[s] > valid_date]
    train_tr = [(s, items) for s, items in train if train_dates[s] <= valid_date]
    valid = _known_only(valid, {i for _, items in train_tr for i in items})
    return {
        "items": ids,
        "train": _encode(train, ids),
        "test": _encode(test, ids),
        "train_tr": _encode(train_tr, ids),
        "valid": _encode(valid, ids),
        "split_date": split_date,
        "valid_date": valid_date,
        "dates": {int(s): int(d) for s, d in date.items()},
    }


def _ordered_sessions(events: pd.DataFrame) -> list[tuple[int, list[str], float, float]]:
    """Sessions of an event table (session, item: str, time): clicks by time
    (ties: file order), sessions by start time (ties: first appearance).
    Returns (session, items, start, end)."""
    ev = events.assign(row=np.arange(len(events)))
    ev = ev.sort_values(["time", "row"], kind="stable")
    bounds = ev.groupby("session", sort=False).agg(
        start=("time", "min"), end=("time", "max"), first=("row", "min")
    ).sort_values(["start", "first"], kind="stable")
    items = {s: g["item"].tolist() for s, g in ev.groupby("session", sort=False)}
    return [(int(s), items[s], float(b.start), float(b.end)) for s, b in bounds.iterrows()]


def presplit_reference(files: dict[str, pd.DataFrame]) -> dict:
    """Files that are the split (session-rec's sample): the rules of
    docs/datasets.md *The splits*. ``files`` maps train/test/train_tr/valid to
    raw tables (session, item as str, time)."""
    ordered = {role: _ordered_sessions(frame) for role, frame in files.items()}
    train = [(s, items) for s, items, _, _ in ordered["train"] if len(items) >= 2]
    ids = _number_items(train)
    test = _known_only([(s, i) for s, i, _, _ in ordered["test"]], ids)
    train_tr = _known_only([(s, i) for s, i, _, _ in ordered["train_tr"]], ids)
    valid = _known_only([(s, i) for s, i, _, _ in ordered["valid"]], {i for _, it in train_tr for i in it})
    return {"items": ids, **{k: _encode(v, ids) for k, v in
                             {"train": train, "test": test, "train_tr": train_tr, "valid": valid}.items()}}


def standard_reference(events: pd.DataFrame, *, test_days: float, valid_days: float, min_length: int,
                       min_support: int, iterations: int) -> dict:
    """The standard method of docs/datasets.md on a raw table (session, item
    as str, time)."""
    ev = events.assign(row=np.arange(len(events)))
    for _ in range(iterations):
        before = len(ev)
        ev = ev[ev.groupby("session")["item"].transform("size") >= min_length]
        ev = ev[ev.groupby("item")["item"].transform("size") >= min_support]
        ev = ev[ev.groupby("session")["item"].transform("size") >= min_length]
        if len(ev) == before:
            break
    sessions = _ordered_sessions(ev.drop(columns="row").reset_index(drop=True))

    def time_split(sess, days):
        cut = max(end for *_, end in sess) - days * DAY
        earlier = [x for x in sess if x[3] <= cut]
        later = [x for x in sess if x[2] > cut]
        return earlier, later, cut

    train, test, split_time = time_split(sessions, test_days)
    ids = _number_items([(s, i) for s, i, _, _ in train])
    test2 = _known_only([(s, i) for s, i, _, _ in test], ids)
    train_tr, valid, valid_time = time_split(train, valid_days)
    valid2 = _known_only([(s, i) for s, i, _, _ in valid], {i for _, it, _, _ in train_tr for i in it})
    return {
        "items": ids,
        "train": _encode([(s, i) for s, i, _, _ in train], ids),
        "test": _encode(test2, ids),
        "train_tr": _encode([(s, i) for s, i, _, _ in train_tr], ids),
        "valid": _encode(valid2, ids),
        "split_time": split_time,
        "valid_time": valid_time,
        "bounds": {s: (a, b) for s, _, a, b in sessions},
    }


def cases(sessions: list[tuple[int, list[int]]]) -> list[tuple[int, int, list[int], int, list[int]]]:
    """Every evaluation case of a split, in session order then t:
    (session, t, prefix i1..it, next item i(t+1), remaining items i(t+1..n))."""
    return [(s, t, items[:t], items[t], items[t:]) for s, items in sessions for t in range(1, len(items))]


# --------------------------------------------------------------------------- #
# ranks and metrics
# --------------------------------------------------------------------------- #

UNRANKED = 2**31 - 1


def ranks_of_case(scores: np.ndarray, targets: list[int], excluded: set[int] = frozenset()) -> list[int]:
    """The pessimistic ranks of a case's distinct targets (in the order
    given), by counting: items 1..n_items rank (column 0 never does), minus
    ``excluded``; rank(t) = 1 + #{ranked i : s_i > s_t}
    + #{ranked non-target i : s_i = s_t} + #{ranked target u < t : s_u = s_t}.
    An excluded target gets UNRANKED. NaN counts as -inf."""
    s = np.where(np.isnan(scores), -np.inf, scores.astype(np.float64))
    ranked = [i for i in range(1, len(s)) if i not in excluded]
    tset = set(targets)
    out = []
    for t in targets:
        if t in excluded:
            out.append(UNRANKED)
            continue
        above = sum(1 for i in ranked if s[i] > s[t])
        tied_other = sum(1 for i in ranked if s[i] == s[t] and i not in tset)
        tied_target = sum(1 for u in tset if u < t and u not in excluded and s[u] == s[t])
        out.append(1 + above + tied_other + tied_target)
    return out


def ranks_of_case_fast(scores: np.ndarray, targets: list[int], excluded: set[int] = frozenset()) -> list[int]:
    """:func:`ranks_of_case` with NumPy counts over the row (same definition,
    for catalogues of thousands of items)."""
    s = np.where(np.isnan(scores), -np.inf, scores.astype(np.float64))
    keep = np.ones(len(s), dtype=bool)
    keep[0] = False
    for i in excluded:
        keep[i] = False
    is_target = np.zeros(len(s), dtype=bool)
    is_target[list(targets)] = True
    out = []
    for t in targets:
        if t in excluded:
            out.append(UNRANKED)
            continue
        v = s[t]
        above = int(np.count_nonzero(keep & (s > v)))
        tied_other = int(np.count_nonzero(keep & ~is_target & (s == v)))
        tied_target = int(np.count_nonzero(keep[: t] & is_target[: t] & (s[: t] == v)))
        out.append(1 + above + tied_other + tied_target)
    return out


def distinct(items: list[int]) -> list[int]:
    """Distinct items, first occurrences, in order."""
    return list(dict.fromkeys(items))


def case_metric(name: str, ranks: list[int], k: int) -> float:
    """One case's metric from its targets' ranks (docs/metrics.md)."""
    n = len(ranks)
    hits = [r for r in ranks if r <= k]
    best = min(ranks)
    if name == "HitRate":
        return 1.0 if best <= k else 0.0
    if name == "Recall":
        return len(hits) / n
    if name == "MRR":
        return 1.0 / best if best <= k else 0.0
    if name == "NDCG":
        ideal = sum(1 / math.log2(i + 1) for i in range(1, min(k, n) + 1))
        return sum(1 / math.log2(r + 1) for r in hits) / ideal
    raise KeyError(name)


def mean_metrics(all_ranks: list[list[int]], ks, names=("HitRate", "Recall", "MRR", "NDCG")) -> dict[str, float]:
    """``{"HitRate@5": mean over cases, ...}``."""
    return {f"{n}@{k}": float(np.mean([case_metric(n, r, k) for r in all_ranks])) for n in names for k in ks}

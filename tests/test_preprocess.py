"""Preprocessing: SR-GNN exactness, the standard and presplit methods, and
leakage guards."""

from __future__ import annotations

import calendar
import csv
import operator
import time as time_module
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from data_paths import DIGINETICA_SAMPLE, YOOCHOOSE_100K, require_data

from harness.data import preprocess as pp
from harness.data import readers
from harness.data.dataset import SessionDataset
from harness.errors import DataError

DAY = 86400.0


# --------------------------------------------------------------------------- #
# a test oracle: the SR-GNN reference preprocessing, transcribed as plain Python
# (dicts and lists, one row at a time), with UTC dates
# --------------------------------------------------------------------------- #


def _reference_date(kind, text):
    if kind == "yoochoose":
        return calendar.timegm(time_module.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    return calendar.timegm(time_module.strptime(text, "%Y-%m-%d"))


def reference_srgnn(rows, kind, test_days):
    """rows: dicts with session_id, item_id and timestamp (yoochoose) or
    timeframe/eventdate (diginetica). Returns train and test sequences,
    the item dictionary and the training prefixes with labels."""
    sess_clicks, sess_date = {}, {}
    curid, curdate = -1, None
    for data in rows:
        sessid = data["session_id"]
        if curdate and not curid == sessid:
            sess_date[curid] = _reference_date(kind, curdate)
        curid = sessid
        item = data["item_id"] if kind == "yoochoose" else (data["item_id"], int(data["timeframe"]))
        curdate = data["timestamp"] if kind == "yoochoose" else data["eventdate"]
        sess_clicks.setdefault(sessid, []).append(item)
    sess_date[curid] = _reference_date(kind, curdate)
    if kind != "yoochoose":
        for s in list(sess_clicks):
            sess_clicks[s] = [c[0] for c in sorted(sess_clicks[s], key=operator.itemgetter(1))]
    for s in list(sess_clicks):
        if len(sess_clicks[s]) == 1:
            del sess_clicks[s], sess_date[s]
    counts = {}
    for seq in sess_clicks.values():
        for iid in seq:
            counts[iid] = counts.get(iid, 0) + 1
    for s in list(sess_clicks):
        kept = [i for i in sess_clicks[s] if counts[i] >= 5]
        if len(kept) < 2:
            del sess_clicks[s], sess_date[s]
        else:
            sess_clicks[s] = kept
    dates = list(sess_date.items())
    maxdate = max(d for _, d in dates)
    splitdate = maxdate - 86400 * test_days
    tra_sess = sorted([x for x in dates if x[1] < splitdate], key=operator.itemgetter(1))
    tes_sess = sorted([x for x in dates if x[1] > splitdate], key=operator.itemgetter(1))
    item_dict, tra_seqs, tes_seqs = {}, [], []
    for s, _ in tra_sess:
        out = []
        for i in sess_clicks[s]:
            if i not in item_dict:
                item_dict[i] = len(item_dict) + 1
            out.append(item_dict[i])
        tra_seqs.append(out)
    for s, _ in tes_sess:
        out = [item_dict[i] for i in sess_clicks[s] if i in item_dict]
        if len(out) >= 2:
            tes_seqs.append(out)
    tr_seqs, tr_labs = [], []
    for seq in tra_seqs:
        for i in range(1, len(seq)):
            tr_seqs.append(seq[:-i])
            tr_labs.append(seq[-i])
    return {"train": tra_seqs, "test": tes_seqs, "items": item_dict, "tr_seqs": tr_seqs, "tr_labs": tr_labs}


def _sessions(split):
    return [s.tolist() for s in split.sessions()]


def _reference_prefixes(sessions):
    """The reference's prefix list of a list of sessions: longest first."""
    seqs, labs = [], []
    for seq in sessions:
        for i in range(1, len(seq)):
            seqs.append(seq[:-i])
            labs.append(seq[-i])
    return seqs, labs


# --------------------------------------------------------------------------- #
# srgnn on the DIGINETICA sample
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def diginetica() -> SessionDataset:
    require_data("diginetica-sample")
    events = readers.read_diginetica(DIGINETICA_SAMPLE)
    return pp.prepare_srgnn(events, pp.SrgnnConfig(test_days=7, valid_days=7), name="diginetica", source="sample")


def test_srgnn_diginetica_sample_numbers(diginetica):
    assert diginetica.train.n_sessions == 469
    assert diginetica.test.n_sessions == 39
    assert diginetica.n_items == 309
    assert diginetica.train.n_prefixes == 1_205
    assert len(diginetica.prefixes("test")) == 99
    assert diginetica.train.n_events == 1_674 and diginetica.test.n_events == 138
    assert diginetica.meta["test_split"]["time"] == "2016-05-25T00:00:00+00:00"
    assert diginetica.meta["dropped"]["length_1_sessions"] == 933


def test_srgnn_diginetica_sample_equals_reference_sequences(diginetica):
    with open(DIGINETICA_SAMPLE, newline="") as handle:
        ref = reference_srgnn(csv.DictReader(handle, delimiter=";"), "diginetica", 7)
    assert _sessions(diginetica.train) == ref["train"]
    assert _sessions(diginetica.test) == ref["test"]
    assert list(diginetica.item_map.items()) == list(ref["items"].items())


@pytest.mark.filterwarnings("ignore:.*split is empty")  # every train session has the same date
def test_srgnn_timeframe_sort_is_stable_and_date_is_last_row(tmp_path):
    # session 1 has two clicks with equal timeframe (file order must stay) and
    # its last row in file order is dated a day later than its first
    rows = []
    for s in range(1, 13):
        rows += [(s, "a", 30, "2016-01-01"), (s, "b", 10, "2016-01-01"), (s, "c", 10, "2016-01-01")]
    rows += [(20, "a", 5, "2016-01-20"), (20, "c", 1, "2016-01-20"), (20, "b", 5, "2016-01-21")]
    events = pd.DataFrame(rows, columns=["session", "item", "timeframe", "eventdate_s"])
    events["eventdate"] = [pd.Timestamp(d, tz="UTC").timestamp() for d in events.pop("eventdate_s")]
    events["time"] = events["eventdate"] + events["timeframe"] / 1000
    data = pp.prepare_srgnn(events, pp.SrgnnConfig(test_days=7, valid_days=0.5), name="t", source="t")
    assert data.item_map == {"b": 1, "c": 2, "a": 3}
    assert _sessions(data.train)[0] == [1, 2, 3]  # b (10), c (10, after b in file), a (30)
    assert _sessions(data.test) == [[2, 3, 1]]  # c (1), a (5), b (5, later in file)
    assert data.test.events["time"].iloc[0] == pd.Timestamp("2016-01-21", tz="UTC").timestamp() + 0.001
    assert np.all(np.diff(data.test.events["time"].to_numpy()) >= 0)


def test_srgnn_sessions_on_split_date_are_in_neither():
    rows = []
    for s, day in [(1, 1), (2, 1), (3, 3), (4, 8), (5, 10), (6, 0.5)]:
        rows += [(s, "x", 1, day), (s, "y", 2, day)]
    events = pd.DataFrame(rows, columns=["session", "item", "timeframe", "day"])
    events["eventdate"] = 1_451_606_400.0 + events.pop("day") * DAY
    events["time"] = events["eventdate"] + events["timeframe"] / 1000
    data = pp.prepare_srgnn(events, pp.SrgnnConfig(test_days=7, valid_days=0.25), name="t", source="t")
    assert data.train.session_ids.tolist() == [6, 1, 2]
    assert data.train_tr.session_ids.tolist() == [6] and data.valid.session_ids.tolist() == [1, 2]
    assert data.test.session_ids.tolist() == [4, 5]
    assert data.meta["dropped"]["sessions_on_split_date"] == 1


# --------------------------------------------------------------------------- #
# srgnn on YOOCHOOSE rows with train_fraction
# --------------------------------------------------------------------------- #


def _yoochoose_rows(seed=7, n_sessions=90):
    """Raw YOOCHOOSE-style rows: sessions over five days, a small item pool so
    that most items pass the support filter, some length-1 sessions, some
    sessions sharing a second (ties) and one session split in two runs."""
    rng = np.random.default_rng(seed)
    base = calendar.timegm((2014, 4, 1, 0, 0, 0))
    rows = []
    for s in range(1, n_sessions + 1):
        start = base + int(rng.integers(0, 5 * 86400)) if s % 10 else base + 3 * 86400  # ties every 10th
        for k in range(int(rng.integers(1, 7))):
            stamp = time_module.strftime("%Y-%m-%dT%H:%M:%S", time_module.gmtime(start + 30 * k))
            rows.append({"session_id": str(s), "timestamp": f"{stamp}.{k:03d}Z", "item_id": str(rng.integers(1, 18))})
    # session 2 gets a second run at the end of the file, a day after its first
    late = time_module.strftime("%Y-%m-%dT%H:%M:%S", time_module.gmtime(base + 4 * 86400 + 5))
    rows.append({"session_id": "2", "timestamp": f"{late}.500Z", "item_id": "3"})
    return rows


def _write_yoochoose(path, rows):
    path.write_text("".join(f"{r['session_id']},{r['timestamp']},{r['item_id']},0\n" for r in rows))
    return path


@pytest.mark.parametrize("fraction", [Fraction(1, 4), Fraction(1, 3), Fraction(1, 2), Fraction(5, 7), Fraction(1)])
def test_srgnn_yoochoose_fraction_matches_reference_prefix_cut(tmp_path, fraction):
    rows = _yoochoose_rows()
    events = readers.read_yoochoose(_write_yoochoose(tmp_path / "clicks.dat", rows))
    config = pp.SrgnnConfig(test_days=1, valid_days=0.25, train_fraction=fraction)
    data = pp.prepare_srgnn(events, config, name="y", source="clicks.dat")
    ref = reference_srgnn(rows, "yoochoose", 1)
    keep = int(len(ref["tr_seqs"]) * fraction)
    seqs, labs = _reference_prefixes(_sessions(data.train))
    assert seqs == ref["tr_seqs"][len(ref["tr_seqs"]) - keep :]
    assert labs == ref["tr_labs"][len(ref["tr_labs"]) - keep :]
    assert data.train.n_prefixes == keep
    # the vocabulary is the full training vocabulary; test is unaffected
    assert data.n_items == len(ref["items"])
    assert _sessions(data.test) == ref["test"]
    assert data.meta["train_fraction"]["prefixes_kept"] == keep


def test_srgnn_fraction_cut_inside_a_session_keeps_its_first_items(tmp_path):
    rows = _yoochoose_rows()
    events = readers.read_yoochoose(_write_yoochoose(tmp_path / "clicks.dat", rows))
    full = pp.prepare_srgnn(events, pp.SrgnnConfig(1, 0.25), name="y", source="s")
    part = pp.prepare_srgnn(events, pp.SrgnnConfig(1, 0.25, Fraction(1, 3)), name="y", source="s")
    info = part.meta["train_fraction"]
    assert info["truncated_session_items"] is not None  # this data set cuts inside a session
    full_sessions, part_sessions = _sessions(full.train), _sessions(part.train)
    head = full_sessions[len(full_sessions) - len(part_sessions)]
    assert part_sessions[0] == head[: info["truncated_session_items"]]
    assert part_sessions[1:] == full_sessions[len(full_sessions) - len(part_sessions) + 1 :]


def test_srgnn_yoochoose_date_is_last_row_truncated_to_seconds(tmp_path):
    rows = _yoochoose_rows()
    events = readers.read_yoochoose(_write_yoochoose(tmp_path / "clicks.dat", rows))
    data = pp.prepare_srgnn(events, pp.SrgnnConfig(1, 1), name="y", source="s")
    ref = reference_srgnn(rows, "yoochoose", 1)
    assert _sessions(data.train) == ref["train"]
    assert _sessions(data.test) == ref["test"]


def test_srgnn_fraction_that_keeps_nothing_is_an_error(tmp_path):
    events = readers.read_yoochoose(_write_yoochoose(tmp_path / "clicks.dat", _yoochoose_rows()))
    with pytest.raises(DataError, match="keeps none"):
        pp.prepare_srgnn(events, pp.SrgnnConfig(1, 1, Fraction(1, 10_000)), name="y", source="clicks.dat")


# --------------------------------------------------------------------------- #
# standard and presplit
# --------------------------------------------------------------------------- #


def _frame(sessions, start=1_700_000_000.0, gap=60.0):
    """sessions: list of (session id, start offset in days, [items])."""
    rows = [
        (sid, str(item), start + day * DAY + k * gap) for sid, day, items in sessions for k, item in enumerate(items)
    ]
    return pd.DataFrame(rows, columns=["session", "item", "time"])


def test_standard_filters_split_and_vocabulary():
    common = [(s, 0.1 * s, ["a", "b", "c"]) for s in range(1, 6)]  # a, b, c: support 5 in train
    sessions = [
        *common,
        (10, 1.0, ["a"]),  # length 1: dropped
        (11, 1.1, ["a", "rare"]),  # rare item: session left with 1 -> dropped
        (12, 9.5, ["c", "b", "new", "new", "new", "new", "new"]),  # test; "new" is frequent but unseen in train
        (13, 9.6, ["a", "new"]),  # test; after dropping "new" too short
    ]
    data = pp.prepare_standard(_frame(sessions), pp.StandardConfig(test_days=1, valid_days=0.25), name="t", source="t")
    assert data.item_map == {"a": 1, "b": 2, "c": 3}
    assert data.train.session_ids.tolist() == [1, 2, 3, 4, 5]
    assert _sessions(data.test) == [[3, 2]]
    assert data.meta["dropped"]["test"] == {"unseen_item_events": 6, "short_sessions": 1}
    assert data.meta["dropped"]["rare_items"] == 1
    assert data.valid.session_ids.tolist() == [3, 4, 5]  # end after the last train event - 0.25 days
    assert data.train_tr.session_ids.tolist() == [1, 2]


@pytest.mark.filterwarnings("ignore:.*split is empty")
def test_standard_drops_sessions_straddling_the_split():
    sessions = [(s, 0.1 * s, ["a", "b"]) for s in range(1, 7)]
    sessions += [(20, 2.0, ["a", "b", "a"]), (30, 3.5, ["b", "a"])]
    frame = _frame(sessions)
    # session 20 starts before the split (latest event - 1 day) and ends after it
    last = frame["time"].max()
    frame.loc[frame["session"] == 20, "time"] = [last - DAY - 60.0, last - DAY + 60.0, last - DAY + 120.0]
    data = pp.prepare_standard(frame, pp.StandardConfig(test_days=1, valid_days=0.15), name="t", source="t")
    assert 20 not in data.train.session_ids and 20 not in data.test.session_ids
    assert data.test.session_ids.tolist() == [30]
    assert data.meta["dropped"]["straddling_test_split"] == 1


@pytest.mark.filterwarnings("ignore:.*split is empty")
def test_standard_filter_iterations_reach_the_fixed_point():
    # "d" has support 5, but one of its sessions dies in the first pass; the
    # second iteration then drops "d" (support 4)
    sessions = [(s, 0.01 * s, ["a", "b"]) for s in range(1, 8)]
    sessions += [(20 + s, 0.2 + 0.01 * s, ["d", "a"]) for s in range(3)] + [(30, 0.3, ["d", "x"])]
    sessions += [(40, 5.0, ["a", "b", "d"])]
    once = pp.prepare_standard(_frame(sessions), pp.StandardConfig(test_days=1, valid_days=0.1), name="t", source="t")
    config = pp.StandardConfig(test_days=1, valid_days=0.1, filter_iterations=2)
    twice = pp.prepare_standard(_frame(sessions), config, name="t", source="t")
    assert "d" in once.item_map and "d" not in twice.item_map


def test_standard_orders_by_session_start_then_time():
    frame = _frame([(2, 0.5, ["a", "b"]), (1, 0.2, ["b", "a"])] + [(s, 0.1, ["a", "b"]) for s in range(3, 7)])
    frame = frame.iloc[::-1].reset_index(drop=True)  # file order reversed, times unchanged
    frame = pd.concat([frame, _frame([(9, 3.0, ["a", "b"])])], ignore_index=True)
    data = pp.prepare_standard(frame, pp.StandardConfig(test_days=1, valid_days=0.3), name="t", source="t")
    assert data.train.session_ids.tolist() == [6, 5, 4, 3, 1, 2]  # equal starts keep first appearance
    times = data.train.events["time"].to_numpy()
    offsets = data.train.offsets
    assert all(np.all(np.diff(times[a:b]) >= 0) for a, b in zip(offsets[:-1], offsets[1:]))


def test_presplit_drops_unseen_items_and_derives_valid_when_not_given():
    train = _frame([(s, 0.1 * s, ["a", "b", "c"]) for s in range(1, 9)])
    test = _frame([(50, 3.0, ["a", "zz", "b"]), (51, 3.1, ["zz", "a"])])
    sources = {"train": "train.txt", "test": "test.txt"}
    files = {"train": train, "test": test}
    data = pp.prepare_presplit(files, pp.PresplitConfig(valid_days=0.25), name="p", sources=sources)
    assert _sessions(data.test) == [[1, 2]]
    assert data.meta["dropped"]["test"] == {"unseen_item_events": 2, "short_sessions": 1}
    assert data.valid.session_ids.tolist() == [6, 7, 8]
    assert data.train_tr.session_ids.tolist() == [1, 2, 3, 4, 5]


def test_string_session_ids_become_integers():
    frame = _frame([("s1", 0.0, ["a", "b"]), ("s2", 0.1, ["a", "b"])] + [(f"k{s}", 0.2, ["a", "b"]) for s in range(4)])
    frame = pd.concat([frame, _frame([("t", 2.0, ["a", "b"])])])
    data = pp.prepare_standard(frame, pp.StandardConfig(test_days=1, valid_days=0.15), name="t", source="t")
    assert data.train.events["session"].dtype == np.int64
    assert data.train.session_ids.tolist() == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (lambda: pp.SrgnnConfig(test_days=0), "test_days"),
        (lambda: pp.SrgnnConfig(train_fraction=Fraction(3, 2)), "train_fraction"),
        (lambda: pp.StandardConfig(min_session_length=1), "min_session_length"),
        (lambda: pp.StandardConfig(filter_iterations=0), "filter_iterations"),
        (lambda: pp.PresplitConfig(valid_days=-1), "valid_days"),
    ],
)
def test_config_ranges(config, match):
    with pytest.raises(ValueError, match=match):
        config()


# --------------------------------------------------------------------------- #
# leakage guards, on one dataset of each method
# --------------------------------------------------------------------------- #


def _synthetic_like(seed=3, n_sessions=1500, n_items=120, days=20):
    """A random log for the standard method (no dependence on the generator module)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 8, n_sessions)
    starts = 1_700_000_000 + rng.random(n_sessions) * days * DAY
    sid = np.repeat(np.arange(1, n_sessions + 1), lengths)
    pos = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    items = (rng.zipf(1.3, lengths.sum()) % n_items).astype(str)
    return pd.DataFrame({"session": sid, "item": items, "time": np.repeat(starts, lengths) + 45.0 * pos})


@pytest.fixture(scope="module", params=["srgnn", "standard", "presplit"])
def prepared(request):
    if request.param == "srgnn":
        return request.getfixturevalue("diginetica")  # only this variant needs the real sample
    if request.param == "standard":
        config = pp.StandardConfig(test_days=3, valid_days=3)
        return pp.prepare_standard(_synthetic_like(), config, name="s", source="s")
    require_data("yoochoose-100k")
    files = {
        role: readers.read_session_rec(YOOCHOOSE_100K / f"yoochoose-clicks-100k_{stem}.txt")
        for role, stem in [
            ("train", "train_full"), ("test", "test"), ("train_tr", "train_tr"), ("valid", "train_valid")
        ]
    }
    return pp.prepare_presplit(files, pp.PresplitConfig(), name="y", sources={r: r for r in files})


def _session_bounds(split):
    times = split.time_array
    return np.minimum.reduceat(times, split.offsets[:-1]), np.maximum.reduceat(times, split.offsets[:-1])


def test_guard_vocabulary_comes_from_train_only(prepared):
    train_items = set(prepared.train.item_array.tolist())
    assert train_items == set(range(1, prepared.n_items + 1))  # every id occurs in train
    assert sorted(prepared.item_map.values()) == list(range(1, prepared.n_items + 1))
    assert set(prepared.test.item_array.tolist()) <= train_items
    assert set(prepared.valid.item_array.tolist()) <= set(prepared.train_tr.item_array.tolist())
    assert set(prepared.train_tr.item_array.tolist()) <= train_items


def test_guard_test_split_times(prepared):
    """srgnn: a session's date is its last row's eventdate and its event
    times are date + timeframe >= date, so every test session STARTS after the
    split date. standard: every test session STARTS after the split time and
    every train session ends at or before it (straddling sessions are
    dropped). presplit (the 100k files): every test session starts after the
    last train event."""
    train_start, train_end = _session_bounds(prepared.train)
    test_start, test_end = _session_bounds(prepared.test)
    method = prepared.meta["method"]
    if method == "srgnn":
        split = pd.Timestamp(prepared.meta["test_split"]["time"]).timestamp()
        assert test_start.min() > split
        assert (np.floor(train_start / DAY) * DAY).max() < split  # train session dates
    elif method == "standard":
        split = pd.Timestamp(prepared.meta["test_split"]["time"]).timestamp()
        assert test_start.min() > split >= train_end.max()
        valid_start, _ = _session_bounds(prepared.valid)
        _, train_tr_end = _session_bounds(prepared.train_tr)
        valid_split = pd.Timestamp(prepared.meta["valid_split"]["time"]).timestamp()
        assert valid_start.min() > valid_split >= train_tr_end.max()
    else:
        assert test_start.min() > train_end.max()


def test_guard_valid_is_later_than_train_tr(prepared):
    tr_start, tr_end = _session_bounds(prepared.train_tr)
    va_start, va_end = _session_bounds(prepared.valid)
    method = prepared.meta["method"]
    if method == "srgnn":
        cut = pd.Timestamp(prepared.meta["valid_split"]["time"]).timestamp()
        assert va_start.min() > cut >= (np.floor(tr_start / DAY) * DAY).max()
    elif method == "standard":
        cut = pd.Timestamp(prepared.meta["valid_split"]["time"]).timestamp()
        assert va_end.min() > cut >= tr_end.max()
    else:
        assert va_end.min() > tr_end.max()
    assert not set(prepared.valid.session_ids.tolist()) & set(prepared.train_tr.session_ids.tolist())
    assert set(prepared.train_tr.session_ids.tolist()) | set(prepared.valid.session_ids.tolist()) <= set(
        prepared.train.session_ids.tolist()
    )


@pytest.mark.parametrize("split", ["test", "valid"])
def test_guard_prefix_never_contains_its_target_or_later_items(prepared, split):
    cases = prepared.prefixes(split)
    every = np.arange(len(cases))
    batch = cases.batch(every)
    nxt, rest = cases.next_items(every).numpy(), cases.remaining_items(every).numpy()
    items, lengths = batch.items.numpy(), batch.lengths.numpy()
    sessions = [s for s in prepared.split(split).sessions()]
    for row in np.random.default_rng(0).choice(len(cases), size=min(300, len(cases)), replace=False):
        session, t = sessions[cases.session_index[row]], lengths[row]
        assert items[row, :t].tolist() == session[:t].tolist()
        assert not items[row, t:].any()
        assert nxt[row] == session[t]
        assert rest[row][rest[row] > 0].tolist() == session[t:].tolist()
    # and the batch never holds more than t items: no case sees its own target position
    assert np.all((items > 0).sum(axis=1) == lengths)


def test_guard_sessions_contiguous_and_ordered_by_start(prepared):
    for name in ("train", "test", "valid"):
        split = prepared.split(name)
        assert len(set(split.session_ids.tolist())) == split.n_sessions  # each session one block
        start, _ = _session_bounds(split)
        if prepared.meta["method"] == "srgnn":  # ordered by session date
            assert np.all(np.diff(np.floor(start / DAY)) >= 0)
        else:
            assert np.all(np.diff(start) >= 0)

"""Full-size stand-ins for YOOCHOOSE and DIGINETICA, generated without downloads.

The scale suite needs raw files of the real sizes in the exact competition
formats, so that reading, preprocessing and training are measured at the
paper's scale where the real files cannot be downloaded. :func:`generate`
writes, from one seed:

- ``yoochoose-clicks.dat`` (RecSys Challenge 2015), no header,
  ``session_id,timestamp,item_id,category`` with ISO timestamps
  (``2014-04-07T10:51:09.277Z``) from April to September 2014; at scale 1:
  33,003,944 rows, about 9.25 million sessions, 52,739 items;
- ``train-item-views.csv`` (CIKM Cup 2016), header
  ``sessionId;userId;itemId;timeframe;eventdate`` (``userId`` mostly ``NA``,
  ``timeframe`` in milliseconds within the day, ``eventdate`` ``YYYY-MM-DD``
  from January to May 2016); at scale 1: 1,235,380 rows, about 310,000
  sessions over 184,047 items, of which about 43,000 survive the SR-GNN
  filtering (items seen fewer than 5 times).

How the clicks are drawn (numpy, one vectorised step per click position,
never a Python loop per row or session):

- session lengths: ``1 + NegativeBinomial`` with the real mean (3.57 and
  3.98 clicks), a long tail, then the last session cut so the row count is
  exact (``round(rows * scale)``);
- session starts uniform over the period, except that the presets' test
  window (the last day of YOOCHOOSE, the last 7 days of DIGINETICA) gets
  the real files' share of the sessions; session ids increase with time;
  gaps between clicks exponential (mean 90 s);
- items: the first click of a session from a Zipf-like popularity
  ``p(rank r) ~ 1 / (r + 10)^a``; each later click with probability 0.5 one
  of the previous item's 4 fixed "successors" (so that sequence models have
  something to learn), else a fresh popularity draw;
- item ids: distinct random numbers in the ranges of the real files.

Why the test window has its own share: the real logs' daily volume is not
constant, and the test splits are cut by date. YOOCHOOSE's last day holds
15,324 sessions of 71,222 clicks after filtering (GRU4Rec paper), 55,898 test
cases against 23,670,982 training prefixes: 0.24 % of the prefixes, less
than half of the 0.55 % a uniform spread over 183 days gives (which made
128,854 test cases); DIGINETICA's last week holds 60,858 of 780,328 prefixes
(SR-GNN paper), 7.8 % instead of 4.6 % (32,738 test cases). The share is
taken over sessions, so the test cases follow it as long as session lengths
and item filtering are alike in and out of the window. With seed 0 the
presets' test splits have 55,428 cases (YOOCHOOSE 1/64 and 1/4; real:
55,898) and 54,900 (DIGINETICA; real: 60,858, the stand-in's training
split being smaller in the same proportion: 653,333 prefixes against
719,470, as its item filter removes more).

The presets ``yoochoose-1-64``, ``yoochoose-1-4`` and ``diginetica`` read
the files unchanged (``sessionbench run ... --data-dir DIR``). These are
not the real data: use them for timing and memory at scale, never for
accuracy claims.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: the datasets :func:`generate` knows
DATASETS = ("yoochoose", "diginetica")


@dataclass(frozen=True)
class Shape:
    """What a generated dataset looks like at scale 1."""

    file: str
    rows: int
    mean_length: float
    n_items: int
    zipf_a: float
    start: str  # first day (UTC)
    days: int
    id_low: int  # item ids are drawn from [id_low, id_high)
    id_high: int
    window_days: int  # the presets' test window: the last days of the period
    window_share: float  # share of the sessions that start in it


#: YOOCHOOSE's test window (the last day) holds 55,898 of the 23,726,880 prefixes
#: (training: 31,637,239 clicks - 7,966,257 sessions = 23,670,982, whose last
#: quarter, rounded down, is the 5,917,745 of 1/4): 0.24 %, where a uniform
#: spread over 183 days puts 0.55 % of the sessions in the last day.
YOOCHOOSE_WINDOW_SHARE = 55_898 / (31_637_239 - 7_966_257 + 55_898)
#: DIGINETICA's test window (the last 7 days) holds 60,858 of the 780,328
#: prefixes: 7.8 %, where a uniform spread over 152 days puts 4.6 % there.
DIGINETICA_WINDOW_SHARE = 60_858 / (719_470 + 60_858)


SHAPES = {
    "yoochoose": Shape("yoochoose-clicks.dat", 33_003_944, 3.568, 52_739, 1.05, "2014-04-01", 183,
                       214_500_000, 215_000_000, 1, YOOCHOOSE_WINDOW_SHARE),
    "diginetica": Shape("train-item-views.csv", 1_235_380, 3.98, 184_047, 0.86, "2016-01-01", 152, 1, 200_000,
                        7, DIGINETICA_WINDOW_SHARE),
}

#: mean seconds between two clicks of a session
MEAN_GAP_S = 90.0
#: probability that a click follows its predecessor's successor list
FOLLOW = 0.5
#: successors per item
N_SUCCESSORS = 4


def generate(dataset: str, out_dir: str | Path, *, scale: float = 1.0, seed: int = 0) -> Path:
    """Write the raw file of ``dataset`` (``yoochoose`` or ``diginetica``)
    with ``round(rows * scale)`` rows into ``out_dir``; returns its path.
    The same seed and scale give the same bytes."""
    from harness.errors import ConfigError

    if dataset not in SHAPES:
        raise ConfigError(f"unknown dataset {dataset!r} to generate; expected one of {', '.join(DATASETS)}")
    if not isinstance(scale, (int, float)) or not 0 < scale <= 1:
        raise ConfigError(f"--scale must be a number in (0, 1], got {scale!r}")
    shape = SHAPES[dataset]
    rng = np.random.default_rng([seed, DATASETS.index(dataset)])
    clicks = draw_clicks(shape, max(2, round(shape.rows * scale)), rng)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / shape.file
    writer = _write_yoochoose if dataset == "yoochoose" else _write_diginetica
    writer(path, clicks, shape, rng)
    return path


@dataclass
class Clicks:
    """Generated clicks, sorted by session then time: ``session`` (int64,
    1-based, increasing with the session's start), ``item`` (index into the
    item ids, int64), ``ms`` (int64 milliseconds since the period's start)."""

    session: np.ndarray
    item: np.ndarray
    ms: np.ndarray
    item_ids: np.ndarray


def session_lengths(rows: int, mean: float, rng: np.random.Generator) -> np.ndarray:
    """Lengths >= 1 with mean about ``mean`` summing to exactly ``rows``."""
    extra = mean - 1.0
    n = max(1, int(rows / mean * 1.05) + 16)
    # negative binomial with r=0.6: variance well above the mean (long sessions exist)
    r = 0.6
    lengths = 1 + rng.negative_binomial(r, r / (r + extra), size=n)
    lengths = np.minimum(lengths, 200)
    while lengths.sum() < rows:  # rarely: draw more
        lengths = np.concatenate([lengths, 1 + rng.negative_binomial(r, r / (r + extra), size=n // 10 + 16)])
    ends = np.cumsum(lengths)
    last = int(np.searchsorted(ends, rows))  # first session reaching `rows`
    lengths = lengths[: last + 1].copy()
    lengths[-1] -= int(ends[last] - rows)
    return lengths


#: no session starts in the period's last hour (so that every click stays within it)
LAST_HOUR_MS = 3_600_000


def session_starts(shape: Shape, n_sessions: int, rng: np.random.Generator) -> np.ndarray:
    """Unsorted start times (ms since the period's start) of ``n_sessions``
    sessions: ``round(n_sessions * window_share)`` of them uniform over the
    test window (the last ``window_days`` days before the last hour), the
    others uniform over the days before it."""
    end = shape.days * 86_400_000 - LAST_HOUR_MS
    window_start = end - shape.window_days * 86_400_000
    in_window = round(n_sessions * shape.window_share)
    return np.concatenate([rng.integers(0, window_start, size=n_sessions - in_window),
                           rng.integers(window_start, end, size=in_window)])


def draw_clicks(shape: Shape, rows: int, rng: np.random.Generator) -> Clicks:
    """The clicks of :class:`Clicks` for ``rows`` rows of ``shape``."""
    lengths = session_lengths(rows, shape.mean_length, rng)
    n_sessions, n_items = len(lengths), shape.n_items
    offsets = np.concatenate([[0], np.cumsum(lengths)])

    rank = np.arange(n_items, dtype=np.float64)
    cdf = np.cumsum(1.0 / (rank + 10.0) ** shape.zipf_a)
    cdf /= cdf[-1]
    successors = np.minimum(np.searchsorted(cdf, rng.random((n_items, N_SUCCESSORS))), n_items - 1)

    item = np.minimum(np.searchsorted(cdf, rng.random(rows)), n_items - 1)  # fresh popularity draws
    follow = rng.random(rows) < FOLLOW
    pick = rng.integers(0, N_SUCCESSORS, size=rows)
    # one vectorised step per position: click t depends on click t-1 of its session
    for t in range(1, int(lengths.max())):
        rows_t = offsets[:-1][lengths > t] + t
        rows_t = rows_t[follow[rows_t]]
        item[rows_t] = successors[item[rows_t - 1], pick[rows_t]]

    starts = np.sort(session_starts(shape, n_sessions, rng))  # ids increase with time
    gaps = rng.exponential(MEAN_GAP_S * 1000.0, size=rows).astype(np.int64) + 1
    gaps[offsets[:-1]] = 0
    within = np.cumsum(gaps)
    within -= np.repeat(within[offsets[:-1]], lengths)
    ms = np.repeat(starts, lengths) + within
    ids = np.sort(rng.choice(np.arange(shape.id_low, shape.id_high), size=n_items, replace=False))
    item_ids = rng.permutation(ids)  # popularity rank is not id order
    return Clicks(np.repeat(np.arange(1, n_sessions + 1, dtype=np.int64), lengths), item, ms, item_ids)


#: rows formatted and written at a time (bounds the memory of the text columns)
CHUNK_ROWS = 2_000_000


def _write_csv(path: Path, n_rows: int, chunk, columns: tuple[str, ...], *, header: bool, delimiter: str) -> None:
    """Write ``chunk(lo, hi) -> {column: array}`` for consecutive row ranges,
    unquoted (as the competition files are); the header line by hand since
    pyarrow quotes header names. Written under a temporary name first."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    options = pacsv.WriteOptions(include_header=False, delimiter=delimiter, quoting_style="none",
                                 batch_size=1 << 16)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        if header:
            handle.write((delimiter.join(columns) + "\n").encode())
        for lo in range(0, n_rows, CHUNK_ROWS):
            pacsv.write_csv(pa.table(chunk(lo, min(lo + CHUNK_ROWS, n_rows))), handle, write_options=options)
    tmp.replace(path)  # never a half-written file under the real name


def _digits(out: np.ndarray, column: int, values: np.ndarray, width: int) -> None:
    """Write ``values`` as ``width`` zero-padded ASCII digits into ``out[:, column:column + width]``."""
    for k in range(width - 1, -1, -1):
        out[:, column + k] = 48 + values % 10
        values = values // 10


def iso_timestamps(start_day: str, ms: np.ndarray):
    """pyarrow strings ``YYYY-MM-DDTHH:MM:SS.mmmZ`` of ``ms`` milliseconds
    after midnight (UTC) of ``start_day``: fixed-width bytes built with
    numpy (pyarrow's strftime is many times slower)."""
    import pyarrow as pa

    day, in_day = np.divmod(ms, 86_400_000)
    dates = np.datetime64(start_day, "D") + np.arange(int(day.max(initial=0)) + 1).astype("timedelta64[D]")
    table = np.frombuffer("".join(np.datetime_as_string(dates, unit="D")).encode(), np.uint8).reshape(-1, 10)
    out = np.empty((len(ms), 24), np.uint8)
    out[:, :10] = table[day]
    out[:, [10, 13, 16, 19, 23]] = np.frombuffer(b"T::.Z", np.uint8)
    seconds, millis = np.divmod(in_day, 1000)
    _digits(out, 11, seconds // 3600, 2)
    _digits(out, 14, seconds // 60 % 60, 2)
    _digits(out, 17, seconds % 60, 2)
    _digits(out, 20, millis, 3)
    offsets = np.arange(0, 24 * len(ms) + 1, 24, dtype=np.int64)
    return pa.Array.from_buffers(pa.large_string(), len(ms), [None, pa.py_buffer(offsets), pa.py_buffer(out)])


def _write_yoochoose(path: Path, clicks: Clicks, shape: Shape, rng: np.random.Generator) -> None:
    import pyarrow as pa

    # categories as in the real file: mostly "0", some "S" (special offer), 1-12, brand numbers
    kinds = pa.array(["0", "S", *[str(c) for c in range(1, 13)], *[str(2089000000 + 7 * b) for b in range(40)]])
    weights = np.array([0.5, 0.05, *[0.025] * 12, *[0.15 / 40] * 40])
    item_category = rng.choice(len(kinds), size=shape.n_items, p=weights / weights.sum())
    category = np.where(rng.random(len(clicks.item)) < 0.6, 0, item_category[clicks.item]).astype(np.int32)

    def chunk(lo: int, hi: int) -> dict:
        return {"session_id": clicks.session[lo:hi], "timestamp": iso_timestamps(shape.start, clicks.ms[lo:hi]),
                "item_id": clicks.item_ids[clicks.item[lo:hi]],
                "category": pa.DictionaryArray.from_arrays(category[lo:hi], kinds).cast(pa.string())}

    _write_csv(path, len(clicks.item), chunk, ("session_id", "timestamp", "item_id", "category"), header=False,
               delimiter=",")


def _write_diginetica(path: Path, clicks: Clicks, shape: Shape, rng: np.random.Generator) -> None:
    import pyarrow as pa

    # a session stays within its day: the day of its start, timeframe = ms since that midnight
    first = np.flatnonzero(np.r_[True, clicks.session[1:] != clicks.session[:-1]])
    lengths = np.diff(np.r_[first, len(clicks.session)])
    day = np.repeat(clicks.ms[first] // 86_400_000, lengths)
    timeframe = np.minimum(clicks.ms - day * 86_400_000, 86_399_999)
    dates = np.datetime64(shape.start, "D") + np.arange(shape.days).astype("timedelta64[D]")
    date_strings = pa.array(np.datetime_as_string(dates, unit="D"))
    n_sessions = len(first)
    users = np.where(rng.random(n_sessions) < 0.8, 0, rng.integers(1, 60_000, size=n_sessions))
    user = np.repeat(users, lengths).astype(np.int32)
    user_strings = pa.array(np.r_[["NA"], np.arange(1, 60_000).astype(str)])
    day = day.astype(np.int32)

    def chunk(lo: int, hi: int) -> dict:
        return {"sessionId": clicks.session[lo:hi],
                "userId": pa.DictionaryArray.from_arrays(user[lo:hi], user_strings).cast(pa.string()),
                "itemId": clicks.item_ids[clicks.item[lo:hi]], "timeframe": timeframe[lo:hi],
                "eventdate": pa.DictionaryArray.from_arrays(day[lo:hi], date_strings).cast(pa.string())}

    _write_csv(path, len(clicks.item), chunk, ("sessionId", "userId", "itemId", "timeframe", "eventdate"),
               header=True, delimiter=";")


def generate_all(out_dir: str | Path, datasets=DATASETS, *, scale: float = 1.0, seed: int = 0,
                 echo=lambda line: None) -> list[Path]:
    """:func:`generate` for each of ``datasets``; ``echo`` gets one line per file."""
    paths = []
    for name in datasets:
        start = time.perf_counter()
        path = generate(name, out_dir, scale=scale, seed=seed)
        echo(f"{name}: {path} ({path.stat().st_size / 1e6:,.1f} MB, {time.perf_counter() - start:.1f} s)")
        paths.append(path)
    return paths

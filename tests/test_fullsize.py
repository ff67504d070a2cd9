"""The full-size generator at small scale: exact row counts, the raw
competition formats, determinism, and the presets preparing from its files."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.data.fullsize import LAST_HOUR_MS, SHAPES, generate, iso_timestamps, session_lengths, session_starts
from harness.data.specs import load_dataset

SCALES = {"yoochoose": 0.002, "diginetica": 0.02}


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    out = tmp_path_factory.mktemp("fullsize")
    return {name: generate(name, out, scale=scale, seed=7) for name, scale in SCALES.items()}


def test_session_lengths_sum_exactly_with_the_real_mean():
    lengths = session_lengths(100_000, 3.568, np.random.default_rng(0))
    assert lengths.sum() == 100_000 and lengths.min() >= 1
    assert 3.3 < lengths.mean() < 3.8 and lengths.max() > 20


@pytest.mark.parametrize("name", ["yoochoose", "diginetica"])
def test_the_test_window_holds_its_share_of_the_session_starts(name):
    shape = SHAPES[name]
    starts = session_starts(shape, 200_000, np.random.default_rng(0))
    end = shape.days * 86_400_000 - LAST_HOUR_MS
    window = starts >= end - shape.window_days * 86_400_000
    assert starts.min() >= 0 and starts.max() < end
    assert window.sum() == round(200_000 * shape.window_share)
    # outside the window: uniform over the earlier days (deciles of equal size)
    before = np.sort(starts[~window])
    deciles = np.searchsorted(before, np.linspace(0, end - shape.window_days * 86_400_000, 11))
    assert np.diff(deciles) == pytest.approx(np.full(10, len(before) / 10), rel=0.05)


def test_iso_timestamps_equal_numpy_formatting():
    ms = np.random.default_rng(1).integers(0, 183 * 86_400_000, size=1000)
    expected = np.datetime_as_string(np.datetime64("2014-04-01", "ms") + ms.astype("timedelta64[ms]"), unit="ms")
    assert iso_timestamps("2014-04-01", ms).to_pylist() == [s + "Z" for s in expected]


def test_yoochoose_file_has_the_competition_format(raw):
    path = raw["yoochoose"]
    lines = path.read_text().splitlines()
    assert len(lines) == round(SHAPES["yoochoose"].rows * SCALES["yoochoose"])
    row = re.compile(r"\d+,2014-(0[4-9])-\d\dT\d\d:\d\d:\d\d\.\d{3}Z,\d{9},(0|S|\d{1,2}|\d{10})")
    assert all(row.fullmatch(line) for line in lines)
    frame = pd.read_csv(path, header=None, names=["session", "time", "item", "category"])
    assert frame["session"].is_monotonic_increasing
    times = pd.to_datetime(frame["time"])
    assert (times.groupby(frame["session"]).diff().dropna() >= pd.Timedelta(0)).all()
    assert frame.groupby("session").size().mean() == pytest.approx(3.568, rel=0.1)


def test_diginetica_file_has_the_competition_format(raw):
    lines = raw["diginetica"].read_text().splitlines()
    assert lines[0] == "sessionId;userId;itemId;timeframe;eventdate"
    assert len(lines) - 1 == round(SHAPES["diginetica"].rows * SCALES["diginetica"])
    row = re.compile(r"\d+;(NA|\d+);\d+;\d+;2016-0[1-5]-\d\d")
    assert all(row.fullmatch(line) for line in lines[1:])


def test_same_seed_same_bytes_other_seed_other_bytes(raw, tmp_path):
    again = generate("diginetica", tmp_path / "a", scale=SCALES["diginetica"], seed=7)
    other = generate("diginetica", tmp_path / "b", scale=SCALES["diginetica"], seed=8)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (raw["diginetica"], again, other)]
    assert digest[0] == digest[1] != digest[2]


@pytest.mark.parametrize("preset", ["yoochoose-1-64", "yoochoose-1-4", "diginetica"])
def test_presets_prepare_from_the_generated_files(preset, raw, tmp_path, monkeypatch):
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(tmp_path / "cache"))
    data = load_dataset(preset, data_dir=raw["yoochoose"].parent)
    assert data.n_items > 100
    assert data.train.n_sessions > 100 and data.test.n_prefixes > 10 and data.valid.n_prefixes > 0


def test_diginetica_test_split_has_the_real_share_of_the_prefixes(raw, tmp_path, monkeypatch):
    # the real split: 60,858 test cases against 719,470 training prefixes (7.8 %)
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(tmp_path / "cache"))
    data = load_dataset("diginetica", data_dir=raw["diginetica"].parent)
    share = data.test.n_prefixes / (data.test.n_prefixes + data.train.n_prefixes)
    assert share == pytest.approx(60_858 / (60_858 + 719_470), rel=0.25)


def test_cli_generate_and_its_errors(tmp_path, capsys):
    assert main(["datasets", "generate", "diginetica", "--out", str(tmp_path), "--scale", "0.001"]) == 0
    assert (tmp_path / "train-item-views.csv").is_file()
    assert "train-item-views.csv" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["datasets", "generate", "diginetica", "--out", str(tmp_path), "--scale", "1.5"])
    assert exit_.value.code == 2
    assert "expected a fraction in (0, 1]" in capsys.readouterr().err

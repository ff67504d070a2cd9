"""Dataset specs, presets, raw-file lookup and the prepared-data cache."""

from __future__ import annotations

import json
import os
import shutil
from fractions import Fraction

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from data_paths import DATA_ROOT, DIGINETICA_SAMPLE, YOOCHOOSE_100K, require_data

import harness.data.synthetic
from harness.data import preprocess, readers, specs
from harness.errors import ConfigError

PRESETS = {"diginetica", "diginetica-sample", "yoochoose-1-64", "yoochoose-1-4", "yoochoose-100k", "synthetic",
           "synthetic-100k"}

SPEC_TEMPLATE = """\
name: mini
description: a copy of the DIGINETICA sample
source: tests
format: diginetica
files:
  events: sample_train-item-views.csv
preprocess:
  method: srgnn
  test_days: {test_days}
  valid_days: {valid_days}
"""


def _write_spec(path, **values):
    path.write_text(SPEC_TEMPLATE.format(**{"test_days": 7, "valid_days": 7, **values}))
    return path


@pytest.fixture
def raw_copy(tmp_path):
    """A private copy of the DIGINETICA sample that a test may change."""
    require_data("diginetica-sample")
    folder = tmp_path / "raw"
    folder.mkdir()
    shutil.copy(DIGINETICA_SAMPLE, folder / DIGINETICA_SAMPLE.name)
    return folder


def _assert_same_dataset(a, b):
    assert (a.name, a.n_items) == (b.name, b.n_items)
    assert list(a.item_map.items()) == list(b.item_map.items())
    for split in ("train", "train_tr", "valid", "test"):
        pdt.assert_frame_equal(a.split(split).events, b.split(split).events)
    strip = lambda meta: {k: v for k, v in meta.items() if k != "cache"}  # noqa: E731
    assert strip(a.meta) == strip(b.meta)


# --------------------------------------------------------------------------- #
# presets
# --------------------------------------------------------------------------- #


def test_presets_are_valid_and_described():
    presets = specs.list_presets()
    assert {p.name for p in presets} == PRESETS
    for spec in presets:
        assert spec.path.stem == spec.name
        assert spec.description and spec.source
        assert spec.format == "synthetic" or spec.files
        json.dumps(spec.describe())
    assert "CIKM Cup 2016" in specs.load_spec("diginetica").source
    assert "RecSys Challenge 2015" in specs.load_spec("yoochoose-1-64").source
    assert "session-rec" in specs.load_spec("yoochoose-100k").source


def test_yoochoose_presets_keep_fractions_exact():
    assert specs.load_spec("yoochoose-1-64").preprocess.train_fraction == Fraction(1, 64)
    assert specs.load_spec("yoochoose-1-4").preprocess.train_fraction == Fraction(1, 4)


@pytest.mark.data("diginetica-sample")
def test_diginetica_preset_on_the_sample(tmp_path):
    data = specs.load_dataset("diginetica", data_dir=DATA_ROOT / "diginetica-sample", cache_dir=tmp_path)
    assert (data.train.n_sessions, data.test.n_sessions, data.n_items) == (469, 39, 309)
    assert data.train.n_prefixes == 1_205
    assert len(data.prefixes("test")) == 99
    assert (data.train_tr.n_sessions, data.valid.n_sessions) == (450, 14)
    assert (data.train_tr.n_prefixes, data.valid.n_prefixes) == (1_137, 36)
    assert data.meta["raw_files"]["events"]["sha256"] == (
        "98da96e05c87ef12b739e4bfd9bc7b4864106ee77371f1db9eb4413e3f78d37e"
    )


@pytest.mark.data("diginetica-sample", "yoochoose-100k")
def test_data_dir_lookup_searches_named_folders(monkeypatch, tmp_path):
    found = specs.resolve_raw_files(specs.load_spec("diginetica"), DATA_ROOT)
    assert found == {"events": DIGINETICA_SAMPLE}
    monkeypatch.setenv("SESSIONBENCH_DATA", str(DATA_ROOT))
    assert specs.resolve_raw_files(specs.load_spec("yoochoose-100k"))["test"] == (
        YOOCHOOSE_100K / "yoochoose-clicks-100k_test.txt"
    )
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(tmp_path / "env-cache"))
    data = specs.load_dataset("diginetica")
    assert data.meta["cache"]["path"].startswith(str(tmp_path / "env-cache"))


@pytest.mark.data("yoochoose-100k")
def test_yoochoose_100k_preset(tmp_path):
    data = specs.load_dataset("yoochoose-100k", data_dir=DATA_ROOT, cache_dir=tmp_path)
    counts = {
        split: (data.split(split).n_sessions, data.split(split).n_events, data.split(split).n_prefixes)
        for split in ("train", "train_tr", "valid", "test")
    }
    assert data.n_items == 2_933
    assert counts == {
        "train": (17_794, 70_278, 52_484),
        "train_tr": (13_629, 53_254, 39_625),
        "valid": (4_084, 16_539, 12_455),
        "test": (3_416, 13_568, 10_152),
    }
    assert len(data.prefixes("test")) == 10_152
    assert data.meta["dropped"]["test"] == {"unseen_item_events": 0, "short_sessions": 0}


def test_yoochoose_preset_on_a_small_raw_file(tmp_path):
    rng = np.random.default_rng(1)
    lines, start = [], pd.Timestamp("2014-04-01", tz="UTC")
    for session in range(1, 301):
        begin = start + pd.Timedelta(seconds=int(rng.integers(0, 6 * 86400)))
        for k in range(int(rng.integers(1, 6))):
            stamp = (begin + pd.Timedelta(seconds=20 * k)).strftime("%Y-%m-%dT%H:%M:%S.123Z")
            lines.append(f"{session},{stamp},{rng.integers(100, 130)},0")
    (tmp_path / "yoochoose-clicks.dat").write_text("\n".join(lines) + "\n")
    data = specs.load_dataset("yoochoose-1-4", data_dir=tmp_path, cache_dir=tmp_path / "cache")
    direct = preprocess.prepare_srgnn(
        readers.read_yoochoose(tmp_path / "yoochoose-clicks.dat"),
        preprocess.SrgnnConfig(test_days=1, valid_days=1, train_fraction=Fraction(1, 4)),
        name="yoochoose-1-4",
        source="x",
    )
    pdt.assert_frame_equal(data.train.events, direct.train.events)
    assert data.meta["train_fraction"]["fraction"] == "1/4"
    assert data.train.n_prefixes == data.meta["train_fraction"]["prefixes_total"] // 4


# --------------------------------------------------------------------------- #
# cache
# --------------------------------------------------------------------------- #


def test_second_load_hits_the_cache_and_equals_the_first(monkeypatch, raw_copy, tmp_path):
    spec = _write_spec(tmp_path / "mini.yaml")
    first = specs.load_dataset(spec, data_dir=raw_copy, cache_dir=tmp_path / "cache")
    assert first.meta["cache"]["hit"] is False

    def no_prepare(*args, **kwargs):
        raise AssertionError("prepared again instead of reading the cache")

    monkeypatch.setattr(specs, "_prepare", no_prepare)
    second = specs.load_dataset(spec, data_dir=raw_copy, cache_dir=tmp_path / "cache")
    assert second.meta["cache"]["hit"] is True
    assert second.meta["cache"]["key"] == first.meta["cache"]["key"]
    _assert_same_dataset(first, second)


def test_changed_raw_file_prepares_again(raw_copy, tmp_path):
    spec = _write_spec(tmp_path / "mini.yaml")
    first = specs.load_dataset(spec, data_dir=raw_copy, cache_dir=tmp_path / "cache")
    path = raw_copy / DIGINETICA_SAMPLE.name
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-200]))  # same name, other content
    second = specs.load_dataset(spec, data_dir=raw_copy, cache_dir=tmp_path / "cache")
    assert second.meta["cache"]["hit"] is False
    assert second.meta["cache"]["key"] != first.meta["cache"]["key"]
    assert second.meta["raw_files"]["events"]["sha256"] != first.meta["raw_files"]["events"]["sha256"]


def test_changed_spec_prepares_again(raw_copy, tmp_path):
    spec = _write_spec(tmp_path / "mini.yaml")
    first = specs.load_dataset(spec, data_dir=raw_copy, cache_dir=tmp_path / "cache")
    _write_spec(spec, valid_days=3)
    second = specs.load_dataset(spec, data_dir=raw_copy, cache_dir=tmp_path / "cache")
    assert second.meta["cache"]["hit"] is False
    assert second.meta["cache"]["key"] != first.meta["cache"]["key"]
    assert second.valid.n_sessions != first.valid.n_sessions
    # the description does not change the data, so it shares the cache
    spec.write_text(spec.read_text().replace("a copy of", "another copy of"))
    assert specs.load_dataset(spec, data_dir=raw_copy, cache_dir=tmp_path / "cache").meta["cache"]["hit"] is True


def test_interrupted_cache_write_leaves_nothing(monkeypatch, raw_copy, tmp_path):
    spec = _write_spec(tmp_path / "mini.yaml")
    cache = tmp_path / "cache"
    real = pd.DataFrame.to_parquet
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # e.g. Ctrl-C half-way
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", failing)
    with pytest.raises(KeyboardInterrupt):
        specs.load_dataset(spec, data_dir=raw_copy, cache_dir=cache)
    assert list(cache.iterdir()) == []
    monkeypatch.setattr(pd.DataFrame, "to_parquet", real)
    assert specs.load_dataset(spec, data_dir=raw_copy, cache_dir=cache).meta["cache"]["hit"] is False
    assert [p.name.startswith("mini-") for p in cache.iterdir()] == [True]


def test_a_concurrent_writer_that_finished_first_is_kept(monkeypatch, raw_copy, tmp_path):
    spec = _write_spec(tmp_path / "mini.yaml")
    real_rename = os.rename

    def race(src, dst):
        shutil.copytree(src, dst)  # the other process renames its copy into place first
        real_rename(src, dst)  # ours then fails: the folder exists and is not empty

    monkeypatch.setattr(os, "rename", race)
    first = specs.load_dataset(spec, data_dir=raw_copy, cache_dir=tmp_path / "cache")
    monkeypatch.setattr(os, "rename", real_rename)
    assert [p.name.startswith("mini-") for p in (tmp_path / "cache").iterdir()] == [True]
    second = specs.load_dataset(spec, data_dir=raw_copy, cache_dir=tmp_path / "cache")
    assert second.meta["cache"]["hit"] is True
    _assert_same_dataset(first, second)


def test_unreadable_cache_folder_is_prepared_again(raw_copy, tmp_path):
    spec = _write_spec(tmp_path / "mini.yaml")
    first = specs.load_dataset(spec, data_dir=raw_copy, cache_dir=tmp_path / "cache")
    folder = tmp_path / "cache" / first.meta["cache"]["path"].rsplit("/", 1)[-1]
    (folder / "test.parquet").write_bytes(b"not parquet")
    again = specs.load_dataset(spec, data_dir=raw_copy, cache_dir=tmp_path / "cache")
    assert again.meta["cache"]["hit"] is False
    _assert_same_dataset(first, again)


# --------------------------------------------------------------------------- #
# synthetic specs
# --------------------------------------------------------------------------- #

SYNTHETIC_SPEC = """\
name: synth
description: tiny synthetic
source: generated
format: synthetic
generator:
  n_sessions: 400
  n_items: 30
  seed: 5
  days: 10
  transition_prob: "5e-1"
preprocess:
  method: standard
  test_days: 2
  valid_days: 2
"""


def fake_generate_events(*, n_sessions, n_items, seed, days, **structure):
    """A stand-in for harness.data.synthetic.generate_events with its signature."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 6, n_sessions)
    starts = 1_704_067_200 + np.sort(rng.random(n_sessions)) * days * 86400
    pos = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    events = pd.DataFrame(
        {
            "session": np.repeat(np.arange(1, n_sessions + 1, dtype=np.int64), lengths),
            "item": rng.integers(1, n_items + 1, lengths.sum()).astype(np.int64),
            "time": np.repeat(starts, lengths) + 30.0 * pos,
        }
    )
    return events, {"generator": "fake", "structure": structure, "successor": list(range(n_items + 1))}


def test_synthetic_spec_with_a_fake_generator(monkeypatch, tmp_path):
    monkeypatch.setattr(harness.data.synthetic, "generate_events", fake_generate_events)
    spec = tmp_path / "synth.yaml"
    spec.write_text(SYNTHETIC_SPEC)
    data = specs.load_dataset(spec, cache_dir=tmp_path / "cache")
    assert data.meta["generator"]["generator"] == "fake"
    assert data.meta["generator"]["structure"] == {"transition_prob": 0.5}  # "5e-1" read as a number
    assert data.train.n_sessions > 0 and data.test.n_sessions > 0
    assert set(data.test.item_array.tolist()) <= set(data.train.item_array.tolist())
    again = specs.load_dataset(spec, cache_dir=tmp_path / "cache")
    assert again.meta["cache"]["hit"] is True
    _assert_same_dataset(data, again)
    spec.write_text(SYNTHETIC_SPEC.replace("seed: 5", "seed: 6"))
    assert specs.load_dataset(spec, cache_dir=tmp_path / "cache").meta["cache"]["hit"] is False


def test_synthetic_generator_errors_name_the_spec(monkeypatch, tmp_path):
    def strict(**kwargs):
        raise ConfigError("unknown structure parameter 'wobble'")

    monkeypatch.setattr(harness.data.synthetic, "generate_events", strict)
    spec = tmp_path / "synth.yaml"
    spec.write_text(SYNTHETIC_SPEC)
    with pytest.raises(ConfigError, match=r"synth\.yaml: key 'generator': unknown structure parameter 'wobble'"):
        specs.load_dataset(spec, cache_dir=tmp_path / "cache")


def test_synthetic_preset_with_the_real_generator(tmp_path):
    data = specs.load_dataset("synthetic", cache_dir=tmp_path)
    assert data.meta["generator"]["params"]["n_sessions"] == 8000
    assert 500 < data.n_items <= 1000
    assert data.test.n_sessions > 100 and data.valid.n_sessions > 100
    assert set(data.train.item_array.tolist()) == set(range(1, data.n_items + 1))
    assert specs.load_dataset("synthetic", cache_dir=tmp_path).meta["cache"]["hit"] is True


# --------------------------------------------------------------------------- #
# spec values
# --------------------------------------------------------------------------- #


def test_numbers_may_be_strings_and_fractions_stay_exact(tmp_path):
    path = tmp_path / "y.yaml"
    path.write_text(
        "name: y\ndescription: d\nsource: s\nformat: yoochoose\nfiles: {events: c.dat}\n"
        "preprocess: {method: srgnn, test_days: 1e0, valid_days: '5e-1', train_fraction: 0.25}\n"
    )
    spec = specs.load_spec(path)
    assert spec.preprocess == preprocess.SrgnnConfig(test_days=1.0, valid_days=0.5, train_fraction=Fraction(1, 4))
    assert spec.folders == ("y",)


@pytest.mark.parametrize(("sep", "written"), [("|", "'|'"), ("\t", '"\\t"'), (" ", "' '")])
def test_table_spec_reads_its_layout(tmp_path, sep, written):
    """Any one-character separator, a tab or a space (white space) included."""
    rows = [sep.join((f"s{s}", f"p{s % 3 + k}", f"2024-01-0{1 + s // 4}T0{k}:00:00")) + "\n"
            for s in range(24) for k in range(3)]
    (tmp_path / "log.csv").write_text(sep.join(("user_session", "product", "ts")) + "\n" + "".join(rows))
    (tmp_path / "t.yaml").write_text(
        "name: t\ndescription: d\nsource: s\nformat: table\nfiles: {events: log.csv}\n"
        f"read: {{sep: {written}, session: user_session, item: product, time: ts, time_format: iso}}\n"
        "preprocess: {method: standard, test_days: 1, valid_days: 1, min_item_support: 2}\n"
    )
    data = specs.load_dataset(tmp_path / "t.yaml", data_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert data.n_items >= 3 and data.test.n_sessions == 4
    assert data.train.events["session"].dtype == np.int64


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("preprocess: {method: srgnn, test_days: abc}", r"key 'preprocess\.test_days': expected a number"),
        ("preprocess: {method: srgnn, test_days: -2}", r"key 'preprocess\.test_days': expected a positive"),
        ("preprocess: {method: srgnn, train_fraction: 'a/b'}", r"key 'preprocess\.train_fraction'"),
        ("preprocess: {method: srgnn, train_fraction: .inf}", r"key 'preprocess\.train_fraction': expected a fraction"),
        ("preprocess: {method: srgnn, test_days: 1e400}", r"key 'preprocess\.test_days': expected a finite number"),
        ("preprocess: {method: standard, min_item_support: 1" + "0" * 400 + "}",
         r"key 'preprocess\.min_item_support': expected a finite number"),
        ("preprocess: {method: magic}", r"key 'preprocess\.method': expected one of srgnn, standard, presplit"),
        ("preprocess: {method: standard, min_item_support: 2.5}", r"'preprocess\.min_item_support': expected an int"),
        ("preprocess: {method: presplit}", r"key 'files': method 'presplit' expects roles train and test"),
        ("preprocess: [1, 2]", r"key 'preprocess': expected a mapping"),
        ("preprocess: {method: srgnn}\nread: {sep: ','}", r"key 'read' applies only to format 'table'"),
        ("preprocess: {method: srgnn}\nfolders: 3", r"key 'folders': expected a string or a list"),
        ("preprocess: {method: srgnn}\nname: ../up", r"key 'name': expected at most 64 letters"),
        ("preprocess: {method: srgnn}\nname: " + "a" * 65, r"key 'name': expected at most 64 letters"),
    ],
)
def test_bad_spec_values_name_file_and_key(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    name = "" if "\nname:" in f"\n{text}" else "name: bad\n"  # a key may be given only once
    path.write_text(f"{name}description: d\nsource: s\nformat: diginetica\nfiles: {{events: x.csv}}\n{text}\n")
    with pytest.raises(ConfigError, match=match) as err:
        specs.load_spec(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_invalid_yaml_names_its_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ndescription: [unclosed\nsource: s\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml, line \d+, column \d+: not valid YAML"):
        specs.load_spec(path)


def test_missing_required_key(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("name: m\ndescription: d\nformat: diginetica\nfiles: {events: x}\npreprocess: {method: srgnn}\n")
    with pytest.raises(ConfigError, match=r"m\.yaml: missing key 'source'"):
        specs.load_spec(path)

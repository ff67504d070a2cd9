"""The prepared-data cache: every file and meta.json are verified on read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from data_paths import DIGINETICA_SAMPLE, require_data

from harness.data import cache, specs
from harness.cli import main
from harness.data.dataset import SPLIT_NAMES
from harness.errors import ConfigError
from harness.models.testing import tiny_dataset

DIGI_DIR = str(DIGINETICA_SAMPLE.parent)


@pytest.fixture
def folder(tmp_path):
    """A verified cache folder holding the tiny dataset."""
    target = tmp_path / "cache" / "tiny-0123456789abcdef"
    target.parent.mkdir()
    cache.store(tiny_dataset(), target, "test cache")
    return target


def _assert_same(a, b):
    assert (a.name, a.n_items, dict(a.item_map), a.meta) == (b.name, b.n_items, dict(b.item_map), b.meta)
    for split in SPLIT_NAMES:
        pdt.assert_frame_equal(a.split(split).events, b.split(split).events)


def _rehash(target):
    """Make meta.json agree with the files again (what a careful forger does)."""
    payload = json.loads((target / cache.META_FILE).read_text())
    for name in cache.DATA_FILES:
        raw = (target / name).read_bytes()
        payload["files"][name] = {"sha256": cache._sha256(raw), "rows": len(pd.read_parquet(target / name))}
    payload["meta_sha256"] = cache._payload_sha256(payload)
    (target / cache.META_FILE).write_text(json.dumps(payload))


def test_round_trip_records_hash_and_rows(folder):
    payload = json.loads((folder / cache.META_FILE).read_text())
    assert sorted(payload["files"]) == sorted(cache.DATA_FILES)
    assert payload["files"]["test.parquet"]["rows"] == tiny_dataset().test.n_events
    assert len(payload["files"]["test.parquet"]["sha256"]) == 64
    _assert_same(cache.read(folder), tiny_dataset())


def _copy_train_over_test(target):
    shutil.copy(target / "train.parquet", target / "test.parquet")


def _raise_n_items(target):
    payload = json.loads((target / cache.META_FILE).read_text())
    payload["n_items"] += 10
    (target / cache.META_FILE).write_text(json.dumps(payload))


def _write(text):
    return lambda target: (target / cache.META_FILE).write_text(text)


def _forge_items_columns(target):
    pd.DataFrame({"raw": ["a"], "other": [1]}).to_parquet(target / cache.ITEMS_FILE)
    _rehash(target)


def _forge_item_out_of_range(target):
    test = pd.read_parquet(target / "test.parquet")
    test.loc[0, "item"] = 999
    test.to_parquet(target / "test.parquet", index=False)
    _rehash(target)


def _forge_n_items_type(target):
    payload = json.loads((target / cache.META_FILE).read_text())
    payload["n_items"] = "40"
    payload["meta_sha256"] = cache._payload_sha256(payload)
    (target / cache.META_FILE).write_text(json.dumps(payload))


def _forge_row_count(target):
    payload = json.loads((target / cache.META_FILE).read_text())
    payload["files"]["valid.parquet"]["rows"] += 1
    payload["meta_sha256"] = cache._payload_sha256(payload)
    (target / cache.META_FILE).write_text(json.dumps(payload))


def _old_format(target):
    payload = json.loads((target / cache.META_FILE).read_text())
    (target / cache.META_FILE).write_text(json.dumps({k: payload[k] for k in ("name", "n_items", "meta")}))


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_copy_train_over_test, r"test\.parquet has SHA-256"),
        (_raise_n_items, r"meta_sha256 does not match"),
        (_write("{}"), r"meta\.json lacks format, name, n_items, meta, files, meta_sha256"),
        (_write("[]"), r"meta\.json holds a JSON list, expected an object"),
        (_write("{not json"), r"meta\.json unreadable"),
        (_old_format, r"meta\.json lacks format, files, meta_sha256"),
        (_forge_items_columns, r"items\.parquet has columns \['raw', 'other'\], expected \['raw', 'id'\]"),
        (_forge_item_out_of_range, r"test\.parquet holds item ids outside 1\.\.n_items = 1\.\.40"),
        (_forge_n_items_type, r"key 'n_items': expected an integer >= 1, got \"40\""),
        (_forge_row_count, r"valid\.parquet has \d+ rows, meta\.json records \d+"),
        (lambda t: (t / "valid.parquet").unlink(), r"valid\.parquet unreadable"),
    ],
)
def test_a_tampered_folder_is_refused_with_the_reason(folder, tamper, reason):
    tamper(folder)
    with pytest.raises(cache.InvalidCache, match=reason):
        cache.read(folder)


def test_load_removes_a_tampered_folder_and_says_why(folder, caplog):
    _copy_train_over_test(folder)
    with caplog.at_level("WARNING", logger="harness.data.cache"):
        assert cache.load(folder) is None
    assert not folder.exists()
    [record] = caplog.records
    assert "failed verification (test.parquet has SHA-256" in record.getMessage()
    assert "preparing them again" in record.getMessage()


def _evaluate_json(capsys, *extra):
    require_data("diginetica-sample")
    code = main(["evaluate", "--dataset", "diginetica", "--data-dir", DIGI_DIR, "--model", "pop", "--k", "20",
                 "--json", *extra])  # fmt: skip
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


@pytest.mark.parametrize("tamper", [_copy_train_over_test, _raise_n_items, _write("{}"), _write("[]")])
def test_evaluate_prepares_again_instead_of_trusting_a_tampered_cache(
    tamper, tmp_path, monkeypatch, capsys, caplog
):
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(tmp_path / "cache"))
    code, honest, _ = _evaluate_json(capsys)
    assert code == 0
    [target] = (tmp_path / "cache").iterdir()
    tamper(target)
    with caplog.at_level("WARNING"):
        code, again, _ = _evaluate_json(capsys)
    assert code == 0
    assert (again["cases"], again["metrics"]) == (honest["cases"], honest["metrics"])
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [f"prepared data in {target} failed verification"]
    caplog.clear()
    with caplog.at_level("WARNING"):
        _, third, _ = _evaluate_json(capsys)  # the cache was written again and is trusted
    assert caplog.records == [] and third["metrics"] == honest["metrics"]


@pytest.mark.data("diginetica-sample")
def test_the_user_sees_one_line_on_stderr(tmp_path):
    env = {**os.environ, "SESSIONBENCH_CACHE": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "harness.cli", "datasets", "stats", "diginetica", "--data-dir", DIGI_DIR, "--json"]
    first = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    [target] = (tmp_path / "cache").iterdir()
    _copy_train_over_test(target)
    second = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    assert json.loads(second.stdout) == json.loads(first.stdout)
    [line] = second.stderr.splitlines()
    assert line.startswith("WARNING harness.data.cache: prepared data in ") and "test.parquet has SHA-256" in line


@pytest.mark.data("diginetica-sample")
def test_cache_location_that_is_a_file_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    afile = tmp_path / "not-a-folder"
    afile.write_text("x")
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(afile))
    assert main(["datasets", "stats", "diginetica", "--data-dir", DIGI_DIR]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"$SESSIONBENCH_CACHE={afile}: {afile} is a file, not a folder" in err


@pytest.mark.data("diginetica-sample")
def test_cache_below_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"cache_dir .*f/sub: .*f is a file, not a folder"):
        specs.load_dataset("diginetica", data_dir=DIGI_DIR, cache_dir=tmp_path / "f" / "sub")


@pytest.mark.data("diginetica-sample")
def test_read_only_cache_location_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    location = tmp_path / "ro"
    location.mkdir()
    real_access = os.access
    # tests may run as root, which writes anywhere: report the folder as read-only instead
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(location) else real_access(p, mode))
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(location / "cache"))
    assert main(["datasets", "stats", "diginetica", "--data-dir", DIGI_DIR]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{location} is not writable" in err


@pytest.mark.data("diginetica-sample")
def test_a_failing_write_is_a_one_line_error(tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", refuse)
    with pytest.raises(ConfigError, match=r"cache_dir .*: cannot write .* \(Permission denied\)"):
        specs.load_dataset("diginetica", data_dir=DIGI_DIR, cache_dir=tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_a_verified_folder_is_read_even_where_nothing_can_be_written(folder, monkeypatch):
    monkeypatch.setattr(os, "access", lambda p, mode: False)
    _assert_same(cache.load(folder), tiny_dataset())


def test_hashes_detect_a_single_changed_value(folder):
    test = pd.read_parquet(folder / "test.parquet")
    test.loc[3, "time"] = np.nextafter(test.loc[3, "time"], np.inf)
    test.to_parquet(folder / "test.parquet", index=False)
    with pytest.raises(cache.InvalidCache, match="test.parquet has SHA-256"):
        cache.read(folder)

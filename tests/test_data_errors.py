"""Bad input gives one-line errors that name the file, the line or column
where it applies, and what was expected."""

from __future__ import annotations

import pytest
from data_paths import DIGINETICA_SAMPLE

from harness.data import readers, specs
from harness.errors import ConfigError, DataError, UnknownNameError

HEADER = "session_id;user_id;item_id;timeframe;eventdate"


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


def _diginetica(tmp_path, text, name="sample_train-item-views.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_missing_raw_file_lists_paths_and_source(tmp_path):
    with pytest.raises(DataError) as err:
        specs.load_dataset("diginetica", data_dir=tmp_path, cache_dir=tmp_path / "cache")
    message = _one_line(err)
    assert "train-item-views.csv or sample_train-item-views.csv" in message
    assert str(tmp_path / "train-item-views.csv") in message
    assert str(tmp_path / "diginetica-sample" / "sample_train-item-views.csv") in message
    assert "CIKM Cup 2016" in message


def test_missing_file_for_a_reader(tmp_path):
    with pytest.raises(DataError, match="file not found") as err:
        readers.read_yoochoose(tmp_path / "nope.dat")
    assert str(tmp_path / "nope.dat") in _one_line(err)


@pytest.mark.data("diginetica-sample")
def test_wrong_separator(tmp_path):
    text = DIGINETICA_SAMPLE.read_text().replace(";", ",")
    path = _diginetica(tmp_path, text)
    with pytest.raises(DataError) as err:
        readers.read_diginetica(path)
    message = _one_line(err)
    assert message.startswith(f"{path}, line 1:")
    assert "looks ','-separated" in message and "session_id;user_id;item_id;timeframe;eventdate" in message


def test_missing_column(tmp_path):
    path = _diginetica(tmp_path, "session_id;user_id;item_id;eventdate\n1;NA;5;2016-01-01\n")
    with pytest.raises(DataError, match=r"line 1: missing column\(s\) \['timeframe'\]") as err:
        readers.read_diginetica(path)
    assert str(path) in _one_line(err)


def test_missing_column_in_a_table(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("SessionId\tItem\tTime\n1\t2\t3\n")
    with pytest.raises(DataError, match=r"line 1: missing column\(s\) \['ItemId'\]") as err:
        readers.read_session_rec(path)
    _one_line(err)


@pytest.mark.parametrize(("row", "column"), [("1\t\t1400000000", "ItemId"), ("\t2\t1400000000", "SessionId"),
                                           ("1\t2", "Time")])
def test_an_empty_field_names_the_files_own_column(tmp_path, row, column):
    """An empty field or a short row names the header the file has, as a bad value does."""
    path = tmp_path / "t.tsv"
    path.write_text("SessionId\tItemId\tTime\n1\t2\t1400000000\n" + row + "\n")
    with pytest.raises(DataError, match=rf"line 3, column '{column}': expected a value \(the field is empty") as err:
        readers.read_session_rec(path)
    _one_line(err)


def test_non_numeric_timeframe_names_line_and_column(tmp_path):
    rows = ["1;NA;5;10;2016-01-01", "1;NA;6;20;2016-01-01", "2;NA;7;0;2016-01-02", "2;NA;8;abc;2016-01-02"]
    path = _diginetica(tmp_path, "\n".join([HEADER, *rows]) + "\n")
    with pytest.raises(DataError) as err:
        readers.read_diginetica(path)
    message = _one_line(err)
    assert message.startswith(f"{path}, line 5, column 'timeframe':")
    assert "'abc'" in message and "integer" in message
    assert (err.value.line, err.value.column) == (5, "timeframe")


def test_bad_date_names_line(tmp_path):
    path = _diginetica(tmp_path, f"{HEADER}\n1;NA;5;10;2016-01-01\n1;NA;6;20;01/02/2016\n")
    with pytest.raises(DataError, match=r"line 3, column 'eventdate': expected a date YYYY-MM-DD") as err:
        readers.read_diginetica(path)
    _one_line(err)


def test_unparsable_yoochoose_timestamp(tmp_path):
    path = tmp_path / "yoochoose-clicks.dat"
    path.write_text(
        "1,2014-04-07T10:51:09.277Z,214536502,0\n1,2014-04-07T10:54:09.868Z,214536500,0\n2,yesterday,214662742,S\n"
    )
    with pytest.raises(DataError) as err:
        readers.read_yoochoose(path)
    message = _one_line(err)
    assert message.startswith(f"{path}, line 3, column 'timestamp':")
    assert "ISO-8601" in message and "'yesterday'" in message


def test_yoochoose_error_line_counts_a_header_line(tmp_path):
    path = tmp_path / "yoochoose-clicks.dat"
    path.write_text("session_id,timestamp,item_id,category\n1,2014-04-07T10:51:09.277Z,5,0\n2,bad,6,0\n")
    with pytest.raises(DataError, match=r"line 3, column 'timestamp'") as err:
        readers.read_yoochoose(path)
    _one_line(err)


def test_yoochoose_non_integer_session(tmp_path):
    path = tmp_path / "yoochoose-clicks.dat"
    rows = ["1,2014-04-07T10:51:09.277Z,5,0", "", "1,2014-04-07T10:52:09.277Z,6,0", "x2,2014-04-07T10:51:09.277Z,6,0"]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"line 4, column 'session': expected an integer session id, found 'x2'") as err:
        readers.read_yoochoose(path)
    _one_line(err)


def test_yoochoose_wrong_separator(tmp_path):
    path = tmp_path / "yoochoose-clicks.dat"
    path.write_text("1;2014-04-07T10:51:09.277Z;214536502;0\n")
    with pytest.raises(DataError, match=r"line 1: found 1 ','-separated field.*looks ';'-separated") as err:
        readers.read_yoochoose(path)
    _one_line(err)


def test_yoochoose_error_line_counts_across_chunks(tmp_path):
    rows = [f"{s},2014-04-07T10:51:09.277Z,{s},0" for s in range(1, 30)]
    rows[22] = "23,2014-04-07T10:51:09.277Z,,0"
    path = tmp_path / "yoochoose-clicks.dat"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"line 23, column 'item'") as err:
        readers.read_yoochoose(path, chunksize=5)
    _one_line(err)


@pytest.mark.parametrize("header", [False, True])
def test_yoochoose_row_with_extra_fields_past_the_first_chunk(tmp_path, header):
    """A later row with a fifth field (a buys row pasted into clicks, a
    stray comma) is refused with its line, not silently cut to four."""
    rows = [f"{s},2014-04-07T10:51:09.277Z,{s},0" for s in range(1, 30)]
    rows[17] = "18,2014-04-07T10:51:09.277Z,18,0,1"
    rows[18] = "19,2014-04-07T10:51:09.277Z,19"  # no category: allowed
    path = tmp_path / "yoochoose-clicks.dat"
    path.write_text(("session_id,timestamp,item_id,category\n" if header else "") + "\n".join(rows) + "\n")
    line = 18 + header
    with pytest.raises(DataError, match=rf"line {line}: cannot parse \(Expected 4 fields in line {line}, saw 5\)") as err:
        readers.read_yoochoose(path, chunksize=5)
    _one_line(err)
    path.write_text("\n".join(rows[:17] + rows[18:]) + "\n")
    assert len(readers.read_yoochoose(path, chunksize=5)) == 28


def test_ragged_row_names_line(tmp_path):
    path = _diginetica(tmp_path, f"{HEADER}\n1;NA;5;10;2016-01-01\n1;NA;6;20;2016-01-01;extra\n")
    with pytest.raises(DataError, match=r"line 3: cannot parse \(Expected 5 fields in line 3, saw 6\)") as err:
        readers.read_diginetica(path)
    _one_line(err)


@pytest.mark.parametrize(
    ("reader", "text", "match"),
    [
        (readers.read_diginetica, "", r"file is empty \(0 bytes\); expected session_id;user_id"),
        (readers.read_diginetica, HEADER + "\n", r"line 1: no data rows after the header"),
        (readers.read_yoochoose, "", r"file is empty \(0 bytes\); expected session,timestamp,item,category"),
        (readers.read_session_rec, "", r"file is empty \(0 bytes\); expected TAB-separated"),
        (readers.read_session_rec, "SessionId\tItemId\tTime\n", r"line 1: no data rows after the header"),
    ],
)
def test_empty_files(tmp_path, reader, text, match):
    path = tmp_path / "events.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as err:
        reader(path)
    assert str(path) in _one_line(err)


def test_dataset_left_empty_after_filtering(tmp_path):
    # every item occurs once: the support filter leaves nothing
    rows = [f"{s};NA;{s * 10 + k};{k};2016-01-0{1 + s % 9}" for s in range(1, 30) for k in range(3)]
    path = _diginetica(tmp_path, "\n".join([HEADER, *rows]) + "\n")
    with pytest.raises(DataError) as err:
        specs.load_dataset("diginetica", data_dir=tmp_path, cache_dir=tmp_path / "cache")
    message = _one_line(err)
    assert message.startswith(str(path)) and "no sessions left after preprocessing" in message
    assert "items seen >= 5 times" in message


def test_no_test_sessions_left(tmp_path):
    # test-period sessions only click items the train period never saw
    rows = [f"{s};NA;{k};{k};2016-01-01" for s in range(1, 10) for k in range(3)]
    rows += [f"{s};NA;{100 + k};{k};2016-02-01" for s in range(10, 20) for k in range(3)]
    path = _diginetica(tmp_path, "\n".join([HEADER, *rows]) + "\n")
    with pytest.raises(DataError, match="no test sessions left after preprocessing") as err:
        specs.load_dataset("diginetica", data_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert str(path) in _one_line(err)


def test_unknown_preset_name():
    with pytest.raises(UnknownNameError) as err:
        specs.load_spec("digintica")
    message = _one_line(err)
    assert "'digintica'" in message and "diginetica" in message and "yoochoose-100k" in message


def test_unknown_key_in_spec(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text(
        "name: typo\ndescription: d\nsource: s\nformat: diginetica\nfiles: {events: x.csv}\n"
        "preprocess: {method: srgnn, test_dayz: 7}\n"
    )
    with pytest.raises(ConfigError) as err:
        specs.load_spec(path)
    message = _one_line(err)
    assert message.startswith(str(path)) and "unknown key 'preprocess.test_dayz'" in message
    assert "test_days" in message
    path.write_text(path.read_text().replace("test_dayz", "test_days") + "colour: blue\n")
    with pytest.raises(ConfigError, match=r"unknown key 'colour'; expected one of name, description"):
        specs.load_spec(path)


def test_spec_path_that_does_not_exist(tmp_path):
    with pytest.raises(ConfigError, match="dataset spec file not found"):
        specs.load_spec(tmp_path / "nothing.yaml")


# --------------------------------------------------------------------------- #
# unreadable files, encodings, out-of-range times, odd ids
# --------------------------------------------------------------------------- #

import builtins  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from harness.cli import main  # noqa: E402
from harness.data import preprocess  # noqa: E402
from harness.run import suites  # noqa: E402
from harness.errors import ConfigError as _ConfigError  # noqa: E402
from harness.limits import MAX_K, MAX_NAME_LENGTH, MAX_SEED  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _deny_reading(monkeypatch, denied: Path) -> None:
    """Make opening ``denied`` fail as it does without read permission.

    The tests run as root, for whom file modes do not deny reading, so every
    way Python opens a file (builtins.open, io.open behind Path.open) is made
    to raise the PermissionError the operating system would raise.
    """
    denied = Path(denied).resolve()
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file).resolve() == denied:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    monkeypatch.setattr(io, "open", guarded)


def _session_rec_spec(folder: Path, rows: str | bytes, extra: str = "", name: str = "t") -> Path:
    """A session-rec spec beside its raw file ``clicks.tsv`` holding ``rows``."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "clicks.tsv"
    if isinstance(rows, bytes):
        raw.write_bytes(rows)
    else:
        raw.write_text(rows)
    spec = folder / "spec.yaml"
    spec.write_text(
        f"name: {name}\ndescription: d\nsource: s\nformat: session-rec\nfiles: {{events: clicks.tsv}}\n"
        f"preprocess: {{method: standard, min_item_support: 1{extra}}}\n"
    )
    return spec


def _good_rows(n_sessions: int = 40) -> str:
    """Sessions of three clicks six hours apart, items cycling over 20."""
    lines = ["SessionId\tItemId\tTime"]
    for s in range(1, n_sessions + 1):
        lines += [f"{s}\t{(s * 7 + j) % 20}\t{1_400_000_000 + s * 21600 + j}" for j in range(3)]
    return "\n".join(lines) + "\n"


def _cli(capsys, *argv) -> tuple[int, str]:
    """Run the command line in-process; return the exit status and stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _error_line(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_unreadable_raw_file_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "clicks.tsv"
    path.write_text(_good_rows())
    _deny_reading(monkeypatch, path)
    with pytest.raises(DataError) as err:
        readers.read_session_rec(path)
    assert _one_line(err) == f"{path}: cannot read the file (Permission denied)"


def test_unreadable_raw_file_through_the_cli(tmp_path, monkeypatch, capsys):
    spec = _session_rec_spec(tmp_path, _good_rows())
    _deny_reading(monkeypatch, tmp_path / "clicks.tsv")
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(tmp_path / "cache"))
    line = _error_line(*_cli(capsys, "datasets", "stats", str(spec)))
    assert str(tmp_path / "clicks.tsv") in line and "Permission denied" in line


def test_unreadable_yoochoose_file(tmp_path, monkeypatch):
    path = tmp_path / "yoochoose-clicks.dat"
    path.write_text("1,2014-04-07T10:51:09.277Z,214536502,0\n")
    _deny_reading(monkeypatch, path)
    with pytest.raises(DataError, match="cannot read the file \\(Permission denied\\)") as err:
        readers.read_yoochoose(path)
    _one_line(err)


@pytest.mark.parametrize("kind", ["spec", "suite"])
def test_unreadable_spec_or_suite(tmp_path, monkeypatch, capsys, kind):
    spec = _session_rec_spec(tmp_path, _good_rows())
    if kind == "spec":
        _deny_reading(monkeypatch, spec)
        line = _error_line(*_cli(capsys, "datasets", "stats", str(spec)))
        assert line == f"sessionbench: error: {spec}: cannot read the dataset spec (Permission denied)"
    else:
        suite = tmp_path / "s.yaml"
        suite.write_text(f"datasets: [{spec}]\nmodels: [pop]\n")
        _deny_reading(monkeypatch, suite)
        line = _error_line(*_cli(capsys, "run", str(suite), "--out", str(tmp_path / "out")))
        assert line == f"sessionbench: error: {suite}: cannot read the suite (Permission denied)"


def _unprivileged() -> list[str] | None:
    """A command prefix that runs without root's permission override, if any."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"] if setpriv else None


@pytest.mark.skipif(_unprivileged() is None, reason="running as root without setpriv: no way to drop privileges")
def test_permissions_as_an_unprivileged_user():
    """The same errors from real file modes: an unreadable raw file and a read-only --out folder."""
    probe = subprocess.run([*_unprivileged(), sys.executable, "-c", "import harness.cli"],
                           capture_output=True, text=True, cwd=REPO, timeout=120)  # fmt: skip
    if probe.returncode != 0:
        # e.g. a checkout inside a private (0700) temporary folder: the other user cannot even import it
        reason = f"the unprivileged user cannot import sessionbench from {REPO} ({probe.stderr.strip()[-160:]})"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="sessionbench-perm-"))
    try:
        base.chmod(0o755)
        spec = _session_rec_spec(base / "data", _good_rows())
        (base / "data").chmod(0o755)
        (base / "data" / "clicks.tsv").chmod(0)
        cache = base / "cache"
        cache.mkdir(mode=0o777)
        cache.chmod(0o777)
        readonly = base / "ro"
        readonly.mkdir()
        readonly.chmod(0o555)
        suite = base / "s.yaml"
        suite.write_text("datasets: [synthetic]\nmodels: [pop]\n")
        env = {"PATH": os.environ.get("PATH", ""), "SESSIONBENCH_CACHE": str(cache), "HOME": str(cache)}
        cases = [
            (["datasets", "stats", str(spec)], f"{base / 'data' / 'clicks.tsv'}: cannot read the file (Permission denied)"),
            (["run", str(suite), "--out", str(readonly / "out")], "cannot write there (Permission denied)"),
        ]
        for argv, expected in cases:
            proc = subprocess.run(
                [*_unprivileged(), sys.executable, "-m", "harness.cli", *argv],
                capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
            )  # fmt: skip
            assert proc.returncode == 2, proc.stderr
            assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
            assert expected in proc.stderr
        assert not (readonly / "out").exists()
    finally:
        for folder in (base / "ro", base / "data"):
            folder.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_non_utf8_raw_file_names_line_and_character(tmp_path):
    path = tmp_path / "clicks.tsv"
    path.write_bytes(b"SessionId\tItemId\tTime\n1\t2\t3\n1\tcaf\xe9\t4\n")
    with pytest.raises(DataError) as err:
        readers.read_session_rec(path)
    message = _one_line(err)
    assert message.startswith(f"{path}, line 3: character 6 (field 2): byte 0xe9 is not UTF-8")
    assert "position" not in message


def test_non_utf8_yoochoose_names_line(tmp_path):
    path = tmp_path / "yoochoose-clicks.dat"
    path.write_bytes(b"1,2014-04-07T10:51:09.277Z,5,0\n1,2014-04-07T10:52:09.277Z,\xff6,0\n")
    with pytest.raises(DataError, match=r"line 2: character 28 \(field 3\): byte 0xff is not UTF-8") as err:
        readers.read_yoochoose(path)
    _one_line(err)


@pytest.mark.parametrize("kind", ["spec", "suite"])
def test_non_utf8_yaml_names_line_and_column(tmp_path, capsys, kind):
    spec = _session_rec_spec(tmp_path, _good_rows())
    if kind == "spec":
        spec.write_bytes(spec.read_bytes().replace(b"description: d", b"description: caf\xe9"))
        line = _error_line(*_cli(capsys, "datasets", "stats", str(spec)))
        assert line == (f"sessionbench: error: {spec}, line 2, column 17: byte 0xe9 is not UTF-8; "
                        "expected a UTF-8 encoded dataset spec")
    else:
        suite = tmp_path / "s.yaml"
        suite.write_bytes(b"description: na\xefve\ndatasets: [synthetic]\nmodels: [pop]\n")
        line = _error_line(*_cli(capsys, "run", str(suite), "--out", str(tmp_path / "out")))
        assert line == f"sessionbench: error: {suite}, line 1, column 16: byte 0xef is not UTF-8; " \
                       "expected a UTF-8 encoded suite"


@pytest.mark.parametrize(
    ("value", "time_format", "hint"),
    [
        ("1e15", "epoch_s", "micro- or nanoseconds"),
        ("1400000000000000", "epoch_s", "micro- or nanoseconds"),  # microseconds read as seconds
        ("1400000000000", "epoch_s", "set time_format: epoch_ms"),  # milliseconds read as seconds
        ("1400000000000000", "epoch_ms", "micro- or nanoseconds"),
        ("-1e12", "epoch_s", "set time_format: epoch_ms"),
    ],
)
def test_times_outside_the_calendar_range(tmp_path, value, time_format, hint):
    path = tmp_path / "t.csv"
    path.write_text(f"session,item,time\n1,2,1400000000\n1,3,{value}\n")
    with pytest.raises(DataError) as err:
        readers.read_table(path, readers.TableLayout(time_format=time_format))
    message = _one_line(err)
    assert message.startswith(f"{path}, line 3, column 'time': expected a time between 1677-09-22 and 2262-04-11")
    assert f"found {value!r}" in message and hint in message


def test_diginetica_timeframe_outside_the_calendar_range(tmp_path):
    path = _diginetica(tmp_path, f"{HEADER}\n1;NA;5;10;2016-01-01\n1;NA;6;1e300;2016-01-01\n")
    with pytest.raises(DataError, match=r"line 3, column 'timeframe'") as err:
        readers.read_diginetica(path)
    _one_line(err)


def test_out_of_range_time_through_the_cli(tmp_path, capsys, monkeypatch):
    rows = _good_rows().replace("\t1400021600\n", "\t1e15\n")
    spec = _session_rec_spec(tmp_path, rows)
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(tmp_path / "cache"))
    line = _error_line(*_cli(capsys, "datasets", "stats", str(spec)))
    assert f"{tmp_path / 'clicks.tsv'}, line 2, column 'Time'" in line and "'1e15'" in line


def test_parquet_timestamps_are_read_whatever_the_time_format(tmp_path):
    stamps = pd.to_datetime(["2014-04-07 10:51:09", "2014-04-07 10:52:09"])
    path = tmp_path / "t.parquet"
    pd.DataFrame({"session": [1, 1], "item": ["a", "b"], "time": stamps}).to_parquet(path)
    frame = readers.read_table(path)  # the default time_format, epoch_s
    assert frame["time"].tolist() == [1396867869.0, 1396867929.0]


def test_huge_test_days_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    spec = _session_rec_spec(tmp_path, _good_rows(), extra=", test_days: 100000000000")
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(tmp_path / "cache"))
    line = _error_line(*_cli(capsys, "datasets", "stats", str(spec)))
    assert "no train sessions left after preprocessing" in line and "s since 1970-01-01" in line


def test_filter_iterations_stop_at_the_fixed_point(tmp_path, monkeypatch):
    spec = _session_rec_spec(tmp_path, _good_rows(), extra=", filter_iterations: 100000000")
    calls = []
    real = preprocess._drop_rare

    def counted(*args, **kwargs):
        calls.append(1)
        assert len(calls) < 100, "the filter loop does not stop when an iteration drops nothing"
        return real(*args, **kwargs)

    monkeypatch.setattr(preprocess, "_drop_rare", counted)
    data = specs.load_dataset(spec, cache_dir=tmp_path / "cache")
    assert len(calls) <= 2
    assert data.meta["settings"]["filter_iterations"] == 100000000


def test_ids_are_stripped(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("session,item,time\n 7,5,1\n7 , 5 ,2\n8,x ,3\n8, x,4\n")
    frame = readers.read_table(path)
    assert frame["session"].tolist() == [7, 7, 8, 8]
    assert frame["item"].tolist() == ["5", "5", "x", "x"]


def test_long_quoted_input_is_cut(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("session,item,time\n1,2,3\n1,3," + "9" * 10_000_000 + "x\n")
    with pytest.raises(DataError) as err:
        readers.read_table(path)
    message = _one_line(err)
    assert len(message) < 600 and "(10,000,001 characters)" in message


# --------------------------------------------------------------------------- #
# YAML: duplicate keys
# --------------------------------------------------------------------------- #


def test_duplicate_key_in_a_spec_names_its_line(tmp_path):
    spec = _session_rec_spec(tmp_path, _good_rows())
    spec.write_text(spec.read_text() + "name: other\n")
    with pytest.raises(_ConfigError) as err:
        specs.load_spec(spec)
    assert _one_line(err) == f"{spec}, line 7, column 1: duplicate key 'name', first given on line 1; " \
                             "each key may appear once"


def test_duplicate_key_in_a_suite_names_its_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("datasets: [synthetic]\nmodels:\n  - name: sr\n    params: {steps: 4, steps: 5}\n")
    with pytest.raises(_ConfigError, match=r"s\.yaml, line 4, column 24: duplicate key 'steps', first given on line 4"):
        suites.load_suite(path)


# --------------------------------------------------------------------------- #
# suites
# --------------------------------------------------------------------------- #


def _suite_error(data: dict) -> str:
    with pytest.raises(_ConfigError) as err:
        suites.parse_suite(data, Path("suites/t.yaml"))
    return _one_line(err)


def test_a_long_label_is_refused_at_load():
    message = _suite_error({"datasets": ["synthetic"], "models": [{"name": "pop", "label": "x" * 260}]})
    assert message.startswith("suites/t.yaml: key models[0].label: expected at most 64 letters")
    assert "(260 characters)" not in message or len(message) < 600


def test_a_long_label_through_the_cli(tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text(f"datasets: [synthetic]\nmodels:\n  - {{name: pop, label: {'x' * 260}}}\n")
    line = _error_line(*_cli(capsys, "run", str(suite), "--out", str(tmp_path / "out")))
    assert f"expected at most {MAX_NAME_LENGTH} letters" in line and not (tmp_path / "out").exists()


def test_a_long_grid_label_is_refused():
    keys = ("hidden_size", "n_layers", "batch_size", "n_sample", "num_threads", "epochs")
    model = {"name": "gru4rec", "grid": {key: [10**17, 10**18] for key in keys}}
    message = _suite_error({"datasets": ["synthetic"], "models": [model]})
    assert "the grid-point label gru4rec[key=value,...] reaches 188 characters, expected at most 150" in message


def test_grid_values_cannot_leave_the_run_folder():
    # device is a free string (a named option with declared values refuses such a value anyway)
    model = {"name": "gru4rec", "grid": {"device": ["../../x"]}}
    assert "must print as letters" in _suite_error({"datasets": ["synthetic"], "models": [model]})
    model = {"name": "sr", "grid": {"weighting": ["../../x"]}}
    assert "expected one of 'linear'" in _suite_error({"datasets": ["synthetic"], "models": [model]})


def test_a_dataset_listed_twice_is_refused():
    message = _suite_error({"datasets": ["synthetic", "synthetic"], "models": ["pop"]})
    assert "key 'datasets': dataset 'synthetic' is listed twice" in message


@pytest.mark.parametrize("key, value", [("seeds", [1, 1]), ("protocols", ["next", "next"])])
def test_a_seed_or_protocol_listed_twice_is_refused(key, value):
    assert "is listed twice" in _suite_error({"datasets": ["synthetic"], "models": ["pop"], key: value})


@pytest.mark.parametrize("name", ["../up", "a/b", ".hidden", "..", "x" * 65, 5])
def test_suite_names_stay_inside_reports(name):
    message = _suite_error({"name": name, "datasets": ["synthetic"], "models": ["pop"]})
    assert "key 'name': expected at most 64 letters, digits, '.', '_' or '-', not starting with '.'" in message


@pytest.mark.parametrize(
    "model, expected",
    [
        ({"name": "gru4rec", "params": {"epochs": -1}}, "key models[0].params: epochs: expected a number >= 1, got -1"),
        ({"name": "gru4rec", "params": {"batch_size": 0}}, "batch_size: expected a number >= 1, got 0"),
        ({"name": "srgnn", "grid": {"lr": [0.001, -1]}}, "key models[0].grid: lr: expected a number > 0, got -1"),
        ({"name": "sknn", "params": {"k": 0}}, "k: expected a number >= 1, got 0"),
        ({"name": "gru4rec", "params": {"dropout_hidden": 1.0}}, "dropout_hidden: expected a number in [0, 1)"),
        ({"name": "sr", "params": {"steps": 0}}, "steps: expected a number >= 1, got 0"),
        ({"name": "ar", "grid": {"pruning": [5, -1]}}, "pruning: expected a number >= 0, got -1"),
        ({"name": "markov", "params": {"pruning": -2}}, "pruning: expected a number >= 0, got -2"),
        ({"name": "spop", "params": {"tiebreak": 1}}, "tiebreak: expected a number in [0, 1), got 1"),
        ({"name": "itemknn", "params": {"alpha": 1.5}}, "alpha: expected a number in [0, 1], got 1.5"),
        ({"name": "stan", "params": {"lambda_spw": 0}}, "lambda_spw: expected a number > 0, got 0"),
        ({"name": "vstan", "params": {"lambda_idf": -1}}, "lambda_idf: expected a number >= 0, got -1"),
        ({"name": "vsknn", "params": {"idf_weighting": -1}}, "idf_weighting: expected a number >= 0, got -1"),
    ],
)
def test_hyperparameters_out_of_range_are_refused_at_load(model, expected):
    assert expected in _suite_error({"datasets": ["synthetic"], "models": [model]})


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"ks": [MAX_K + 1]}, f"key 'ks': expected an integer >= 1 and <= {MAX_K}"),
        ({"seeds": [MAX_SEED + 1]}, f"key 'seeds': expected an integer >= 0 and <= {MAX_SEED}"),
        ({"protocols": 5}, "key 'protocols': expected a list of 'next' and/or 'rest', got int 5"),
        ({"description": ["x"]}, "key 'description': expected a string"),
    ],
)
def test_suite_values_out_of_range(data, expected):
    assert expected in _suite_error({"datasets": ["synthetic"], "models": ["pop"], **data})


# --------------------------------------------------------------------------- #
# command-line values
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--k", "99999999999999999999"], f"argument --k: expected comma-separated integers in 1..{MAX_K}"),
        (["--k", "10000000000"], f"argument --k: expected comma-separated integers in 1..{MAX_K}"),
        (["--k", "5," + "9" * 5000], "(5,002 characters)"),
        (["--seed", "99999999999999999999"], f"argument --seed: expected an integer in 0..{MAX_SEED}"),
        (["--seed", "-1"], f"argument --seed: expected an integer in 0..{MAX_SEED}"),
        (["--param", "epochs=-1", "--model", "gru4rec"], "--param: epochs: expected a number >= 1, got -1"),
        (["--model", ":X"], "expected a registered name or package.module:ClassName"),
    ],
)
def test_bad_command_line_values_are_one_line(capsys, argv, expected):
    base = {"--dataset": "synthetic", "--model": "pop"}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value if flag != "--param" else base.get(flag, value)
    flat = [x for flag, value in base.items() for x in (flag, value)]
    line = _error_line(*_cli(capsys, "evaluate", *flat))
    assert expected in line and len(line) < 600


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    import harness.run.runner

    def must_not_run(*args, **kwargs):
        raise AssertionError("the suite ran although --out cannot be written")

    monkeypatch.setattr(harness.run.runner, "run_suite", must_not_run)
    afile = tmp_path / "afile"
    afile.write_text("")
    for out in (afile, afile / "below"):
        line = _error_line(*_cli(capsys, "run", "default", "--out", str(out)))
        assert line == f"sessionbench: error: --out {out}: {afile} is a file; expected a folder (or a path to create)"


def test_out_that_cannot_be_written_is_refused(tmp_path, capsys, monkeypatch):
    """Root writes anywhere, so the folder's refusal is simulated at the one place the check writes."""
    import harness.run.runner

    monkeypatch.setattr(harness.run.runner, "run_suite", lambda *a, **k: pytest.fail("the suite ran"))

    def refuse(*args, dir=None, **kwargs):  # noqa: A002 - tempfile's own keyword
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    line = _error_line(*_cli(capsys, "run", "default", "--out", str(tmp_path / "ro" / "out")))
    assert line == f"sessionbench: error: --out {tmp_path / 'ro' / 'out'}: cannot write there (Permission denied); " \
                   "expected a writable folder"


def test_argparse_errors_cut_the_quoted_argument(capsys):
    line = _error_line(*_cli(capsys, "x" * 5000))
    assert "invalid choice" in line and "(5,000 characters)" in line and len(line) < 600


def test_a_path_the_system_refuses_is_one_line(tmp_path, capsys):
    """An operating-system error on a user's path (here: a name over 255 bytes) is a one-line error."""
    out = tmp_path / ("n" * 300)
    line = _error_line(*_cli(capsys, "report", str(out)))
    assert "File name too long" in line and "(" in line and len(line) < 600


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["evaluate", "--dataset", "synthetic", "--model", "spop", "--param", "tiebreak=" + "9" * 5000],
         "not valid YAML"),
        (["evaluate", "--dataset", "synthetic", "--model", "pop", "\r"], "unrecognized arguments"),
    ],
)
def test_odd_command_line_strings_are_one_line(capsys, argv, expected):
    assert expected in _error_line(*_cli(capsys, *argv))


def test_huge_integers_and_odd_method_values_in_a_spec(tmp_path):
    spec = _session_rec_spec(tmp_path, _good_rows())
    for bad, expected in [("method: []", "key 'preprocess.method': expected one of"),
                          ("min_item_support: " + "9" * 5000, "not valid YAML")]:
        text = spec.read_text().replace("min_item_support: 1" if "min" in bad else "method: standard", bad)
        (tmp_path / "bad.yaml").write_text(text)
        with pytest.raises(_ConfigError, match=expected) as err:
            specs.load_spec(tmp_path / "bad.yaml")
        assert len(_one_line(err)) < 600


# --------------------------------------------------------------------------- #
# typos: a close match is suggested
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "model, expected",
    [
        ("srgn", "unknown model 'srgn' (did you mean 'srgnn'?); registered models:"),
        ({"name": "sknn", "params": {"kk": 5}}, "no hyper-parameter 'kk' (did you mean 'k'?); it takes:"),
        ({"name": "gru4rec", "grid": {"n_epochs": [1, 2]}}, "no hyper-parameter 'n_epochs' (did you mean 'epochs'?)"),
        ({"name": "pop", "lable": "x"}, "unknown key 'models[0].lable' (did you mean 'label'?)"),
    ],
)
def test_a_typo_in_a_suite_suggests_the_close_match(model, expected):
    assert expected in _suite_error({"datasets": ["synthetic"], "models": [model]})


def test_a_typo_of_a_top_level_suite_key_suggests_the_key():
    message = _suite_error({"datasets": ["synthetic"], "modles": ["pop"], "models": ["pop"]})
    assert "unknown key 'modles' (did you mean 'models'?); expected one of" in message


def test_no_suggestion_without_a_close_match():
    message = _suite_error({"datasets": ["synthetic"], "models": ["zzzzzz"]})
    assert "did you mean" not in message


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["evaluate", "--dataset", "synthetc", "--model", "pop"], "unknown dataset 'synthetc' (did you mean 'synthetic'?)"),
        (["evaluate", "--dataset", "synthetic", "--model", "SRGN"], "unknown model 'SRGN' (did you mean 'srgnn'?)"),
        (["evaluate", "--dataset", "synthetic", "--model", "sknn", "--param", "smple_size=5"],
         "no hyper-parameter 'smple_size' (did you mean 'sample_size'?)"),
        (["run", "defualt"], "unknown suite 'defualt' (did you mean 'default'?)"),
    ],
)
def test_a_typo_on_the_command_line_suggests_the_close_match(capsys, argv, expected):
    assert expected in _error_line(*_cli(capsys, *argv))


def test_a_typo_of_a_spec_key_suggests_the_key(tmp_path):
    spec = _session_rec_spec(tmp_path, _good_rows())
    (tmp_path / "bad.yaml").write_text(spec.read_text().replace("min_item_support:", "min_item_suport:"))
    with pytest.raises(_ConfigError) as err:
        specs.load_spec(tmp_path / "bad.yaml")
    assert "unknown key 'preprocess.min_item_suport' (did you mean 'min_item_support'?)" in _one_line(err)


# --------------------------------------------------------------------------- #
# compressed and binary files
# --------------------------------------------------------------------------- #

YOOCHOOSE_ROWS = "".join(f"{s},2014-04-0{1 + s % 7}T10:5{j}:09.277Z,{100 + (s + j) % 9},0\n"
                         for s in range(1, 60) for j in range(3))
DIGINETICA_ROWS = HEADER + "\n" + "".join(f"{s};NA;{(s + j) % 9};{j * 1000};2016-05-0{1 + s % 7}\n"
                                          for s in range(1, 60) for j in range(3))


def _compressed(kind: str, text: str) -> bytes:
    import bz2
    import gzip
    import io
    import lzma
    import zipfile

    if kind == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("clicks.dat", text)
        return buffer.getvalue()
    return {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind](text.encode())


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zip"])
@pytest.mark.parametrize("reader, text", [(readers.read_yoochoose, YOOCHOOSE_ROWS),
                                          (readers.read_diginetica, DIGINETICA_ROWS)])
def test_a_compressed_file_named_by_its_suffix_reads_as_the_text(tmp_path, kind, reader, text):
    plain, packed = tmp_path / "clicks.dat", tmp_path / f"clicks.dat.{kind}"
    plain.write_text(text)
    packed.write_bytes(_compressed(kind, text))
    assert reader(packed).equals(reader(plain))


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zip"])
@pytest.mark.parametrize("reader, text", [(readers.read_yoochoose, YOOCHOOSE_ROWS),
                                          (readers.read_diginetica, DIGINETICA_ROWS),
                                          (readers.read_table, "session,item,time\n1,a,1400000000\n" * 400)])
def test_a_truncated_compressed_file_is_a_data_error(tmp_path, kind, reader, text):
    path = tmp_path / f"clicks.dat.{kind}"
    packed = _compressed(kind, text)
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match=r"clicks.dat.\w+: cannot decompress: the file is truncated or corrupt") as err:
        reader(path)
    _one_line(err)


@pytest.mark.parametrize(
    "first_bytes, kind, fix",
    [
        (None, "gzip", "unpack it or give it the suffix .gz"),
        (b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(40), "7z", "unpack it first"),
        (b"PAR1" + bytes(40), "Parquet", "read it with format table and a .parquet name"),
    ],
)
@pytest.mark.parametrize("reader", [readers.read_yoochoose, readers.read_diginetica, readers.read_table])
def test_a_binary_file_under_a_text_name_is_named_as_such(tmp_path, first_bytes, kind, fix, reader):
    path = tmp_path / "clicks.csv"
    path.write_bytes(first_bytes or _compressed("gz", YOOCHOOSE_ROWS))
    with pytest.raises(DataError) as err:
        reader(path)
    assert f"clicks.csv: this is a {kind} file (by its first bytes), not text: {fix}" in _one_line(err)


def test_a_compressed_suffix_on_a_plain_file_and_a_zip_of_two_files(tmp_path):
    plain = tmp_path / "clicks.dat.gz"
    plain.write_text(YOOCHOOSE_ROWS)
    with pytest.raises(DataError, match=r"the name ends in .gz but the file is not gzip-compressed"):
        readers.read_yoochoose(plain)
    import zipfile

    with zipfile.ZipFile(tmp_path / "two.csv.zip", "w") as archive:
        archive.writestr("a.csv", "session,item,time\n")
        archive.writestr("b.csv", "session,item,time\n")
    with pytest.raises(DataError, match=r"the zip archive holds 2 files \['a.csv', 'b.csv'\]; expected exactly one"):
        readers.read_table(tmp_path / "two.csv.zip")


def test_a_text_file_that_starts_like_bzip2_stays_text(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("BZh,item,time\n1,a,1400000000\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['session'\]"):
        readers.read_table(path)


# --------------------------------------------------------------------------- #
# headers and rows that would be read silently wrong
# --------------------------------------------------------------------------- #


def test_a_column_named_twice_in_a_table_header_is_refused(tmp_path):
    """pandas would read the first 'session' and rename the second 'session.1', silently."""
    path = tmp_path / "t.csv"
    path.write_text("session,item,time,session\n1,a,1400000000,9\n1,b,1400000001,9\n")
    with pytest.raises(DataError) as err:
        readers.read_table(path)
    assert "t.csv, line 1: the header names column 'session' 2 times (fields 1, 4); expected each once" in _one_line(err)


def test_a_column_really_named_like_a_renamed_duplicate_is_fine(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("session,item,time,session.1\n1,a,1400000000,9\n")
    assert readers.read_table(path)["session"].tolist() == [1]


@pytest.mark.parametrize(
    "header, expected",
    [
        ("sessionId;userId;itemId;timeframe;eventdate;itemId",
         "line 1: the header names column 'itemId' 2 times (fields 3, 6)"),
        ("sessionId;userId;itemId;timeframe;eventdate;session_id",
         "line 1: the header names the session column twice, as 'sessionId' and 'session_id'; expected one spelling"),
    ],
)
def test_a_diginetica_column_named_twice_is_refused(tmp_path, header, expected):
    path = _diginetica(tmp_path, header + "\n1;NA;5;100;2016-05-09;7\n")
    with pytest.raises(DataError) as err:
        readers.read_diginetica(path)
    assert expected in _one_line(err)


def test_the_yoochoose_buys_file_is_not_read_as_clicks(tmp_path):
    """yoochoose-buys.dat starts with the same three columns; read as clicks it would pass silently."""
    path = tmp_path / "yoochoose-buys.dat"
    path.write_text("420374,2014-04-06T18:44:58.314Z,214537888,12462,1\n420374,2014-04-06T18:44:58.325Z,214537850,10471,1\n")
    with pytest.raises(DataError) as err:
        readers.read_yoochoose(path)
    assert "line 1: found 5 ','-separated fields" in _one_line(err)
    assert "5 fields are the layout of yoochoose-buys.dat" in str(err.value)


@pytest.mark.parametrize("reader, good, bad, line",
                         [(readers.read_diginetica, HEADER + "\n1;NA;5;100;2016-05-09\n", '2;NA;"6;100;2016-05-09\n', 3),
                          (readers.read_yoochoose, "1,2014-04-07T10:51:09.277Z,5,0\n" * 3,
                           '2,"2014-04-07T10:51:09.277Z,6,0\n', 4)])
def test_an_unclosed_quote_names_its_line(tmp_path, reader, good, bad, line):
    path = tmp_path / "clicks.csv"
    path.write_text(good + bad + good.splitlines()[-1] + "\n")
    with pytest.raises(DataError) as err:
        reader(path)
    assert f"clicks.csv, line {line}: cannot parse (EOF inside string" in _one_line(err)


# --------------------------------------------------------------------------- #
# output and result folders
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["runs", "prune", "{file}"], "{file}: is a file; expected a suite's output folder (holding runs/)"),
        (["runs", "ls", "{file}"], "{file}: is a file; expected a suite's output folder (holding runs/)"),
        (["datasets", "generate", "yoochoose", "--out", "{file}", "--scale", "0.0001"],
         "--out {file}: {file} is a file; expected a folder"),
        (["compare", "{tmp}/a", "{tmp}/b", "--out", "{file}"], "--out {file}: {file} is a file; expected a folder"),
    ],
)
def test_a_file_where_a_result_or_output_folder_is_expected(tmp_path, capsys, argv, expected):
    file = tmp_path / "a-file"
    file.write_text("x")
    values = {"file": file, "tmp": tmp_path}
    line = _error_line(*_cli(capsys, *[a.format(**values) for a in argv]))
    assert expected.format(**values) in line


def test_runs_prune_of_a_mistyped_folder_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "reports" / "typo"
    line = _error_line(*_cli(capsys, "runs", "prune", str(missing), "--yes"))
    assert f"{missing}: no stored runs" in line and not missing.exists()


# --------------------------------------------------------------------------- #
# YAML 1.1 numbers that read otherwise than they look
# --------------------------------------------------------------------------- #


def test_a_leading_zero_integer_in_a_suite_is_refused(tmp_path, capsys):
    """YAML 1.1 reads 010 as octal 8: seeds [010] would silently run seed 8."""
    suite = tmp_path / "s.yaml"
    suite.write_text("datasets: [synthetic]\nmodels: [pop]\nseeds: [1, 010]\n")
    line = _error_line(*_cli(capsys, "run", str(suite), "--out", str(tmp_path / "out")))
    assert f"{suite}, line 3, column 12: '010' is an octal number in YAML 1.1 (it means 8)" in line


def test_a_leading_zero_integer_on_the_command_line_is_refused(capsys):
    line = _error_line(*_cli(capsys, "evaluate", "--dataset", "synthetic", "--model", "sknn", "--param", "k=010"))
    assert "--param 'k=010': value '010': '010' is an octal number in YAML 1.1 (it means 8)" in line


def test_other_integer_spellings_keep_their_yaml_meaning():
    from harness.yamlfile import load_yaml_text

    assert load_yaml_text("[0, -3, 0x10, 0b11, 1_000, 1:30, '010']", "t") == [0, -3, 16, 3, 1000, 90, "010"]


def test_a_typo_of_a_method_or_format_in_a_spec_suggests_it(tmp_path):
    spec = _session_rec_spec(tmp_path, _good_rows())
    for old, new, expected in [("method: standard", "method: standrd", "got 'standrd' (did you mean 'standard'?)"),
                               ("format: session-rec", "format: sesion-rec", "(did you mean 'session-rec'?)")]:
        (tmp_path / "bad.yaml").write_text(spec.read_text().replace(old, new))
        with pytest.raises(_ConfigError) as err:
            specs.load_spec(tmp_path / "bad.yaml")
        assert expected in _one_line(err)


def test_a_typo_of_a_generator_parameter_suggests_it():
    from harness.data.synthetic import generate_events

    with pytest.raises(_ConfigError, match=r"unknown parameter\(s\) zipf_exponnt \(did you mean 'zipf_exponent'\?\)"):
        generate_events(n_sessions=10, n_items=5, seed=0, days=1, zipf_exponnt=1.0)


# --------------------------------------------------------------------------- #
# cut-offs beyond the number of items
# --------------------------------------------------------------------------- #


def test_a_k_above_the_number_of_items_is_refused_by_evaluate(tmp_path, capsys):
    """A K beyond n_items gives HitRate@K = 1 for every model: refused before fitting."""
    spec = _session_rec_spec(tmp_path, _good_rows())
    n_items = specs.load_dataset(spec, cache_dir=tmp_path / "cache").n_items
    line = _error_line(*_cli(capsys, "evaluate", "--dataset", str(spec), "--model", "pop", "--k", f"5,{n_items + 1}"))
    assert f"--k: K={n_items + 1} exceeds the {n_items} items of dataset 't'" in line
    assert f"expected K <= {n_items}" in line


def test_a_k_above_the_number_of_items_is_refused_by_a_suite_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(tmp_path / "cache"))
    spec = _session_rec_spec(tmp_path / "data", _good_rows())
    suite = tmp_path / "s.yaml"
    suite.write_text(f"datasets: [{spec}]\nmodels: [pop]\nks: [5, 1000]\n")
    line = _error_line(*_cli(capsys, "run", str(suite), "--out", str(tmp_path / "out")))
    assert f"{suite}: key 'ks': K=1000 exceeds the" in line and "items of dataset 't'" in line
    assert not (tmp_path / "out" / "runs").exists()


def test_a_header_in_another_case_or_space_separated_says_so(tmp_path):
    lower, spaced = tmp_path / "lower.txt", tmp_path / "spaced.txt"
    lower.write_text("sessionid\tItemId\tTime\n1\t2\t1400000000\n")
    spaced.write_text("SessionId ItemId Time\n1 2 1400000000\n")
    with pytest.raises(DataError) as err:
        readers.read_session_rec(lower)
    assert "missing column(s) ['SessionId']" in _one_line(err)
    assert "(column names are case-sensitive: found 'sessionid' for 'SessionId')" in str(err.value)
    with pytest.raises(DataError, match=r"\(the file looks space-separated, expected TAB\)"):
        readers.read_session_rec(spaced)


def test_a_file_of_the_wrong_kind_is_named_as_such(tmp_path, capsys):
    from harness.data.specs import PRESET_DIR
    from harness.run.suites import SUITE_DIR

    raw = tmp_path / "events.csv"
    raw.write_text("session,item,time\n1,a,1400000000\n")
    line = _error_line(*_cli(capsys, "evaluate", "--dataset", str(raw), "--model", "pop"))
    assert f"{raw}: expected a dataset spec (.yaml); a raw file is read through a spec that names it" in line
    line = _error_line(*_cli(capsys, "run", str(PRESET_DIR / "synthetic.yaml"), "--out", str(tmp_path / "o")))
    assert "synthetic.yaml: this is a dataset spec (it has format and preprocess), not a suite" in line
    line = _error_line(*_cli(capsys, "datasets", "stats", str(SUITE_DIR / "default.yaml")))
    assert "default.yaml: this is a suite (it has datasets and models), not a dataset spec" in line


def test_a_data_folder_that_is_a_file_is_named(tmp_path, capsys):
    """Every raw file would otherwise be reported missing under 'afile/...'."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    line = _error_line(*_cli(capsys, "datasets", "--data-dir", str(afile)))
    assert f"{afile}: the data folder is a file; expected the folder holding the raw files" in line
    line = _error_line(*_cli(capsys, "evaluate", "--dataset", "yoochoose-100k", "--model", "pop",
                             "--data-dir", str(afile)))
    assert f"{afile}: the data folder is a file" in line
    spec = specs.load_spec("synthetic")
    assert specs.resolve_raw_files(spec, afile) == {}  # generated data read no folder

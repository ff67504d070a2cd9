"""Bad input gives one-line errors that name the file, the line or column
where it applies, and what was expected."""

from __future__ import annotations

import pytest
from data_paths import DIGINETICA_SAMPLE

from harness import readers, specs
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

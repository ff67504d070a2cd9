"""The command line: every sub-command, its output, and one-line errors."""

import json
import subprocess
import sys
import textwrap

import pytest
from data_paths import DIGINETICA_SAMPLE, YOOCHOOSE_100K

from harness.cli import main

DIGI_DIR = str(DIGINETICA_SAMPLE.parent)


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cli-cache"))


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv", [[], ["datasets"], ["datasets", "stats"], ["models"], ["evaluate"], ["plugin"],
                                  ["plugin", "new"]])
def test_help_on_every_command(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    assert "usage: sessionbench" in capsys.readouterr().out


def test_version_is_the_one_manifests_record(capsys):
    from harness import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"sessionbench {__version__}"


def test_datasets_lists_presets_with_files_sources_and_state(capsys, tmp_path):
    empty = tmp_path / "empty"
    code, out, _ = run(capsys, "datasets", "--data-dir", str(empty))
    assert code == 0
    for name in ("diginetica", "diginetica-sample", "yoochoose-1-64", "yoochoose-1-4", "yoochoose-100k"):
        assert f"\n{name}  [missing]\n" in out
    assert "\nsynthetic  [generated]\n" in out
    assert "train-item-views.csv" in out and "yoochoose-clicks.dat" in out
    assert "--data-dir" in out and "codalab" in out and str(empty) in out
    assert "sessionbench datasets fetch yoochoose-100k" in out
    assert "sessionbench datasets fetch diginetica (by hand) or diginetica-sample" in out


def test_datasets_state_present_and_verified(capsys, tmp_path):
    (tmp_path / "yoochoose").mkdir()
    (tmp_path / "yoochoose" / "yoochoose-clicks.dat").write_text("1,2014-04-07T10:51:09.277Z,214536502,0\n")
    (tmp_path / "diginetica-sample").mkdir()
    (tmp_path / "diginetica-sample" / "sample_train-item-views.csv").write_text("changed\n")
    code, out, _ = run(capsys, "datasets", "list", "--data-dir", str(tmp_path), "--json")
    states = {p["name"]: p["state"] for p in json.loads(out)["presets"]}
    assert code == 0
    # no published checksum for the full clicks: present; the sample has one and differs
    assert states == {"diginetica": "differs", "diginetica-sample": "differs", "synthetic": "generated",
                      "synthetic-100k": "generated",
                      "yoochoose-1-4": "present", "yoochoose-1-64": "present", "yoochoose-100k": "missing"}


@pytest.mark.data("diginetica-sample", "yoochoose-100k")
def test_datasets_state_verified_on_the_real_samples(capsys):
    code, out, _ = run(capsys, "datasets", "--data-dir", str(YOOCHOOSE_100K.parent), "--json")
    states = {p["name"]: p["state"] for p in json.loads(out)["presets"]}
    assert code == 0
    assert states["diginetica"] == states["diginetica-sample"] == states["yoochoose-100k"] == "verified"


@pytest.mark.data("diginetica-sample")
def test_datasets_stats_json_on_the_diginetica_sample(capsys):
    code, out, _ = run(capsys, "datasets", "stats", "diginetica", "--data-dir", DIGI_DIR, "--json")
    stats = json.loads(out)
    assert code == 0
    assert stats["n_items"] == 309
    assert (stats["train"]["sessions"], stats["test"]["sessions"]) == (469, 39)
    assert (stats["train"]["prefixes"], stats["test"]["prefixes"]) == (1205, 99)


@pytest.mark.data("diginetica-sample")
def test_datasets_stats_table(capsys):
    code, out, _ = run(capsys, "datasets", "stats", "diginetica", "--data-dir", DIGI_DIR)
    assert code == 0
    assert "309 items" in out
    assert out.splitlines()[3].split()[:5] == ["sessions", "469", "450", "14", "39"]


def test_models_lists_names_and_hyperparameters(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert "pop " in out and "spop " in out and "tiebreak=0.5" in out
    # a summary that wraps in the docstring is printed whole, on one line
    assert "spop         S-POP: items clicked most often in the current prefix first, then by training popularity.\n" \
        in out
    code, out, _ = run(capsys, "models", "--json")
    assert json.loads(out)["spop"]["hyperparameters"] == {"tiebreak": 0.5}


def test_suites_lists_every_shipped_suite_with_its_datasets_and_models(capsys):
    from harness.run.suites import SUITE_DIR

    code, out, _ = run(capsys, "suites")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert names == sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))
    assert "scale" in names and "default" in names
    scale = out.split("\nscale ", 1)[1].splitlines()
    assert scale[1].split() == ["datasets:", "yoochoose-1-64,", "diginetica"]
    assert scale[2].split() == ["models:", "pop,", "markov,", "gru4rec,", "srgnn"]
    code, out, _ = run(capsys, "suites", "--json")
    listed = json.loads(out)
    assert listed["scale"]["datasets"] == ["yoochoose-1-64", "diginetica"]
    assert listed["scale"]["seeds"] == [0]


@pytest.mark.data("diginetica-sample")
def test_evaluate_prints_a_metric_table(capsys):
    code, out, _ = run(capsys, "evaluate", "--dataset", "diginetica", "--data-dir", DIGI_DIR, "--model", "pop")
    assert code == 0
    lines = out.splitlines()
    assert "99 test cases" in lines[0]
    assert lines[1].split() == ["metric", "@5", "@10", "@20", "@50"]
    assert [line.split()[0] for line in lines[2:8]] == ["HitRate", "Recall", "MRR", "NDCG", "Coverage", "Popularity"]
    assert "fit_seconds=" in lines[8]


@pytest.mark.data("yoochoose-100k")
def test_evaluate_json_on_yoochoose_100k(capsys):
    code, out, _ = run(
        capsys, "evaluate", "--dataset", "yoochoose-100k", "--data-dir", str(YOOCHOOSE_100K),
        "--model", "spop", "--param", "tiebreak=0.25", "--k", "20,5", "--json",
    )  # fmt: skip
    result = json.loads(out)
    assert code == 0
    assert (result["dataset"], result["model"], result["protocol"], result["cases"]) == (
        "yoochoose-100k", "spop", "next", 10152
    )
    assert result["params"] == {"tiebreak": 0.25}
    assert set(result["metrics"]) == {f"{m}@{k}" for m in
                                      ("HitRate", "Recall", "MRR", "NDCG", "Coverage", "Popularity") for k in (5, 20)}
    assert 0 < result["metrics"]["MRR@20"] <= result["metrics"]["HitRate@20"] < 1
    assert result["timings"]["prefixes_per_second"] > 0 and result["timings"]["fit_seconds"] >= 0


@pytest.mark.data("diginetica-sample")
def test_evaluate_rest_protocol_and_module_class(capsys):
    code, out, _ = run(
        capsys, "evaluate", "--dataset", "diginetica", "--data-dir", DIGI_DIR,
        "--model", "baselines.popularity:SessionPopularity", "--protocol", "rest", "--json",
    )  # fmt: skip
    result = json.loads(out)
    assert code == 0 and result["protocol"] == "rest"
    assert result["metrics"]["Recall@20"] <= result["metrics"]["HitRate@20"]


# -- bad input: one line on stderr, exit status 2, no traceback --------------


def write(path, text):
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def table_spec(tmp_path, csv_text, read="{sep: ',', session: sid, item: iid, time: ts}"):
    write(tmp_path / "clicks.csv", csv_text)
    return str(write(tmp_path / "mine.yaml", f"""
        name: mine
        description: a user's table
        source: made in a test
        format: table
        files: {{events: clicks.csv}}
        read: {read}
        preprocess: {{method: standard, test_days: 1, valid_days: 1}}
        """))


def bad_cases(tmp_path):
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    comma_dir = tmp_path / "comma"
    comma_dir.mkdir()
    write(comma_dir / "train-item-views.csv", "session_id,user_id,item_id,timeframe,eventdate\n1,NA,5,10,2016-05-09\n")
    yc_dir = tmp_path / "yc"
    yc_dir.mkdir()
    write(yc_dir / "yoochoose-clicks.dat", "1,2014-04-07T10:51:09.277Z,214536502,0\n1,yesterday,214536500,0\n")
    empty_file_dir = tmp_path / "emptyfile"
    empty_file_dir.mkdir()
    (empty_file_dir / "train-item-views.csv").write_text("")
    digi = ["--dataset", "diginetica", "--model", "pop"]
    return {
        "missing file": ([*digi, "--data-dir", str(empty_dir)], "train-item-views.csv"),
        "wrong separator": ([*digi, "--data-dir", str(comma_dir)], "separat"),
        "missing column": (
            ["--dataset", table_spec(tmp_path / "c", "sid,iid,when\n1,2,3\n"), "--model", "pop"], "'ts'"),
        "non-numeric time": (
            ["--dataset", table_spec(tmp_path / "n", "sid,iid,ts\n1,2,3\n1,3,4\n1,4,abc\n"), "--model", "pop"],
            "line 4"),
        "unparsable timestamp": (
            ["--dataset", "yoochoose-1-64", "--data-dir", str(yc_dir), "--model", "pop"], "line 2"),
        "empty file": ([*digi, "--data-dir", str(empty_file_dir)], "empty"),
        "empty after filtering": (
            ["--dataset", table_spec(tmp_path / "f", "sid,iid,ts\n1,2,3\n2,3,4\n3,4,5\n"), "--model", "pop"],
            "no sessions left"),
        "unknown dataset": (["--dataset", "nosuchdata", "--model", "pop"], "nosuchdata"),
        "unknown model": ([*digi, "--data-dir", DIGI_DIR, "--model", "nosuchmodel"], "unknown model 'nosuchmodel'"),
        "bad param syntax": ([*digi, "--param", "tiebreak"], "expected key=value"),
        "unknown param": ([*digi, "--param", "alpha=1"], "no hyper-parameter 'alpha'"),
        "bad param type": (
            ["--dataset", "diginetica", "--model", "spop", "--param", "tiebreak=high"], "expected a number"),
    }


BAD_IDS = [
    "missing file", "wrong separator", "missing column", "non-numeric time", "unparsable timestamp", "empty file",
    "empty after filtering", "unknown dataset", "unknown model", "bad param syntax", "unknown param", "bad param type",
]


@pytest.mark.parametrize("case", BAD_IDS)
def test_bad_input_is_one_line_with_exit_2(case, tmp_path, capsys):
    for sub in ("c", "n", "f"):
        (tmp_path / sub).mkdir()
    argv, expected = bad_cases(tmp_path)[case]
    code, out, err = run(capsys, "evaluate", *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sessionbench: error: ")
    assert expected in lines[0]


def test_console_script_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "evaluate", "--dataset", "diginetica", "--model", "pop",
         "--data-dir", str(tmp_path)],
        capture_output=True, text=True, env={"SESSIONBENCH_CACHE": str(tmp_path / "c"), "PATH": ""},
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "train-item-views.csv" in proc.stderr


def test_run_and_report_errors_are_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "run", "nosuchsuite")
    assert code == 2 and err.count("\n") == 1 and "unknown suite 'nosuchsuite'" in err
    code, _, err = run(capsys, "report", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "no stored runs found" in err


@pytest.mark.data("diginetica-sample")
def test_report_command_rewrites_the_report_from_stored_runs(tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text(f"datasets: [diginetica]\ndata_dir: {DIGI_DIR}\nmodels: [pop, spop]\n"
                     "ks: [20]\nlatency: {samples: 3, warmup: 1}\n")
    code, out, _ = run(capsys, "run", str(suite), "--out", str(tmp_path / "out"), "--no-report")
    assert code == 0 and "2 executed, 0 failed" in out
    code, out, _ = run(capsys, "report", str(tmp_path / "out"))
    assert code == 0 and "spop" in out
    assert (tmp_path / "out" / "report" / "tables" / "s_diginetica_next.md").is_file()


def test_a_closed_pipe_ends_the_output_quietly():
    """`sessionbench models | head -1`: the reader closes the pipe; no error line, no traceback."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())",
                             "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before sessionbench writes a line: its first write meets a closed pipe
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert stderr == ""

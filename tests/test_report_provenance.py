"""What a report shows: the runs of the plan; superseded, failed and broken runs listed, never
pooled; seeds pooled only within one configuration; tuning runs only in the tuning section."""

from __future__ import annotations

import hashlib
import json
import shutil

import pandas as pd
import pytest
from report_fixtures import add_run

from harness import report
from harness.cli import main
from harness.report.provenance import ReportError, select_runs
from harness.run.store import Plan, write_plan
from harness.models.testing import tiny_dataset

N_BOOT = 50


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """A folder with a plan: pop, markov, a tuned gru4rec (two grid points), one superseded run,
    one run of the plan that fails verification."""
    out = tmp_path_factory.mktemp("planned")
    data = tiny_dataset(n_test=40, seed=0)
    ids = [add_run(out, data, "pop", 0), add_run(out, data, "markov", 0)]
    grid = []
    for hidden, kind in ((32, "pop"), (64, "markov")):
        rid = add_run(out, data, f"gru4rec[hidden={hidden}]", 0, stage="tune", kind=kind, model="gru4rec",
                      params={"hidden": hidden})
        grid.append((rid, hidden))
    final = add_run(out, data, "gru4rec", 0, kind="markov", params={"hidden": 64}, with_curve=True)
    ids += [r for r, _ in grid] + [final]
    broken = add_run(out, data, "sr", 0)
    ids.append(broken)
    ranks = out / "runs" / broken / "ranks.parquet"
    ranks.write_bytes(ranks.read_bytes()[:100])  # truncated
    # an older configuration of pop, no longer in the plan
    add_run(out, data, "pop", 1, run_id="tiny-pop-old", params={"old": True})
    from harness.run.store import read_manifest

    values = {rid: read_manifest(out / "runs" / rid)["metrics"]["MRR@20"] for rid, _ in grid}
    selection = {"dataset": "tiny", "protocol": "next", "label": "gru4rec", "seed": 0, "metric": "MRR@20",
                 "split": "valid",
                 "candidates": [{"run_id": rid, "params": {"hidden": h}, "value": values[rid]} for rid, h in grid],
                 "chosen": grid[1][0], "params": {"hidden": 64}, "final": final}
    write_plan(out, Plan("test", "name: test\nstyle:\n  pop: {color: '#117733'}\n", {}, tuple(ids), (selection,)))
    return out, {"grid": grid, "final": final, "broken": broken, "values": values}


def test_every_row_names_its_runs_code_and_hyper_parameters(planned):
    out, info = planned
    summary = report.write_report(out, n_bootstrap=N_BOOT)
    table = pd.read_csv(summary.path / "tables" / "test_tiny_next.csv", index_col="label")
    assert table.loc["gru4rec", "run_ids"] == info["final"]
    assert table.loc["pop", "run_ids"] == "tiny-pop-s0-next"  # not the superseded tiny-pop-old
    assert json.loads(table.loc["gru4rec", "params"]) == {"hidden": 64}
    assert table.loc["gru4rec", "model"] == "gru4rec"
    md = summary.summary_path.read_text()
    runs = md.split("### Runs", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    assert f"| gru4rec | `{info['final']}` |" in runs and "hidden=64" in runs
    assert "tiny-pop-old" not in runs and info["broken"] not in runs
    for grid_point, _ in info["grid"]:  # tuning runs belong to the tuning section, not here
        assert grid_point not in runs


def test_the_report_shows_exactly_the_plan(planned):
    out, info = planned
    summary = report.write_report(out, n_bootstrap=N_BOOT)
    table = pd.read_csv(summary.path / "tables" / "test_tiny_next.csv", index_col="label")
    assert list(table.index) == ["pop", "markov", "gru4rec"]
    assert table.loc["pop", "n_seeds"] == 1  # the superseded pop run is not pooled in
    assert summary.n_runs == 3
    # superseded: listed with its label, in the result and in summary.md
    assert summary.superseded == (("tiny-pop-old", "pop", "test"),)
    md = summary.summary_path.read_text()
    assert "Superseded / not in the plan" in md and "`tiny-pop-old` | pop" in md
    # failing verification: one line in the printed text and in summary.md
    assert [rid for rid, _ in summary.broken] == [info["broken"]]
    line = [ln for ln in summary.text.splitlines() if info["broken"] in ln]
    assert len(line) == 1 and "ranks.parquet" in line[0]
    assert info["broken"] in md and "Failing verification" in md
    # the plan's suite style map is used
    assert report.collect(out, n_bootstrap=N_BOOT).styles["pop"].color == "#117733"


def test_tuning_is_reported_as_tuning(planned):
    out, info = planned
    summary = report.write_report(out, n_bootstrap=N_BOOT)
    tables = summary.path / "tables"
    # grid points never reach the test tables or figures
    for path in (tables / "test_tiny_next.csv", tables / "test_tiny_next.md", tables / "test_tiny_next.tex"):
        assert "hidden=32]" not in path.read_text() and "gru4rec[" not in path.read_text()
    results = report.collect(out, n_bootstrap=N_BOOT)
    (group,) = results.groups
    assert group.labels == ["pop", "markov", "gru4rec"]
    assert int(group.bin_counts.sum()) == group.n_cases["pop"]  # test cases only
    tuning = pd.read_csv(tables / "test_tiny_next_tuning.csv")
    assert list(tuning["params"]) == ["hidden=32", "hidden=64"]
    assert list(tuning["chosen"]) == [False, True]
    assert tuning["validation"].tolist() == pytest.approx([info["values"][rid] for rid, _ in info["grid"]])
    assert set(tuning["final_run_id"]) == {info["final"]}
    csv = pd.read_csv(tables / "test_tiny_next.csv", index_col="label")
    assert csv.loc["gru4rec", "tuned_params"] == "hidden=64"
    assert "Tuned on the validation split: gru4rec: hidden=64" in (tables / "test_tiny_next.tex").read_text()
    md = summary.summary_path.read_text()
    assert "### Tuning" in md and "| hidden=32 |" in md


def test_two_configurations_under_one_label_are_an_error(tmp_path, capsys):
    data = tiny_dataset(n_test=30, seed=0)
    a = add_run(tmp_path, data, "gru4rec", 0, params={"hidden": 32})
    b = add_run(tmp_path, data, "gru4rec", 1, params={"hidden": 64})
    with pytest.raises(ReportError) as err:
        report.collect(tmp_path, n_bootstrap=N_BOOT)
    message = str(err.value)
    assert a in message and b in message and "\n" not in message and "configuration" in message
    assert main(["report", str(tmp_path)]) == 2
    stderr = capsys.readouterr().err.strip()
    assert len(stderr.splitlines()) == 1 and a in stderr and b in stderr


def test_code_digests_that_differ_are_named(tmp_path):
    data = tiny_dataset(n_test=30, seed=0)
    for seed, code in ((0, "a" * 64), (1, "b" * 64)):
        add_run(tmp_path, data, "sr", seed, extra={"pool_digest": f"pool-{seed}", "code": {"digest": code},
                                                   "config_digest": f"cfg-{seed}"})
    with pytest.raises(ReportError, match="code digests aaaaaaaaaaaa and bbbbbbbbbbbb"):
        select_runs(tmp_path)


def test_without_a_plan_seeds_of_one_configuration_are_pooled(tmp_path):
    data = tiny_dataset(n_test=30, seed=0)
    for seed in (0, 1, 2):
        add_run(tmp_path, data, "gru4rec", seed, params={"hidden": 64})
    add_run(tmp_path, data, "pop", 0)
    summary = report.write_report(tmp_path, n_bootstrap=N_BOOT)
    table = pd.read_csv(summary.path / "tables" / "tiny_next.csv", index_col="label")
    assert table.loc["gru4rec", "n_seeds"] == 3 and table.loc["pop", "n_seeds"] == 1
    assert "no plan file" in summary.summary_path.read_text()
    assert "3 seeds for gru4rec, 1 for the others" in (summary.path / "tables" / "tiny_next.md").read_text()


def test_report_options_on_the_command_line(tmp_path, capsys):
    data = tiny_dataset(n_test=30, seed=0)
    for label in ("pop", "markov", "sr"):
        add_run(tmp_path, data, label, 0)
    assert main(["report", str(tmp_path), "--models", "pop,sr", "--metrics", "mrr,recall", "--ks", "10",
                 "--layout", "wide", "--figure-width", "text", "--n-bootstrap", "20"]) == 0
    md = (tmp_path / "report" / "tables" / "tiny_next.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    assert header == "| model | MRR@10 | Recall@10 |"
    assert "markov" not in md
    assert r"\begin{table*}" in (tmp_path / "report" / "tables" / "tiny_next.tex").read_text()
    capsys.readouterr()
    for bad, message in ((["--metrics", "speed"], "unknown column 'speed'"), (["--models", "nope"], "nope"),
                         (["--figure-width", "wide"], "figure-width")):
        assert main(["report", str(tmp_path), *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err


def test_the_tables_and_the_summary_follow_the_suites_ks(tmp_path):
    """A suite of ks: [10, 20] gets its tables and compact summary at 10 and
    20 (the two largest of the suite's ks), not at the shipped suites' 20 and 50."""
    data = tiny_dataset(n_test=30, seed=0)
    ids = [add_run(tmp_path, data, label, 0) for label in ("pop", "markov")]
    write_plan(tmp_path, Plan("mine", "name: mine\nks: [5, 10, 20]\n", {"ks": [5, 10, 20]}, tuple(ids), ()))
    summary = report.write_report(tmp_path, n_bootstrap=20)
    md = (summary.path / "tables" / "mine_tiny_next.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    assert header.startswith("| model | HitRate@10 | HitRate@20 | MRR@10 |") and "@50" not in header
    assert "HitRate@10" in str(summary) and "@50" not in str(summary) and "@5 " not in str(summary)
    csv = pd.read_csv(summary.path / "tables" / "mine_tiny_next.csv")
    assert {"HitRate@5", "HitRate@10", "HitRate@20"} <= set(csv.columns)  # every K of the suite
    assert "20 and 50" not in md


def test_runs_made_with_other_metric_code_are_named(tmp_path):
    """The report recomputes every number from the stored ranks with this process's metric code; runs
    whose manifests record other code of harness/evaluation/metrics.py (a report after an upgrade) are named, so
    no number silently comes from code that no manifest records."""
    from harness.run.fingerprint import package_files

    data = tiny_dataset(n_test=30, seed=0)
    now = {path: code for path, _, code in package_files("harness") if path.startswith("harness/")}
    files = [{"path": p, "code_sha256": c} for p, c in sorted(now.items())]
    add_run(tmp_path, data, "pop", 0, extra={"code": {"digest": "a" * 64, "files": files}})
    assert not [w for w in report.collect(tmp_path, n_bootstrap=N_BOOT).warnings if "metrics.py" in w]
    older = [{**f, "code_sha256": "0" * 64} if f["path"] == "harness/evaluation/metrics.py" else f for f in files]
    rid = add_run(tmp_path, data, "markov", 0, extra={"code": {"digest": "b" * 64, "files": older}})
    summary = report.write_report(tmp_path, n_bootstrap=N_BOOT)
    (line,) = [w for w in summary.warnings if "metrics.py" in w]
    assert line.startswith(f"1 run(s) (e.g. {rid}) were made with other code of harness/evaluation/metrics.py")
    assert "harness/evaluation/metrics.py" in summary.summary_path.read_text()


def test_a_style_for_no_stored_label_is_named_with_the_likely_one(tmp_path):
    """Styles are matched to labels exactly: a key that is no run's label is
    reported (with the close label, if any) instead of being dropped without
    a word; keys of labels that exist, shown or not, are not."""
    data = tiny_dataset(n_test=30, seed=0)
    for label in ("pop", "markov"):
        add_run(tmp_path, data, label, 0)
    style = {"Markov": {"color": "#117733"}, "pop": {"color": "#332288"}, "gru4rec": {"color": "#882255"}}
    summary = report.write_report(tmp_path, n_bootstrap=N_BOOT, style=style, models=["pop"])
    unused = [w for w in summary.warnings if w.startswith("style:")]
    assert unused == [
        "style: no run is labelled 'Markov' (did you mean 'markov'?), so its style is not used (labels: markov, pop)",
        "style: no run is labelled 'gru4rec', so its style is not used (labels: markov, pop)",
    ]
    assert all(w in summary.summary_path.read_text() for w in unused)


def test_a_run_redraws_the_report_with_the_last_reports_options(tmp_path, monkeypatch, capsys):
    """`report --column-width 3.16 --ks 5` then `run` into the same folder: the
    figures stay 3.16 in wide and the table at K = 5 (a two-column paper's
    settings are not lost); --models is not kept; a garbled options file
    falls back to the defaults with a warning."""
    from PIL import Image
    from suite_helpers import prepare_workdir, tiny_suite
    from test_runner import TINY_SPEC

    from harness.run.runner import InlineExecutor, run_suite

    workdir = prepare_workdir(tmp_path, monkeypatch, spec=TINY_SPEC, dataset="tinysyn", plugins="",
                              module="no_plugins")
    suite = tiny_suite(workdir, "tinysyn", ["pop", "markov"], ks=[5, 10, 20])
    out = workdir / "out"

    def figure_inches() -> float:
        with Image.open(out / "report" / "figures" / "t_tinysyn_next_bars.png") as image:
            return image.size[0] / image.info["dpi"][0]

    def header() -> str:
        md = (out / "report" / "tables" / "t_tinysyn_next.md").read_text()
        return next(line for line in md.splitlines() if line.startswith("| model"))

    run_suite(suite, out_dir=out, executor=InlineExecutor())
    assert abs(figure_inches() - 3.3) < 0.01 and "HitRate@10 | HitRate@20" in header()
    assert main(["report", str(out), "--column-width", "3.16", "--ks", "5", "--models", "pop",
                 "--n-bootstrap", "30"]) == 0
    assert abs(figure_inches() - 3.16) < 0.01 and "markov" not in header()
    outcome = run_suite(suite, out_dir=out, executor=InlineExecutor())
    assert not outcome.executed
    assert abs(figure_inches() - 3.16) < 0.01
    assert header().startswith("| model | HitRate@5 | MRR@5 |") and "@10" not in header()
    assert "markov" in (out / "report" / "tables" / "t_tinysyn_next.md").read_text()  # every label again
    (out / "report" / "options.json").write_text("{not json")
    run_suite(suite, out_dir=out, executor=InlineExecutor())
    assert abs(figure_inches() - 3.3) < 0.01 and "HitRate@10 | HitRate@20" in header()
    capsys.readouterr()


def test_a_report_names_the_code_that_drew_it_in_every_file_a_paper_takes(tmp_path, monkeypatch):
    """Run ids leave the report code out (editing a figure must not rerun
    anything), so the report itself records which report code computed its
    CIs, marks and figures: in summary.md, options.json and every .tex file;
    and a commit with uncommitted edits is never shown as the bare commit."""
    from harness import __version__
    from harness.report import provenance
    from harness.run import fingerprint

    data = tiny_dataset(n_test=30, seed=0)
    add_run(tmp_path, data, "pop", 0, extra={"git_commit": "0123456789abcdef" * 2 + "-dirty"})
    real = provenance.drawing_code
    monkeypatch.setattr(report, "drawing_code", lambda: {**real(), "git_commit": "fedcba9876543210" * 2})
    summary = report.write_report(tmp_path, n_bootstrap=N_BOOT)
    text = summary.summary_path.read_text()
    stamp = json.loads((summary.path / "options.json").read_text())["drawn_by"]
    assert stamp["git_commit"] == "fedcba9876543210" * 2 and stamp["sessionbench"] == __version__
    line = f"sessionbench {__version__}, report code {stamp['report_code'][:12]}, git fedcba987654"
    assert f"Drawn by {line}." in text
    assert "(git 0123456789ab (with uncommitted edits))" in text  # the run's own commit, in the Runs section
    texes = sorted(summary.path.rglob("*.tex"))
    assert texes and all(t.read_text().startswith(f"% drawn by {line}\n") for t in texes)
    assert report.last_report_options(tmp_path)[1] is None  # the stamp does not spoil the options

    # the digest covers the report's own files, and a change of their code
    before = real()["report_code"]
    assert before != hashlib.sha256(b"").hexdigest()
    copy = tmp_path / "tree"
    shutil.copytree(fingerprint.REPO_ROOT / "harness" / "report", copy / "harness" / "report",
                    ignore=shutil.ignore_patterns("__pycache__"))
    files = sorted((copy / "harness").rglob("*.py"))
    monkeypatch.setattr(fingerprint, "package_location", lambda top: (copy, files))
    assert real()["report_code"] == before
    (copy / "harness" / "report" / "statistics.py").write_text(
        (copy / "harness" / "report" / "statistics.py").read_text() + "\n# a comment is not code\n")
    assert real()["report_code"] == before
    (copy / "harness" / "report" / "statistics.py").write_text(
        (copy / "harness" / "report" / "statistics.py").read_text() + "\nALPHA = 0.01\n")
    assert real()["report_code"] != before


def test_table_captions_say_which_days_the_test_split_covers(tmp_path):
    from harness.report.collection import test_period

    data = tiny_dataset(n_test=30, seed=0)
    stats = {"dataset_stats": {"n_items": data.n_items,
                               "test": {"first_event": "2016-05-26 00:00", "last_event": "2016-06-01 00:11"}}}
    add_run(tmp_path, data, "pop", 0, extra=stats)
    add_run(tmp_path, data, "markov", 0, extra=stats)
    summary = report.write_report(tmp_path, n_bootstrap=N_BOOT)
    for name in ("tiny_next.md", "tiny_next.tex"):
        assert "test sessions, 2016-05-26 to 2016-06-01)" in (summary.path / "tables" / name).read_text()
    assert test_period({"dataset_stats": {"test": {"first_event": "2016-05-26 00:00",
                                                   "last_event": "2016-05-26 23:00"}}}) == "2016-05-26"
    assert test_period({}) is None and test_period({"dataset_stats": {"test": {"first_event": None}}}) is None
    for first, last in (("x\n# y", "100%_&#\\{"), ("2025-01-01", "2020-01-01"), (12345, [1, 2])):
        assert test_period({"dataset_stats": {"test": {"first_event": first, "last_event": last}}}) is None


def test_two_suites_reports_on_one_dataset_can_share_a_papers_folder(tmp_path):
    """Figures and tables start with the suite's name: copied into one
    folder, two reports on the same dataset keep every file, and their
    LaTeX labels stay distinct in one document."""
    data = tiny_dataset(n_test=30, seed=0)
    names, labels = [], []
    for suite in ("default", "tuned"):
        out = tmp_path / suite
        ids = [add_run(out, data, label, 0) for label in ("pop", "markov")]
        write_plan(out, Plan(suite, f"name: {suite}\n", {}, tuple(ids), ()))
        summary = report.write_report(out, n_bootstrap=20)
        files = {p.relative_to(summary.path).as_posix() for p in summary.figures + summary.tables}
        assert f"figures/{suite}_tiny_next_bars.pdf" in files and f"tables/{suite}_tiny_next.tex" in files
        names.append(files)
        labels.append({line for p in summary.figures + summary.tables if p.suffix == ".tex"
                       for line in p.read_text().splitlines() if r"\label{" in line})
    assert not names[0] & names[1]
    assert labels[0] and labels[1] and not labels[0] & labels[1]
    captions = [(tmp_path / s / "report" / "figures" / f"{s}_tiny_next_bars.txt").read_text()
                for s in ("default", "tuned")]
    assert [c.split(": ")[0] for c in captions] == ["tiny (next), suite default", "tiny (next), suite tuned"]


def test_a_suite_name_with_a_dot_keeps_every_report_file_apart(tmp_path):
    """`paper.v2` is a valid suite name; Path.with_suffix made every figure
    `paper.png` (each overwriting the last) while summary.md and the .tex
    files named files that did not exist."""
    import re as regex

    from harness.report.collection import MAX_SLUG_LENGTH, file_slug

    data = tiny_dataset(n_test=30, seed=0)
    ids = [add_run(tmp_path, data, label, 0) for label in ("pop", "markov")]
    write_plan(tmp_path, Plan("paper.v2", "name: paper.v2\n", {}, tuple(ids), ()))
    summary = report.write_report(tmp_path, n_bootstrap=20)
    written = summary.figures + summary.tables
    assert len({p.name for p in written}) == len(written) and all(p.is_file() for p in written)
    assert all(p.name.startswith("paper.v2_tiny_next") for p in written)
    for link in regex.findall(r"\]\(((?:figures|tables)/[^)]+)\)", summary.summary_path.read_text()):
        assert (summary.path / link).is_file(), link
    for tex in (p for p in written if p.suffix == ".tex" and "figures" in p.parts):
        (graphic,) = regex.findall(r"\\includegraphics\{([^}]+)\}", tex.read_text())
        assert (tex.parent / graphic).is_file()
    assert not file_slug("..", "x").startswith(".") and not file_slug(".hidden").startswith(".")
    long = file_slug("a" * 300, "tiny")
    assert len(long) == MAX_SLUG_LENGTH and long != file_slug("a" * 299 + "b", "tiny")


@pytest.mark.parametrize("change", [
    {"n_bootstrap": 10_000_000}, {"n_bootstrap": 0}, {"n_bootstrap": True}, {"table": {"ks": [0]}},
    {"table": {"ks": [True]}}, {"table": {"ks": [5.7]}}, {"table": {"metrics": [["HitRate"]]}},
    {"table": {"metrics": "HitRate"}}, {"table": {"metrics": ["Bogus"]}}, {"table": {"metrics": []}},
    {"table": {"layout": ["wide"]}}, {"column_width": float("nan")}, {"column_width": -1},
])
def test_a_hand_edited_options_file_is_held_to_the_command_lines_rules(tmp_path, change):
    """`sessionbench run` redraws with report/options.json: a value the
    command line refuses (10**7 replicates hung the run; a metrics string
    became one column per letter) is a warning and the defaults."""
    data = tiny_dataset(n_test=30, seed=0)
    add_run(tmp_path, data, "pop", 0)
    report.write_report(tmp_path, n_bootstrap=20)
    path = tmp_path / "report" / "options.json"
    options = json.loads(path.read_text())
    assert report.last_report_options(tmp_path)[1] is None
    for key, value in change.items():
        if isinstance(value, dict):
            options[key] = {**options[key], **value}
        else:
            options[key] = value
    path.write_text(json.dumps(options))
    kept, problem = report.last_report_options(tmp_path)
    assert kept == {} and "not a report's options" in problem and "drawing with the default options" in problem

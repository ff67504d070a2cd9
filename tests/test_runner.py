"""Suites, the runner and the store: validation, skipping, failures,
interruption, determinism and grid tuning on the validation split."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.run.runner import InlineExecutor, run_suite
from harness.run.store import iter_runs, read_manifest
from harness.run.suites import load_suite, parse_suite
from suite_helpers import prepare_workdir, run_inline, tiny_suite

TINY_SPEC = """
name: tinysyn
description: tiny synthetic data for runner tests
source: generated
format: synthetic
generator: {n_sessions: 700, n_items: 60, seed: 3, days: 10}
preprocess: {method: standard, test_days: 2, valid_days: 2}
"""

PLUGINS = '''
import os, time
import torch
from harness.models.plugin import SessionRecommender

class Slow(SessionRecommender):
    """Sleeps in fit for $SLOW_SECONDS seconds."""
    def _fit(self, data, *, seed):
        time.sleep(float(os.environ.get("SLOW_SECONDS", "0")))
        self.n_ = 1
    def _score(self, batch):
        return torch.zeros(len(batch), self.n_items_ + 1)

class WrongShape(SessionRecommender):
    """Forgets the padding column."""
    def _fit(self, data, *, seed):
        pass
    def _score(self, batch):
        return torch.zeros(len(batch), self.n_items_)

class NaNScores(SessionRecommender):
    """Returns NaN."""
    def _fit(self, data, *, seed):
        pass
    def _score(self, batch):
        return torch.full((len(batch), self.n_items_ + 1), float("nan"))

class PeeksAtTest(SessionRecommender):
    """Reads the test split while fitting."""
    def _fit(self, data, *, seed):
        self.n_test_ = data.test.n_sessions
    def _score(self, batch):
        return torch.zeros(len(batch), self.n_items_ + 1)

class SlowWithBar(Slow):
    """Slow, after making a progress bar (tqdm's first bar makes its lock)."""
    def _fit(self, data, *, seed):
        from tqdm import tqdm
        tqdm(total=1, disable=True).close()
        super()._fit(data, seed=seed)

class Broken(SessionRecommender):
    """Raises in fit."""
    def _fit(self, data, *, seed):
        raise RuntimeError("broken on purpose")
    def _score(self, batch):
        raise AssertionError
'''


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    return prepare_workdir(tmp_path, monkeypatch, spec=TINY_SPEC, dataset="tinysyn", plugins=PLUGINS, module="runner_plugins")


def suite(workdir, models, **extra):
    return tiny_suite(workdir, "tinysyn", models, **extra)


# -- suite validation --------------------------------------------------------


@pytest.mark.parametrize(
    "data, match",
    [
        ({"datasets": ["synthetic"], "models": ["pop"], "colour": 1}, r"t.yaml: unknown key 'colour'"),
        ({"datasets": ["synthetic"], "models": [{"name": "pop", "parms": {}}]}, r"unknown key 'models\[0\].parms'"),
        ({"datasets": ["synthetic"], "models": ["nosuch"]}, r"models\[0\].name.*unknown model 'nosuch'"),
        ({"datasets": ["synthetic"], "models": [{"name": "spop", "params": {"tiebreak": "x"}}]}, "expected a number"),
        ({"datasets": ["synthetic"], "models": ["pop"], "ks": [0]}, r"key 'ks': expected an integer >= 1"),
        ({"datasets": ["synthetic"], "models": ["pop"], "protocols": ["all"]}, "'next' and/or 'rest'"),
        ({"datasets": [], "models": ["pop"]}, "key 'datasets': expected a non-empty list"),
        ({"datasets": ["synthetic"], "models": ["pop", "pop"]}, "labels must be unique"),
        ({"datasets": ["synthetic"], "models": [{"name": "sr", "grid": {"steps": 3}}]}, "grid: expected a mapping"),
    ],
)
def test_suite_validation_names_file_and_key(data, match):
    with pytest.raises(ConfigError, match=match):
        parse_suite(data, Path("suites/t.yaml"))


def test_suite_yaml_numbers_written_as_strings_are_coerced(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("datasets: [synthetic]\nmodels: [{name: spop, params: {tiebreak: 1e-3}}]\n")
    assert load_suite(path).models[0].params == {"tiebreak": 1e-3}


def test_a_spec_path_is_found_beside_the_suite_file(workdir, monkeypatch):
    """`datasets: [tinysyn.yaml]` in a suite kept beside its spec runs from any folder (as a relative
    data_dir does); a relative path that is not beside the suite still means the current folder."""
    project = workdir / "project"
    project.mkdir()
    (project / "tinysyn.yaml").write_text((workdir / "tinysyn.yaml").read_text())
    (project / "s.yaml").write_text("name: s\ndatasets: [tinysyn.yaml]\nmodels: [pop]\n"
                                    "latency: {samples: 5, warmup: 1}\n")
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = load_suite(project / "s.yaml")
    assert [d.name for d in s.datasets] == [str((project / "tinysyn.yaml").resolve())]
    assert len(run_inline(s, workdir / "out").executed) == 1
    assert [r.label for r in iter_runs(workdir / "out")] == ["pop"]
    (project / "cwd.yaml").write_text("name: c\ndatasets: [tinysyn.yaml, other.yaml]\nmodels: [pop]\n")
    (project / "tinysyn.yaml").unlink()
    assert [d.name for d in load_suite(project / "cwd.yaml").datasets] == ["tinysyn.yaml", "other.yaml"]


def test_save_models_says_which_skipped_runs_have_no_model(workdir):
    """--save-models on a folder whose runs are complete executes nothing, so it cannot save their
    models: one line says so (and how to get them) instead of leaving model/ silently missing."""
    s = suite(workdir, ["pop", "markov"])
    out = workdir / "out"
    run_inline(s, out)
    lines = []
    again = run_inline(s, out, save_models=True, echo=lines.append)
    assert again.executed == [] and len(again.skipped) == 2
    assert "note   2 of them have no saved model: --save-models saves the runs it executes; --force redoes them" \
        in lines
    lines.clear()
    run_inline(s, out, save_models=True, force=True)
    run_inline(s, out, save_models=True, echo=lines.append)
    assert not [line for line in lines if "no saved model" in line]


def test_shipped_suites_are_valid():
    for name in ("default", "yoochoose-100k", "diginetica-sample", "scale"):
        s = load_suite(name)
        assert s.models and s.datasets


# -- running -----------------------------------------------------------------


def test_runs_are_stored_skipped_and_forced(workdir):
    s = suite(workdir, ["pop", "markov"], seeds=[0, 1])
    out = workdir / "out"
    first = run_inline(s, out)
    assert len(first.executed) == 4 and not first.failed
    runs = {r.run_id: r for r in iter_runs(out)}
    assert len(runs) == 4
    for r in runs.values():
        assert (r.path / "ranks.parquet").is_file()
        assert r.manifest["timings"]["latency_ms_p95"] >= r.manifest["timings"]["latency_ms_p50"] > 0
        assert r.evaluation.metrics([20])["HitRate@20"] == pytest.approx(r.manifest["metrics"]["HitRate@20"])
    again = run_inline(s, out)
    assert again.executed == [] and sorted(again.skipped) == sorted(runs)
    forced = run_inline(s, out, force=True, only=["*/markov/1"])
    assert len(forced.executed) == 1 and forced.executed[0].startswith("tinysyn-markov-s1-")


def test_same_suite_and_seed_give_identical_metrics(workdir):
    s = suite(workdir, ["sr", "itemknn"])
    a = {r.label: r.manifest["metrics"] for r in (run_inline(s, workdir / "a"), *iter_runs(workdir / "a"))[1:]}
    b = {r.label: r.manifest["metrics"] for r in (run_inline(s, workdir / "b"), *iter_runs(workdir / "b"))[1:]}
    assert a == b and set(a) == {"sr", "itemknn"}


def test_a_failing_run_is_recorded_and_the_suite_goes_on(workdir):
    s = suite(workdir, ["pop", "runner_plugins:Broken"])
    outcome = run_inline(s, workdir / "out")
    assert len(outcome.failed) == 1
    failed = [r for r in iter_runs(workdir / "out", include_failed=True) if not r.complete]
    assert failed[0].manifest["error_line"].endswith("broken on purpose")
    assert "Traceback" in failed[0].manifest["error"]
    assert [r.label for r in iter_runs(workdir / "out")] == ["pop"]
    # a failed run is retried next time
    assert run_inline(s, workdir / "out").executed == outcome.failed


def test_plugins_that_break_the_contract_fail_alone_with_the_rule_named(workdir):
    s = suite(workdir, ["pop", "runner_plugins:WrongShape", "runner_plugins:NaNScores", "runner_plugins:PeeksAtTest"])
    outcome = run_inline(s, workdir / "out")
    assert len(outcome.failed) == 3
    errors = {r.label: r.manifest["error_line"] for r in iter_runs(workdir / "out", include_failed=True)
              if not r.complete}  # fmt: skip
    assert "runner_plugins.WrongShape" in errors["WrongShape"] and "expected [B, n_items + 1]" in errors["WrongShape"]
    assert "runner_plugins.NaNScores" in errors["NaNScores"] and "NaN or infinite" in errors["NaNScores"]
    assert "PeeksAtTest" in errors["PeeksAtTest"] and "read the test split during fit" in errors["PeeksAtTest"]
    assert [r.label for r in iter_runs(workdir / "out")] == ["pop"]


def test_grid_is_tuned_on_valid_and_only_the_best_point_meets_test(workdir):
    s = suite(workdir, [{"name": "sr", "grid": {"steps": [1, 10], "weighting": ["div", "same"]}}])
    out = workdir / "out"
    run_inline(s, out)
    runs = list(iter_runs(out))
    tune = [r for r in runs if r.manifest["stage"] == "tune"]
    test = [r for r in runs if r.manifest["stage"] == "test"]
    assert len(tune) == 4 and len(test) == 1
    assert all(r.evaluation.split == "test" and r.manifest["dataset_stats"]["test"]["sessions"]
               == r.manifest["dataset_stats"]["valid"]["sessions"] or True for r in tune)
    best = max(tune, key=lambda r: r.manifest["metrics"]["MRR@20"])
    assert {k: test[0].params[k] for k in ("steps", "weighting")} == {k: best.params[k] for k in ("steps", "weighting")}
    assert test[0].label == "sr"


def test_tune_runs_see_train_tr_and_valid_only(workdir):
    s = suite(workdir, [{"name": "pop", "label": "p", "grid": {}}, {"name": "markov", "grid": {"pruning": [0, 5]}}])
    run_inline(s, workdir / "out")
    tune = [r for r in iter_runs(workdir / "out") if r.manifest["stage"] == "tune"]
    stats = tune[0].manifest["dataset_stats"]
    assert stats["train"] == stats["train_tr"]
    assert stats["valid"]["sessions"] == 0


# -- interruption --------------------------------------------------------------


def test_killed_suite_resumes_with_only_the_missing_runs(workdir):
    (workdir / "suite.yaml").write_text(textwrap.dedent(f"""
        name: k
        datasets: [{workdir / 'tinysyn.yaml'}]
        models: [pop, spop, "runner_plugins:Slow", markov]
        ks: [20]
        latency: {{samples: 3, warmup: 1}}
        """))
    env = {**os.environ, "SLOW_SECONDS": "120", "PYTHONPATH": str(workdir)}
    cmd = [sys.executable, "-m", "harness.cli", "run", str(workdir / "suite.yaml"), "--out", "out", "--no-report"]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs = workdir / "out" / "runs"
    deadline = time.time() + 240
    while time.time() < deadline:
        done = [p for p in runs.glob("*") if p.is_dir() and not p.name.startswith(".")] if runs.exists() else []
        if len(done) >= 2:
            break
        time.sleep(0.5)
    time.sleep(4)  # the Slow run is now sleeping inside its worker
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.name: (p / "manifest.json").read_bytes() for p in runs.iterdir() if not p.name.startswith(".")}
    assert len(before) == 2 and all(json.loads(m)["status"] == "complete" for m in before.values())

    env["SLOW_SECONDS"] = "0"
    rerun = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "2 already complete, 2 executed, 0 failed" in rerun.stdout
    after = {p.name: p for p in runs.iterdir() if not p.name.startswith(".")}
    assert len(after) == 4
    for name, manifest in before.items():
        assert (after[name] / "manifest.json").read_bytes() == manifest  # untouched
    assert not [p for p in runs.iterdir() if p.name.startswith(".")]  # no half-written leftovers
    assert read_manifest(after[sorted(after)[0]])["status"] == "complete"


@pytest.mark.parametrize("signum, status, said", [(signal.SIGTERM, 143, "sessionbench: terminated"),
                                                    (signal.SIGINT, 130, "sessionbench: interrupted")])
def test_a_signalled_run_stops_cleanly_and_resumes(workdir, signum, status, said):
    """SIGTERM (a scheduler, `kill`) and Ctrl-C (SIGINT to the whole process
    group) end a run with one line and the shell's status: the workers are
    stopped, the output folder's lock is released, and no resource is left
    for Python's resource tracker to warn about."""
    (workdir / "suite.yaml").write_text(textwrap.dedent(f"""
        name: sig
        datasets: [{workdir / 'tinysyn.yaml'}]
        models: [pop, "runner_plugins:SlowWithBar"]
        ks: [20]
        latency: {{samples: 3, warmup: 1}}
        """))
    env = {**os.environ, "SLOW_SECONDS": "120", "PYTHONPATH": str(workdir)}
    cmd = [sys.executable, "-m", "harness.cli", "run", str(workdir / "suite.yaml"), "--out", "out", "--no-report"]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    runs = workdir / "out" / "runs"
    deadline = time.time() + 240
    while time.time() < deadline and not (runs.exists() and [p for p in runs.iterdir() if not p.name.startswith(".")]):
        time.sleep(0.5)
    time.sleep(4)  # the slow run is now sleeping inside its worker
    os.killpg(proc.pid, signum) if signum == signal.SIGINT else proc.send_signal(signum)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == status, output
    assert output.strip().splitlines()[-1] == (
        said + "; the runs it completed and the epoch checkpoints of the one it was training are kept: "
        "the same command goes on from there")
    assert "leaked" not in output and "Traceback" not in output
    assert not (workdir / "out" / ".lock").exists()

    env["SLOW_SECONDS"] = "0"
    rerun = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "1 already complete, 1 executed, 0 failed" in rerun.stdout


# -- end to end: suite -> store -> report ---------------------------------------


def test_end_to_end_suite_writes_a_report_that_matches_the_stored_ranks(workdir):
    (workdir / "tinysyn2.yaml").write_text(textwrap.dedent(TINY_SPEC).replace("tinysyn", "tinysyn2")
                                           .replace("seed: 3", "seed: 4"))
    s = parse_suite({"name": "e2e", "datasets": [str(workdir / "tinysyn.yaml"), str(workdir / "tinysyn2.yaml")],
                     "models": ["pop", "markov", "sr"], "seeds": [0, 1], "ks": [5, 20],
                     "latency": {"samples": 5, "warmup": 1}}, workdir / "e2e.yaml")  # fmt: skip
    out = workdir / "out"
    outcome = run_suite(s, out_dir=out, executor=InlineExecutor())
    assert len(outcome.executed) == 12 and not outcome.failed
    report = out / "report"
    for dataset in ("tinysyn", "tinysyn2"):
        for kind in ("bars", "metric_vs_k", "accuracy_latency", "prefix_length"):
            for ext in ("png", "pdf"):
                assert (report / "figures" / f"e2e_{dataset}_next_{kind}.{ext}").is_file()
        for ext in ("md", "tex", "csv"):
            assert (report / "tables" / f"e2e_{dataset}_next.{ext}").is_file()
    assert (report / "summary.md").is_file()
    import pandas as pd

    table = pd.read_csv(report / "tables" / "e2e_tinysyn_next.csv").set_index("label")
    for label in ("pop", "markov", "sr"):
        runs = [r for r in iter_runs(out) if r.dataset == "tinysyn" and r.label == label]
        assert len(runs) == 2
        expected = sum(r.evaluation.metrics([20])["MRR@20"] for r in runs) / 2
        assert table.loc[label, "MRR@20"] == pytest.approx(expected, abs=1e-9)
    assert "markov" in outcome.report.text


def test_parallel_jobs_run_each_run_in_its_own_process(workdir):
    from harness.run.runner import LocalProcessExecutor

    s = suite(workdir, ["pop", "spop", "markov"])
    outcome = run_suite(s, out_dir=workdir / "out", executor=LocalProcessExecutor(jobs=2), report=False)
    assert len(outcome.executed) == 3 and not outcome.failed
    pids = {r.manifest["pid"] for r in iter_runs(workdir / "out")}
    assert len(pids) == 3 and os.getpid() not in pids
    peaks = [r.manifest["timings"]["peak_rss_mb"] for r in iter_runs(workdir / "out")]
    assert all(p > 0 for p in peaks)

"""Hyper-parameter search (``tune:`` sections): validation, default spaces,
conditional parameters, selection through plan.json, the test split never
read while tuning, pruning from per-epoch validation values, resuming a
search killed with SIGKILL, and the command line's executor options."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna  # the dev extra installs it
import pytest

from harness.errors import ConfigError
from harness.models.registry import get_model_class
from harness.report.provenance import select_runs
from harness.run.runner import InlineExecutor, run_suite
from harness.data.specs import load_dataset
from harness.run.store import iter_runs, read_plan
from harness.run.suites import parse_suite
from harness.run.tuning import DEFAULT_SPACES, parse_tune, study_path, suggest, trial_history
from harness.yamlfile import load_yaml_text
from suite_helpers import prepare_workdir, tiny_suite

TINY_SPEC = """
name: tinytune
description: tiny synthetic data for tuning tests
source: generated
format: synthetic
generator: {n_sessions: 500, n_items: 50, seed: 5, days: 10}
preprocess: {method: standard, test_days: 2, valid_days: 2}
"""

PLUGINS = '''
import json, os, time
import torch
from harness.models.plugin import SessionRecommender
from harness.models.training import EpochTrainedRecommender

class SplitSpy(SessionRecommender):
    """Popularity to the power alpha; logs the sessions it trains on and scores."""
    def __init__(self, *, alpha: float = 1.0, log: str = ""):
        self.alpha = alpha
        self.log = log
    def _fit(self, data, *, seed):
        counts = torch.bincount(torch.tensor(data.train.item_array), minlength=self.n_items_ + 1).double()
        self.scores_ = counts ** self.alpha
        self.view_ = data.meta.get("view")
        self._write({"event": "fit", "view": self.view_, "sessions": data.train.session_ids.tolist()})
    def _score(self, batch):
        self._write({"event": "score", "view": self.view_, "sessions": batch.session_ids.tolist()})
        return self.scores_.float().expand(len(batch), -1).clone()
    def _write(self, record):
        with open(self.log, "a") as f:
            f.write(json.dumps(record) + "\\n")

class Sleepy(SessionRecommender):
    """Popularity to the power alpha, after sleeping `seconds` in fit."""
    def __init__(self, *, alpha: float = 1.0, seconds: float = 0.0):
        self.alpha = alpha
        self.seconds = seconds
    def _fit(self, data, *, seed):
        time.sleep(self.seconds)
        counts = torch.bincount(torch.tensor(data.train.item_array), minlength=self.n_items_ + 1).double()
        self.scores_ = counts ** self.alpha
    def _score(self, batch):
        return self.scores_.float().expand(len(batch), -1).clone()

class Epochs(EpochTrainedRecommender):
    """Popularity learnt over epochs; quality 0 scores at random."""
    def __init__(self, *, quality: int = 1, epochs: int = 4, patience: int = 0, refit: bool = True):
        self.quality = quality
        self.epochs = epochs
        self.patience = patience
        self.refit = refit
    def _start_training(self, data, split, seed):
        self.items_ = torch.tensor(data.split(split).item_array)
        self.gen_ = torch.Generator().manual_seed(seed)
        self.scores_ = torch.zeros(self.n_items_ + 1)
    def _train_epoch(self, epoch):
        if self.quality:
            self.scores_ = self.scores_ + torch.bincount(self.items_, minlength=self.n_items_ + 1).float()
        else:
            self.scores_ = torch.rand(self.n_items_ + 1, generator=self.gen_)
        return 0.0
    def _score(self, batch):
        return self.scores_.expand(len(batch), -1).clone()
'''


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    return prepare_workdir(tmp_path, monkeypatch, spec=TINY_SPEC, dataset="tinytune", plugins=PLUGINS, module="tune_plugins")


def suite(workdir, models, **extra):
    return tiny_suite(workdir, "tinytune", models, **extra)


# -- validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    "tune, match",
    [
        ({"space": {"nosuch": {"type": "int", "low": 1, "high": 2}}}, r"models\[0\].tune.space.nosuch: .*no hyper-parameter"),
        ({"space": {"steps": {"type": "int", "low": 5, "high": 2}}}, r"tune.space.steps: expected low <= high"),
        ({"space": {"steps": {"type": "int", "low": 1.5, "high": 2}}}, r"tune.space.steps.low: expected an integer"),
        ({"space": {"steps": {"type": "range"}}}, r"tune.space.steps.type: expected one of int, float, categorical"),
        ({"space": {"weighting": {"type": "categorical", "choices": []}}}, r"weighting.choices: expected a non-empty"),
        ({"space": {"weighting": {"type": "categorical", "choices": ["div", "quadratik"]}}},
         r"tune.space.weighting.choices: weighting: expected one of 'linear', .*, got 'quadratik' "
         r"\(did you mean 'quadratic'\?\)"),
        ({"space": {"steps": {"type": "int", "low": 1, "high": 3, "when": {"weighting": "div"}},
                    "weighting": {"type": "categorical", "choices": ["div"]}}}, r"steps.when.weighting: .*listed earlier"),
        ({"trials": 0}, r"tune.trials: expected an integer >= 1"),
        ({"sampler": "grid"}, r"tune.sampler: expected one of tpe, random"),
        ({"pruner": "median"}, r"tune.pruner: 'sr' does not train by epoch"),
        ({"metric": "Coverage@60"}, r"tune.metric: Coverage@60 needs top lists of 60 items, but the runs store 50; "
                                    r"add 60 to the suite's ks \[5, 20\]"),
        ({"metric": "MRR@1001"}, r"tune.metric: expected a cut-off K >= 1 and <= 1000, got 'MRR@1001'"),
        ({"metric": "Nope@20"}, r"tune.metric: unknown metric"),
        ({"metric": "mrr@20"}, r"tune.metric: unknown metric 'mrr' \(did you mean 'MRR'\?\)"),
        ({"metric": "MRR"}, r"tune.metric: not a metric key 'MRR'; expected NAME@K"),
        ({"metric": "MRR@0"}, r"tune.metric: expected a cut-off K >= 1 and <= 1000, got 'MRR@0'"),
        ({"budget": 3}, r"unknown key 'models\[0\].tune.budget'"),
        ({"space": {"steps": {"type": "int", "low": 1, "high": 10**400}}},
         r"tune.space.steps.high: expected an integer between -2\*\*53 and 2\*\*53, got 1000"),
        ({"space": {"steps": {"type": "int", "low": 1, "high": "3"}}}, r"steps.high: expected an integer, got str '3'"),
    ],
)
def test_tune_validation_names_file_and_key(tune, match):
    with pytest.raises(ConfigError, match=match):
        parse_suite({"datasets": ["synthetic"], "models": [{"name": "sr", "tune": tune}], "ks": [5, 20]},
                    Path("suites/t.yaml"))


def test_a_bound_outside_the_models_range_is_refused_at_load():
    """A search space may only sample values the model takes (gru4rec: learning_rate > 0)."""
    tune = {"space": {"learning_rate": {"type": "float", "low": -0.5, "high": 0.1}}}
    with pytest.raises(ConfigError, match=r"models\[0\].tune.space.learning_rate.low: learning_rate: expected a "
                                          r"number > 0, got -0.5"):
        parse_suite({"datasets": ["synthetic"], "models": [{"name": "gru4rec", "tune": tune}]}, Path("suites/t.yaml"))


def test_a_continuous_range_may_end_on_an_open_end_but_a_stepped_one_may_not():
    """spop's tiebreak is in [0, 1): a continuous range up to 1.0 samples 1.0 practically never, a grid would."""
    suite = {"datasets": ["synthetic"], "models": [{"name": "spop", "tune": {
        "space": {"tiebreak": {"type": "float", "low": 0.0, "high": 1.0}}}}]}
    assert parse_suite(suite).models[0].tune.space[0].high == 1.0
    suite["models"][0]["tune"]["space"]["tiebreak"]["step"] = 0.25
    with pytest.raises(ConfigError, match=r"tiebreak.high: tiebreak: expected a number in \[0, 1\), got 1.0"):
        parse_suite(suite)


def test_a_float_bound_written_1e_4_is_read_as_a_number():
    """YAML 1.1 reads 1e-4 (no dot) as a string; a float bound takes it as the number it spells."""
    text = ("datasets: [synthetic]\nmodels:\n  - name: gru4rec\n    tune:\n      space:\n"
            "        learning_rate: {type: float, low: 1e-4, high: 1e-1, log: true}\n")
    (param,) = parse_suite(load_yaml_text(text, "t.yaml")).models[0].tune.space
    assert (param.low, param.high) == (1e-4, 0.1)


def test_grid_and_tune_together_are_refused():
    with pytest.raises(ConfigError, match=r"models\[0\]: use either 'grid' or 'tune'"):
        parse_suite({"datasets": ["synthetic"], "models": [{"name": "sr", "grid": {"steps": [1]}, "tune": "default"}]})


def test_every_built_in_model_with_hyper_parameters_has_a_default_space():
    from harness.models.registry import available_models

    builtin = {n: c for n, c in available_models().items() if c.__module__.split(".")[0] in ("baselines", "srgnn")}
    assert {n for n, c in builtin.items() if c.hyperparameters()} <= set(DEFAULT_SPACES)


def test_every_default_space_is_valid_for_its_model():
    for name, space in DEFAULT_SPACES.items():
        cls = get_model_class(name)
        config = parse_tune("default", None, cls, name, (20,), "t.yaml", "tune")
        assert [p.name for p in config.space] == list(space)
        assert set(space) <= set(cls.hyperparameters())


def test_suite_wide_defaults_merge_under_the_model_section():
    s = parse_suite({"datasets": ["synthetic"], "tune": {"trials": 7, "sampler": "random"},
                     "models": [{"name": "sr", "tune": {"trials": 3}}, {"name": "vsknn", "tune": "default"}, "pop"]})
    sr, vsknn, pop = s.models
    assert (sr.tune.trials, sr.tune.sampler) == (3, "random")
    assert (vsknn.tune.trials, vsknn.tune.sampler) == (7, "random")
    assert pop.tune is None


def test_conditional_parameters_are_sampled_only_when_their_condition_holds():
    config = parse_tune("default", None, get_model_class("gru4rec"), "gru4rec", (20,), "t.yaml", "tune")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = {}
    for _ in range(30):
        params = suggest(study.ask(), config.space)
        seen.setdefault(params["loss"], []).append(params)
    assert all("bpreg" not in p and "elu_param" not in p for p in seen["cross-entropy"])
    assert all("bpreg" in p and "elu_param" in p for p in seen["bpr-max"])
    assert all("bpreg" not in p and "elu_param" in p for p in seen["top1-max"])


# -- searching -------------------------------------------------------------------


def test_tuning_never_reads_test_and_the_best_trial_becomes_the_final(workdir):
    log = workdir / "spy.jsonl"
    s = suite(workdir, [{"name": "tune_plugins:SplitSpy", "label": "spy", "params": {"log": str(log)}, "seeds": [0, 1],
                         "tune": {"space": {"alpha": {"type": "float", "low": 0.0, "high": 2.0}}, "trials": 4,
                                  "sampler": "random", "seed": 3}}])  # fmt: skip
    run_suite(s, out_dir=workdir / "out", executor=InlineExecutor(), report=False)
    data = load_dataset(str(workdir / "tinytune.yaml"))
    test, valid = set(data.test.session_ids.tolist()), set(data.valid.session_ids.tolist())
    train_tr = set(data.train_tr.session_ids.tolist())
    records = [json.loads(line) for line in log.read_text().splitlines()]
    tuning = [r for r in records if r["view"] is not None]
    finals = [r for r in records if r["view"] is None]
    assert len([r for r in tuning if r["event"] == "fit"]) == 4
    for r in tuning:
        sessions = set(r["sessions"])
        assert not sessions & test
        assert sessions <= (train_tr if r["event"] == "fit" else valid)
    # the finals (one per seed) do score test: the spy would have seen it
    assert len([r for r in finals if r["event"] == "fit"]) == 2
    assert {x for r in finals if r["event"] == "score" for x in r["sessions"]} <= test

    runs = {r.run_id: r for r in iter_runs(workdir / "out", include_failed=True)}
    trials = [r for r in runs.values() if r.manifest["stage"] == "tune"]
    assert sorted(r.label for r in trials) == [f"spy[trial={n:04d}]" for n in range(4)]
    plan = read_plan(workdir / "out")
    assert [(x["seed"], x["metric"], x["split"]) for x in plan.selections] == [(0, "MRR@20", "valid"), (1, "MRR@20", "valid")]
    best = max(trials, key=lambda r: r.manifest["metrics"]["MRR@20"])
    for selection in plan.selections:
        assert selection["chosen"] == best.run_id
        final = runs[selection["final"]]
        assert final.manifest["stage"] == "test" and final.manifest["selection"] == selection
        assert final.manifest["params"]["alpha"] == best.manifest["params"]["alpha"]
        assert {c["run_id"] for c in selection["candidates"]} == {r.run_id for r in trials}
    assert set(plan.run_ids) >= set(runs)
    history = trial_history(study_path(workdir / "out", "tinytune", "spy"))
    assert [h["number"] for h in history] == [0, 1, 2, 3] and {h["state"] for h in history} == {"COMPLETE"}
    assert {h["run_id"] for h in history} == {r.run_id for r in trials}

    from harness.report.tuning_figures import best_so_far, collect_trials, write_tuning_figures

    (entry,) = collect_trials(workdir / "out").values()
    values = [t["value"] for t in entry["trials"]]
    assert values == [runs[h["run_id"]].manifest["metrics"]["MRR@20"] for h in history]
    assert best_so_far(values)[-1] == max(values) and best_so_far([None, 2.0, 1.0, 3.0]) == [None, 2.0, 2.0, 3.0]
    figures = write_tuning_figures(workdir / "out", workdir)
    assert sorted(p.name for p in figures) == ["tinytune_spy_tuning.pdf", "tinytune_spy_tuning.png"]


def test_only_leaves_a_search_it_does_not_name_in_the_plan_and_runs_one_it_names(workdir):
    """`--only markov` after a whole run kept the plain model's runs in the plan but dropped the
    search's trials and final (the report called them superseded, `runs prune` would delete them);
    `--only DATASET/LABEL/SEED` of a tuned model ran nothing."""
    entry = {"name": "sr", "tune": {"space": {"steps": {"type": "int", "low": 1, "high": 3}}, "trials": 3,
                                    "sampler": "random", "seed": 0}}
    s = suite(workdir, ["markov", entry])
    out = workdir / "out"
    run_suite(s, out_dir=out, executor=InlineExecutor(), report=False)
    whole = read_plan(out)
    assert len(whole.run_ids) == 5 and len(whole.selections) == 1  # markov, 3 trials, the final

    again = run_suite(s, out_dir=out, executor=InlineExecutor(), report=False, only=["markov"])
    assert not again.executed
    plan = read_plan(out)
    assert set(plan.run_ids) == set(whole.run_ids) and plan.selections == whole.selections
    assert select_runs(out).superseded == []

    fresh = workdir / "fresh"
    named = run_suite(s, out_dir=fresh, executor=InlineExecutor(), report=False, only=["tinytune/sr/0"])
    assert len(named.executed) == 4  # the search's 3 trials, then its final; not markov
    assert {r.label for r in iter_runs(fresh)} == {"sr", "sr[trial=0000]", "sr[trial=0001]", "sr[trial=0002]"}


def test_pruning_stops_bad_trials_from_their_epoch_curve(workdir):
    s = suite(workdir, [{"name": "tune_plugins:Epochs", "label": "ep", "params": {"epochs": 4},
                         "tune": {"space": {"quality": {"type": "categorical", "choices": [0, 1]}}, "trials": 8,
                                  "sampler": "random", "seed": 0, "pruner": "median"}}])  # fmt: skip
    lines = []
    outcome = run_suite(s, out_dir=workdir / "out", executor=InlineExecutor(), report=False, echo=lines.append)
    history = trial_history(study_path(workdir / "out", "tinytune", "ep"))
    pruned = [h for h in history if h["state"] == "PRUNED"]
    assert pruned and all(h["params"]["quality"] == 0 for h in pruned)
    assert all(len(h["intermediate"]) < 4 for h in pruned)
    complete = [h for h in history if h["state"] == "COMPLETE"]
    assert all(len(h["intermediate"]) == 4 for h in complete)
    runs = {r.run_id: r for r in iter_runs(workdir / "out", include_failed=True)}
    for h in pruned:
        assert runs[h["run_id"]].manifest["error_line"].startswith("TrialPruned: pruned by the median pruner")
    assert not outcome.failed  # pruning is not a failure
    assert len([line for line in lines if line.startswith("pruned ")]) == len(pruned)
    # every trial trained with patience 0 (the validation split is the objective's)
    assert {r.manifest["params"]["patience"] for r in runs.values()} == {0}
    plan = read_plan(workdir / "out")
    assert runs[plan.selections[0]["final"]].manifest["params"]["quality"] == 1



def test_grid_of_an_epoch_trained_model_trains_fixed_epochs_like_a_search(workdir):
    """A grid point, like a trial, is scored on the validation split, so it
    cannot also stop on it: its runs and the final get patience 0 whatever
    the entry's params say (with patience 2 every point used to fail)."""
    s = suite(workdir, [{"name": "tune_plugins:Epochs", "label": "ep", "params": {"epochs": 3, "patience": 2},
                         "grid": {"quality": [0, 1]}}])
    outcome = run_suite(s, out_dir=workdir / "out", executor=InlineExecutor(), report=False)
    assert not outcome.failed
    runs = list(iter_runs(workdir / "out"))
    assert sorted((r.stage, r.manifest["params"]["quality"], r.manifest["params"]["patience"]) for r in runs) == [
        ("test", 1, 0), ("tune", 0, 0), ("tune", 1, 0)]
    assert {r.manifest["best_epoch"] for r in runs} == {3}  # every run trained all its epochs
    with pytest.raises(ConfigError, match=r"models\[0\].grid.patience: grid points of a model trained by epochs "
                                          r"train exactly 'epochs' epochs"):
        suite(workdir, [{"name": "tune_plugins:Epochs", "grid": {"patience": [0, 2]}}])
    # a model not trained by epochs keeps its parameters as given
    plain = suite(workdir, [{"name": "sknn", "params": {"k": 10}, "grid": {"sample_size": [50, 100]}}])
    assert [p["k"] for p in plain.models[0].grid_points()] == [10, 10]
    assert all("patience" not in p for p in plain.models[0].grid_points())

SLOW_SUITE = """
name: slowtune
datasets: [{data}]
models:
  - name: tune_plugins:Sleepy
    label: sleepy
    params: {{seconds: 4}}  # a wide window for the kill to land inside a trial, even on a loaded machine
    tune: {{space: {{alpha: {{type: float, low: 0.0, high: 2.0}}}}, trials: 4, sampler: random, seed: 1}}
seeds: [0]
ks: [5, 20]
latency: {{samples: 5, warmup: 1}}
"""


def test_a_search_killed_with_sigkill_resumes_with_the_same_history(workdir):
    (workdir / "slow.yaml").write_text(SLOW_SUITE.format(data=workdir / "tinytune.yaml"))
    journal = study_path(workdir / "out", "tinytune", "sleepy")
    env = {**os.environ, "PYTHONPATH": str(workdir), "SESSIONBENCH_CACHE": str(workdir / "cache")}
    cmd = [sys.executable, "-m", "harness.cli", "run", str(workdir / "slow.yaml"), "--out", str(workdir / "out"),
           "--no-report"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # wait for a trial done and the next one running
            states = [h["state"] for h in trial_history(journal)] if journal.exists() else []
            if states.count("COMPLETE") >= 1 and "RUNNING" in states:
                break
            assert proc.poll() is None, "the search ended before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("no trial was running after 300 s")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    before = trial_history(journal)
    running = [h for h in before if h["state"] == "RUNNING"]
    assert len(running) == 1

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    after = trial_history(journal)
    numbers = [h["number"] for h in after]
    assert numbers == list(range(len(after)))  # numbers go on, none repeated
    # trials finished before the kill are unchanged
    for old in before:
        if old["state"] == "COMPLETE":
            assert after[old["number"]] == old
    cut = after[running[0]["number"]]
    assert cut["state"] == "FAIL"
    retry = [h for h in after if h["retry_of"] == cut["number"]]
    assert len(retry) == 1 and retry[0]["params"] == running[0]["params"] and retry[0]["state"] == "COMPLETE"
    assert len([h for h in after if h["state"] == "COMPLETE"]) == 4
    drawn = [h["params"]["alpha"] for h in after if h["retry_of"] is None]
    assert len(set(drawn)) == len(drawn)  # the resumed sampler does not re-draw earlier points
    assert "marked failed" in done.stdout + done.stderr
    plan = read_plan(workdir / "out")
    assert {h["run_id"] for h in after if h["state"] == "COMPLETE"} <= set(plan.run_ids)
    assert len(plan.selections) == 1
    assert {c["run_id"] for c in plan.selections[0]["candidates"]} == {h["run_id"] for h in after if h["state"] == "COMPLETE"}

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and trial_history(journal) == after  # a finished search asks nothing more


# -- command line ----------------------------------------------------------------


def test_gpus_on_a_machine_without_them_is_a_one_line_error(workdir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA devices")
    env = {**os.environ, "SESSIONBENCH_CACHE": str(workdir / "cache")}
    out = subprocess.run([sys.executable, "-m", "harness.cli", "run", "default", "--gpus", "0,1", "--out",
                          str(workdir / "out")], env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip() == ("sessionbench: error: --gpus 0,1: CUDA device(s) 0, 1 not found "
                                  "(this machine has no CUDA device)")  # fmt: skip
    assert not (workdir / "out").exists()


def test_importing_the_command_line_and_runner_imports_neither_ray_nor_optuna():
    code = ("import sys, harness.cli, harness.run.runner, harness.run.suites, harness.run.tuning, harness.run.executors; "
            "print(sorted(m for m in ('ray', 'optuna') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


GPU_TASK = '''
import json, os, time

def record(path, name):
    with open(path, "a") as f:
        f.write(json.dumps({"name": name, "device": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": time.time()}) + "\\n")
    time.sleep(1.0)
    with open(path, "a") as f:
        f.write(json.dumps({"name": name, "end": time.time()}) + "\\n")
'''


def test_gpu_runs_get_one_device_each_and_never_share_one(workdir):
    from harness.run.executors import GpuLocalExecutor
    from harness.run.runner import Task

    (workdir / "gpu_task.py").write_text(GPU_TASK)
    import gpu_task

    log = workdir / "gpu.jsonl"
    tasks = [Task(f"g{i}", gpu_task.record, (str(log), f"g{i}"), gpu=True) for i in range(3)]
    tasks.append(Task("cpu", gpu_task.record, (str(log), "cpu")))
    done = []
    GpuLocalExecutor(jobs=4, gpus=(3, 5)).run(tasks, lambda task, code: done.append((task.run_id, code)))
    assert sorted(done) == [("cpu", 0), ("g0", 0), ("g1", 0), ("g2", 0)]
    events = [json.loads(line) for line in log.read_text().splitlines()]
    starts = {e["name"]: e for e in events if "start" in e}
    ends = {e["name"]: e["end"] for e in events if "end" in e}
    assert starts["cpu"]["device"] == ""
    assert {starts[f"g{i}"]["device"] for i in range(3)} == {"3", "5"}
    for device in ("3", "5"):
        spans = sorted((starts[n]["start"], ends[n]) for n in starts if starts[n]["device"] == device)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # one run per device at a time
    assert "CUDA_VISIBLE_DEVICES" not in os.environ or os.environ["CUDA_VISIBLE_DEVICES"] != "3"

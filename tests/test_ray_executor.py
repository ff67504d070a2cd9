"""The Ray executor on a local Ray instance started by the tests: runs and
tuning trials give the same metrics as local processes, run folders are
installed by the runner, and a dying Ray worker is retried once, then the
run is stored as failed."""

import os
import textwrap

import pytest
import ray  # the dev extra installs it

from harness.run.executors import RayExecutor
from harness.run.runner import LocalProcessExecutor, run_suite
from harness.run.store import iter_runs, read_plan
from harness.run.suites import parse_suite

TINY_SPEC = """
name: tinyray
description: tiny synthetic data for Ray executor tests
source: generated
format: synthetic
generator: {n_sessions: 400, n_items: 40, seed: 9, days: 10}
preprocess: {method: standard, test_days: 2, valid_days: 2}
"""

PLUGINS = '''
import os, signal
import torch
from harness.models.plugin import SessionRecommender

class KillsWorker(SessionRecommender):
    """Kills the process that started it (the Ray worker) while no file
    `marker` exists (creating it first), `times` times in all."""
    def __init__(self, *, marker: str = "", times: int = 1):
        self.marker = marker
        self.times = times
    def _fit(self, data, *, seed):
        count = int(open(self.marker).read()) if os.path.exists(self.marker) else 0
        if count < self.times:
            with open(self.marker, "w") as f:
                f.write(str(count + 1))
            os.kill(os.getppid(), signal.SIGKILL)
            signal.pause()  # die with the worker
        self.n_ = 1
    def _score(self, batch):
        return torch.zeros(len(batch), self.n_items_ + 1)
'''


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray instance on loopback with 2 CPUs, shared by the module;
    its workers find the test plugins and dataset cache through the
    environment they inherit."""
    base = tmp_path_factory.mktemp("ray")
    (base / "tinyray.yaml").write_text(textwrap.dedent(TINY_SPEC))
    (base / "ray_plugins.py").write_text(PLUGINS)
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "SESSIONBENCH_CACHE", "RAY_USAGE_STATS_ENABLED")}
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(base), saved["PYTHONPATH"]]))
    os.environ["SESSIONBENCH_CACHE"] = str(base / "cache")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import sys

    sys.path.insert(0, str(base))
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}  # nothing listens off loopback
    try:
        yield base
    finally:
        ray.shutdown()
        sys.path.remove(str(base))
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def suite(base, models, **extra):
    data = {"name": "r", "datasets": [str(base / "tinyray.yaml")], "models": models, "seeds": [0],
            "ks": [5, 20], "latency": {"samples": 5, "warmup": 1}, **extra}
    return parse_suite(data, base / "r.yaml")


def metrics(out):
    return {r.run_id: (r.manifest["stage"], r.manifest["metrics"]) for r in iter_runs(out)}


def test_ray_runs_and_trials_match_local_processes(cluster, tmp_path):
    s = suite(cluster, ["pop", {"name": "markov", "tune": {"space": {"pruning": {"type": "categorical",
                                                                             "choices": [0, 5, 20]}},
                                                         "trials": 2, "sampler": "random", "seed": 4}}])  # fmt: skip
    run_suite(s, out_dir=tmp_path / "local", executor=LocalProcessExecutor(2), report=False)
    outcome = run_suite(s, out_dir=tmp_path / "ray", executor=RayExecutor(), jobs=2, report=False)
    assert not outcome.failed
    local, remote = metrics(tmp_path / "local"), metrics(tmp_path / "ray")
    assert len(local) == 1 + 2 + 1  # pop, markov's trials and final
    assert remote == local
    assert read_plan(tmp_path / "ray").selections == read_plan(tmp_path / "local").selections
    # the runs ran in Ray workers' children, not in this process's
    pids = {r.manifest["pid"] for r in iter_runs(tmp_path / "ray")}
    assert os.getpid() not in pids and len(pids) == len(remote)
    assert not [p for p in (tmp_path / "ray" / "runs").iterdir() if p.name.startswith(".")]


def test_a_dying_worker_is_retried_once_then_the_run_is_stored_failed(cluster, tmp_path):
    once, always = tmp_path / "once", tmp_path / "always"
    s = suite(cluster, [
        {"name": "ray_plugins:KillsWorker", "label": "dies-once", "params": {"marker": str(once), "times": 1}},
        {"name": "ray_plugins:KillsWorker", "label": "dies-always", "params": {"marker": str(always), "times": 5}},
        "pop",
    ])  # fmt: skip
    outcome = run_suite(s, out_dir=tmp_path / "out", executor=RayExecutor(retries=1), report=False)
    runs = {r.label: r for r in iter_runs(tmp_path / "out", include_failed=True)}
    assert runs["dies-once"].complete and once.read_text() == "1"
    assert not runs["dies-always"].complete and always.read_text() == "2"  # first try and one retry
    assert runs["dies-always"].manifest["error_line"] == "worker process ended without storing the run"
    assert runs["pop"].complete
    assert outcome.failed == [runs["dies-always"].run_id]

"""Long runs: the run's log.txt, --save-models, and a run whose worker is
SIGKILLed during training resuming from its checkpoint to the result of an
uninterrupted run."""

from __future__ import annotations


import pytest

from harness.data.dataset import PrefixBatch
from harness.models.plugin import SessionRecommender
from harness.run.runner import InlineExecutor, LocalProcessExecutor, checkpoint_path, run_suite
from harness.run.store import iter_runs, load_run, run_path
from suite_helpers import prepare_workdir, tiny_suite

TINY_SPEC = """
name: tinylong
description: tiny synthetic data for long-run tests
source: generated
format: synthetic
generator: {n_sessions: 400, n_items: 40, seed: 4, days: 10}
preprocess: {method: standard, test_days: 2, valid_days: 2}
"""

PLUGINS = '''
import os, signal
from baselines.gru4rec import GRU4Rec

class KilledGRU4Rec(GRU4Rec):
    """GRU4Rec whose process SIGKILLs itself after the checkpoint of epoch 2
    the first time (while the file $KILL_MARKER does not exist)."""
    def checkpoint_to(self, folder):
        super().checkpoint_to(folder)
        marker = os.environ.get("KILL_MARKER")
        if marker and not os.path.exists(marker):
            def hook(phase, epoch):
                if epoch == 2:
                    open(marker, "w").close()
                    os.kill(os.getpid(), signal.SIGKILL)
            self._after_checkpoint = hook
        return self
'''

GRU = {"name": "long_plugins:KilledGRU4Rec", "label": "gru",
       "params": {"hidden_size": 8, "batch_size": 16, "epochs": 3, "patience": 0, "device": "cpu",
                  "loss": "bpr-max", "n_sample": 64}}


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    return prepare_workdir(tmp_path, monkeypatch, spec=TINY_SPEC, dataset="tinylong", plugins=PLUGINS, module="long_plugins")


def suite(workdir, models):
    return tiny_suite(workdir, "tinylong", models, name="long", ks=[20], latency={"samples": 3, "warmup": 1})


def test_run_folder_keeps_log_and_model_and_verifies_them(workdir):
    outcome = run_suite(suite(workdir, ["pop", GRU]), out_dir=workdir / "out", executor=InlineExecutor(),
                        report=False, save_models=True)
    assert not outcome.failed
    runs = {r.manifest["label"]: r for r in iter_runs(workdir / "out")}
    gru = runs["gru"]
    assert gru.complete
    files = gru.manifest["files"]
    assert {"log.txt", "model/model.json", "model/state.pt"} <= set(files)
    log = (gru.path / "log.txt").read_text()
    assert "train epoch 3/3: loss" in log and "complete, MRR@20" in log
    assert "train epoch 1/3" in log and "pop" not in log  # one run's lines only

    model = SessionRecommender.load(gru.path / "model")
    batch = PrefixBatch.from_sequences([[1, 2, 3], [4]])
    assert model.best_epoch_ == 3 and model.score(batch).shape == (2, model.n_items_ + 1)
    (gru.path / "model" / "state.pt").write_bytes(b"changed")
    assert load_run(gru.path).problem == "model/state.pt: 7 bytes, manifest records " \
        f"{files['model/state.pt']['bytes']:,}"


def test_sigkilled_worker_resumes_from_its_checkpoint(workdir, monkeypatch):
    whole = run_suite(suite(workdir, [GRU]), out_dir=workdir / "whole", executor=InlineExecutor(), report=False)
    assert not whole.failed
    expected = next(iter_runs(workdir / "whole")).manifest

    monkeypatch.setenv("KILL_MARKER", str(workdir / "killed"))
    out = workdir / "out"
    first = run_suite(suite(workdir, [GRU]), out_dir=out, executor=LocalProcessExecutor(1), report=False)
    run_id = first.planned[0].run_id
    assert first.failed == [run_id] and (workdir / "killed").exists()
    assert "killed by signal SIGKILL" in load_run(run_path(out, run_id)).manifest["error_line"]
    assert (checkpoint_path(out, run_id) / "checkpoint.pt").is_file()

    second = run_suite(suite(workdir, [GRU]), out_dir=out, executor=LocalProcessExecutor(1), report=False)
    assert not second.failed
    record = load_run(run_path(out, run_id))
    assert record.complete
    assert "resuming after train epoch 2" in (record.path / "log.txt").read_text()
    assert record.manifest["metrics"] == expected["metrics"]
    # its fit time adds the killed process's time up to the checkpoint of epoch 2
    resumed = record.manifest["resumed"]
    assert (resumed["phase"], resumed["epoch"]) == ("train", 2) and "resumed" not in expected
    first_two = sum(r["seconds"] for r in record.curve().to_dict("records")[:2])
    assert record.manifest["timings"]["fit_seconds"] > resumed["fit_seconds_before"] >= first_two > 0
    assert not checkpoint_path(out, run_id).exists()  # removed once the run is complete

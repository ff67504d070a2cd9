"""Checkpoints of epoch-trained models: a fit interrupted after an epoch and
resumed from its checkpoint ends with exactly the model of an uninterrupted
fit (same seed, CPU), in every phase of the selection rule. (A worker
process killed by SIGKILL and resumed by the runner: tests/test_long_runs.py.)"""

from __future__ import annotations

import pytest
import torch

from baselines.gru4rec import GRU4Rec
from baselines.narm import NARM
from harness.data.dataset import PrefixBatch
from harness.models.testing import tiny_dataset
from srgnn import SRGNNRecommender

PREFIXES = PrefixBatch.from_sequences([[3, 1, 4], [2], [6, 2, 7, 1], [5, 5, 3]])


class Interrupted(Exception):
    pass


def data():
    return tiny_dataset(n_items=12, n_train=60, n_test=10, seed=3)


def interrupt_after(model, phase, epoch):
    def hook(at_phase, at_epoch):
        if (at_phase, at_epoch) == (phase, epoch):
            raise Interrupted(f"{phase} {epoch}")

    model._after_checkpoint = hook
    return model


CASES = {
    # model, params, where to interrupt
    "gru4rec-bpr-max-select": (GRU4Rec, {"loss": "bpr-max", "n_sample": 256, "hidden_size": 8, "batch_size": 8,
                                         "epochs": 4, "patience": 4, "refit": True}, ("select", 2)),
    "gru4rec-refit": (GRU4Rec, {"hidden_size": 8, "batch_size": 8, "epochs": 3, "patience": 3, "refit": True},
                      ("refit", 1)),
    "srgnn-train": (SRGNNRecommender, {"hidden_size": 8, "batch_size": 16, "epochs": 3, "patience": 0,
                                       "lr_decay_every": 1}, ("train", 2)),
    # the selection's last checkpoint, then the refit: its dropout draws on where the selection left the
    # random state, which the resumed fit must restore although it trains no more selection epochs
    "narm-after-the-last-select-epoch": (NARM, {"hidden_size": 8, "embedding_size": 8, "batch_size": 16,
                                                "epochs": 3, "patience": 3, "refit": True}, ("select", 3)),
    "narm-keep-best": (NARM, {"hidden_size": 8, "embedding_size": 8, "batch_size": 16, "epochs": 3, "patience": 3,
                              "refit": False}, ("select", 2)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_resumed_fit_equals_uninterrupted_fit(case, tmp_path):
    cls, params, (phase, epoch) = CASES[case]
    params = {**params, "device": "cpu"}
    whole = cls(**params).fit(data(), seed=5)

    first = interrupt_after(cls(**params).checkpoint_to(tmp_path), phase, epoch)
    with pytest.raises(Interrupted):
        first.fit(data(), seed=5)
    assert (tmp_path / "checkpoint.pt").is_file()
    resumed = cls(**params).checkpoint_to(tmp_path).fit(data(), seed=5)

    assert resumed.best_epoch_ == whole.best_epoch_
    assert [(r["phase"], r["epoch"], r["loss"]) for r in resumed.training_curve_] == \
        [(r["phase"], r["epoch"], r["loss"]) for r in whole.training_curve_]
    assert torch.equal(resumed.score(PREFIXES), whole.score(PREFIXES))
    # the time the interrupted fit spent up to its checkpoint is kept, so the run's fit time is whole
    assert whole.resumed_ is None and whole.fit_seconds_before() == 0.0
    assert {k: resumed.resumed_[k] for k in ("phase", "epoch")} == {"phase": phase, "epoch": epoch}
    steps = [(r["phase"], r["epoch"]) for r in resumed.training_curve_]
    done = resumed.training_curve_[:steps.index((phase, epoch)) + 1]
    assert resumed.fit_seconds_before() >= sum(r["seconds"] for r in done) > 0


def test_checkpoint_of_another_configuration_is_ignored(tmp_path):
    params = {"hidden_size": 8, "batch_size": 8, "epochs": 2, "patience": 0, "device": "cpu"}
    first = interrupt_after(GRU4Rec(**params).checkpoint_to(tmp_path), "train", 1)
    with pytest.raises(Interrupted):
        first.fit(data(), seed=5)
    other = GRU4Rec(**params).checkpoint_to(tmp_path).fit(data(), seed=6)  # another seed: starts afresh
    fresh = GRU4Rec(**params).fit(data(), seed=6)
    assert torch.equal(other.score(PREFIXES), fresh.score(PREFIXES))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not a dict"])
def test_a_damaged_checkpoint_is_ignored_with_a_warning(tmp_path, caplog, damage):
    """A checkpoint only saves time: an unreadable one is named in a warning and training starts afresh."""
    params = {"hidden_size": 8, "batch_size": 8, "epochs": 2, "patience": 0, "device": "cpu"}
    first = interrupt_after(GRU4Rec(**params).checkpoint_to(tmp_path), "train", 1)
    with pytest.raises(Interrupted):
        first.fit(data(), seed=5)
    path = tmp_path / GRU4Rec.CHECKPOINT_FILE
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint")
    else:
        torch.save([1, 2], path)
    with caplog.at_level("WARNING"):
        resumed = GRU4Rec(**params).checkpoint_to(tmp_path).fit(data(), seed=5)
    assert "ignoring" in caplog.text and str(path) in caplog.text
    fresh = GRU4Rec(**params).fit(data(), seed=5)
    assert torch.equal(resumed.score(PREFIXES), fresh.score(PREFIXES))


def test_a_model_without_training_state_trains_without_checkpoints(tmp_path):
    from harness.models.training import EpochTrainedRecommender

    class Counter(EpochTrainedRecommender):
        def __init__(self, *, epochs=2, patience=0, refit=True):
            self.epochs, self.patience, self.refit = epochs, patience, refit

        def _start_training(self, data, split, seed):
            self.seen_ = 0

        def _train_epoch(self, epoch):
            self.seen_ += 1
            return 1.0

        def _score(self, batch):
            return torch.zeros(len(batch), self.n_items_ + 1)

    assert not Counter.supports_checkpoints() and GRU4Rec.supports_checkpoints()
    model = Counter().checkpoint_to(tmp_path).fit(data(), seed=0)
    assert model.seen_ == 2 and not (tmp_path / "checkpoint.pt").exists()

"""save/load of every built-in model: a loaded model scores exactly as the
saved one; bad folders are one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from harness.dataset import PrefixBatch
from harness.errors import DataError
from harness.plugin import NotFittedError, SessionRecommender
from harness.registry import available_models
from harness.testing import tiny_dataset

#: one epoch, small networks: the tiny data fit quickly
FAST = {"epochs": 1, "patience": 0, "device": "cpu"}
PARAMS: dict[str, dict] = {
    "gru4rec": {"hidden_size": 8, "batch_size": 16, **FAST},
    "srgnn": {"hidden_size": 8, "batch_size": 32, **FAST},
    "narm": {"embedding_size": 8, "hidden_size": 8, "batch_size": 32, **FAST},
    "stamp": {"embedding_size": 8, "batch_size": 32, **FAST},
    "sasrec": {"hidden_size": 8, "batch_size": 32, **FAST},
    "bprmf": {"factors": 8, "batch_size": 32, **FAST},
    "fpmc": {"factors": 8, "batch_size": 32, **FAST},
}
BATCH = PrefixBatch.from_sequences([[3, 1, 4, 1, 5], [2], [6, 2], [5, 5, 3, 9]])


@pytest.fixture(scope="module")
def data():
    return tiny_dataset(n_items=12, n_train=40, n_test=5, seed=1)


@pytest.mark.parametrize("name", sorted(available_models()))
def test_loaded_model_scores_identically(name, data, tmp_path):
    model = available_models()[name](**PARAMS.get(name, {})).fit(data, seed=2)
    before = model.score(BATCH)
    folder = model.save(tmp_path / "model")
    loaded = SessionRecommender.load(folder)
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    after = loaded.score(BATCH)
    assert after.dtype == before.dtype and torch.equal(after, before)
    assert json.loads((folder / "model.json").read_text())["params"] == json.loads(json.dumps(model.get_params()))


def test_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(NotFittedError):
        available_models()["pop"]().save(tmp_path)


def test_load_names_a_folder_without_a_model(tmp_path):
    with pytest.raises(DataError, match="model.json: not a saved model"):
        SessionRecommender.load(tmp_path)


def test_load_refuses_a_class_of_another_kind(data, tmp_path):
    folder = available_models()["pop"]().fit(data).save(tmp_path / "m")
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**meta, "class": "harness.dataset:PrefixBatch"}))
    with pytest.raises(DataError, match="is not a SessionRecommender"):
        SessionRecommender.load(folder)

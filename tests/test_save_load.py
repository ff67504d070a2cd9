"""save/load of every built-in model: a loaded model scores exactly as the
saved one; bad folders are one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from harness.data.dataset import PrefixBatch
from harness.errors import DataError
from harness.models.plugin import NotFittedError, SessionRecommender
from harness.models.registry import available_models
from harness.models.testing import tiny_dataset

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
    (folder / "model.json").write_text(json.dumps({**meta, "class": "harness.data.dataset:PrefixBatch"}))
    with pytest.raises(DataError, match="is not a SessionRecommender"):
        SessionRecommender.load(folder)


def _saved_pop(data, folder):
    return available_models()["pop"]().fit(data).save(folder)


def _edit_meta(folder, **changes):
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**meta, **changes}))


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda f: (f / "state.pt").unlink(), r"state.pt: cannot read the saved state \(FileNotFoundError"),
        (lambda f: (f / "state.pt").write_bytes((f / "state.pt").read_bytes()[:50]),
         r"state.pt: does not match the SHA-256 that model.json records: the file is truncated, corrupt"),
        (lambda f: (f / "model.json").write_text("{\"class\": "), r"model.json: not a saved model \('Expecting value"),
        (lambda f: _edit_meta(f, params=[1]), r"model.json: not a saved model \(expected a JSON object"),
        (lambda f: _edit_meta(f, **{"class": "nosuchmodule:X"}),
         r"model.json: class 'nosuchmodule:X' cannot be imported \(ModuleNotFoundError"),
        (lambda f: _edit_meta(f, **{"class": "baselines.popularity:Nope"}), r"cannot be imported \(AttributeError"),
        (lambda f: _edit_meta(f, params={"alpha": 1}),
         r"model.json: the saved hyper-parameters do not fit baselines.popularity:Popularity \(TypeError"),
    ],
)
def test_a_damaged_saved_model_is_a_one_line_data_error(data, tmp_path, damage, expected):
    folder = _saved_pop(data, tmp_path / "m")
    damage(folder)
    with pytest.raises(DataError, match=expected) as err:
        SessionRecommender.load(folder)
    assert "\n" not in str(err.value)


def test_the_state_of_another_saved_model_is_refused(data, tmp_path):
    """state.pt copied from another model's folder: refused, not loaded into the wrong model."""
    pop = _saved_pop(data, tmp_path / "pop")
    markov = available_models()["markov"]().fit(data).save(tmp_path / "markov")
    (pop / "state.pt").write_bytes((markov / "state.pt").read_bytes())
    with pytest.raises(DataError, match="does not match the SHA-256 that model.json records"):
        SessionRecommender.load(pop)


def test_a_save_without_a_recorded_digest_still_loads(data, tmp_path):
    """Folders saved before model.json recorded state_sha256 load as before."""
    model = available_models()["spop"]().fit(data)
    folder = model.save(tmp_path / "m")
    meta = json.loads((folder / "model.json").read_text())
    del meta["state_sha256"]
    (folder / "model.json").write_text(json.dumps(meta))
    assert torch.equal(SessionRecommender.load(folder).score(BATCH), model.score(BATCH))

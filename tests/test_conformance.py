"""Every registered model passes the conformance suite; broken plugins are caught."""

import pytest
import torch

from harness.models.plugin import SessionRecommender
from harness.models.registry import available_models
from harness.models.testing import ConformanceError, check_recommender

#: small hyper-parameters so that trained models fit the tiny data quickly
FAST_PARAMS: dict[str, dict] = {
    "gru4rec": {"hidden_size": 16, "batch_size": 16, "epochs": 2, "patience": 1},
    "srgnn": {"hidden_size": 16, "epochs": 2, "patience": 1},
    "narm": {"embedding_size": 8, "hidden_size": 16, "batch_size": 64, "epochs": 2, "patience": 1},
    "stamp": {"embedding_size": 16, "batch_size": 64, "epochs": 2, "patience": 1},
    "sasrec": {"hidden_size": 16, "batch_size": 32, "epochs": 2, "patience": 1},
    "bprmf": {"factors": 16, "batch_size": 64, "epochs": 2, "patience": 1},
    "fpmc": {"factors": 16, "batch_size": 64, "epochs": 2, "patience": 1},
}


@pytest.mark.parametrize("name", sorted(available_models()))
def test_registered_model_conforms(name):
    check_recommender(available_models()[name], **FAST_PARAMS.get(name, {}))


class Good(SessionRecommender):
    def __init__(self, *, bias: float = 0.0):
        self.bias = bias

    def _fit(self, data, *, seed):
        self.pop_ = torch.from_numpy(data.item_popularity("train")).float()

    def _score(self, batch):
        return self.pop_.expand(len(batch), -1) + self.bias


class SetsStateInInit(Good):
    def __init__(self, *, bias: float = 0.0):
        self.bias = bias
        self.pop_ = None


class Random(Good):
    def _fit(self, data, *, seed):
        super()._fit(data, seed=seed)
        self.noise_ = torch.randn(self.pop_.shape, generator=torch.Generator().manual_seed(torch.seed() % 1000))

    def _score(self, batch):
        return super()._score(batch) + self.noise_


class RaisesInFit(Good):
    def _fit(self, data, *, seed):
        raise RuntimeError("boom")


class Stateful(Good):
    """Scores depend on what was scored before (a leak across rows/calls)."""

    def _score(self, batch):
        self.calls_ = getattr(self, "calls_", 0) + 1
        return super()._score(batch) + self.calls_


class BatchDependent(Good):
    def _score(self, batch):
        return super()._score(batch) + batch.items.shape[1]


class Mutates(Good):
    """Overrides the final score (which hands _score a copy) and writes into the caller's batch."""

    def score(self, batch):
        batch.items.clamp_(max=1)
        return super().score(batch)


def test_good_plugin_passes():
    check_recommender(Good, bias=1.0)


@pytest.mark.parametrize(
    "cls, rule",
    [
        (SetsStateInInit, "init stores hyper-parameters only"),
        (RaisesInFit, "fit returns self"),
        (Random, "same seed gives the same scores"),
        (Stateful, "scoring the same batch twice"),
        (BatchDependent, "do not depend on the rest of the batch"),
        (Mutates, "score leaves the batch unchanged"),
    ],
)
def test_broken_plugins_are_named_with_the_rule(cls, rule):
    with pytest.raises(ConformanceError, match=rf"model '{cls.__name__}' \(.*{cls.__name__}\) breaks the rule '.*{rule}"):
        check_recommender(cls)


class SloppyCurve(Good):
    def _fit(self, data, *, seed):
        super()._fit(data, seed=seed)
        self.training_curve_ = [{"epoch": 1, "loss": 0.5, "seconds": 0.1}]


def test_a_malformed_training_curve_breaks_the_suite():
    with pytest.raises(ConformanceError, match=r"'training_curve_ follows the documented format': .*lacks 'phase'"):
        check_recommender(SloppyCurve)

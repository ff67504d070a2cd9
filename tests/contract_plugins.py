"""Plugins for the contract tests, each doing one thing a plugin may do
(wrong or not); used as ``--model contract_plugins:ClassName``."""

from __future__ import annotations

from typing import Any

import torch

from harness.models.plugin import SessionRecommender

#: what Scripted does: "fit" (callable(data) or None), "score"
#: (callable(batch, n_items) -> output) and "curve" (training_curve_ or None)
BEHAVIOUR: dict[str, Any] = {"fit": None, "score": None, "curve": None}


class Popular(SessionRecommender):
    """Training popularity; the honest reference."""

    def _fit(self, data, *, seed):
        self.pop_ = torch.from_numpy(data.item_popularity("train")).float()

    def _score(self, batch):
        return self.pop_.expand(len(batch), -1).clone()


class Mutator(Popular):
    """Popularity, but writes zeros into the batch it is given."""

    def _score(self, batch):
        batch.items.zero_()
        batch.lengths.fill_(1)
        return super()._score(batch)


class DuckMutator:
    """Not a SessionRecommender: only ``score``, which writes into its batch."""

    name = "duck"

    def __init__(self, pop: torch.Tensor):
        self.pop = pop

    def score(self, batch):
        batch.items.zero_()
        return self.pop.expand(len(batch), -1).clone()


class Spy(Popular):
    """Keeps what _fit was handed, for the tests to inspect."""

    seen: list = []

    def _fit(self, data, *, seed):
        Spy.seen.append(data)
        super()._fit(data, seed=seed)


class Scripted(SessionRecommender):
    """Fits and scores as :data:`BEHAVIOUR` says."""

    def _fit(self, data, *, seed):
        if BEHAVIOUR["fit"] is not None:
            BEHAVIOUR["fit"](data)
        if BEHAVIOUR["curve"] is not None:
            self.training_curve_ = BEHAVIOUR["curve"]

    def _score(self, batch):
        return BEHAVIOUR["score"](batch, self.n_items_)


class FitRaises(Popular):
    def _fit(self, data, *, seed):
        raise ValueError("the optimiser diverged\nat step 3")


class ScoreRaises(Popular):
    def _score(self, batch):
        return {}["missing key"]


class NoStore(Popular):
    def __init__(self, *, alpha: float = 1.0):
        self.beta = alpha


class Required(Popular):
    def __init__(self, alpha):
        self.alpha = alpha


class InitRaises(Popular):
    def __init__(self, *, alpha: float = 1.0):
        self.alpha = alpha
        raise RuntimeError("cannot open the device")

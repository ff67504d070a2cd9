"""The plugin base class: template-method checks around _fit/_score."""

import pytest
import torch

from harness.data.dataset import PrefixBatch
from harness.errors import ContractError
from harness.models.plugin import NotFittedError, SessionRecommender
from harness.models.testing import tiny_dataset


class Uniform(SessionRecommender):
    """Scores every item 0 except a configurable output."""

    def __init__(self, *, width_offset: int = 0, value: float = 0.0, read_test: bool = False):
        self.width_offset = width_offset
        self.value = value
        self.read_test = read_test

    def _fit(self, data, *, seed):
        if self.read_test:
            data.test.events  # noqa: B018  (the violation under test)
        self.fitted_ = True

    def _score(self, batch):
        return torch.full((len(batch), self.n_items_ + 1 + self.width_offset), self.value)


@pytest.fixture(scope="module")
def data():
    return tiny_dataset()


def test_fit_returns_self_records_items_and_time(data):
    model = Uniform()
    assert model.fit(data, seed=1) is model
    assert model.n_items_ == data.n_items
    assert model.fit_seconds_ >= 0


def test_score_before_fit_is_a_clear_error():
    with pytest.raises(NotFittedError, match="fit"):
        Uniform().score(PrefixBatch.from_sequences([[1, 2]]))


def test_wrong_score_shape_names_model_and_rule(data):
    model = Uniform(width_offset=-1).fit(data)
    with pytest.raises(ContractError, match=r"Uniform.*shape \(1, 40\), expected \[B, n_items \+ 1\]"):
        model.score(PrefixBatch.from_sequences([[1, 2]]))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_scores_are_refused(data, value):
    model = Uniform(value=value).fit(data)
    with pytest.raises(ContractError, match="NaN or infinite"):
        model.score(PrefixBatch.from_sequences([[1], [2, 3]]))


def test_fit_cannot_read_the_test_split(data):
    with pytest.raises(ContractError, match="read the test split during fit"):
        Uniform(read_test=True).fit(data)


def test_out_of_range_items_in_batch_are_refused(data):
    model = Uniform().fit(data)
    with pytest.raises(ValueError, match="item ids must be in 0..40"):
        model.score(PrefixBatch.from_sequences([[41]]))


def test_hyperparameters_and_repr():
    assert Uniform.hyperparameters() == {"width_offset": 0, "value": 0.0, "read_test": False}
    model = Uniform(value=2.0)
    assert model.get_params()["value"] == 2.0
    assert "value=2.0" in repr(model)


def test_fit_seeds_global_generators(data):
    class Noisy(Uniform):
        def _fit(self, data, *, seed):
            self.noise_ = torch.rand(1)

    a = Noisy().fit(data, seed=3).noise_
    b = Noisy().fit(data, seed=3).noise_
    c = Noisy().fit(data, seed=4).noise_
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_last_items_of_a_batch():
    batch = PrefixBatch.from_sequences([[5, 6, 7], [9]])
    assert batch.last_items.tolist() == [7, 9]


def test_check_scores_ignores_column_0_but_not_a_score():
    from harness.models.plugin import check_scores

    scores = torch.zeros(3, 5)
    scores[:, 0] = float("-inf")  # padding column: anything goes
    check_scores(scores, 3, 4, "m")
    check_scores(torch.zeros(3, 8)[:, :5], 3, 4, "m")  # a non-contiguous view is checked too
    scores[2, 4] = float("nan")
    with pytest.raises(ContractError, match=r"first in batch row 2"):
        check_scores(scores, 3, 4, "m")
    strided = torch.zeros(3, 8)
    strided[1, 2] = float("inf")
    with pytest.raises(ContractError, match=r"first in batch row 1"):
        check_scores(strided[:, :5], 3, 4, "m")

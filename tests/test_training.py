"""The shared epoch-selection rule (harness.models.training)."""

import pytest
import torch

from harness.errors import ConfigError
from harness.models.testing import tiny_dataset
from harness.models.training import EpochTrainedRecommender


class Scripted(EpochTrainedRecommender):
    """A model whose quality per epoch is scripted: at epoch `good` it scores
    by training popularity (good on valid), otherwise by reversed popularity."""

    def __init__(self, *, epochs: int = 6, patience: int = 2, refit: bool = True, good: int = 3):
        self.epochs = epochs
        self.patience = patience
        self.refit = refit
        self.good = good

    def _start_training(self, data, split, seed):
        self.splits_ = getattr(self, "splits_", []) + [split]
        self.pop_ = torch.from_numpy(data.item_popularity(split)).float()
        self.epoch_ = 0

    def _train_epoch(self, epoch):
        self.epoch_ = epoch
        self.quality_ = 1.0 if epoch == self.good else -1.0
        return 10.0 / epoch

    def _score(self, batch):
        return (self.quality_ * self.pop_).expand(len(batch), -1).clone()


@pytest.fixture(scope="module")
def data():
    return tiny_dataset()


def test_selects_best_valid_epoch_stops_early_and_refits(data):
    model = Scripted(epochs=10, patience=2, good=3).fit(data)
    select = [r for r in model.training_curve_ if r["phase"] == "select"]
    refit = [r for r in model.training_curve_ if r["phase"] == "refit"]
    assert model.best_epoch_ == 3
    assert [r["epoch"] for r in select] == [1, 2, 3, 4, 5]  # stopped 2 epochs after the best
    assert select[2]["valid_MRR@20"] > select[1]["valid_MRR@20"]
    assert [r["epoch"] for r in refit] == [1, 2, 3]
    assert model.splits_ == ["train_tr", "train"]
    assert model.epoch_ == 3 and model.quality_ == 1.0


def test_without_refit_keeps_the_best_epoch_weights(data):
    model = Scripted(epochs=10, patience=2, refit=False, good=2).fit(data)
    assert model.best_epoch_ == 2
    assert model.splits_ == ["train_tr"]
    assert model.epoch_ == 2 and model.quality_ == 1.0  # restored, not the last epoch (4)


def test_patience_zero_trains_exactly_epochs_on_train(data):
    model = Scripted(epochs=4, patience=0).fit(data)
    assert model.splits_ == ["train"]
    assert [r["phase"] for r in model.training_curve_] == ["train"] * 4
    assert [r["loss"] for r in model.training_curve_] == [10.0, 5.0, 10.0 / 3, 2.5]
    assert model.best_epoch_ == 4


@pytest.mark.parametrize("params", [{"epochs": 0}, {"patience": -1}])
def test_bad_epoch_settings_are_clear_errors(data, params):
    with pytest.raises(ConfigError, match="epochs must be|patience must be"):
        Scripted(**params).fit(data)


class Diverges(Scripted):
    def _train_epoch(self, epoch):
        super()._train_epoch(epoch)
        return float("nan") if epoch == 2 else 1.0


def test_a_nan_training_loss_stops_the_fit_naming_the_epoch(data):
    with pytest.raises(FloatingPointError, match="training loss became nan in epoch 2"):
        Diverges(epochs=4, patience=0).fit(data)


def test_dropout_keeps_each_element_with_probability_1_minus_p_scaled_to_keep_the_mean():
    from harness.models.neural import Dropout, dropout

    x = torch.full((200, 500), 2.0)
    torch.manual_seed(0)
    out = dropout(x, 0.3)
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01  # 100,000 draws: sd 0.0015
    assert torch.allclose(out[kept], torch.tensor(2.0 / 0.7))
    assert abs(out.mean().item() - 2.0) < 0.03
    torch.manual_seed(0)
    assert torch.equal(dropout(x, 0.3), out)  # the global generator that fit seeds
    assert dropout(x, 0.3, training=False) is x and dropout(x, 0.0) is x
    module = Dropout(0.5)
    assert torch.equal(module.eval()(x), x) and (module.train()(x) == 0).any()


def test_the_sigmoid_tanh_matches_torch_tanh_and_its_gradient():
    from harness.models.neural import tanh

    x = torch.cat([torch.linspace(-12, 12, 20_001), torch.tensor([0.0, 1e-30, -50.0, 50.0, 1e4, -1e4])])
    assert (tanh(x) - torch.tanh(x)).abs().max().item() <= 2e-7
    assert tanh(torch.tensor([float("inf"), float("-inf")])).tolist() == [1.0, -1.0]
    assert torch.isnan(tanh(torch.tensor(float("nan"))))

    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    weights = torch.linspace(-1, 1, len(x))
    (tanh(ours) * weights).sum().backward()
    (torch.tanh(theirs) * weights).sum().backward()
    assert (ours.grad - theirs.grad).abs().max().item() <= 1e-6  # 1 - tanh^2, from either tanh
    # and exactly 1 - y^2 of its own output y, checked in double precision
    assert torch.autograd.gradcheck(tanh, torch.linspace(-3, 3, 13, dtype=torch.float64).requires_grad_())


@pytest.mark.parametrize("with_bias", [True, False])
def test_the_softmax_loss_in_blocks_of_rows_equals_the_plain_formulation(monkeypatch, with_bias):
    import torch.nn.functional as F

    import harness.models.neural as neural

    monkeypatch.setattr(neural, "SOFTMAX_CHUNK_ROWS", 4)  # 11 rows: blocks of 4, 4 and 3
    gen = torch.Generator().manual_seed(1)
    session, table = torch.randn(11, 6, generator=gen), torch.randn(9, 6, generator=gen)
    session[9] = table[3] * 40.0  # row 9 (third block): its target, item 5, underflows to probability 0
    bias = torch.randn(9, generator=gen) if with_bias else None
    targets = torch.tensor([1, 8, 3, 3, 7, 5, 2, 8, 1, 5, 4])

    def run(fn, weight):
        leaves = [t.detach().clone().requires_grad_() for t in (session, table, bias) if t is not None]
        loss = fn(*leaves)
        (weight * loss).backward()  # the incoming gradient scales every gradient
        return loss.detach(), [leaf.grad for leaf in leaves]

    def plain(s, e, b=None):
        return F.cross_entropy(s @ e[1:].T + (0.0 if b is None else b[1:]), targets - 1)

    mine, mine_grads = run(lambda s, e, b=None: neural.item_softmax_cross_entropy(s, e, targets, b), 3.0)
    ref, ref_grads = run(plain, 3.0)
    assert torch.isfinite(mine) and float(mine) == pytest.approx(float(ref), rel=1e-5)
    for got, expected in zip(mine_grads, ref_grads):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert mine_grads[1][0].abs().max() == 0  # the padding row gets no gradient

    # only the session needs a gradient (a frozen table): the same session gradient
    frozen = table.detach()
    s = session.detach().clone().requires_grad_()
    neural.item_softmax_cross_entropy(s, frozen, targets, bias).backward()
    torch.testing.assert_close(s.grad * 3.0, mine_grads[0], rtol=1e-5, atol=1e-6)


def test_a_loss_with_its_gradients_hands_them_to_autograd_once_and_scaled():
    from harness.models.neural import loss_with_gradients

    a, b = torch.ones(3, requires_grad=True), torch.ones(2, requires_grad=True)
    made = {}  # the address of a's gradient (holding the tensor would make autograd copy it)

    def compute(wanted):
        grad_a, grad_b = torch.full((3,), 2.0), torch.full((2,), 5.0)
        made["a"] = grad_a.data_ptr()
        return torch.tensor(7.0), [grad_a, grad_b if wanted[1] else None]

    loss = loss_with_gradients(compute, a, b)
    assert loss.item() == 7.0
    loss.backward(retain_graph=True)
    assert a.grad.tolist() == [2.0] * 3 and b.grad.tolist() == [5.0] * 2
    assert a.grad.data_ptr() == made["a"]  # d loss = 1: handed over, not copied
    with pytest.raises(RuntimeError, match="compute the loss again"):
        loss.backward()

    a.grad = b.grad = None
    (3.0 * loss_with_gradients(compute, a, b)).backward()  # the incoming gradient scales them
    assert a.grad.tolist() == [6.0] * 3 and b.grad.tolist() == [15.0] * 2
    frozen = torch.ones(2)  # an input without a gradient: not asked for, none given
    a.grad = None
    loss_with_gradients(compute, a, frozen).backward()
    assert a.grad.tolist() == [2.0] * 3 and frozen.grad is None


@pytest.mark.parametrize("with_bias", [True, False])
def test_the_bf16_softmax_loss_rounds_only_its_products(monkeypatch, with_bias):
    """precision="bf16": the three products take bfloat16 operands and give
    bfloat16 results; the softmax, the loss, the bias gradient and the sums
    stay float32. Checked against that recipe written out plainly, and
    against the float32 loss within bfloat16's rounding."""
    import torch.nn.functional as F

    import harness.models.neural as neural

    gen = torch.Generator().manual_seed(2)
    session, table = torch.randn(11, 16, generator=gen), torch.randn(40, 16, generator=gen)
    bias = torch.randn(40, generator=gen) if with_bias else None
    targets = torch.randint(1, 40, (11,), generator=gen)
    low = torch.bfloat16

    def grads_of(precision):
        leaves = [t.detach().clone().requires_grad_() for t in (session, table, bias) if t is not None]
        loss = neural.item_softmax_cross_entropy(leaves[0], leaves[1], targets, leaves[2] if with_bias else None,
                                                 precision=precision)
        (3.0 * loss).backward()
        return loss.detach(), [leaf.grad for leaf in leaves]

    # the recipe, spelled out: rounded operands, rounded products, float32 softmax
    s16, e16 = session.to(low), table.to(low)
    scores = (s16 @ e16.T).float() + (0.0 if bias is None else bias)
    scores[:, 0] = float("-inf")
    ref_loss = F.cross_entropy(scores, targets)
    g = torch.softmax(scores, dim=1)
    g[torch.arange(11), targets] -= 1.0
    g = g / 11
    ref_grads = [3.0 * (g.to(low) @ e16).float(), 3.0 * (g.to(low).T @ s16).float()]
    if with_bias:
        ref_grads.append(3.0 * g.sum(dim=0))

    loss, grads = grads_of("bf16")  # 11 rows: one block
    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-6)
    for got, expected in zip(grads, ref_grads):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
        assert got.dtype == torch.float32
    assert grads[1][0].abs().max() == 0  # the padding row gets no gradient

    fp32_loss, fp32_grads = grads_of("fp32")
    assert float(loss) == pytest.approx(float(fp32_loss), rel=2e-2)
    for got, exact in zip(grads, fp32_grads):
        error = float((got - exact).norm() / exact.norm())
        assert 0 < error < 2e-2  # rounded (not the float32 path), but only by bfloat16's 8 bits

    # several blocks: the table's gradient is summed over them in float32
    monkeypatch.setattr(neural, "SOFTMAX_CHUNK_ROWS", 4)
    blocked_loss, blocked = grads_of("bf16")
    assert float(blocked_loss) == pytest.approx(float(loss), rel=1e-6)
    per_block = sum((g[i:i + 4].to(low).T @ s16[i:i + 4]).float() for i in range(0, 11, 4))
    torch.testing.assert_close(blocked[1], 3.0 * per_block, rtol=1e-5, atol=1e-7)
    for got, expected in zip(blocked[:1] + blocked[2:], grads[:1] + grads[2:]):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)  # row-wise: unchanged by blocks

    with pytest.raises(ValueError, match="precision must be one of"):
        neural.item_softmax_cross_entropy(session, table, targets, precision="fp16")

"""gru4rec: the losses against hand-worked values (cross-entropy with the
output bias also against ``F.cross_entropy``), a training step and the
Adagrad step against plain formulations, the session-parallel
batcher on a hand-made split, prefix scoring against session-parallel
inference, overfitting a tiny set, determinism, configuration errors and the
plugin contract."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import torch.nn.functional as F

from baselines.gru4rec import (
    AdagradM,
    GRU4Rec,
    bpr_max_loss,
    session_parallel_steps,
    softmax_negatives,
    top1_max_loss,
)
from harness.data.dataset import PrefixBatch, SessionDataset, SessionSplit
from harness.errors import ConfigError
from harness.evaluation.evaluate import evaluate
from harness.models.neural import item_softmax_cross_entropy
from harness.models.testing import check_recommender, tiny_dataset


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


LN2 = math.log(2.0)

# --------------------------------------------------------------------------- #
# Losses, worked out by hand
# --------------------------------------------------------------------------- #


def test_cross_entropy_with_bias_by_hand():
    # session = identity, so score_bj = table[j, b] + bias[j]; the padding column (bias 5) never counts
    # row 0: scores (0, ln 3) over items 1, 2, target 2: -ln 3 + ln(1 + 3) = ln(4/3)
    # row 1: scores (1, 1),              target 1: -1 + ln(2e) = ln 2
    session = torch.eye(2, dtype=torch.float64)
    table = torch.tensor([[9.0, 9.0], [-1.0, 0.0], [math.log(3.0) - 1.0, 0.0]], dtype=torch.float64)
    bias = torch.tensor([5.0, 1.0, 1.0], dtype=torch.float64)
    got = item_softmax_cross_entropy(session, table, torch.tensor([2, 1]), bias)
    assert float(got) == pytest.approx((math.log(4.0 / 3.0) + LN2) / 2, abs=1e-12)


@pytest.mark.parametrize("with_bias", [True, False])
def test_cross_entropy_equals_plain_formulation_with_gradients(with_bias):
    gen = torch.Generator().manual_seed(0)
    session = torch.randn(7, 5, generator=gen)
    table = torch.randn(13, 5, generator=gen)
    bias = torch.randn(13, generator=gen) if with_bias else None
    targets = torch.tensor([1, 12, 3, 3, 7, 5, 12])

    def run(fn):
        leaves = [t.detach().clone().requires_grad_() for t in (session, table, bias) if t is not None]
        loss = fn(*leaves)
        loss.backward()
        return loss.detach(), [leaf.grad for leaf in leaves]

    def plain(s, e, b=None):
        scores = s @ e[1:].T + (0.0 if b is None else b[1:])
        return F.cross_entropy(scores, targets - 1)

    mine, mine_grads = run(lambda s, e, b=None: item_softmax_cross_entropy(s, e, targets, b))
    ref, ref_grads = run(plain)
    assert float(mine) == pytest.approx(float(ref), rel=1e-6)
    for got, expected in zip(mine_grads, ref_grads):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    assert mine_grads[1][0].abs().max() == 0  # the padding row gets no gradient
    if with_bias:
        assert mine_grads[2][0] == 0


def test_training_step_equals_plain_autograd_step():
    # one step of the model (shared loss, the tied lookup's gradient added by hand, Adam) against the
    # plain formulation: F.cross_entropy over h O^T + b, autograd through the tied lookup
    data = tiny_dataset(n_items=15, n_train=40, n_test=5, seed=2)

    def started():
        model = GRU4Rec(hidden_size=6, batch_size=4, device="cpu")
        model._check_params()
        model.device_, model.n_items_ = torch.device("cpu"), data.n_items
        model._start_training(data, "train", 0)
        model.network_.train()
        return model

    mine, ref = started(), started()
    state = mine.network_.initial_state(mine._plan.first_rows, mine.device_)
    state_mine, loss_sum = mine._train_step(0, state)
    net, plan = ref.network_, ref._plan
    lo, hi = plan.bounds[0], plan.bounds[1]
    state_ref = net.step(plan.inputs[lo:hi], state, p_embed=ref.dropout_embed, p_hidden=ref.dropout_hidden,
                         generator=ref._dropout_gen)
    loss = F.cross_entropy(state_ref[-1] @ net.output[1:].T + net.bias[1:], plan.targets[lo:hi] - 1)
    loss.backward()
    ref._optim.step()
    assert float(loss_sum) == pytest.approx(float(loss.detach()) * (hi - lo), rel=1e-6)
    torch.testing.assert_close(state_mine[-1], state_ref[-1].detach())
    for (name, got), expected in zip(mine.network_.named_parameters(), net.parameters()):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7, msg=name)
        assert got.grad is None  # freed at the end of the step


@pytest.mark.parametrize("momentum", [0.0, 0.3])
def test_adagrad_step_follows_its_formula(momentum):
    gen = torch.Generator().manual_seed(1)
    params = [torch.randn(4, 3, generator=gen).requires_grad_(), torch.randn(5, generator=gen).requires_grad_()]
    expected = [p.detach().clone() for p in params]
    sums = [torch.zeros_like(p) for p in expected]
    velocities = [torch.zeros_like(p) for p in expected]
    optim = AdagradM(params, lr=0.1, momentum=momentum)
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=gen) for p in params]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        optim.step()
        for theta, G, v, g in zip(expected, sums, velocities, grads):
            G += g * g
            step = -0.1 * g / torch.sqrt(G + 1e-6)
            if momentum:
                v.mul_(momentum).add_(step)
                theta += v
            else:
                theta += step
    for got, want in zip(params, expected):
        torch.testing.assert_close(got.detach(), want)


def test_softmax_over_negatives_gives_the_target_no_weight():
    # row 0 of (1, 0, ln 2): negatives 0 and ln 2 -> weights 1/3, 2/3
    # row 1 of (5, 7, 0):    negatives 5 and 0 (column 1 is its target) -> e^5/(e^5+1), 1/(e^5+1)
    scores = torch.tensor([[1.0, 0.0, LN2], [5.0, 7.0, 0.0]], dtype=torch.float64)
    w = softmax_negatives(scores)
    e5 = math.exp(5.0)
    expected = [[0.0, 1 / 3, 2 / 3], [e5 / (e5 + 1), 0.0, 1 / (e5 + 1)]]
    assert w.tolist() == [pytest.approx(row, abs=1e-12) for row in expected]


def test_bpr_max_by_hand_in_batch_negatives():
    # two rows, no extra samples: each row's only negative is the other row's target
    #   row 0: target 2, negative 0 -> -log sigmoid(2) + bpreg * 0^2
    #   row 1: target 3, negative 1 -> -log sigmoid(2) + bpreg * 1^2
    scores = torch.tensor([[2.0, 0.0], [1.0, 3.0]], dtype=torch.float64)
    got = bpr_max_loss(scores, bpreg=0.5)
    base = -math.log(sigmoid(2.0))  # = log(1 + e^-2) = 0.126928...
    assert base == pytest.approx(0.1269280110429725)
    assert got.tolist() == pytest.approx([base, base + 0.5], abs=1e-12)


def test_bpr_max_by_hand_with_sampled_negatives():
    # one row, target score 1, two sampled negatives 0 and ln 2: weights 1/3, 2/3
    #   -log(1/3 sigmoid(1) + 2/3 sigmoid(1 - ln 2)) + bpreg * (1/3 * 0 + 2/3 * ln2^2)
    scores = torch.tensor([[1.0, 0.0, LN2]], dtype=torch.float64)
    ranking = sigmoid(1.0) / 3 + 2 * sigmoid(1.0 - LN2) / 3  # 0.243686 + 0.384078
    expected = -math.log(ranking) + 2.0 * (2 / 3) * LN2**2
    assert expected == pytest.approx(0.4656 + 0.6406, abs=1e-3)
    assert bpr_max_loss(scores, bpreg=2.0).item() == pytest.approx(expected, abs=1e-12)
    assert bpr_max_loss(scores, bpreg=0.0).item() == pytest.approx(-math.log(ranking), abs=1e-12)


def test_top1_max_by_hand():
    # same row: sum_j s_j (sigmoid(r_j - r_target) + sigmoid(r_j^2))
    #   1/3 (sigmoid(-1) + sigmoid(0)) + 2/3 (sigmoid(ln 2 - 1) + sigmoid(ln2^2))
    scores = torch.tensor([[1.0, 0.0, LN2], [4.0, 4.0, 4.0]], dtype=torch.float64)
    expected0 = (sigmoid(-1.0) + 0.5) / 3 + 2 * (sigmoid(LN2 - 1.0) + sigmoid(LN2**2)) / 3
    # row 1: every score 4, target column 1: weights 1/2, 1/2 -> sigmoid(0) + sigmoid(16)
    expected1 = 0.5 + sigmoid(16.0)
    assert top1_max_loss(scores).tolist() == pytest.approx([expected0, expected1], abs=1e-12)


def test_ranking_losses_fall_when_the_target_rises():
    low = torch.tensor([[0.0, 0.5, -0.5, 1.0]])
    high = low.clone()
    high[0, 0] = 3.0
    assert bpr_max_loss(high, 1.0) < bpr_max_loss(low, 1.0)
    assert top1_max_loss(high) < top1_max_loss(low)


# --------------------------------------------------------------------------- #
# The session-parallel batcher
# --------------------------------------------------------------------------- #

# Six sessions; item ids encode (session, position) as 10 * (s + 1) + position:
#   S0: 10 11 12      S1: 20 21      S2: 30 (length 1: skipped)
#   S3: 40 41 42 43   S4: 50 51      S5: 60 61 62
HAND_SESSIONS = [[10, 11, 12], [20, 21], [30], [40, 41, 42, 43], [50, 51], [60, 61, 62]]


def flat(sessions):
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions])
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sessions])]).astype(np.int64)
    return items, offsets


def test_batcher_replaces_finished_sessions_and_resets_their_rows():
    # batch of 2, worked out by hand:
    #   step 1  rows (S0, S1): 10->11, 20->21   both new              S1 ends -> row 1 takes S3
    #   step 2  rows (S0, S3): 11->12, 40->41   row 1 reset           S0 ends -> row 0 takes S4
    #   step 3  rows (S4, S3): 50->51, 41->42   row 0 reset           S4 ends -> row 0 takes S5
    #   step 4  rows (S5, S3): 60->61, 42->43   row 0 reset           S3 ends, nothing left: drop row 1
    #   step 5  rows (S5):     61->62           keep [0]              S5 ends: done
    steps = list(session_parallel_steps(*flat(HAND_SESSIONS), batch_size=2))
    got = [(s.sessions.tolist(), s.inputs.tolist(), s.targets.tolist(), s.reset.tolist(),
            None if s.keep is None else s.keep.tolist()) for s in steps]
    assert got == [
        ([0, 1], [10, 20], [11, 21], [True, True], None),
        ([0, 3], [11, 40], [12, 41], [False, True], None),
        ([4, 3], [50, 41], [51, 42], [True, False], None),
        ([5, 3], [60, 42], [61, 43], [True, False], None),
        ([5], [61], [62], [False], [0]),
    ]


def test_batcher_fills_finished_rows_in_row_order_and_shrinks():
    # batch of 3, all sessions of length 2 except the last:
    #   step 1 rows (S0, S1, S2) all end; rows 0 and 1 take S3, S4; row 2 is dropped
    #   step 2 rows (S3, S4): S3 ends, S4 goes on; nothing left -> row 0 dropped, keep [1]
    #   step 3 row (S4)
    sessions = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10, 11]]
    steps = list(session_parallel_steps(*flat(sessions), batch_size=3))
    assert [s.sessions.tolist() for s in steps] == [[0, 1, 2], [3, 4], [4]]
    assert [None if s.keep is None else s.keep.tolist() for s in steps] == [None, [0, 1], [1]]
    assert [s.reset.tolist() for s in steps] == [[True] * 3, [True, True], [False]]
    assert [s.inputs.tolist() for s in steps] == [[1, 3, 5], [7, 9], [10]]


def test_batcher_covers_every_transition_once():
    rng = np.random.default_rng(3)
    sessions = [list(rng.integers(1, 50, size=rng.integers(1, 9))) for _ in range(200)]
    items, offsets = flat(sessions)
    for batch_size in (1, 7, 64, 500):
        pairs = [(int(a), int(b)) for s in session_parallel_steps(items, offsets, batch_size)
                 for a, b in zip(s.inputs, s.targets)]
        expected = [(int(a), int(b)) for s in sessions for a, b in zip(s[:-1], s[1:])]
        assert sorted(pairs) == sorted(expected)


# --------------------------------------------------------------------------- #
# Scoring whole prefixes == session-parallel inference
# --------------------------------------------------------------------------- #

VARIANTS = {
    "tied": {},
    "separate-embedding-2-layers": {"constrained_embedding": False, "embedding": 12, "n_layers": 2},
    "one-hot": {"constrained_embedding": False, "embedding": 0},
}


def small_model(data, *, seed=0, **params):
    defaults = {"hidden_size": 16, "batch_size": 8, "epochs": 1, "patience": 0, "device": "cpu"}
    return GRU4Rec(**{**defaults, **params}).fit(data, seed=seed)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_prefix_scores_equal_session_parallel_inference(variant):
    """Carry each test session's state click by click, session-parallel (rows
    replaced as sessions end), and compare the scores after every click with
    what score() gives for the same prefix run from scratch."""
    data = tiny_dataset()
    model = small_model(data, dropout_hidden=0.3, dropout_embed=0.2, **VARIANTS[variant])
    net, test = model.network_, data.test
    parallel = {}
    with torch.inference_mode():
        state = net.initial_state(5, torch.device("cpu"))
        for step in session_parallel_steps(test.item_array, test.offsets, batch_size=5):
            if step.keep is not None:
                state = [h[torch.from_numpy(step.keep)] for h in state]
            carry = torch.from_numpy(~step.reset).float().unsqueeze(1)
            state = net.step(torch.from_numpy(step.inputs), [h * carry for h in state])
            scores = net.scores(state[-1])
            # a session keeps one row and its clicks come in order, so its
            # t-th score is the one after its first t clicks
            for row, session in enumerate(step.sessions):
                parallel.setdefault(int(session), []).append(scores[row])
        cases = data.prefixes("test")
        batched = model.score(cases.batch(slice(0, len(cases))))
    # case c is session cases.session_index[c], prefix length cases.prefix_length[c]
    compared = 0
    for c in range(len(cases)):
        expected = parallel[int(cases.session_index[c])][int(cases.prefix_length[c]) - 1]
        torch.testing.assert_close(batched[c], expected, atol=1e-5, rtol=1e-5)
        compared += 1
    assert compared == data.test.n_prefixes > 100


def test_prefix_scores_ignore_padding_and_batch_neighbours():
    data = tiny_dataset()
    model = small_model(data)
    prefixes = [[3, 5, 7, 9, 11], [4], [8, 2]]
    together = model.score(PrefixBatch.from_sequences(prefixes))
    for row, prefix in enumerate(prefixes):
        alone = model.score(PrefixBatch.from_sequences([prefix]))
        torch.testing.assert_close(together[row : row + 1], alone, atol=1e-5, rtol=1e-5)
    # garbage in the padding changes nothing
    padded = PrefixBatch.from_sequences(prefixes)
    noisy = PrefixBatch(padded.items.masked_fill(padded.items == 0, 13), padded.lengths)
    torch.testing.assert_close(model.score(noisy), together)


def test_embeddings_reproduce_the_scores():
    data = tiny_dataset()
    model = small_model(data)
    batch = data.prefixes("test").batch(slice(0, 50))
    torch.testing.assert_close(model.embed(batch) @ model.item_embeddings().T, model.score(batch),
                               atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- #
# Learning
# --------------------------------------------------------------------------- #


def chain_dataset(n_items=30, n_sessions=120, seed=0):
    """Sessions that walk a fixed random successor chain: the next item is a
    function of the current one, so a model can be right every time."""
    rng = np.random.default_rng(seed)
    successor = rng.permutation(n_items) + 1
    rows = []
    for s in range(n_sessions):
        item = int(rng.integers(1, n_items + 1)) if s >= n_items else s + 1  # every item occurs
        for pos in range(int(rng.integers(2, 7))):
            rows.append((s, item, 100.0 * s + pos))
            item = int(successor[item - 1])
    split = SessionSplit(pd.DataFrame(rows, columns=["session", "item", "time"]))
    return SessionDataset("chain", n_items, {str(i): i for i in range(1, n_items + 1)}, split, split, split, split)


@pytest.mark.parametrize(
    "params, fall",
    [
        ({"loss": "cross-entropy"}, 0.05),
        ({"loss": "bpr-max", "n_sample": 16, "optimizer": "adagrad", "learning_rate": 0.1, "momentum": 0.3}, 0.8),
        ({"loss": "top1-max", "n_sample": 16, "optimizer": "adagrad", "learning_rate": 0.1}, 0.95),
    ],
    ids=["cross-entropy", "bpr-max", "top1-max"],
)
def test_overfits_a_tiny_set(params, fall):
    """Training loss falls (the ranking losses keep a floor: with 30 items the
    target is often among its own sampled negatives, and their score
    regularisers stay positive) and the training prefixes are ranked first."""
    data = chain_dataset()
    settings = {"hidden_size": 32, "batch_size": 8, "learning_rate": 0.02, "epochs": 8, "patience": 0,
                "device": "cpu", **params}
    model = GRU4Rec(**settings).fit(data, seed=0)
    losses = [row["loss"] for row in model.training_curve_]
    assert losses[-1] < fall * losses[0]
    hit1 = evaluate(model, data, split="train", ks=(1,)).metrics()["HitRate@1"]
    assert hit1 >= 0.95


def test_same_seed_same_model_other_seed_other_model():
    data = tiny_dataset()
    params = {"loss": "bpr-max", "n_sample": 8, "dropout_hidden": 0.2, "dropout_embed": 0.1,
              "optimizer": "adagrad", "learning_rate": 0.05, "momentum": 0.1}
    batch = data.prefixes("test").batch(slice(0, 40))
    first = small_model(data, seed=7, **params).score(batch)
    again = small_model(data, seed=7, **params).score(batch)
    other = small_model(data, seed=8, **params).score(batch)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize("refit", [True, False])
def test_selection_rule_records_its_curve(refit):
    data = tiny_dataset()
    model = GRU4Rec(hidden_size=16, batch_size=16, epochs=3, patience=1, refit=refit, device="cpu")
    model.fit(data, seed=0)
    phases = [row["phase"] for row in model.training_curve_]
    assert phases[0] == "select" and 1 <= model.best_epoch_ <= 3
    assert phases.count("refit") == (model.best_epoch_ if refit else 0)
    assert all(row["valid_MRR@20"] is not None for row in model.training_curve_ if row["phase"] == "select")
    assert not hasattr(model, "_plan") and not hasattr(model, "_optim")  # training state is dropped
    model.score(data.prefixes("test").batch(slice(0, 10)))


def test_num_threads_is_restored():
    data = tiny_dataset()
    before = torch.get_num_threads()
    small_model(data, num_threads=1)
    assert torch.get_num_threads() == before


# --------------------------------------------------------------------------- #
# Configuration and contract
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "params, message",
    [
        ({"loss": "top1"}, "loss must be one of"),
        ({"optimizer": "sgd"}, "optimizer must be one of"),
        ({"momentum": 0.5}, "momentum is Adagrad's"),
        ({"embedding": 32}, "embedding must be 0 with constrained_embedding"),
        ({"dropout_hidden": 1.0}, "dropout_hidden must be in"),
        ({"hidden_size": 0}, "hidden_size must be a positive integer"),
        ({"device": "tpu"}, "device must be"),
    ],
)
def test_bad_hyperparameters_are_named(params, message):
    with pytest.raises(ConfigError, match=message):
        GRU4Rec(**params).fit(tiny_dataset(), seed=0)


@pytest.mark.parametrize(
    "params",
    [
        {"loss": "bpr-max", "n_sample": 8, "optimizer": "adagrad", "learning_rate": 0.05, "momentum": 0.2},
        {"loss": "top1-max", "n_sample": 0, "constrained_embedding": False, "n_layers": 2, "dropout_hidden": 0.2},
    ],
    ids=["bpr-max-adagrad", "top1-max-one-hot-2-layers"],
)
def test_variants_conform(params):
    check_recommender(GRU4Rec, hidden_size=16, batch_size=16, epochs=2, patience=0, **params)


def test_negative_samples_follow_popularity_to_the_alpha():
    # counts: item 1: 9, item 2: 1, item 3: 0 (only in valid); alpha = 0.5 -> P = 3/4, 1/4, 0
    train = SessionSplit(pd.DataFrame({"session": [0] * 5 + [1] * 5, "item": [1, 1, 1, 1, 1, 1, 1, 1, 1, 2],
                                       "time": np.arange(10.0)}))
    valid = SessionSplit(pd.DataFrame({"session": [2, 2], "item": [3, 1], "time": [20.0, 21.0]}))
    data = SessionDataset("pop", 3, {"1": 1, "2": 2, "3": 3}, train, train, valid, valid)
    model = GRU4Rec(loss="bpr-max", n_sample=1000, sample_alpha=0.5, device="cpu")
    model._check_params()
    model.device_ = torch.device("cpu")
    model._start_training(data, "train", seed=0)
    draws = torch.cat([model._negative_samples() for _ in range(40)])
    share = torch.bincount(draws, minlength=4).double() / len(draws)
    assert share[0] == 0 and share[3] == 0
    assert share[1].item() == pytest.approx(0.75, abs=0.01)

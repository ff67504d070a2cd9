"""SR-GNN: session graphs, the equations of the network, training and the plugin contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from harness.data.dataset import PrefixBatch, SessionDataset, SessionSplit
from harness.errors import ConfigError
from harness.evaluation.evaluate import evaluate
from harness.models.registry import available_models
from harness.models.testing import check_recommender, tiny_dataset
from srgnn.graph import build_session_graphs
from srgnn.model import SRGNN
from srgnn.recommender import SRGNNRecommender
from data_paths import DIGINETICA_SAMPLE

FAST = {"hidden_size": 16, "epochs": 2, "patience": 0}


def graph_of(sequence, edge_weight="binary"):
    """The dense matrices of one session: (node_items, a_out, a_in, alias) of row 0."""
    batch = PrefixBatch.from_sequences([sequence])
    node_items, a_out, a_in, alias = build_session_graphs(batch.items, batch.lengths, edge_weight).dense()
    return node_items[0], a_out[0], a_in[0], alias[0]


def random_sequences(n, seed, max_length=12, n_items=9):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, n_items + 1, size=int(rng.integers(1, max_length + 1))).tolist() for _ in range(n)]


# -- session graphs ----------------------------------------------------------


@pytest.mark.parametrize("edge_weight", ["binary", "count"])
def test_graph_of_the_papers_example_session(edge_weight):
    # Figure 2 of the paper: v1 -> v2 -> v3 -> v2 -> v4 (no edge repeats, so
    # both weightings agree); worked out by hand.
    node_items, a_out, a_in, alias = graph_of([1, 2, 3, 2, 4], edge_weight)
    h = 0.5
    assert node_items.tolist() == [1, 2, 3, 4]
    assert alias.tolist() == [0, 1, 2, 1, 3]
    assert a_out.tolist() == [[0, 1, 0, 0], [0, 0, h, h], [0, 1, 0, 0], [0, 0, 0, 0]]
    assert a_in.tolist() == [[0, 0, 0, 0], [h, 0, h, 0], [0, 1, 0, 0], [0, 1, 0, 0]]
    # the paper's A_s = [A_out | A_in], one row per node
    a_s = torch.cat([a_out, a_in], dim=1)
    assert a_s[1].tolist() == [0, 0, h, h, h, 0, h, 0]
    batch = PrefixBatch.from_sequences([[1, 2, 3, 2, 4]])
    assert int(build_session_graphs(batch.items, batch.lengths).last_node[0]) == 3  # v4


def test_graph_nodes_are_the_sessions_items_in_any_id_order():
    node_items, a_out, a_in, alias = graph_of([40, 7, 40, 19])  # 40 -> 7 -> 40 -> 19
    assert node_items.tolist() == [7, 19, 40]
    assert alias.tolist() == [2, 0, 2, 1]
    assert a_out.tolist() == [[0, 0, 1], [0, 0, 0], [0.5, 0.5, 0]]
    assert a_in.tolist() == [[0, 0, 1], [0, 0, 1], [1, 0, 0]]


def test_count_weighting_normalises_outgoing_counts_by_out_degree():
    # v1 v2 v1 v2 v1 v3: v1 -> v2 twice, v2 -> v1 twice, v1 -> v3 once
    _, binary_out, binary_in, _ = graph_of([1, 2, 1, 2, 1, 3], "binary")
    _, count_out, count_in, _ = graph_of([1, 2, 1, 2, 1, 3], "count")
    assert binary_out.tolist() == [[0, 0.5, 0.5], [1, 0, 0], [0, 0, 0]]
    assert torch.allclose(count_out, torch.tensor([[0, 2 / 3, 1 / 3], [1, 0, 0], [0, 0, 0]]))
    expected_in = [[0, 1, 0], [1, 0, 0], [1, 0, 0]]
    assert binary_in.tolist() == expected_in and count_in.tolist() == expected_in


def test_count_weighting_normalises_incoming_counts_by_in_degree():
    # v1 v2 v1 v2 v3 v2: v1 -> v2 twice, v3 -> v2 once
    _, binary_out, binary_in, _ = graph_of([1, 2, 1, 2, 3, 2], "binary")
    _, count_out, count_in, _ = graph_of([1, 2, 1, 2, 3, 2], "count")
    assert binary_in.tolist() == [[0, 1, 0], [0.5, 0, 0.5], [0, 1, 0]]
    assert torch.allclose(count_in, torch.tensor([[0, 1, 0], [2 / 3, 0, 1 / 3], [0, 1, 0]]))
    expected_out = [[0, 1, 0], [0.5, 0, 0.5], [0, 1, 0]]
    assert binary_out.tolist() == expected_out and count_out.tolist() == expected_out


def test_single_item_and_self_loop_sessions():
    node_items, a_out, a_in, alias = graph_of([5])
    assert node_items.tolist() == [5] and a_out.tolist() == [[0]] and a_in.tolist() == [[0]]
    node_items, a_out, a_in, alias = graph_of([5, 5, 5], "count")  # a repeated click is a self loop
    assert node_items.tolist() == [5] and a_out.tolist() == [[1]] and a_in.tolist() == [[1]]
    assert alias.tolist() == [0, 0, 0]


@pytest.mark.parametrize("edge_weight", ["binary", "count"])
def test_a_batch_gives_the_graphs_of_its_sessions_built_one_by_one(edge_weight):
    sequences = random_sequences(40, seed=1)
    batch = PrefixBatch.from_sequences(sequences)
    graphs = build_session_graphs(batch.items, batch.lengths, edge_weight)
    node_items, a_out, a_in, alias = graphs.dense()
    for row, sequence in enumerate(sequences):
        one_items, one_out, one_in, one_alias = graph_of(sequence, edge_weight)
        n = len(one_items)
        assert int(graphs.n_nodes[row]) == n
        assert torch.equal(node_items[row, :n], one_items) and not node_items[row, n:].any()
        assert torch.equal(a_out[row, :n, :n], one_out) and not a_out[row, n:].any() and not a_out[row, :, n:].any()
        assert torch.equal(a_in[row, :n, :n], one_in) and not a_in[row, n:].any() and not a_in[row, :, n:].any()
        assert torch.equal(alias[row, : len(sequence)], one_alias)
        assert int(node_items[row, alias[row, len(sequence) - 1]]) == sequence[-1]
    # normalisation: every row with an edge sums to 1
    for matrix in (a_out, a_in):
        sums = matrix.sum(2)
        assert torch.allclose(sums[sums > 0], torch.ones(int((sums > 0).sum())))


def test_graphs_ignore_whatever_lies_in_the_padding():
    batch = PrefixBatch.from_sequences([[3, 1, 3], [2], [4, 4, 1, 2, 5]])
    dirty = batch.items.clone()
    dirty[0, 3:] = 7
    dirty[1, 1:] = torch.tensor([9, 8, 7, 6])
    clean = build_session_graphs(batch.items, batch.lengths).dense()
    noisy = build_session_graphs(dirty, batch.lengths).dense()
    assert all(torch.equal(a, b) for a, b in zip(clean, noisy))


def test_bad_edge_weight_is_refused():
    batch = PrefixBatch.from_sequences([[1, 2]])
    with pytest.raises(ValueError, match="edge_weight"):
        build_session_graphs(batch.items, batch.lengths, "weighted")


# -- the network: equations 1-7 ---------------------------------------------


@pytest.fixture
def net():
    torch.manual_seed(0)
    model = SRGNN(n_items=9, hidden_size=8)
    model.reset_parameters(torch.Generator().manual_seed(0))
    return model


@pytest.fixture
def batch():
    return PrefixBatch.from_sequences([[1, 2, 3, 2, 4], [5], [6, 7, 6], [8, 9, 8, 9, 1, 2, 3]])


def test_shapes_of_each_equation(net, batch):
    graphs = build_session_graphs(batch.items, batch.lengths)
    n_nodes, d = graphs.n_total_nodes, 8
    assert n_nodes == 4 + 1 + 2 + 5
    hidden = net.embedding(graphs.node_items)
    values = net.cell.gates(graphs, hidden)
    assert values.message.shape == (n_nodes, 2 * d)  # eq. 1
    assert values.update.shape == values.reset.shape == (n_nodes, d)  # eqs. 2-3
    assert values.candidate.shape == values.hidden.shape == (n_nodes, d)  # eqs. 4-5
    nodes = net.propagate(graphs)
    assert nodes.shape == (n_nodes, d)
    s_global, alpha = net.attention(nodes, graphs)  # eq. 6
    assert s_global.shape == (4, d) and alpha.shape == batch.items.shape
    session = net(graphs)  # eq. 7
    assert session.shape == (4, d)
    assert net.scores(session).shape == (4, 10)  # eq. 8, column 0 included
    assert net.loss(session, torch.tensor([1, 2, 3, 4])).shape == ()


@pytest.mark.parametrize("edge_bias", [False, True])
def test_message_is_eq1_with_the_dense_adjacency_matrices(batch, edge_bias):
    net = SRGNN(n_items=9, hidden_size=8, edge_bias=edge_bias)
    net.reset_parameters(torch.Generator().manual_seed(0))
    graphs = build_session_graphs(batch.items, batch.lengths)
    node_items, a_out, a_in, _ = graphs.dense()
    hidden = net.embedding(graphs.node_items)
    message = net.cell.message(graphs, hidden)
    h_in, h_out = net.cell.edge.weight[:8], net.cell.edge.weight[8:]
    b_in, b_out = (net.cell.edge.bias[:8], net.cell.edge.bias[8:]) if edge_bias else (0.0, 0.0)
    for row in range(len(batch)):
        n, first = int(graphs.n_nodes[row]), int(graphs.first_node[row])
        v = net.embedding(node_items[row, :n])  # [n, d]
        incoming = a_in[row, :n, :n] @ (v @ h_in.t() + b_in)
        outgoing = a_out[row, :n, :n] @ (v @ h_out.t() + b_out)
        expected = torch.cat([incoming, outgoing], 1)
        assert torch.allclose(message[first : first + n], expected + net.cell.message_bias, atol=1e-6)


def test_gates_follow_eqs_2_to_5(net, batch):
    graphs = build_session_graphs(batch.items, batch.lengths)
    v = net.embedding(graphs.node_items)
    out = net.cell.gates(graphs, v)
    cell = net.cell
    w = cell.w_message(out.message)
    u = cell.u_gates(v)
    z = torch.sigmoid(w[:, :8] + u[:, :8])
    r = torch.sigmoid(w[:, 8:16] + u[:, 8:])
    candidate = torch.tanh(w[:, 16:] + cell.u_candidate(r * v))
    assert torch.allclose(out.update, z) and torch.allclose(out.reset, r)
    assert torch.allclose(out.candidate, candidate, atol=1e-6)
    assert torch.allclose(out.hidden, (1 - z) * v + z * candidate, atol=1e-6)


def test_step_repeats_the_propagation(batch):
    graphs = build_session_graphs(batch.items, batch.lengths)
    two = SRGNN(n_items=9, hidden_size=8, step=2)
    two.reset_parameters(torch.Generator().manual_seed(0))
    once = two.cell(graphs, two.embedding(graphs.node_items))
    assert torch.allclose(two.propagate(graphs), two.cell(graphs, once))


def test_attention_uses_only_the_prefixs_own_positions(net, batch):
    graphs = build_session_graphs(batch.items, batch.lengths)
    nodes = net.propagate(graphs)
    s_global, alpha = net.attention(nodes, graphs)
    assert (alpha[~graphs.position_mask] == 0).all()
    assert (alpha[graphs.position_mask] != 0).all()
    # eq. 6 position by position
    w = net
    for row, length in enumerate(batch.lengths.tolist()):
        v = nodes[graphs.alias[row, :length]]  # [n, d]
        v_n = v[-1]
        expected_alpha = w.q(torch.sigmoid(w.w_last(v_n) + w.w_node(v))).squeeze(1)
        assert torch.allclose(alpha[row, :length], expected_alpha, atol=1e-6)
        assert torch.allclose(s_global[row], (expected_alpha[:, None] * v).sum(0), atol=1e-6)


def test_hybrid_and_nonhybrid_session_embeddings(net, batch):
    graphs = build_session_graphs(batch.items, batch.lengths)
    nodes = net.propagate(graphs)
    s_global, _ = net.attention(nodes, graphs)
    s_local = nodes[graphs.last_node]
    assert torch.allclose(net(graphs), net.w_hybrid(torch.cat([s_local, s_global], 1)))  # eq. 7
    net.nonhybrid = True
    assert torch.allclose(net(graphs), s_global)


def test_padding_never_reaches_the_output(net, batch):
    graphs = build_session_graphs(batch.items, batch.lengths)
    before = net(graphs)
    with torch.no_grad():
        net.embedding.weight[0] = 1e6  # the padding id's embedding
    assert torch.equal(net(graphs), before)
    # each row alone (no padding at all) gives the same embedding
    for row, length in enumerate(batch.lengths.tolist()):
        alone = build_session_graphs(batch.items[row : row + 1, :length], batch.lengths[row : row + 1])
        assert torch.allclose(net(alone)[0], before[row], atol=1e-6)


# -- training ----------------------------------------------------------------


def chain_dataset(n_items=12, n_sessions=60, seed=0) -> SessionDataset:
    """Sessions that walk a fixed item cycle from random starts: every next item is determined."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        start, length = int(rng.integers(n_items)), int(rng.integers(2, 6))
        rows += [(s, (start + k) % n_items + 1, float(100 * s + k)) for k in range(length)]
    events = pd.DataFrame(rows, columns=["session", "item", "time"])
    split = SessionSplit(events)
    return SessionDataset("chain", n_items, {str(i): i for i in range(1, n_items + 1)}, split, split, split, split)


def test_overfits_a_tiny_synthetic_set():
    data = chain_dataset()
    model = SRGNNRecommender(hidden_size=32, lr=0.01, lr_decay=1.0, epochs=25, patience=0, batch_size=20)
    model.fit(data, seed=0)
    losses = [r["loss"] for r in model.training_curve_]
    assert losses[-1] < 0.2 * losses[0]
    assert evaluate(model, data, split="train", ks=(1,)).metrics()["HitRate@1"] > 0.95


def test_same_seed_gives_identical_weights_after_an_epoch():
    data = tiny_dataset()
    first = SRGNNRecommender(**FAST).fit(data, seed=3).model_.state_dict()
    again = SRGNNRecommender(**FAST).fit(data, seed=3).model_.state_dict()
    other = SRGNNRecommender(**FAST).fit(data, seed=4).model_.state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_initial_weights_are_uniform_in_the_papers_range():
    model = SRGNN(n_items=50, hidden_size=25)
    model.reset_parameters(torch.Generator().manual_seed(0))
    for name, parameter in model.named_parameters():
        assert parameter.abs().max() <= 0.2, name  # 1 / sqrt(25)
    assert model.embedding.weight.min() < -0.19 and model.embedding.weight.max() > 0.19


def test_learning_rate_decays_after_every_third_epoch():
    # the schedule is stepped after each epoch (the paper), not before (the reference code)
    model = SRGNNRecommender(hidden_size=8, epochs=7, patience=0).fit(tiny_dataset(n_train=30), seed=0)
    assert model.epoch_lrs_ == pytest.approx([1e-3] * 3 + [1e-4] * 3 + [1e-5])
    constant = SRGNNRecommender(hidden_size=8, epochs=4, patience=0, lr_decay=1.0).fit(tiny_dataset(n_train=30))
    assert constant.epoch_lrs_ == pytest.approx([1e-3] * 4)


def test_fit_and_score_restore_torchs_thread_setting():
    before = torch.get_num_threads()
    data = tiny_dataset(n_train=30)
    model = SRGNNRecommender(**FAST, num_threads=1).fit(data, seed=0)
    model.score(data.prefixes("test").batch(slice(0, 5)))
    assert torch.get_num_threads() == before
    assert not any(hasattr(model, name) for name in ("_cases", "_optimizer", "_scheduler", "_generator"))


def test_scores_are_the_session_embedding_times_the_item_embeddings():
    data = tiny_dataset()
    model = SRGNNRecommender(**FAST).fit(data, seed=0)
    batch = data.prefixes("test").batch(slice(0, 50))
    scores = model.score(batch)
    assert scores.shape == (50, data.n_items + 1) and scores.dtype == torch.float32
    assert model.provides_embeddings
    assert torch.allclose(scores, model.embed(batch) @ model.item_embeddings().t(), atol=1e-5)


def test_selection_on_validation_then_refit():
    data = tiny_dataset()
    model = SRGNNRecommender(hidden_size=16, epochs=3, patience=1).fit(data, seed=0)
    phases = [r["phase"] for r in model.training_curve_]
    assert phases.count("select") >= 2 and phases.count("refit") == model.best_epoch_


@pytest.mark.parametrize(
    "params, message",
    [
        ({"edge_weight": "weighted"}, "edge_weight"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"lr_decay": 0.0}, "lr_decay"),
        ({"device": "tpu-please"}, "device"),
        ({"num_threads": -1}, "num_threads"),
        ({"lr": "fast"}, "lr"),
    ],
)
def test_bad_hyper_parameters_are_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        SRGNNRecommender(**{**FAST, **params}).fit(tiny_dataset(n_train=30), seed=0)


def test_cuda_without_cuda_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        SRGNNRecommender(**FAST, device="cuda").fit(tiny_dataset(n_train=30), seed=0)


# -- the plugin contract -----------------------------------------------------


def test_registered_as_srgnn():
    assert available_models()["srgnn"] is SRGNNRecommender
    params = SRGNNRecommender.hyperparameters()
    assert params["hidden_size"] == 100 and params["edge_weight"] == "binary" and params["device"] == "auto"


@pytest.mark.parametrize(
    "params",
    [
        {"edge_weight": "count", "step": 2, "edge_bias": True},
        {"nonhybrid": True, "patience": 1, "epochs": 2, "refit": False},
    ],
    ids=["count-step2", "nonhybrid-selection"],
)
def test_variants_pass_the_conformance_suite(params):
    check_recommender(SRGNNRecommender, **{**FAST, **params})


@pytest.mark.slow
@pytest.mark.data("diginetica-sample")
def test_learns_on_the_diginetica_sample(tmp_path):
    from harness.data.specs import load_dataset

    data = load_dataset("diginetica", data_dir=DIGINETICA_SAMPLE.parent, cache_dir=tmp_path)
    model = SRGNNRecommender(epochs=3, patience=0, lr_decay=1.0).fit(data, seed=0)
    losses = [r["loss"] for r in model.training_curve_]
    assert losses == sorted(losses, reverse=True)
    pop = evaluate(available_models()["pop"]().fit(data, seed=0), data, ks=(20,)).metrics()["HitRate@20"]
    assert evaluate(model, data, ks=(20,)).metrics()["HitRate@20"] > pop

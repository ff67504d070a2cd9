"""ANN retrieval: the inner-product transforms, every index against brute
force, and evaluation through an index against exact ranking."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from harness.data.dataset import PrefixBatch, SessionDataset
from harness.errors import ConfigError
from harness.evaluation.evaluate import evaluate
from harness.models.plugin import SessionRecommender
from harness.evaluation.retrieval import (
    METHODS,
    Retrieval,
    augment_items,
    augment_queries,
    evaluate_settings,
    make_index,
    make_setting,
    not_retrieved_rank,
    parse_settings,
    sweep_labels,
)
from harness.models.testing import tiny_dataset

pytest.importorskip("faiss")
pytest.importorskip("annoy")

N_ITEMS, DIM = 300, 16


class PlantedEmbeddings(SessionRecommender):
    """An inner-product model with planted structure: the session vector of a
    prefix ending in item i is the vector of i's most frequent training
    successor plus noise, so exact ranking finds that successor first."""

    provides_embeddings = True

    def __init__(self, *, dim: int = DIM, noise: float = 0.3):
        self.dim = dim
        self.noise = noise

    def _fit(self, data: SessionDataset, *, seed: int) -> None:
        rng = np.random.default_rng(seed)
        n = data.n_items
        counts = np.zeros((n + 1, n + 1))
        items = data.train.item_array
        sessions = data.train.events["session"].to_numpy()
        same = sessions[1:] == sessions[:-1]
        np.add.at(counts, (items[:-1][same], items[1:][same]), 1)
        self.successor_ = counts.argmax(1)
        self.items_ = torch.from_numpy(rng.normal(size=(n + 1, self.dim))).float()
        self.items_[0] = 100.0  # a padding row that would win every search if it were indexed
        self.offsets_ = torch.from_numpy(rng.normal(scale=self.noise, size=(n + 1, self.dim))).float()

    def session_embeddings(self, batch: PrefixBatch) -> torch.Tensor:
        last = batch.items[torch.arange(len(batch)), batch.lengths - 1]
        return 2.0 * self.items_[torch.from_numpy(self.successor_)[last]] + self.offsets_[last]

    def item_embeddings(self) -> torch.Tensor:
        return self.items_.clone()

    def _score(self, batch: PrefixBatch) -> torch.Tensor:
        return self.session_embeddings(batch) @ self.items_.T


@pytest.fixture(scope="module")
def data() -> SessionDataset:
    return tiny_dataset(n_items=N_ITEMS, n_train=600, n_test=150, seed=3)


@pytest.fixture(scope="module")
def model(data) -> PlantedEmbeddings:
    return PlantedEmbeddings().fit(data, seed=0)


def _brute_force(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ items.T), axis=1, kind="stable")[:, :k] + 1


def _random(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # norms that differ a lot: inner product and cosine orders disagree
    return (rng.normal(size=(n, d)) * rng.uniform(0.2, 3.0, size=(n, 1))).astype(np.float32)


# --------------------------------------------------------------------------- #
# transforms and indexes
# --------------------------------------------------------------------------- #


def test_norm_augmentation_turns_l2_and_angle_search_into_exact_mips():
    items, queries = _random(200, 8, 0), _random(30, 8, 1)
    truth = _brute_force(items, queries, 10)
    x, q = augment_items(items).astype(np.float64), augment_queries(queries).astype(np.float64)
    assert np.allclose(np.linalg.norm(x, axis=1), np.linalg.norm(items, axis=1).max(), rtol=1e-5)
    l2 = ((q[:, None, :] - x[None, :, :]) ** 2).sum(2)
    assert np.array_equal(np.argsort(l2, axis=1, kind="stable")[:, :10] + 1, truth)
    cosine = (q @ x.T) / np.linalg.norm(q, axis=1, keepdims=True) / np.linalg.norm(x, axis=1)
    assert np.array_equal(np.argsort(-cosine, axis=1, kind="stable")[:, :10] + 1, truth)
    # without the transform, L2 search is not MIPS on these vectors
    raw = ((queries[:, None, :] - items[None, :, :]) ** 2).sum(2)
    assert not np.array_equal(np.argsort(raw, axis=1)[:, :10] + 1, truth)


# settings under which each index searches exhaustively: its MIPS path must then be exact
EXHAUSTIVE = {
    "exact": {},
    "faiss-flat": {},
    "faiss-hnsw": {"M": 16, "efConstruction": 200, "efSearch": 400},
    "faiss-ivf": {"nlist": 4, "nprobe": 4},
    "faiss-ivfpq": {"nlist": 2, "nprobe": 2, "nbits": 6, "rerank": 400},  # PQ is lossy: refine all
    "faiss-lsh": {"nbits": 64, "rerank": 400},  # Hamming order is lossy: refine all
    "annoy": {"n_trees": 10, "search_k": 100_000},
}


@pytest.mark.parametrize("method", METHODS)
def test_every_method_is_exact_mips_when_searching_everything(method):
    assert set(EXHAUSTIVE) == set(METHODS)
    items, queries = _random(300, 12, 2), _random(25, 12, 3)
    index = make_index(make_setting(method, EXHAUSTIVE[method])).build(items)
    retrieval = Retrieval(method, EXHAUSTIVE[method])
    retrieval.index_, retrieval.items_, retrieval.n_items_ = index, items, len(items)
    got = retrieval.retrieve(queries, 10)
    truth = _brute_force(items, queries, 10)
    # compare as sets per query (the order of near-equal scores may differ by float rounding)
    assert all(set(g) == set(t) for g, t in zip(got.tolist(), truth.tolist()))
    assert index.nbytes() > 0


def test_ivf_and_ivfpq_without_the_transform_would_not_be_exact():
    """The augmentation matters: the same exhaustive IVF search on the raw
    vectors with L2 misses inner-product neighbours."""
    import faiss

    items, queries = _random(300, 12, 2), _random(25, 12, 3)
    flat = faiss.IndexFlatL2(12)
    flat.add(items)
    _, ids = flat.search(queries, 10)
    assert not np.array_equal(np.sort(ids + 1, 1), np.sort(_brute_force(items, queries, 10), 1))


# --------------------------------------------------------------------------- #
# settings
# --------------------------------------------------------------------------- #


def test_settings_fill_defaults_sweep_lists_and_put_exact_first():
    settings = parse_settings([{"method": "faiss-hnsw", "efSearch": [16, 64]}, {"method": "annoy", "n_trees": 10}])
    assert [s.label for s in settings] == [
        "exact", "faiss-hnsw[efSearch=16]", "faiss-hnsw", "annoy[n_trees=10]",
    ]  # fmt: skip
    assert settings[1].params == {"M": 32, "efConstruction": 40, "efSearch": 16, "rerank": 1}


def test_sweep_labels_show_every_swept_parameter_defaults_included():
    settings = parse_settings([{"method": "faiss-hnsw", "M": 16, "efSearch": [16, 64]}, {"method": "annoy"}])
    assert [s.label for s in settings] == ["exact", "faiss-hnsw[M=16,efSearch=16]", "faiss-hnsw[M=16]", "annoy"]
    assert sweep_labels(settings) == ["exact", "faiss-hnsw[M=16,efSearch=16]", "faiss-hnsw[M=16,efSearch=64]",
                                      "annoy"]


@pytest.mark.parametrize(
    "value, message",
    [
        ({"method": "kdtree"}, "unknown retrieval method 'kdtree'"),
        ({"method": "faiss-hnsw", "nprobe": 4}, "has no parameter 'nprobe'"),
        ({"method": "faiss-ivf", "nprobe": 0}, "key 'nprobe': expected an integer >= 1"),
        ({"method": "annoy", "n_trees": "many"}, "key 'n_trees': expected an integer"),
        ([], "non-empty list"),
        ([{"method": "exact"}, {"method": "exact"}], "listed twice"),
    ],
)
def test_bad_settings_name_the_key(value, message):
    with pytest.raises(ConfigError, match=message):
        parse_settings(value, where="suite.yaml: key models[0].retrieval")


@pytest.mark.parametrize(
    "value, message",
    [
        # inside the old C-int bounds, yet hours of building or gigabytes of memory
        ({"method": "annoy", "n_trees": 2**31 - 1}, r"key 'n_trees': expected an integer >= 1 and <= 10000,"),
        ({"method": "faiss-hnsw", "efSearch": 2**31 - 1}, r"key 'efSearch': expected an integer >= 1 and <= 100000,"),
        ({"method": "faiss-hnsw", "efConstruction": 2**31 - 1}, r"key 'efConstruction': .* <= 100000,"),
        ({"method": "faiss-hnsw", "M": 2**31 - 1}, r"key 'M': expected an integer >= 2 and <= 1024,"),
    ],
)
def test_index_parameters_past_their_documented_maxima_are_refused(value, message):
    with pytest.raises(ConfigError, match=message):
        parse_settings(value, where="suite.yaml: key models[0].retrieval")
    key = next(k for k in value if k != "method")
    largest = {"n_trees": 10_000, "M": 1024}.get(key, 100_000)
    assert parse_settings({**value, key: largest})[1].params[key] == largest


@pytest.mark.parametrize("method", [["faiss-hnsw"], {"name": "annoy"}, 3, None])
def test_a_method_that_is_not_a_name_is_refused_by_key(method):
    with pytest.raises(ConfigError, match=r"suite.yaml: key models\[0\].retrieval: key 'method': expected one "
                                          r"retrieval method name \(exact, .*\), got"):
        parse_settings({"method": method}, where="suite.yaml: key models[0].retrieval")


def test_a_sweep_of_more_settings_than_a_grid_may_hold_is_refused_before_expanding():
    big = {"method": "faiss-hnsw", "M": list(range(2, 17)), "efSearch": list(range(1, 17)),
           "efConstruction": list(range(1, 17)), "rerank": list(range(1, 11))}  # 38,400 settings
    with pytest.raises(ConfigError, match=r"suite.yaml: key models\[0\].retrieval: 38,400 retrieval settings or "
                                          r"more, expected at most 1,000"):
        parse_settings(big, where="suite.yaml: key models[0].retrieval")
    # 10**18 combinations: refused at once, never built
    huge = {"method": "faiss-hnsw", "M": list(range(2, 1002)), "efSearch": list(range(1, 1001)),
            "efConstruction": list(range(1, 1001)), "rerank": list(range(1, 1001)), "nprobe": "bad"}
    with pytest.raises(ConfigError, match="expected at most 1,000"):
        parse_settings(huge)
    # across entries too; 999 listed settings plus the exact baseline still fit
    with pytest.raises(ConfigError, match="1,001 retrieval settings or more"):
        parse_settings([{"method": "annoy", "n_trees": list(range(1, 501))},
                        {"method": "annoy", "search_k": list(range(1000, 1501)), "n_trees": 1}])
    assert len(parse_settings({"method": "annoy", "n_trees": list(range(1, 1000))})) == 1000


@pytest.mark.parametrize(
    "params, message",
    [
        ({"nbits": 24}, r"faiss-ivfpq: nbits = 24 makes 2\*\*24 = 16,777,216 centroids per sub-quantiser for 300 "
                        r"items; expected 2\*\*nbits <= 300, nbits <= 8"),
        ({"nbits": 9}, r"nbits = 9 .* for 300 items"),
        ({"m": 14}, r"faiss-ivfpq: m = 14 sub-quantisers for vectors of 13 dimensions .*expected at most 13"),
    ],
)
def test_ivfpq_parameters_the_catalogue_cannot_take_are_refused_at_build(params, message):
    items = _random(300, 12, 2)
    with pytest.raises(ConfigError, match=message):
        make_index(make_setting("faiss-ivfpq", {"nlist": 4, **params})).build(items)
    # at the limits the index builds
    make_index(make_setting("faiss-ivfpq", {"nlist": 4, "nbits": 8, "m": 13})).build(items)


def test_a_model_without_embeddings_is_refused_by_name(data):
    from harness.models.registry import make_model

    pop = make_model("pop").fit(data)
    with pytest.raises(ConfigError, match="model 'pop' does not declare provides_embeddings"):
        evaluate(pop, data, retrieval=Retrieval("faiss-flat"))


# --------------------------------------------------------------------------- #
# evaluation through an index
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("protocol, exclude_seen", [("next", False), ("rest", False), ("next", True)])
@pytest.mark.parametrize("method", ["exact", "faiss-flat"])
def test_exact_indexes_give_exactly_the_exact_ranking_metrics(data, model, method, protocol, exclude_seen):
    ks = (1, 5, 10, 20)
    exact = evaluate(model, data, protocol=protocol, ks=ks, exclude_seen=exclude_seen, batch_size=64)
    ann = evaluate(model, data, protocol=protocol, ks=ks, exclude_seen=exclude_seen, batch_size=64,
                   retrieval=Retrieval(method, latency_queries=5))
    assert ann.metrics() == exact.metrics()
    assert np.array_equal(ann.top, exact.top)
    info = ann.meta["retrieval"]
    assert info["recall"] == {str(k): 1.0 for k in ks}
    assert info["index_bytes"] >= N_ITEMS * DIM * 4 and info["build_seconds"] >= 0
    assert info["latency_ms_p95"] >= info["latency_ms_p50"] > 0 and info["batch_qps"] > 0
    # rank of a target beyond K = 20 is "not retrieved": n_items + 1 (exact ranking kept its full rank)
    beyond = exact.ranks > 20
    assert beyond.any()
    unranked = exact.ranks == np.iinfo(np.int32).max
    assert np.all(ann.ranks[beyond & ~unranked] == not_retrieved_rank(N_ITEMS))
    assert np.array_equal(ann.ranks[~beyond], exact.ranks[~beyond])


@pytest.mark.parametrize("setting", [{"method": "annoy", "n_trees": 2}, {"method": "faiss-hnsw", "M": 4, "efSearch": 4}])
def test_a_case_retrieves_the_same_items_whatever_its_batch_mates(data, model, setting):
    """With exclude_seen a row asks the index for depth + its own distinct prefix items: an approximate
    index searched for more candidates returns other items, so asking each row for its batch's
    largest count made ranks and ANN recall depend on which cases shared a batch."""
    params = {k: v for k, v in setting.items() if k != "method"}

    def run(batch_size):
        return evaluate(model, data, ks=(5, 20), exclude_seen=True, batch_size=batch_size,
                        retrieval=Retrieval(setting["method"], params, latency_queries=5))

    one, many = run(1), run(500)
    assert np.array_equal(one.ranks, many.ranks)
    assert np.array_equal(one.top, many.top)
    assert one.meta["retrieval"]["recall"] == many.meta["retrieval"]["recall"]
    assert one.metrics() == many.metrics()


class QuantisedEmbeddings(PlantedEmbeddings):
    """Item vectors in {0, 1, 2}^4 and integer session vectors: scores are small integers, so many items
    tie, also with the retrieval depth's score."""

    def _fit(self, data: SessionDataset, *, seed: int) -> None:
        super()._fit(data, seed=seed)
        rng = np.random.default_rng(seed)
        self.items_ = torch.from_numpy(rng.integers(0, 3, size=(data.n_items + 1, self.dim))).float()
        self.offsets_ = torch.zeros_like(self.items_)


@pytest.mark.parametrize("exclude_seen", [False, True])
@pytest.mark.parametrize("method", ["exact", "faiss-flat"])
def test_items_tied_with_the_depth_score_count_as_retrieved(data, method, exclude_seen):
    """An exact search returns depth items and splits a group of tied scores at the depth: the tied
    items it left out must still rank above a tied target (pessimistic ties), as in full ranking."""
    tied = QuantisedEmbeddings(dim=4).fit(data, seed=0)
    ks = (1, 5, 10, 20)
    full = evaluate(tied, data, ks=ks, exclude_seen=exclude_seen, batch_size=64)
    # the test is about ties at the depth: there must be some the search could split
    scores = tied.score(data.prefixes("test").batch(slice(0, 64)))[:, 1:]
    twentieth = scores.sort(dim=1, descending=True).values[:, 19:20]
    assert ((scores == twentieth).sum(1) > 1).all()
    ann = evaluate(tied, data, ks=ks, exclude_seen=exclude_seen, batch_size=64,
                   retrieval=Retrieval(method, latency_queries=5))
    assert ann.metrics() == full.metrics()
    assert np.array_equal(ann.top, full.top)
    assert ann.meta["retrieval"]["recall"] == {str(k): 1.0 for k in ks}
    within = full.ranks <= 20
    assert np.array_equal(ann.ranks[within], full.ranks[within])


def test_a_returned_target_ranks_below_every_item_tied_with_it():
    """An approximate index returns some of a tie group: the target ranks below the tied items it
    did not return too (pessimistic over the whole group), never above them."""
    retrieval = Retrieval("exact")
    retrieval.n_items_, retrieval.depth_ = 6, 2
    retrieval.embed_ = lambda batch: torch.zeros(1, 2)
    retrieval.queries_, retrieval.case_recalls_, retrieval.n_cases_ = [], {}, 0
    retrieval.retrieve = lambda queries, k: np.array([[5, 1]])  # item 5 and item 1 of the tie group {1, 2, 3}
    scores = torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0, 3.0, 0.0]])
    ranks, top = retrieval.rank_batch(None, scores, torch.tensor([[1]]), 2, None)
    assert ranks.tolist() == [[not_retrieved_rank(6)]]  # full rank 4: beyond the depth
    assert top.tolist() == [[5, 1]]
    retrieval.depth_ = 4
    ranks, top = retrieval.rank_batch(None, scores, torch.tensor([[2]]), 4, None)
    assert ranks.tolist() == [[4]] and top.tolist() == [[5, 1, 2, 3]]


def test_padding_is_never_retrieved_even_with_the_largest_vector(data, model):
    result = evaluate(model, data, ks=(20,), retrieval=Retrieval("faiss-hnsw", latency_queries=5))
    assert model.items_[0].norm() > model.items_[1:].norm(dim=1).max()
    assert (result.top[:, 0] != 0).all() and not np.isin(0, result.top[result.top > 0])


def test_a_crippled_index_loses_recall_and_never_beats_exact_ranking(data, model):
    ks = (5, 10, 20)
    exact = evaluate(model, data, ks=ks)
    crippled = Retrieval("faiss-ivf", {"nlist": 64, "nprobe": 1}, latency_queries=5)
    ann = evaluate(model, data, ks=ks, retrieval=crippled)
    recall = ann.meta["retrieval"]["recall"]
    assert 0 < recall["20"] < 0.9
    ann_m, exact_m = ann.metrics(), exact.metrics()
    assert all(ann_m[key] <= exact_m[key] + 1e-12 for key in exact_m if not key.startswith("Popularity"))
    assert ann_m["HitRate@20"] < exact_m["HitRate@20"]
    # per case: a retrieved target ranks among fewer items, so never lower than
    # in exact ranking; a target not retrieved is a miss with rank n_items + 1
    missing = ann.ranks == not_retrieved_rank(N_ITEMS)
    assert missing.any()
    assert np.all(ann.ranks[~missing] <= exact.ranks[~missing])
    # each retrieved target's rank is its position in the stored top list
    for case in np.flatnonzero(~missing)[:50]:
        assert ann.top[case, ann.ranks[case] - 1] == data.prefixes("test").next_items(np.array([case]))[0]


def test_ann_recall_at_k_counts_the_overlap_of_the_top_lists():
    retrieval = Retrieval("exact")
    retrieval.case_recalls_, retrieval.n_cases_ = {}, 0
    top = torch.tensor([[1, 2, 3], [4, 5, 6]])
    exact = torch.tensor([[1, 3, 9], [7, 8, 4]])
    retrieval._add_recall(top, exact)
    retrieval.items_, retrieval.n_items_, retrieval.depth_ = np.zeros((9, 2), np.float32), 9, 3
    retrieval.queries_, retrieval.build_seconds_ = [], 0.0
    retrieval.index_ = make_index(make_setting("exact")).build(retrieval.items_)
    recall = retrieval.finish((1, 2, 3))["recall"]
    assert recall == {"1": pytest.approx(0.5), "2": pytest.approx(0.25), "3": pytest.approx((2 / 3 + 1 / 3) / 2)}


def test_every_setting_of_a_sweep_is_evaluated_and_json_ready(data, model):
    settings = [s.as_dict() for s in parse_settings({"method": "annoy", "n_trees": [2, 20], "search_k": 50})]
    rows = evaluate_settings(model, data, settings, ks=(5, 10))
    assert [r["label"] for r in rows] == ["exact", "annoy[n_trees=2,search_k=50]", "annoy[n_trees=20,search_k=50]"]
    assert rows[0]["recall"]["20"] == 1.0 and rows[0]["metrics"]["HitRate@20"] > 0.3
    assert rows[1]["recall"]["20"] < rows[2]["recall"]["20"] <= 1.0  # more trees, better recall
    assert json.loads(json.dumps(rows)) == rows


# --------------------------------------------------------------------------- #
# suites, runs and the command line
# --------------------------------------------------------------------------- #


def test_a_suite_model_takes_a_retrieval_key_and_the_run_id_depends_on_it(tmp_path):
    from harness.run.runner import RunSpec
    from harness.run.suites import parse_suite

    suite = parse_suite({
        "datasets": ["synthetic"],
        "models": ["pop", {"name": "srgnn", "retrieval": {"method": "faiss-ivf", "nprobe": [1, 4]}}],
    })  # fmt: skip
    assert suite.models[0].retrieval == ()
    assert [s["method"] for s in suite.models[1].retrieval] == ["exact", "faiss-ivf", "faiss-ivf"]
    with pytest.raises(ConfigError, match=r"models\[0\].retrieval: model 'pop' does not declare"):
        parse_suite({"datasets": ["synthetic"], "models": [{"name": "pop", "retrieval": {"method": "exact"}}]})
    spec = dict(suite="s", dataset="d", dataset_name="d", dataset_key="k", data_dir=None, model="srgnn",
                label="srgnn", params={}, seed=0, protocol="next", ks=(20,), batch_size=10, exclude_seen=False,
                latency={})  # fmt: skip
    plain, with_ann = RunSpec(**spec), RunSpec(**spec, retrieval=suite.models[1].retrieval)
    assert "retrieval" not in plain.frozen() and plain.run_id != with_ann.run_id


def test_cli_evaluate_with_retrieval(capsys):
    from harness.cli import main

    args = ["evaluate", "--dataset", "synthetic", "--model", "bprmf", "--param", "epochs=1", "--k", "10,20"]
    assert main([*args, "--retrieval", "faiss-hnsw", "--retrieval-param", "efSearch=32", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["retrieval"]["params"]["efSearch"] == 32 and 0 < out["retrieval"]["recall"]["20"] <= 1
    assert main(["evaluate", "--dataset", "synthetic", "--model", "pop", "--retrieval", "annoy"]) == 2
    assert "model 'pop' does not declare provides_embeddings" in capsys.readouterr().err
    assert main(["evaluate", "--dataset", "synthetic", "--model", "pop", "--retrieval-param", "nprobe=2"]) == 2
    assert main([*args, "--retrieval", "faiss-ivf", "--retrieval-param", "efSearch=2"]) == 2
    assert "has no parameter 'efSearch'" in capsys.readouterr().err


def test_a_suite_run_stores_every_setting_and_the_report_draws_them(tmp_path, monkeypatch):
    from harness.report import write_report
    from harness.run.runner import InlineExecutor, run_suite
    from harness.run.store import iter_runs
    from harness.run.suites import parse_suite

    (tmp_path / "tiny.yaml").write_text(
        "name: tiny\ndescription: tiny\nsource: generated\nformat: synthetic\n"
        "generator: {n_sessions: 700, n_items: 300, seed: 3, days: 10, zipf_exponent: 0.3}\n"
        "preprocess: {method: standard, test_days: 2, valid_days: 2, min_item_support: 1}\n"
    )
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(tmp_path / "cache"))
    suite = parse_suite({
        "name": "t", "datasets": [str(tmp_path / "tiny.yaml")], "ks": [5, 20], "latency": {"samples": 5, "warmup": 1},
        "models": ["pop", {"name": "bprmf", "params": {"epochs": 1, "patience": 0},
                           "retrieval": [{"method": "faiss-hnsw", "efSearch": [4, 64]}, {"method": "annoy"}]}],
    })  # fmt: skip
    outcome = run_suite(suite, out_dir=tmp_path / "out", executor=InlineExecutor(), report=False)
    assert not outcome.failed
    runs = {r.label: r.manifest for r in iter_runs(tmp_path / "out")}
    assert "retrieval" not in runs["pop"]
    rows = runs["bprmf"]["retrieval"]
    assert [r["label"] for r in rows] == ["exact", "faiss-hnsw[efSearch=4]", "faiss-hnsw", "annoy"]
    assert rows[0]["metrics"]["HitRate@20"] == pytest.approx(runs["bprmf"]["metrics"]["HitRate@20"])
    # the retrieval depth (largest K, at least 20) is part of the run's identity; the top lists are 50 wide
    config = runs["bprmf"]["config"]
    assert config["retrieval_depth"] == 20 and {r["depth"] for r in rows} == {20}
    assert config["evaluation"]["top_width"] == 50 and "retrieval_depth" not in runs["pop"]["config"]
    summary = write_report(tmp_path / "out", n_bootstrap=10)
    names = sorted(p.name for p in summary.figures + summary.tables if "retrieval" in p.name)
    stem = "t_retrieval_tiny_next_bprmf"  # the suite's name first
    assert names == sorted(f"{stem}.{ext}" for ext in ("png", "pdf", "txt", "tex", "tex", "md", "csv"))
    caption = (summary.path / "figures" / f"{stem}.txt").read_text()
    assert caption.startswith("bprmf on tiny") and "Pareto front" in caption
    table = (summary.path / "tables" / f"{stem}.md").read_text()
    assert "| faiss-hnsw[efSearch=4] | native |" in table and "| exact | native |" in table
    assert "| faiss-hnsw[efSearch=64] | native |" in table  # the swept default is shown too
    csv = pd.read_csv(summary.path / "tables" / f"{stem}.csv")
    assert set(csv["run_ids"]) == {next(r.run_id for r in iter_runs(tmp_path / "out") if r.label == "bprmf")}
    assert csv["code_digest"].str.fullmatch("[0-9a-f]{64}").all()
    assert (summary.path / "tables" / f"{stem}.tex").read_text().count(r"\toprule") == 1
    assert "1.00x" in table  # exact against itself
    assert "## Retrieval" in summary.summary_path.read_text()


def test_grid_points_do_not_depend_on_the_retrieval_settings_and_the_final_has_them(tmp_path, monkeypatch):
    """Retrieval is evaluated after test runs only: a changed setting used to give every grid point
    (and trial) a new id and run it again, leaving the study's and the plan's run ids apart."""
    from harness.run.runner import InlineExecutor, run_suite
    from harness.run.store import iter_runs
    from harness.run.suites import parse_suite

    monkeypatch.setenv("SESSIONBENCH_CACHE", str(tmp_path / "cache"))

    def suite(retrieval):
        return parse_suite({"name": "gridret", "datasets": ["synthetic"], "ks": [5, 10],
                            "latency": {"samples": 2, "warmup": 1},
                            "models": [{"name": "bprmf", "params": {"epochs": 1, "factors": 8},
                                        "grid": {"lr": [0.01, 0.02]}, "retrieval": retrieval}]})

    out = tmp_path / "out"
    first = run_suite(suite({"method": "faiss-hnsw", "efSearch": 8}), out_dir=out, executor=InlineExecutor(),
                      report=False)
    assert len(first.executed) == 3  # two grid points, the final
    again = run_suite(suite({"method": "faiss-hnsw", "efSearch": [8, 16]}), out_dir=out, executor=InlineExecutor(),
                      report=False)
    assert len(again.executed) == 1 and len(again.skipped) == 2  # only the final runs again
    final = next(r for r in iter_runs(out) if r.run_id == again.executed[0])
    assert final.manifest["stage"] == "test"
    assert {row["label"] for row in final.manifest["retrieval"]} >= {"faiss-hnsw[efSearch=8]",
                                                                         "faiss-hnsw[efSearch=16]"}
    assert all("retrieval" not in r.manifest["config"] for r in iter_runs(out) if r.manifest["stage"] == "tune")

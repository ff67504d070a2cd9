"""The evaluator on a tiny hand-built dataset with a fake model whose scores we control."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

import harness.evaluation.metrics

from harness.data.dataset import PrefixBatch, SessionDataset, SessionSplit
from harness.errors import ConfigError, ContractError, ModelFailure
from harness.evaluation.evaluate import METADATA_KEY, EvaluationResult, evaluate
from harness.evaluation.metrics import UNRANKED

L2 = math.log2


def split(sessions: dict[int, list[int]]) -> SessionSplit:
    rows = []
    clock = 0.0
    for sid, items in sessions.items():
        for item in items:
            rows.append((sid, item, clock))
            clock += 60.0
    return SessionSplit(pd.DataFrame(rows, columns=["session", "item", "time"]))


# train counts: 1:1, 2:4, 3:1, 4:1, 5:2, 6:1  -> pop 2 = 1, 5 = .5, others .25
TRAIN_TR = {1: [1, 2], 2: [2, 3, 2]}  # counts 1:1, 2:3, 3:1
VALID = {3: [4, 5, 6], 4: [2, 5]}
TEST = {10: [1, 2, 3], 11: [4, 5, 2, 5], 12: [5, 1]}


@pytest.fixture
def data() -> SessionDataset:
    return SessionDataset(
        name="tiny",
        n_items=6,
        item_map={str(i): i for i in range(1, 7)},
        train=split({**TRAIN_TR, **VALID}),
        train_tr=split(TRAIN_TR),
        valid=split(VALID),
        test=split(TEST),
    )


# fixed scores; the padding column is the highest and must never rank.
# ranking: 5 (.9), then 2 and 4 tied (.6), 3 (.3), 1 (.1), 6 (0)
#                   pad   1    2    3    4    5    6
FIXED = torch.tensor([100, 0.1, 0.6, 0.3, 0.6, 0.9, 0.0])


class FixedModel:
    """Scores every prefix the same way and records what it was given."""

    name = "fixed"

    def __init__(self, scores: torch.Tensor = FIXED) -> None:
        self.scores = scores
        self.batches: list[PrefixBatch] = []
        self.grad_enabled: list[bool] = []

    def score(self, batch: PrefixBatch) -> torch.Tensor:
        self.batches.append(batch)
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.scores.expand(len(batch), -1).clone()


def test_the_head_of_a_split_keeps_its_first_sessions_whole():
    whole = split(TEST)
    assert [list(s) for s in whole.head(2).sessions()] == [[1, 2, 3], [4, 5, 2, 5]]
    assert whole.head(2).session_ids.tolist() == [10, 11] and whole.head(2).n_prefixes == 5
    assert whole.head(0).n_sessions == 0 and whole.head(0).n_prefixes == 0
    assert whole.head(99).session_ids.tolist() == [10, 11, 12]


# ---------------------------------------------------------------- next protocol


def test_next_protocol_ranks_and_metrics_by_hand(data):
    res = evaluate(FixedModel(), data, ks=(1, 3, 5))
    # cases: [1]->2, [1,2]->3 | [4]->5, [4,5]->2, [4,5,2]->5 | [5]->1
    assert res.session_ids.tolist() == [10, 10, 11, 11, 11, 12]
    assert res.prefix_lengths.tolist() == [1, 2, 1, 2, 3, 1]
    assert res.n_targets.tolist() == [1] * 6
    assert res.ranks.tolist() == [3, 4, 1, 3, 1, 5]  # item 2 ties with 4: rank 3, not 2
    assert res.top.tolist() == [[5, 2, 4, 3, 1]] * 6  # top_k = max(ks); ties by id
    m = res.metrics()
    assert list(m) == [
        "HitRate@1", "HitRate@3", "HitRate@5", "Recall@1", "Recall@3", "Recall@5", "MRR@1", "MRR@3", "MRR@5", "NDCG@1", "NDCG@3", "NDCG@5",
        "Coverage@1", "Coverage@3", "Coverage@5", "Popularity@1", "Popularity@3", "Popularity@5",
    ]  # fmt: skip
    assert m["HitRate@1"] == pytest.approx(2 / 6)
    assert m["HitRate@3"] == pytest.approx(4 / 6)
    assert m["HitRate@5"] == pytest.approx(1.0)
    assert m["MRR@3"] == pytest.approx((1 / 3 + 0 + 1 + 1 / 3 + 1 + 0) / 6)
    assert m["MRR@5"] == pytest.approx((1 / 3 + 1 / 4 + 1 + 1 / 3 + 1 + 1 / 5) / 6)
    assert m["NDCG@3"] == pytest.approx((0.5 + 0 + 1 + 0.5 + 1 + 0) / 6)
    assert m["NDCG@5"] == pytest.approx((0.5 + 1 / L2(5) + 1 + 0.5 + 1 + 1 / L2(6)) / 6)
    assert m["Coverage@1"] == pytest.approx(1 / 6)
    assert m["Coverage@5"] == pytest.approx(5 / 6)
    # popularity from train: 5 -> .5, 2 -> 1, 4 -> .25
    assert res.popularity_split == "train"
    assert m["Popularity@1"] == pytest.approx(0.5)
    assert m["Popularity@3"] == pytest.approx((0.5 + 1 + 0.25) / 3)
    # metrics at other K from the stored ranks; list metrics only up to top_k
    m2 = res.metrics(ks=(2, 50))
    assert m2["HitRate@2"] == pytest.approx(2 / 6)
    assert m2["HitRate@50"] == pytest.approx(1.0)
    assert "Coverage@2" in m2 and "Coverage@50" not in m2
    with pytest.raises(ValueError):
        res.metrics(ks=50, names=["Coverage"])
    assert res.metrics(ks=3, names=["Recall"]) == {"Recall@3": pytest.approx(4 / 6)}


def test_next_protocol_exclude_seen_by_hand(data):
    res = evaluate(FixedModel(), data, ks=(1, 3, 5), exclude_seen=True)
    # [1]->2: 3 | [1,2]->3: only 5 and 4 ahead: 3 | [4]->5: 1 | [4,5]->2: 1
    # [4,5,2]->5: 5 is in the prefix: UNRANKED | [5]->1: 2, 4, 3 ahead: 4
    assert res.ranks.tolist() == [3, 3, 1, 1, UNRANKED, 4]
    assert res.top[1].tolist() == [5, 4, 3, 6, 0]  # 1 and 2 removed; padded with 0
    assert res.top[4].tolist() == [3, 1, 6, 0, 0]
    m = res.metrics()
    assert m["HitRate@5"] == pytest.approx(5 / 6)
    assert m["MRR@1"] == pytest.approx(2 / 6)
    assert res.best_rank[4] == UNRANKED


def test_per_case_table(data):
    res = evaluate(FixedModel(), data, ks=(1, 3))
    pc = res.per_case()
    assert list(pc.columns) == [
        "session", "prefix_length", "n_targets",
        "HitRate@1", "HitRate@3", "Recall@1", "Recall@3", "MRR@1", "MRR@3", "NDCG@1", "NDCG@3", "Popularity@1", "Popularity@3",
    ]  # fmt: skip
    assert pc["HitRate@3"].tolist() == [1, 0, 1, 1, 1, 0]
    assert pc["MRR@3"].tolist() == pytest.approx([1 / 3, 0, 1, 1 / 3, 1, 0])
    assert pc["session"].tolist() == [10, 10, 11, 11, 11, 12]
    # the means of the per-case table are the summary
    m = res.metrics()
    for col in pc.columns[3:]:
        assert pc[col].mean() == pytest.approx(m[col])


# ---------------------------------------------------------------- rest protocol


def test_rest_protocol_by_hand(data):
    res = evaluate(FixedModel(), data, protocol="rest", ks=(1, 3))
    # [1]->{2,3}: 3, 4 | [1,2]->{3}: 4 | [4]->{5,2} (5 twice, counted once): 1, 3
    # [4,5]->{2,5}: 3, 1 | [4,5,2]->{5}: 1 | [5]->{1}: 5
    assert res.n_targets.tolist() == [2, 1, 2, 2, 1, 1]
    assert res.ranks.tolist() == [3, 4, 4, 1, 3, 3, 1, 1, 5]
    assert res.ranks_padded().tolist() == [[3, 4], [4, 0], [1, 3], [3, 1], [1, 0], [5, 0]]
    pc = res.per_case()
    assert pc["Recall@1"].tolist() == pytest.approx([0, 0, 0.5, 0.5, 1, 0])
    assert pc["Recall@3"].tolist() == pytest.approx([0.5, 0, 1, 1, 1, 0])
    assert pc["HitRate@3"].tolist() == [1, 0, 1, 1, 1, 0]
    assert pc["MRR@3"].tolist() == pytest.approx([1 / 3, 0, 1, 1, 1, 0])
    ideal2 = 1 + 1 / L2(3)
    assert pc["NDCG@3"].tolist() == pytest.approx([0.5 / ideal2, 0, 1.5 / ideal2, 1.5 / ideal2, 1, 0])
    assert res.metrics()["Recall@1"] == pytest.approx(2 / 6)


def test_rest_protocol_exclude_seen(data):
    res = evaluate(FixedModel(), data, protocol="rest", ks=(1, 3), exclude_seen=True)
    # [4,5]->{2,5}: 5 is in the prefix (UNRANKED, still a target); 2 ranks first
    assert res.ranks_padded()[3].tolist() == [1, UNRANKED]
    assert res.per_case()["Recall@1"][3] == pytest.approx(0.5)


# ---------------------------------------------------------------- invariants


def test_model_never_sees_the_target(data):
    model = FixedModel()
    evaluate(model, data, batch_size=4)
    sessions = list(data.test.sessions())
    expected = [s[:t].tolist() for s in sessions for t in range(1, len(s))]
    seen = []
    for b in model.batches:
        assert b.items.shape[1] == int(b.lengths.max())
        for row, n in zip(b.items.tolist(), b.lengths.tolist()):
            assert all(x == 0 for x in row[n:])  # nothing beyond the prefix
            seen.append(row[:n])
    assert seen == expected
    assert not any(model.grad_enabled)  # scoring runs under inference_mode


@pytest.mark.parametrize("protocol", ["next", "rest"])
@pytest.mark.parametrize("exclude_seen", [False, True])
def test_batch_size_does_not_change_results(data, protocol, exclude_seen):
    g = torch.Generator().manual_seed(3)
    scores = torch.randint(0, 3, (7,), generator=g).float()  # many ties
    runs = [
        evaluate(FixedModel(scores), data, protocol=protocol, batch_size=b, exclude_seen=exclude_seen)
        for b in (1, 7, 10_000)
    ]
    assert [r.timings["n_batches"] for r in runs] == [6, 1, 1]
    for r in runs[1:]:
        assert np.array_equal(r.ranks, runs[0].ranks)
        assert np.array_equal(r.n_targets, runs[0].n_targets)
        assert np.array_equal(r.top, runs[0].top)
        assert r.metrics() == runs[0].metrics()


def _damaged_tables(table):
    """(name, table, expected message) of evaluation tables to_table never writes."""
    import pyarrow as pa

    session = table.schema.get_field_index("session")
    nulls = pa.array([None] * table.num_rows, type=pa.int64())
    floats = pa.array(table.column("session").to_numpy().astype(np.float64) + 0.5)
    ranks = table.schema.get_field_index("ranks")
    null_list = pa.array([None, *table.column("ranks").to_pylist()[1:]], type=pa.list_(pa.int32()))
    meta = json.loads(table.schema.metadata[METADATA_KEY.encode()])
    return [
        ("no session column", table.remove_column(session), r"lacks columns \['session'\]"),
        ("no metadata", table.replace_schema_metadata(None), "no 'sessionbench.evaluation' schema metadata"),
        ("metadata not JSON", table.replace_schema_metadata({METADATA_KEY: "{"}), "metadata is not JSON"),
        ("metadata key missing", table.replace_schema_metadata({METADATA_KEY: json.dumps(
            {k: v for k, v in meta.items() if k != "n_items"})}), r"metadata lacks keys \['n_items'\]"),
        ("null sessions", table.set_column(session, "session", nulls), f"column 'session': {table.num_rows} null"),
        ("float sessions", table.set_column(session, "session", floats), "column 'session': expected integers, got"),
        ("a null ranks list", table.set_column(ranks, "ranks", null_list), "column 'ranks': 1 null values"),
    ]


def test_an_evaluation_table_to_table_would_not_write_is_a_one_line_error_naming_the_file(data, tmp_path):
    import pyarrow.parquet as pq

    from harness.errors import DataError
    from harness.evaluation.evaluate import EvaluationFormatError

    res = evaluate(FixedModel(), data, ks=(1, 3))
    for name, table, message in _damaged_tables(res.to_table()):
        with pytest.raises(EvaluationFormatError, match=message):  # null sessions were read as one session of NaN
            EvaluationResult.from_table(table)
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table, path)
        with pytest.raises(DataError, match=f"^{re.escape(str(path))}: evaluation table: .*{message}") as err:
            EvaluationResult.load(path)
        assert "\n" not in str(err.value) and isinstance(err.value, ValueError), name
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"junk.parquet: not a readable Parquet file"):
        EvaluationResult.load(tmp_path / "junk.parquet")


def test_save_load_and_frame_round_trip(data, tmp_path):
    for protocol in ("next", "rest"):
        res = evaluate(FixedModel(), data, protocol=protocol, ks=(1, 3), exclude_seen=True)
        path = res.save(tmp_path / f"{protocol}.parquet")
        back = EvaluationResult.load(path)
        assert back.equals(res)
        assert back.metrics() == res.metrics()
        pd.testing.assert_frame_equal(back.per_case(ks=(1, 2)), res.per_case(ks=(1, 2)))
        frame = res.to_frame()
        assert list(frame.columns) == ["session", "prefix_length", "n_targets", "rank", "ranks", "top_items"]
        assert METADATA_KEY in frame.attrs
        assert EvaluationResult.from_frame(frame).equals(res)
        # plain pandas reads the file too
        plain = pd.read_parquet(path)
        assert [list(x) for x in plain["ranks"]] == [
            list(res.ranks[a:b]) for a, b in zip(res.offsets[:-1], res.offsets[1:])
        ]
    assert not back.equals(evaluate(FixedModel(), data, protocol="rest", ks=(1, 3)))


def test_popularity_split_and_timings(data):
    res = evaluate(FixedModel(), data, split="valid", ks=(1,))
    assert res.popularity_split == "train_tr"
    assert res.item_popularity.tolist() == [0, 1, 3, 1, 0, 0, 0]
    # valid cases: [4]->5, [4,5]->6, [2]->5; top-1 is item 5, count 0 in train_tr
    assert res.ranks.tolist() == [1, 6, 1]
    assert res.metrics()["Popularity@1"] == 0.0
    assert set(res.timings) >= {"score_seconds", "rank_seconds", "total_seconds", "prefixes_per_second"}
    assert res.timings["score_seconds"] >= 0 and res.timings["prefixes_per_second"] > 0
    assert res.meta["model"] == "fixed"
    res2 = evaluate(FixedModel(), data, split="valid", ks=(1,), popularity_split="train")
    assert res2.item_popularity.tolist() == [0, 1, 4, 1, 1, 2, 1]


def test_bad_model_output_and_bad_options(data):
    class Wrong(FixedModel):
        def score(self, batch):
            return torch.zeros(len(batch), 6)

    with pytest.raises(ContractError, match=r"\[B, n_items \+ 1\]"):
        evaluate(Wrong(), data)

    class NotTensor(FixedModel):
        def score(self, batch):
            return np.zeros((len(batch), 7))

    with pytest.raises(ContractError):
        evaluate(NotTensor(), data)
    with pytest.raises(ConfigError):
        evaluate(FixedModel(), data, protocol="all")
    with pytest.raises(ConfigError):
        evaluate(FixedModel(), data, batch_size=0)
    with pytest.raises(ConfigError):
        evaluate(FixedModel(), data, ks=(0,))


def test_any_model_gets_the_finite_check_and_a_copy_of_its_batch(data):
    class NaNs(FixedModel):
        def score(self, batch):
            out = super().score(batch)
            out[-1, 3] = float("nan")
            return out

    with pytest.raises(ContractError, match=r"model 'fixed' .* NaN or infinite scores \(first in batch row"):
        evaluate(NaNs(), data)

    class Zeroes(FixedModel):
        def score(self, batch):
            batch.items.zero_()  # exclude_seen must still use the real prefixes
            return super().score(batch)

    honest = evaluate(FixedModel(), data, exclude_seen=True)
    assert np.array_equal(evaluate(Zeroes(), data, exclude_seen=True).ranks, honest.ranks)


def test_an_exception_in_score_is_a_model_failure_with_its_cause(data):
    class Broken(FixedModel):
        def score(self, batch):
            raise IndexError("row 7")

    with pytest.raises(ModelFailure, match=r"model 'fixed' \(.*Broken\) failed in score: IndexError: row 7") as info:
        evaluate(Broken(), data)
    assert isinstance(info.value.__cause__, IndexError)


@pytest.mark.parametrize("protocol", ["next", "rest"])
@pytest.mark.parametrize("exclude_seen", [False, True])
def test_ranking_in_blocks_of_rows_gives_the_same_results(data, protocol, exclude_seen, monkeypatch):
    g = torch.Generator().manual_seed(5)
    scores = torch.randint(0, 3, (7,), generator=g).float()  # many ties
    whole = evaluate(FixedModel(scores), data, protocol=protocol, exclude_seen=exclude_seen, ks=(1, 3))
    # 7 columns, 8 cells per block: one row at a time
    monkeypatch.setattr(harness.evaluation.metrics, "ROW_BLOCK_CELLS", 8)
    blocks = evaluate(FixedModel(scores), data, protocol=protocol, exclude_seen=exclude_seen, ks=(1, 3))
    assert np.array_equal(blocks.ranks, whole.ranks)
    assert np.array_equal(blocks.n_targets, whole.n_targets)
    assert np.array_equal(blocks.top, whole.top)


def test_rank_in_chunks_matches_rank_and_top_on_random_ties(monkeypatch):
    import harness.evaluation.evaluate as ev
    from harness.evaluation.metrics import rank_and_top

    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (37, 51), generator=g).float()
    targets = torch.randint(0, 51, (37, 3), generator=g)
    exclude = torch.randint(0, 51, (37, 5), generator=g)
    monkeypatch.setattr(harness.evaluation.metrics, "ROW_BLOCK_CELLS", 51 * 4)  # blocks of 4 rows, the last one short
    for ex in (None, exclude):
        ranks, top = ev._rank_in_chunks(scores, targets, 10, ex)
        want_ranks, want_top = rank_and_top(scores, targets, 10, exclude=ex)
        assert torch.equal(ranks, want_ranks)
        assert torch.equal(top, want_top)

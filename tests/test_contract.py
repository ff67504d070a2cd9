"""What a model is handed: a fit view without the test split or file
locations, a batch it cannot change for others, a checked training curve."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch
from contract_plugins import DuckMutator, Mutator, Popular, Spy
from data_paths import DIGINETICA_SAMPLE, require_data

from harness.data.dataset import PrefixBatch, SessionDataset, SessionSplit, meta_without_paths
from harness.errors import ContractError
from harness.evaluation.evaluate import evaluate
from harness.models.plugin import training_curve_problem
from harness.data.specs import load_dataset


@pytest.fixture(scope="module")
def digi(tmp_path_factory) -> SessionDataset:
    """The DIGINETICA sample, prepared into a cache folder (so meta names paths)."""
    require_data("diginetica-sample")
    cache = tmp_path_factory.mktemp("contract-cache")
    load_dataset("diginetica", data_dir=DIGINETICA_SAMPLE.parent, cache_dir=cache)
    data = load_dataset("diginetica", data_dir=DIGINETICA_SAMPLE.parent, cache_dir=cache)
    assert data.meta["cache"]["hit"] is True and str(cache) in data.meta["cache"]["path"]
    return data


# --------------------------------------------------------------------------- #
# the view fit hands to _fit
# --------------------------------------------------------------------------- #


def _reachable(root):
    """Every object reachable from ``root`` through attributes (``vars``),
    dict keys and values, and list/tuple/set items. Arrays, tensors and
    DataFrames are leaves (their memory is compared separately)."""
    seen, todo, out = set(), [root], []
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        out.append(obj)
        if isinstance(obj, (np.ndarray, torch.Tensor, pd.DataFrame, pd.Series, str, bytes, int, float, type(None))):
            continue
        if isinstance(obj, dict):
            todo.extend(obj.keys())
            todo.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            todo.extend(obj)
        if hasattr(obj, "__dict__"):
            todo.extend(vars(obj).values())
        for slot in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, slot):
                todo.append(getattr(obj, slot))
    return out


def _arrays_of(obj):
    if isinstance(obj, pd.DataFrame):
        return [obj[c].to_numpy() for c in obj.columns]
    if isinstance(obj, pd.Series):
        return [obj.to_numpy()]
    if isinstance(obj, torch.Tensor):
        return [obj.numpy()]
    if isinstance(obj, np.ndarray):
        return [obj]
    return []


def test_fit_view_reaches_no_test_data(digi):
    Spy.seen.clear()
    Spy().fit(digi)
    [view] = Spy.seen
    test_arrays = [digi.test.item_array, digi.test.time_array, *_arrays_of(digi.test.events)]
    objects = _reachable(view)
    assert all(obj is not digi.test for obj in objects)
    assert not any(isinstance(obj, SessionSplit) and obj.n_events == digi.test.n_events for obj in objects)
    for obj in objects:
        for array in _arrays_of(obj):
            assert not any(np.shares_memory(array, t) for t in test_arrays)
    assert vars(view).keys() >= {"train", "train_tr", "valid", "test", "meta"}
    with pytest.raises(ContractError, match="read the test split during fit"):
        view.test.events  # noqa: B018
    with pytest.raises(ContractError):
        view.split("test").n_sessions  # noqa: B018
    assert "test" not in view.stats() and view.stats()["train"] == digi.stats()["train"]


def _strings(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_fit_view_meta_names_no_file(digi):
    Spy.seen.clear()
    Spy().fit(digi)
    [view] = Spy.seen
    cache_folder = digi.meta["cache"]["path"].rsplit("/", 1)[-1]
    strings = list(_strings(view.meta))
    assert strings, "the view keeps the provenance that is not a path"
    assert not [s for s in strings if "/" in s or "\\" in s]
    assert not [s for s in strings if cache_folder in s or DIGINETICA_SAMPLE.name in s]
    assert {"cache", "raw_files", "spec_file", "source"}.isdisjoint(view.meta)
    assert view.meta["spec"] == digi.meta["spec"] and view.meta["dropped"] == digi.meta["dropped"]
    assert "path" in digi.meta["cache"]  # the caller's dataset is left as it was


def test_fit_view_meta_is_a_copy(digi):
    class Vandal(Popular):
        def _fit(self, data, *, seed):
            data.meta["dropped"]["rare_items"] = -1
            data.item_map.clear()
            super()._fit(data, seed=seed)

    before = (digi.meta["dropped"]["rare_items"], len(digi.item_map))
    Vandal().fit(digi)
    assert (digi.meta["dropped"]["rare_items"], len(digi.item_map)) == before


def test_writes_into_the_fit_views_events_leave_the_dataset_alone(digi):
    class ZeroBased(Popular):
        """Shifts item ids in place, a plausible plugin habit."""

        def _fit(self, data, *, seed):
            data.train.events["item"] -= 1
            del data.valid.events["time"]
            if int(pd.__version__.split(".")[0]) >= 3:  # copy-on-write: in-place writes copy first
                data.train_tr.events.loc[0, "item"] = 0
            super()._fit(data, seed=seed)

    before = {s: digi.split(s).events.copy() for s in ("train", "train_tr", "valid")}
    popularity = digi.item_popularity("train").copy()
    ZeroBased().fit(digi)
    for split, events in before.items():
        pd.testing.assert_frame_equal(digi.split(split).events, events)
    assert np.array_equal(digi.item_popularity("train"), popularity)


def test_meta_without_paths_drops_locations_anywhere():
    meta = {"a": 1, "path": "x", "nested": {"source": "y", "ok": "fine", "file": "/abs/f.csv"},
            "list": ["C:\\data\\f.csv", "word"], "spec_file": None}  # fmt: skip
    assert meta_without_paths(meta) == {"a": 1, "nested": {"ok": "fine"}, "list": ["word"]}


def test_validation_view_fit_never_reaches_valid(digi):
    Spy.seen.clear()
    Spy().fit(digi.validation_view())
    [view] = Spy.seen
    valid_items = digi.valid.item_array
    for obj in _reachable(view):
        for array in _arrays_of(obj):
            assert not np.shares_memory(array, valid_items)


# --------------------------------------------------------------------------- #
# the batch score is handed
# --------------------------------------------------------------------------- #


def test_a_mutating_plugin_cannot_change_the_evaluation(digi):
    honest = evaluate(Popular().fit(digi), digi, ks=(20,), exclude_seen=True)
    mutated = evaluate(Mutator().fit(digi), digi, ks=(20,), exclude_seen=True)
    assert mutated.metrics()["HitRate@20"] == honest.metrics()["HitRate@20"] == pytest.approx(4 / 99)
    assert np.array_equal(mutated.ranks, honest.ranks) and np.array_equal(mutated.top, honest.top)


def test_a_duck_typed_mutating_model_cannot_change_the_evaluation(digi):
    reference = Popular().fit(digi)
    honest = evaluate(reference, digi, ks=(20,), exclude_seen=True)
    duck = evaluate(DuckMutator(reference.pop_), digi, ks=(20,), exclude_seen=True)
    assert np.array_equal(duck.ranks, honest.ranks)


def test_score_leaves_the_callers_batch_unchanged(digi):
    model = Mutator().fit(digi)
    batch = digi.prefixes("test").batch(slice(0, 50))
    before = batch.clone()
    model.score(batch)
    for name in ("items", "lengths", "session_ids"):
        assert torch.equal(getattr(batch, name), getattr(before, name))
    assert torch.allclose(batch.times, before.times, equal_nan=True)


def test_clone_shares_no_memory():
    batch = PrefixBatch(torch.tensor([[1, 2]]), torch.tensor([2]), torch.tensor([7]), torch.tensor([[0.0, 1.0]]))
    copy = batch.clone()
    for name in ("items", "lengths", "session_ids", "times"):
        a, b = getattr(batch, name), getattr(copy, name)
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
    assert PrefixBatch(torch.tensor([[1]]), torch.tensor([1])).clone().times is None


# --------------------------------------------------------------------------- #
# training_curve_
# --------------------------------------------------------------------------- #


def _row(phase="train", epoch=1, **extra):
    return {"phase": phase, "epoch": epoch, "loss": 0.5, "valid_MRR@20": None, "seconds": 0.1, **extra}


VALID_CURVES = [
    [],
    [_row(epoch=1), _row(epoch=2)],
    [_row("select", 1, **{"valid_MRR@20": 0.1}), _row("select", 2, **{"valid_MRR@20": 0.2}), _row("refit", 1)],
    [_row("select", 1)],
    [{**_row(), "loss": float("nan"), "note": "diverged", "lr": np.float32(0.1), "epoch": np.int64(1)}],
]

BAD_CURVES = [
    ([{"epoch": 1, "loss": 0.5, "seconds": 0.1}], "row 0: lacks 'phase'"),
    ("not a list", "expected a list of dicts"),
    ({"phase": "train"}, "expected a list of dicts"),
    ([("train", 1, 0.5)], "row 0 is a tuple, expected a dict"),
    ([_row(phase="warmup")], "phase 'warmup' is not one of select, refit, train"),
    ([_row(epoch=0)], "epoch 0 is not an integer >= 1"),
    ([_row(epoch=1.0)], "epoch 1.0 is not an integer >= 1"),
    ([_row(epoch=1), _row(epoch=1)], "row 1: epoch 1 in phase 'train', expected 2 (one row per epoch)"),
    ([_row(epoch=2)], "epoch 2 in phase 'train', expected 1"),
    ([{**_row(), "loss": "0.5"}], "loss '0.5' is not a number"),
    ([{**_row(), "loss": torch.tensor(0.5)}], "is not a number"),
    ([{**_row(), "seconds": -1.0}], "seconds -1.0 is not a finite number >= 0"),
    ([{**_row(), "valid_MRR@20": "high"}], "valid_MRR@20 'high' is not a number or None"),
    ([{**_row(), "weights": [1, 2]}], "weights holds a list, expected a scalar"),
    ([_row(epoch=1), {**_row(epoch=2), "extra": 1}], "row 1 has keys"),
    ([_row("refit", 1)], "phases appear as ['refit']"),
    ([_row("select", 1), _row("train", 1)], "phases appear as ['select', 'train']"),
]


@pytest.mark.parametrize("curve", VALID_CURVES)
def test_valid_training_curves(curve):
    assert training_curve_problem(curve) is None


@pytest.mark.parametrize(("curve", "problem"), BAD_CURVES)
def test_malformed_training_curves_are_named(curve, problem):
    assert problem in training_curve_problem(curve)


class _CurveModel(Popular):
    curve = None

    def _fit(self, data, *, seed):
        super()._fit(data, seed=seed)
        self.training_curve_ = type(self).curve


@pytest.mark.parametrize(("curve", "problem"), BAD_CURVES[:3])
def test_fit_drops_a_malformed_curve_with_one_warning(digi, curve, problem, caplog):
    model_class = type("Sloppy", (_CurveModel,), {"curve": curve})
    with caplog.at_level(logging.WARNING, logger="harness.models.plugin"):
        model = model_class().fit(digi)
    [record] = caplog.records
    assert "model 'Sloppy'" in record.getMessage() and problem in record.getMessage()
    assert "\n" not in record.getMessage()
    assert not hasattr(model, "training_curve_")
    assert math.isfinite(evaluate(model, digi, ks=(20,)).metrics()["HitRate@20"])  # the run goes on


def test_fit_keeps_a_valid_curve(digi, caplog):
    model_class = type("Tidy", (_CurveModel,), {"curve": VALID_CURVES[2]})
    with caplog.at_level(logging.WARNING, logger="harness.models.plugin"):
        model = model_class().fit(digi)
    assert caplog.records == [] and model.training_curve_ == VALID_CURVES[2]

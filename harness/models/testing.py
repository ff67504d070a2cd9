"""The conformance suite: checks that a model keeps the plugin contract.

Every registered model passes it in sessionbench's own tests; a plugin
author calls it from theirs::

    from harness.models.testing import check_recommender

    def test_my_model_conforms():
        check_recommender(MyModel, alpha=0.3)

Each failure is a :class:`ConformanceError` (an ``AssertionError``, so pytest
shows it as a test failure) that names the model, the broken rule and how to
fix it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from harness.data.dataset import PrefixBatch, SessionDataset, SessionSplit
from harness.models.plugin import SessionRecommender

#: the checks run by :func:`check_recommender`, in order
RULES = (
    "init stores hyper-parameters only",
    "fit returns self",
    "training_curve_ follows the documented format",
    "scores have shape [B, n_items + 1] and are finite",
    "score leaves the batch unchanged",
    "scoring the same batch twice gives the same scores",
    "same seed gives the same scores",
    "a prefix's scores ignore later events of its session",
    "a prefix's scores do not depend on the rest of the batch",
)


class ConformanceError(AssertionError):
    """A model broke a rule of the plugin contract."""


def tiny_dataset(
    *, n_items: int = 40, n_train: int = 300, n_test: int = 40, seed: int = 0
) -> SessionDataset:
    """A small dataset with learnable structure, built without any file.

    Sessions follow a random item-to-item chain (each item has one likely
    successor) with popularity noise; ``train`` is the first sessions in
    time, the last 20% of them form ``valid``, and ``test`` comes after.
    """
    rng = np.random.default_rng(seed)
    successor = rng.permutation(n_items) + 1
    popularity = 1.0 / np.arange(1, n_items + 1)
    popularity /= popularity.sum()

    def sessions(count: int, first_id: int, start_time: float) -> pd.DataFrame:
        rows = []
        for s in range(count):
            length = int(rng.integers(2, 8))
            item = int(rng.choice(n_items, p=popularity)) + 1
            for pos in range(length):
                rows.append((first_id + s, item, start_time + 3600.0 * s + 60.0 * pos))
                item = int(successor[item - 1]) if rng.random() < 0.7 else int(rng.choice(n_items, p=popularity)) + 1
        return pd.DataFrame(rows, columns=["session", "item", "time"])

    train = sessions(n_train, 1, 0.0)
    test = sessions(n_test, n_train + 1, 3600.0 * (n_train + 1))
    # ids 1..n_items must all occur in train: append one session covering them
    cover = pd.DataFrame(
        {"session": 0, "item": np.arange(1, n_items + 1), "time": -float(n_items) + np.arange(n_items)}
    )
    train = pd.concat([cover, train], ignore_index=True)
    cut = train["session"].isin(range(int(0.8 * n_train) + 1, n_train + 1))
    train_tr, valid = train[~cut], train[cut]
    return SessionDataset(
        name="tiny",
        n_items=n_items,
        item_map={str(i): i for i in range(1, n_items + 1)},
        train=SessionSplit(train),
        train_tr=SessionSplit(train_tr),
        valid=SessionSplit(valid),
        test=SessionSplit(test),
        meta={"generator": "harness.models.testing.tiny_dataset", "seed": seed},
    )


def _with_altered_future(data: SessionDataset, keep: int) -> SessionDataset:
    """``data`` with every test event after position ``keep`` of its session
    replaced by another item and moved in time."""
    events = data.test.events.copy()
    position = events.groupby("session").cumcount()
    later = position >= keep
    events.loc[later, "item"] = (events.loc[later, "item"] % data.n_items) + 1
    events.loc[later, "time"] = events.loc[later, "time"] + 7.0
    return SessionDataset(
        data.name, data.n_items, data.item_map, data.train, data.train_tr, data.valid, SessionSplit(events), data.meta
    )


def _fail(model: SessionRecommender | type, rule: str, detail: str, fix: str) -> None:
    cls = model if isinstance(model, type) else type(model)
    raise ConformanceError(
        f"model {cls.name or cls.__name__!r} ({cls.__module__}.{cls.__qualname__}) breaks the rule "
        f"'{rule}': {detail}. Fix: {fix}"
    )


def _scores(model: SessionRecommender, batch: PrefixBatch) -> torch.Tensor:
    with torch.inference_mode():
        return model.score(batch).detach().cpu().double()


def _test_batch(data: SessionDataset, limit: int = 64) -> PrefixBatch:
    cases = data.prefixes("test")
    return cases.batch(slice(0, min(limit, len(cases))))


def check_recommender(
    model_class: type[SessionRecommender],
    *,
    data_factory: Callable[[], SessionDataset] = tiny_dataset,
    seed: int = 0,
    atol: float = 1e-5,
    **hparams: Any,
) -> None:
    """Run every rule of :data:`RULES` on ``model_class(**hparams)``.

    Fits the model on a tiny dataset (``data_factory``) several times, so pass
    small hyper-parameters (few epochs) for trained models. Raises
    :class:`ConformanceError` at the first broken rule; returns None when the
    model conforms.
    """
    if not (isinstance(model_class, type) and issubclass(model_class, SessionRecommender)):
        raise ConformanceError(f"{model_class!r} is not a subclass of harness.models.plugin.SessionRecommender")
    data = data_factory()

    rule = RULES[0]
    model = model_class(**hparams)
    learned = sorted(k for k in vars(model) if k.endswith("_") and not k.startswith("_"))
    if learned:
        _fail(model, rule, f"__init__ set learned attributes {learned}", "set learned state in _fit, not __init__")
    for key, value in hparams.items():
        if key not in model_class.hyperparameters():
            _fail(model, rule, f"{key!r} is not a keyword of __init__", "declare it as a keyword argument")
        if getattr(model, key, object()) is not value:
            _fail(model, rule, f"__init__ did not store {key!r} unchanged as self.{key}", f"write self.{key} = {key}")

    rule = RULES[1]
    try:
        with _Warnings("harness.models.plugin") as fit_warnings:
            returned = model.fit(data, seed=seed)
    except Exception as err:
        _fail(model, rule, f"fit raised {type(err).__name__}: {err}", "make _fit work on the tiny dataset")
    if returned is not model:
        _fail(model, rule, f"fit returned {type(returned).__name__}", "_fit returns None; the base fit returns self")

    rule = RULES[2]
    problems = [r.curve_problem for r in fit_warnings.records if hasattr(r, "curve_problem")]
    if problems:
        _fail(model, rule, f"fit dropped training_curve_: {problems[0]}",
              "one dict per epoch with phase, epoch, loss and seconds (docs/plugins.md, 'Training curves')")

    rule = RULES[3]
    batch = _test_batch(data)
    before = (batch.items.clone(), batch.lengths.clone())
    try:
        first = _scores(model, batch)
    except AssertionError:
        raise
    except Exception as err:  # the base class already phrases contract errors
        _fail(model, rule, f"{type(err).__name__}: {err}", "return float scores [B, n_items + 1] with finite values")

    rule = RULES[4]
    if not (torch.equal(before[0], batch.items) and torch.equal(before[1], batch.lengths)):
        _fail(model, rule, "score modified batch.items or batch.lengths in place", "work on copies")

    rule = RULES[5]
    if not torch.allclose(_scores(model, batch), first, atol=atol, rtol=0):
        _fail(model, rule, "a second score() call on the same batch gave other scores",
              "keep no state between score calls (use torch.inference_mode and eval mode)")

    rule = RULES[6]
    again = _scores(model_class(**hparams).fit(data, seed=seed), batch)
    if not torch.allclose(first, again, atol=atol, rtol=0):
        diff = float((first - again).abs().max())
        _fail(model, rule, f"two fits with seed={seed} differ by up to {diff:.3g}",
              "draw every random number from generators seeded in _fit from `seed`")

    rule = RULES[7]
    for keep in (1, 2):
        altered = _with_altered_future(data, keep)
        other = model_class(**hparams).fit(altered, seed=seed)
        cases, other_cases = data.prefixes("test"), altered.prefixes("test")
        pick = np.flatnonzero(cases.prefix_length <= keep)[:64]
        mine = _scores(model, cases.batch(pick))
        theirs = _scores(other, other_cases.batch(pick))
        if not torch.allclose(mine, theirs, atol=atol, rtol=0):
            _fail(model, rule, f"scores of prefixes of length <= {keep} changed when later test events changed",
                  "score from batch.items[:, :lengths] only; never read the test split or future events")

    rule = RULES[8]
    single = torch.cat([_scores(model, _test_batch_row(batch, row)) for row in range(min(len(batch), 8))])
    if not torch.allclose(single, first[: len(single)], atol=max(atol, 1e-4), rtol=1e-4):
        _fail(model, rule, "scoring prefixes one at a time gives other scores than scoring them together",
              "mask padding and keep no state between rows or between score calls")


class _Warnings(logging.Handler):
    """Collects the warnings of one logger while the block runs."""

    def __init__(self, logger: str) -> None:
        super().__init__(logging.WARNING)
        self.logger = logging.getLogger(logger)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> _Warnings:
        self.level = self.logger.level
        self.logger.setLevel(logging.WARNING)  # seen even where logging is configured quieter
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level)


def _test_batch_row(batch: PrefixBatch, row: int) -> PrefixBatch:
    length = int(batch.lengths[row])
    times = None if batch.times is None else batch.times[row : row + 1, :length]
    ids = None if batch.session_ids is None else batch.session_ids[row : row + 1]
    return PrefixBatch(batch.items[row : row + 1, :length], batch.lengths[row : row + 1], ids, times)

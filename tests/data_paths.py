"""Where the tests find real data, and what they do when it is absent.

The data folder is ``$SESSIONBENCH_DATA``, else sessionbench's default data
folder (:func:`harness.paths.data_dir`), with one sub-folder per dataset, the
layout ``sessionbench datasets fetch NAME`` writes. A test that reads a real
file calls :func:`require_data` (or carries ``@pytest.mark.data(NAME)``, or
uses a fixture of conftest.py that does): without the files it is skipped
with a reason naming the dataset and the fetch command; with
``SESSIONBENCH_REQUIRE_DATA=1`` (as in CI) it fails instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.paths import data_dir

REQUIRE_ENV = "SESSIONBENCH_REQUIRE_DATA"
DATA_ROOT = Path(os.path.abspath(data_dir()))

#: dataset (sub-folder of the data folder, and its `datasets fetch` name) -> the files tests read
DATASETS = {
    "diginetica-sample": ("sample_train-item-views.csv",),
    "yoochoose-100k": tuple(
        f"yoochoose-clicks-100k_{part}.txt" for part in ("train_full", "test", "train_tr", "train_valid")
    ),
    "raw-samples": ("yoochoose-clicks-sample.dat", "train-item-views-sample.csv"),
}

DIGINETICA_SAMPLE = DATA_ROOT / "diginetica-sample" / "sample_train-item-views.csv"
YOOCHOOSE_RAW_SAMPLE = DATA_ROOT / "raw-samples" / "yoochoose-clicks-sample.dat"
DIGINETICA_RAW_SAMPLE = DATA_ROOT / "raw-samples" / "train-item-views-sample.csv"
YOOCHOOSE_100K = DATA_ROOT / "yoochoose-100k"


def data_required() -> bool:
    """True when a missing data file must fail the test (``SESSIONBENCH_REQUIRE_DATA=1``)."""
    return os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0")


def missing_files(name: str) -> list[Path]:
    """The files of dataset ``name`` that are not in the data folder."""
    folder = DATA_ROOT / name
    return [folder / f for f in DATASETS[name] if not (folder / f).is_file()]


def require_data(name: str) -> Path:
    """The folder of real dataset ``name``; skips the calling test when a file
    is missing (fails it under ``SESSIONBENCH_REQUIRE_DATA=1``)."""
    if name not in DATASETS:
        raise KeyError(f"unknown test dataset {name!r}; expected one of {', '.join(DATASETS)}")
    missing = missing_files(name)
    if missing:
        reason = (f"real data {name!r} not found ({missing[0]} is missing); get it with "
                  f"`sessionbench datasets fetch {name}` and set SESSIONBENCH_DATA (now {DATA_ROOT})")
        if data_required():
            pytest.fail(f"{REQUIRE_ENV} is set: {reason}", pytrace=False)
        pytest.skip(reason)
    return DATA_ROOT / name

"""Shared fixtures and the real-data rule.

Real data are found through tests/data_paths.py: a test marked
``@pytest.mark.data("yoochoose-100k")`` (or using a fixture below) is skipped
with the reason and the fetch command when the files are absent, and fails
under ``SESSIONBENCH_REQUIRE_DATA=1``.
"""

import os

import pytest
from data_paths import require_data

from harness.data.dataset import SessionDataset
from harness.run.executors import RAY_LOOPBACK_ENV
from harness.paths import CACHE_ENV

# Local Ray instances started by the tests bind to loopback only (Ray reads
# this when it is first imported, so it is set before any test module loads).
os.environ.setdefault(RAY_LOOPBACK_ENV, "0")


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Prepared data of the tests go to a temporary cache, never the user's
    cache folder (tests that check the default location set their own)."""
    saved = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("sessionbench-cache"))
    yield
    if saved is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = saved


def pytest_configure(config):
    config.addinivalue_line("markers", "data(*names): needs these real datasets (see tests/data_paths.py)")


def pytest_runtest_setup(item):
    for marker in item.iter_markers(name="data"):
        for name in marker.args:
            require_data(name)


@pytest.fixture(scope="session")
def yoochoose_100k(tmp_path_factory) -> SessionDataset:
    """The prepared yoochoose-100k preset (prepared once per test session)."""
    folder = require_data("yoochoose-100k")
    from harness.data.specs import load_dataset

    return load_dataset("yoochoose-100k", data_dir=folder, cache_dir=tmp_path_factory.mktemp("y100k-cache"))

"""Shared fixtures and the real-data rule.

Real data are found through tests/data_paths.py: a test marked
``@pytest.mark.data("yoochoose-100k")`` (or using a fixture below) is skipped
with the reason and the fetch command when the files are absent, and fails
under ``SESSIONBENCH_REQUIRE_DATA=1``.
"""

import os

import pytest
from data_paths import require_data

from harness.dataset import SessionDataset
from harness.executors import RAY_LOOPBACK_ENV

# Local Ray instances started by the tests bind to loopback only (Ray reads
# this when it is first imported, so it is set before any test module loads).
os.environ.setdefault(RAY_LOOPBACK_ENV, "0")


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
    from harness.specs import load_dataset

    return load_dataset("yoochoose-100k", data_dir=folder, cache_dir=tmp_path_factory.mktemp("y100k-cache"))

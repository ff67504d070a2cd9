"""Shared fixtures: the real data beside the repository (CI has ../shared too)."""

import pytest
from data_paths import YOOCHOOSE_100K

from harness.dataset import SessionDataset


@pytest.fixture(scope="session")
def yoochoose_100k(tmp_path_factory) -> SessionDataset:
    """The prepared yoochoose-100k preset (prepared once per test session)."""
    assert YOOCHOOSE_100K.is_dir(), f"shared data not found at {YOOCHOOSE_100K}; clone ../shared beside the repository"
    from harness.specs import load_dataset

    return load_dataset("yoochoose-100k", data_dir=YOOCHOOSE_100K, cache_dir=tmp_path_factory.mktemp("y100k-cache"))

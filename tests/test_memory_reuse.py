"""harness.timing.reuse_freed_memory: a training step's large temporaries
reuse the previous step's pages instead of faulting fresh ones in."""

import resource

import pytest
import torch

from harness import timing
from harness.timing import reuse_freed_memory

LIBC = timing._glibc()
pytestmark = pytest.mark.skipif(LIBC is None, reason="glibc's allocator only (a no-op elsewhere)")

#: two 48 MiB temporaries a step, as [512, 24,576] float scores and probabilities
#: (STAMP's batch on a full-size catalogue)
ROWS, COLUMNS = 512, 24_576
PAGES_PER_STEP = 2 * ROWS * COLUMNS * 4 // 4096


def _faults_of_steps(steps: int) -> int:
    """Minor page faults of ``steps`` training-like steps, after three warm-up steps."""

    def step():
        scores = torch.ones(ROWS, COLUMNS)  # every page touched, so faulted in unless reused
        probabilities = torch.softmax(scores, dim=1)
        del scores, probabilities

    for _ in range(3):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.fixture
def blocks_mapped_one_by_one():
    """glibc as it starts (blocks of 128 KiB and more mapped on their own, the
    threshold fixed here so that the test does not depend on what this
    process freed before); the block's own exit thresholds afterwards."""
    LIBC.mallopt(timing._M_MMAP_THRESHOLD, 128 << 10)
    LIBC.mallopt(timing._M_TRIM_THRESHOLD, 128 << 10)
    yield
    LIBC.mallopt(timing._M_MMAP_THRESHOLD, timing._DEFAULT_MMAP)
    LIBC.mallopt(timing._M_TRIM_THRESHOLD, timing._DEFAULT_TRIM)


def test_inside_the_block_temporaries_reuse_the_previous_steps_pages(blocks_mapped_one_by_one):
    outside = _faults_of_steps(20)
    with reuse_freed_memory():
        inside = _faults_of_steps(20)
    assert outside > 8 * PAGES_PER_STEP  # mapped, faulted in and unmapped (one or both) every step
    assert inside < 4 * PAGES_PER_STEP  # a few steps' pages at most, while the heap grows


def test_after_the_block_the_next_block_works_as_well(blocks_mapped_one_by_one):
    with reuse_freed_memory():
        _faults_of_steps(2)
    assert float(torch.ones(1000, 1000).sum()) == 1e6
    with reuse_freed_memory():
        assert _faults_of_steps(20) < 4 * PAGES_PER_STEP

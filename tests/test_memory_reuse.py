"""harness.evaluation.timing.reuse_freed_memory: a training step's large temporaries
reuse the previous step's pages instead of faulting fresh ones in.

Each measurement runs in a fresh interpreter: in a process that has already
run other tests, a free chunk left in the middle of the heap can serve the
temporaries without any fault, and the "outside the block" baseline would
then measure that process's history instead of glibc's behaviour."""

import json
import subprocess
import sys

import pytest

from harness.evaluation import timing

pytestmark = pytest.mark.skipif(timing._glibc() is None, reason="glibc's allocator only (a no-op elsewhere)")

#: two 48 MiB temporaries a step, as [512, 24,576] float scores and probabilities
#: (STAMP's batch on a full-size catalogue)
ROWS, COLUMNS = 512, 24_576
PAGES_PER_STEP = 2 * ROWS * COLUMNS * 4 // 4096

_SCRIPT = f"""
import json, resource, sys
import torch
from harness.evaluation import timing
from harness.evaluation.timing import reuse_freed_memory

# glibc as it starts (blocks of 128 KiB and more mapped on their own), the
# threshold fixed so that the result does not depend on what torch's import freed
libc = timing._glibc()
libc.mallopt(timing._M_MMAP_THRESHOLD, 128 << 10)
libc.mallopt(timing._M_TRIM_THRESHOLD, 128 << 10)


def faults_of_steps(steps):
    def step():
        scores = torch.ones({ROWS}, {COLUMNS})  # every page touched, so faulted in unless reused
        probabilities = torch.softmax(scores, dim=1)
        del scores, probabilities

    for _ in range(3):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


result = {{"outside": faults_of_steps(20)}}
with reuse_freed_memory():
    result["inside"] = faults_of_steps(20)
result["sum_after"] = float(torch.ones(1000, 1000).sum())
with reuse_freed_memory():
    result["inside_again"] = faults_of_steps(20)
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def faults() -> dict:
    """Minor page faults of 20 training-like steps (after 3 warm-up steps):
    outside the block, inside it, and inside a second block after the first."""
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_inside_the_block_temporaries_reuse_the_previous_steps_pages(faults):
    assert faults["outside"] > 8 * PAGES_PER_STEP  # mapped, faulted in and unmapped (one or both) every step
    assert faults["inside"] < 4 * PAGES_PER_STEP  # a few steps' pages at most, while the heap grows


def test_after_the_block_the_next_block_works_as_well(faults):
    assert faults["sum_after"] == 1e6
    assert faults["inside_again"] < 4 * PAGES_PER_STEP

"""Importing sessionbench's packages has no side effects."""

import subprocess
import sys

CHECK = """
import logging, os, sys
before = set(os.listdir('.'))
import harness, harness.cli, harness.data.dataset, harness.evaluation.evaluate, harness.evaluation.metrics, harness.models.plugin
import harness.data.preprocess, harness.data.readers, harness.models.registry, harness.data.specs, harness.data.synthetic
import harness.models.testing, harness.models.training
import baselines, srgnn
assert logging.getLogger().handlers == [], logging.getLogger().handlers
assert logging.getLogger("sessionbench").handlers == []
assert harness.models.registry._entry_points_loaded is False
assert set(os.listdir('.')) == before
print("ok")
"""


def test_imports_configure_no_logging_and_touch_no_files(tmp_path):
    proc = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"

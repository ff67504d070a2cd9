"""Shared set-up of the tests that run small suites: a working folder with a
tiny synthetic dataset spec and a module of test plugins, and suites over it."""

from __future__ import annotations

import textwrap
from pathlib import Path

from harness.run.runner import InlineExecutor, SuiteOutcome, run_suite
from harness.run.suites import Suite, parse_suite


def prepare_workdir(tmp_path: Path, monkeypatch, *, spec: str, dataset: str, plugins: str, module: str) -> Path:
    """Write ``<dataset>.yaml`` (``spec``) and ``<module>.py`` (``plugins``)
    into ``tmp_path``, make it the working folder and the first import path,
    and keep the prepared-data cache inside it."""
    (tmp_path / f"{dataset}.yaml").write_text(textwrap.dedent(spec))
    (tmp_path / f"{module}.py").write_text(plugins)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path


def tiny_suite(workdir: Path, dataset: str, models: list, *, name: str = "t", ks: list[int] | None = None,
               latency: dict[str, int] | None = None, **extra) -> Suite:
    """A suite of ``models`` on the spec ``<workdir>/<dataset>.yaml``, one
    seed, few latency samples; ``extra`` adds or replaces suite keys."""
    data = {"name": name, "datasets": [str(workdir / f"{dataset}.yaml")], "models": models, "seeds": [0],
            "ks": ks or [5, 20], "latency": latency or {"samples": 5, "warmup": 1}, **extra}
    return parse_suite(data, workdir / f"{name}.yaml")


def run_inline(suite: Suite, out: Path, **kw) -> SuiteOutcome:
    """Run ``suite`` into ``out`` in this process, without a report."""
    return run_suite(suite, out_dir=out, executor=InlineExecutor(), report=False, **kw)

"""The results store: one folder per run, written once, read by reports.

Layout of a suite's output folder::

    <out>/
      runs/
        <run_id>/               a finished run (complete or failed)
          manifest.json         spec, status, versions, machine, times, timings
          ranks.parquet         per-case ranks and top-K lists (complete runs;
                                the EvaluationResult format of harness.evaluate)
          curve.csv             per-epoch training curve (models trained by epoch)
        .tmp-<run_id>-<pid>/    a run being written; never read
      report/                   written by `sessionbench report`

A run folder is written under a temporary name and renamed when complete,
so a run is either wholly there or absent. A failed run is stored too (its
manifest has ``status: failed`` and the traceback) so that reports can list
it; the runner retries it next time. Everything a report shows is computed
from these files.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from harness.evaluate import EvaluationResult

RUNS_DIR = "runs"
MANIFEST = "manifest.json"
RANKS = "ranks.parquet"
CURVE = "curve.csv"
COMPLETE, FAILED = "complete", "failed"


@dataclass(frozen=True)
class RunRecord:
    """A stored run, as reports see it.

    ``manifest`` keys: ``run_id``, ``status``, ``suite``, ``dataset`` (name),
    ``model`` (registry name or module:Class), ``label`` (the model
    configuration's display name, one colour per label), ``params`` (resolved
    hyper-parameters), ``seed``, ``protocol``, ``ks``, ``spec`` (the frozen
    run spec that the run id hashes), ``versions``, ``git_commit``,
    ``machine``, ``started``, ``finished``, ``timings`` (see
    :mod:`harness.timing`), ``metrics`` (summary at the suite's K, derived),
    ``trains_by_epoch``, ``error`` (traceback, failed runs only).
    """

    path: Path
    manifest: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]

    @property
    def status(self) -> str:
        return self.manifest["status"]

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE

    def __getattr__(self, key: str) -> Any:
        # dataset, model, label, seed, protocol, timings, ... straight from the manifest
        try:
            return self.__dict__["manifest"][key]
        except KeyError:
            raise AttributeError(key) from None

    @cached_property
    def evaluation(self) -> EvaluationResult:
        """The per-case results (complete runs only)."""
        return EvaluationResult.load(self.path / RANKS)

    def curve(self) -> pd.DataFrame | None:
        """The training curve (one row per epoch), or None."""
        path = self.path / CURVE
        return pd.read_csv(path) if path.is_file() else None


def runs_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / RUNS_DIR


def run_path(out_dir: str | Path, run_id: str) -> Path:
    return runs_dir(out_dir) / run_id


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of a run folder, or None when absent or unreadable."""
    try:
        return json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def is_complete(out_dir: str | Path, run_id: str) -> bool:
    """True when the run's folder exists with a complete manifest."""
    manifest = read_manifest(run_path(out_dir, run_id))
    return manifest is not None and manifest.get("status") == COMPLETE


def iter_runs(out_dir: str | Path, *, include_failed: bool = False) -> Iterator[RunRecord]:
    """The stored runs (sorted by run id), complete ones only by default."""
    base = runs_dir(out_dir)
    if not base.is_dir():
        return
    for path in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        manifest = read_manifest(path)
        if manifest is None:
            continue
        if manifest.get("status") == COMPLETE or include_failed:
            yield RunRecord(path, manifest)


def write_run(
    out_dir: str | Path,
    manifest: dict[str, Any],
    *,
    evaluation: EvaluationResult | None = None,
    curve: list[dict[str, Any]] | None = None,
) -> Path:
    """Write a run folder atomically (temporary folder, then rename).

    An existing folder of the same run (a failed one, or one being redone
    with ``--force``) is replaced.
    """
    base = runs_dir(out_dir)
    base.mkdir(parents=True, exist_ok=True)
    run_id = manifest["run_id"]
    tmp = base / f".tmp-{run_id}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    if evaluation is not None:
        evaluation.save(tmp / RANKS)
    if curve:
        pd.DataFrame(curve).to_csv(tmp / CURVE, index=False)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
    final = base / run_id
    replace_folder(tmp, final)
    return final


def replace_folder(tmp: Path, final: Path) -> None:
    """Move the finished folder ``tmp`` to ``final``, replacing any previous
    one; readers see either the old folder or the new one, never a mix."""
    if final.exists():
        old = final.parent / f".old-{final.name}-{os.getpid()}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


def clean_temporary(out_dir: str | Path) -> int:
    """Remove leftovers of interrupted writes; returns how many."""
    base = runs_dir(out_dir)
    if not base.is_dir():
        return 0
    stale = [p for p in base.iterdir() if p.is_dir() and p.name.startswith((".tmp-", ".old-"))]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "numerator") and hasattr(value, "denominator"):
        return f"{value.numerator}/{value.denominator}"
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

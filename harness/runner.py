"""The runner: expand a suite into runs and execute the missing ones.

Each run is a pure function of its frozen :class:`RunSpec`; its id is a hash
of that spec (dataset content, model, hyper-parameters, seed, protocol, the
model's code version), so a finished run is recognised and skipped on the
next invocation (``force`` redoes it). Every run executes in its own process
behind the small :class:`Executor` interface (a local process pool by
default; a cluster back-end implements the same ``run`` method), which
isolates crashes and gives a clean peak-memory figure. A run that raises is
stored as failed with its traceback and the suite goes on; a killed or
interrupted suite loses nothing already stored.
"""

from __future__ import annotations

import fnmatch
import hashlib
import inspect
import json
import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import platform
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from harness import __version__, paths
from harness.errors import SessionbenchError
from harness.store import COMPLETE, FAILED, clean_temporary, is_complete, iter_runs, read_manifest, run_path, write_run
from harness.suites import ModelEntry, Suite

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
SELECTION_METRIC = "MRR@20"


# --------------------------------------------------------------------------- #
# run specs
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class RunSpec:
    """Everything a run depends on. ``frozen()`` is what the run id hashes:
    the dataset's content key, not where its files lie."""

    suite: str
    dataset: str  # preset name or spec path, as in the suite
    dataset_name: str
    dataset_key: str
    data_dir: str | None
    model: str
    label: str
    params: dict[str, Any]
    seed: int
    protocol: str
    ks: tuple[int, ...]
    batch_size: int
    exclude_seen: bool
    latency: dict[str, int]
    stage: str = "test"  # "tune": fit on train_tr, score valid
    model_code: str = ""

    def frozen(self) -> dict[str, Any]:
        d = asdict(self)
        for volatile in ("suite", "dataset", "data_dir", "latency"):
            d.pop(volatile)
        d["ks"] = list(self.ks)
        return d

    @property
    def run_id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.frozen(), sort_keys=True, default=str).encode()).hexdigest()[:10]
        stage = "" if self.stage == "test" else f"-{self.stage}"
        return f"{self.dataset_name}-{self.label}-s{self.seed}-{self.protocol}{stage}-{digest}"

    @property
    def display(self) -> str:
        """``dataset/label/seed`` (what ``--only`` also matches)."""
        return f"{self.dataset_name}/{self.label}/{self.seed}" + ("" if self.stage == "test" else f"/{self.stage}")


def model_code_version(model: str) -> str:
    """A short hash of the source file that defines the model class."""
    from harness.registry import get_model_class

    cls = get_model_class(model)
    try:
        source = Path(inspect.getsourcefile(cls)).read_bytes()
    except (TypeError, OSError):
        source = f"{cls.__module__}.{cls.__qualname__}".encode()
    return hashlib.sha256(source).hexdigest()[:12]


def _full_params(model: str, params: dict[str, Any]) -> dict[str, Any]:
    from harness.registry import coerce_params, get_model_class

    cls = get_model_class(model)
    return {**cls.hyperparameters(), **coerce_params(cls, params)}


def expand(suite: Suite, datasets: dict[str, tuple[str, str]], *, stage_of: Callable[[ModelEntry], str]) -> list[RunSpec]:
    """The runs of a suite for the given stage rule.

    ``datasets`` maps a suite dataset entry's name to (dataset name, content
    key). ``stage_of(model)`` is ``"tune"`` for grid models (their grid
    points, scored on valid) or ``"test"``.
    """
    runs = []
    for entry in suite.datasets:
        name, key = datasets[entry.name]
        for model in suite.models:
            code = model_code_version(model.name)
            stage = stage_of(model)
            points = model.grid_points() if stage == "tune" else [model.params]
            protocols = ("next",) if stage == "tune" else suite.protocols
            for params, seed, protocol in ((p, s, pr) for p in points for s in model.seeds for pr in protocols):
                label = model.label if stage == "test" else _grid_label(model, params)
                runs.append(RunSpec(
                    suite=suite.name, dataset=entry.name, dataset_name=name, dataset_key=key,
                    data_dir=entry.data_dir, model=model.name, label=label,
                    params=_full_params(model.name, params), seed=seed, protocol=protocol, ks=suite.ks,
                    batch_size=suite.batch_size, exclude_seen=suite.exclude_seen, latency=dict(suite.latency),
                    stage=stage, model_code=code,
                ))  # fmt: skip
    return runs


def _grid_label(model: ModelEntry, params: dict[str, Any]) -> str:
    return model.label + "[" + ",".join(f"{k}={params[k]}" for k in sorted(model.grid)) + "]"


# --------------------------------------------------------------------------- #
# executing one run (inside a worker process)
# --------------------------------------------------------------------------- #


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"sessionbench": __version__, "python": platform.python_version()}
    for pkg in ("torch", "numpy", "pandas", "pyarrow", "scipy", "scikit-learn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _machine() -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "host": socket.gethostname(), "platform": platform.platform(), "processor": platform.processor(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(), "gpu": gpu,
    }  # fmt: skip


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def base_manifest(spec: RunSpec) -> dict[str, Any]:
    """The manifest fields known before the run starts."""
    return {
        "run_id": spec.run_id, "status": None, "suite": spec.suite, "stage": spec.stage,
        "dataset": spec.dataset_name, "model": spec.model, "label": spec.label, "params": spec.params,
        "seed": spec.seed, "protocol": spec.protocol, "ks": list(spec.ks), "spec": spec.frozen(),
        "data_dir": spec.data_dir,
    }  # fmt: skip


def execute_run(spec: RunSpec, out_dir: str, progress: bool = False) -> None:
    """Fit, evaluate and time one run; store it (complete or failed)."""
    from harness.evaluate import evaluate
    from harness.registry import make_model
    from harness.specs import load_dataset
    from harness.timing import model_size, peak_rss_mb, single_session_latency

    manifest = {**base_manifest(spec), "started": _now(), "versions": _versions(), "git_commit": _git_commit(),
                "machine": _machine(), "pid": os.getpid()}  # fmt: skip
    try:
        data = load_dataset(spec.dataset, data_dir=spec.data_dir)
        if data.meta.get("cache", {}).get("key") != spec.dataset_key:
            raise SessionbenchError(f"dataset {spec.dataset_name!r} changed since the suite was expanded; run again")
        if spec.stage == "tune":
            data = data.validation_view()
        model = make_model(spec.model, spec.params, source=f"run {spec.display}")
        model.fit(data, seed=spec.seed)
        result = evaluate(model, data, protocol=spec.protocol, ks=spec.ks, batch_size=spec.batch_size,
                          exclude_seen=spec.exclude_seen, progress=progress)  # fmt: skip
        result.meta.update({"run_id": spec.run_id, "label": spec.label, "seed": spec.seed})
        timings = {"fit_seconds": model.fit_seconds_, **result.timings}
        if spec.stage == "test":
            timings.update(single_session_latency(model, data.prefixes("test"), n_samples=spec.latency["samples"],
                                                  warmup=spec.latency["warmup"], seed=spec.seed))  # fmt: skip
        timings.update({"peak_rss_mb": peak_rss_mb(), "model_size": model_size(model)})
        manifest.update({
            "status": COMPLETE, "finished": _now(), "timings": timings, "metrics": result.metrics(sorted({*spec.ks, 20})),
            "cases": result.n_cases, "trains_by_epoch": type(model).trains_by_epoch,
            "best_epoch": getattr(model, "best_epoch_", None), "dataset_stats": data.stats(),
        })  # fmt: skip
        write_run(out_dir, manifest, evaluation=result, curve=getattr(model, "training_curve_", None))
    except Exception as err:  # the run fails, the suite goes on
        manifest.update({"status": FAILED, "finished": _now(), "error": traceback.format_exc(),
                         "error_line": f"{type(err).__name__}: {err}"})  # fmt: skip
        write_run(out_dir, manifest)


def _worker(spec_dict: dict[str, Any], out_dir: str, progress: bool) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    spec = RunSpec(**{**spec_dict, "ks": tuple(spec_dict["ks"])})
    execute_run(spec, out_dir, progress)


# --------------------------------------------------------------------------- #
# executors
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Task:
    """One run for an executor: call ``fn(*args)`` somewhere."""

    run_id: str
    fn: Callable[..., None]
    args: tuple


class Executor(Protocol):
    """Runs tasks and reports each one's end. ``on_done(task, exitcode)``
    is called in the calling process; a non-zero exit code means the task's
    process died without storing its run."""

    def run(self, tasks: list[Task], on_done: Callable[[Task, int], None]) -> None: ...


class LocalProcessExecutor:
    """Each task in a fresh process (spawned), at most ``jobs`` at a time."""

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = max(1, int(jobs))

    def run(self, tasks: list[Task], on_done: Callable[[Task, int], None]) -> None:
        ctx = mp.get_context("spawn")
        pending, running = list(tasks), {}
        try:
            while pending or running:
                while pending and len(running) < self.jobs:
                    task = pending.pop(0)
                    proc = ctx.Process(target=task.fn, args=task.args, name=f"sessionbench-{task.run_id}")
                    proc.start()
                    running[proc.sentinel] = (proc, task)
                for sentinel in mp.connection.wait(list(running), timeout=1.0):
                    proc, task = running.pop(sentinel)
                    proc.join()
                    on_done(task, proc.exitcode)
        finally:  # Ctrl-C or an error here: stop the workers; stored runs stay
            for proc, _ in running.values():
                proc.terminate()
            for proc, _ in running.values():
                proc.join()


class InlineExecutor:
    """Runs tasks one after another in this process (debugging, tests)."""

    def run(self, tasks: list[Task], on_done: Callable[[Task, int], None]) -> None:
        for task in tasks:
            task.fn(*task.args)
            on_done(task, 0)


# --------------------------------------------------------------------------- #
# the suite
# --------------------------------------------------------------------------- #


@dataclass
class SuiteOutcome:
    """What ``run_suite`` did."""

    out_dir: Path
    planned: list[RunSpec] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    report: Any = None


def _matches(spec: RunSpec, patterns: Iterable[str] | None) -> bool:
    if not patterns:
        return True
    return any(fnmatch.fnmatch(spec.run_id, p) or fnmatch.fnmatch(spec.display, p) for p in patterns)


def run_suite(
    suite: Suite,
    *,
    out_dir: str | Path | None = None,
    data_dir: str | None = None,
    jobs: int = 1,
    force: bool = False,
    only: list[str] | None = None,
    executor: Executor | None = None,
    progress: bool = False,
    report: bool = True,
    echo: Callable[[str], None] = lambda line: None,
) -> SuiteOutcome:
    """Run every missing run of ``suite`` and (by default) write its report.

    Output goes to ``out_dir`` (default ``reports/<suite name>``). Datasets
    are prepared first, in this process, so a missing file stops the suite
    before any run starts.
    """
    from harness.specs import load_dataset

    out = Path(out_dir) if out_dir is not None else paths.reports_dir(suite.name)
    outcome = SuiteOutcome(out_dir=out)
    clean_temporary(out)
    if data_dir is not None:
        suite = replace(suite, datasets=tuple(replace(d, data_dir=data_dir) for d in suite.datasets))
    datasets = {}
    for entry in suite.datasets:
        data = load_dataset(entry.name, data_dir=entry.data_dir)
        datasets[entry.name] = (data.name, data.meta["cache"]["key"])
    executor = executor or LocalProcessExecutor(jobs)
    show = progress and jobs == 1

    def stage_one(model: ModelEntry) -> str:
        return "tune" if model.grid else "test"

    first = [s for s in expand(suite, datasets, stage_of=stage_one) if _matches(s, only)]
    _execute(first, out, executor, force, show, outcome, echo, progress)
    grid_models = [m for m in suite.models if m.grid]
    if grid_models:
        finals = _tuned_finals(suite, grid_models, datasets, first, out)
        _execute([s for s in finals if _matches(s, only)], out, executor, force, show, outcome, echo, progress)
    if report and any(True for _ in iter_runs(out)):
        from harness.report import write_report

        outcome.report = write_report(out, ks=suite.ks)
    return outcome


def _tuned_finals(suite, grid_models, datasets, planned, out) -> list[RunSpec]:
    """For each grid model, dataset and seed: the test run of the grid point
    with the best validation MRR@20 (ties: the first point in grid order)."""
    finals = []
    by_id = {s.run_id: s for s in planned if s.stage == "tune"}
    for entry in suite.datasets:
        name, key = datasets[entry.name]
        for model in grid_models:
            for seed in model.seeds:
                best, best_value = None, -1.0
                for spec in by_id.values():
                    if (spec.dataset_name, spec.model, spec.seed) != (name, model.name, seed):
                        continue
                    if not spec.label.startswith(model.label + "["):
                        continue
                    manifest = read_manifest(run_path(out, spec.run_id)) or {}
                    if manifest.get("status") != COMPLETE:
                        continue
                    value = manifest["metrics"].get(SELECTION_METRIC, -1.0)
                    if value > best_value:
                        best, best_value = spec, value
                if best is None:
                    continue
                for protocol in suite.protocols:
                    finals.append(replace(best, label=model.label, stage="test", protocol=protocol,
                                          dataset=entry.name, data_dir=entry.data_dir))  # fmt: skip
    return finals


def _execute(specs, out, executor, force, show_inner, outcome, echo, progress) -> None:
    from tqdm.auto import tqdm

    outcome.planned.extend(specs)
    todo = []
    for spec in specs:
        if not force and is_complete(out, spec.run_id):
            outcome.skipped.append(spec.run_id)
        else:
            todo.append(spec)
    if outcome.skipped:
        echo(f"{len(outcome.skipped)} run(s) already complete, skipped (use --force to redo)")
    if not todo:
        return
    tasks = [Task(s.run_id, _worker, (asdict(s), str(out), show_inner)) for s in todo]
    by_id = {s.run_id: s for s in todo}
    bar = tqdm(total=len(tasks), desc="runs", unit="run", disable=not progress, leave=True)

    def done(task: Task, exitcode: int) -> None:
        spec = by_id[task.run_id]
        manifest = read_manifest(run_path(out, task.run_id))
        if exitcode != 0 and (manifest is None or manifest.get("started") is None or manifest["status"] != COMPLETE):
            manifest = {**base_manifest(spec), "status": FAILED, "finished": _now(),
                        "error": f"worker process exited with code {exitcode} before storing the run",
                        "error_line": f"worker process exited with code {exitcode}"}  # fmt: skip
            write_run(out, manifest)
        status = (manifest or {}).get("status", FAILED)
        outcome.executed.append(task.run_id)
        if status != COMPLETE:
            outcome.failed.append(task.run_id)
            echo(f"FAILED {spec.display}: {(manifest or {}).get('error_line', 'no manifest')}")
        else:
            m = manifest["metrics"]
            echo(f"done   {spec.display}: HitRate@20 {m.get('HitRate@20', float('nan')):.4f}  "
                 f"MRR@20 {m.get('MRR@20', float('nan')):.4f}  fit {manifest['timings']['fit_seconds']:.1f} s")
        bar.update(1)

    try:
        executor.run(tasks, done)
    finally:
        bar.close()

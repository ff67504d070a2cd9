"""The runner: expand a suite into runs and execute the missing ones.

Each run is a pure function of its frozen :class:`RunSpec`. Its id hashes
everything that can change its result: the resolved configuration
(:meth:`RunSpec.config`: dataset content key, model, every hyper-parameter,
seed, protocol, stage, evaluation options with the stored top-list width,
latency sampling, library versions) and the code fingerprint
(:mod:`harness.run.fingerprint`: every source file of sessionbench and of the
model's plugin package). A finished run that
passes verification (:func:`harness.run.store.verify_run`) is skipped on the
next invocation; ``force`` redoes it beside the old one and swaps only on
success. A suite's ``ks`` are not part of the id: a run stores full target
ranks and top lists :func:`~harness.evaluation.evaluate.stored_top_width` wide, so
metrics at any K of a later suite come from the stored run
(:meth:`harness.run.store.RunRecord.metric`); only a K beyond that width asks
for new, wider runs. A run with ANN ``retrieval`` settings also holds its
retrieval depth (:func:`harness.evaluation.retrieval.retrieval_depth`, the largest K):
an index's speed and recall are measured at a depth, so changing the
largest K makes such a run anew.

Every run executes in its own process behind the small :class:`Executor`
interface (a local process pool by default; a cluster back-end implements
the same ``run`` method), which isolates crashes and gives a clean
peak-memory figure. The worker writes its run into a temporary folder; the
runner installs it (:func:`harness.run.store.install_run`). A run that raises,
passes its time limit or whose process dies is stored as failed with the
reason, and the suite goes on; a killed or interrupted suite loses nothing
already stored, and its workers die with it. One ``run`` writes an output
folder at a time (:mod:`harness.run.lock`), and ``OUT/plan.json`` records what
it expects (:class:`harness.run.store.Plan`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import platform
import shutil
import signal
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from harness import __version__, paths
from harness.errors import ConfigError, SessionbenchError, UnknownNameError, quote
from harness.evaluation.evaluate import stored_top_width
from harness.run.fingerprint import CodeFingerprint, git_commit, model_bytes_digest, model_fingerprint
from harness.run.lock import OutputLock, describe
from harness.run.store import (
    COMPLETE,
    FAILED,
    MODEL_DIR,
    Plan,
    RunRecord,
    checkpoint_path,
    clean_temporary,
    folder_bytes,
    install_run,
    iter_checkpoints,
    iter_runs,
    load_run,
    read_manifest,
    read_plan,
    run_path,
    runs_dir,
    update_manifest,
    write_plan,
    write_run_files,
)
from harness.run.suites import ModelEntry, Suite
from harness.run.watchdog import EXIT_ORPHANED, EXIT_TIMEOUT, Watchdog, die_with_parent, format_seconds

log = logging.getLogger(__name__)

SELECTION_METRIC = "MRR@20"
SELECTION_SPLIT = "valid"
#: how the error line of a tuning trial stopped by its pruner starts (see harness.run.tuning.TrialPruned)
PRUNED_PREFIX = "TrialPruned:"
#: library versions that can change a result (part of every run's config)
RESULT_LIBRARIES = ("torch", "numpy", "pandas", "scipy", "scikit-learn")


# --------------------------------------------------------------------------- #
# run specs
# --------------------------------------------------------------------------- #


def canonical_json(value: Any) -> str:
    """The JSON text that digests hash: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sha256_text(text: str) -> str:
    """SHA-256 (hex) of a text's UTF-8 bytes."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class RunSpec:
    """Everything a run depends on, plus where and how to run it.

    :meth:`config` is what identifies the result (with ``code_digest``);
    ``suite``, ``dataset`` (the suite's entry), ``data_dir`` and ``label``
    say where things are and what to call them, ``timeout`` limits the
    phases and ``selection`` records why a tuned final was chosen: none of
    them can change the numbers, so none is in the id. ``ks`` are the
    cut-offs of the suite that made the spec: only the top-list width they
    ask for (:attr:`top_width`) is in the id.
    """

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
    code_digest: str = ""
    # the planned fingerprint (not in the id: code_digest is): a run's process
    # reuses its file hashes when the files' bytes are unchanged
    code_files: tuple[tuple[str, str], ...] = ()
    code_bytes_digest: str = ""
    runtime: dict[str, str] = field(default_factory=dict)  # library versions
    timeout: dict[str, float] = field(default_factory=dict)  # phase -> seconds
    selection: dict[str, Any] | None = None
    retrieval: tuple[dict[str, Any], ...] = ()  # ANN settings evaluated after the test run (harness.evaluation.retrieval)

    def config(self) -> dict[str, Any]:
        """The canonical resolved configuration: everything but code that
        can change the result.

        ``batch_size`` is in it: it sets the measured throughput and, for
        neural models, the padding of each scored batch (float results may
        differ in the last bits). ``latency`` sampling sets the latency
        figures. Library versions can change any number. ``top_width`` is
        the length of the stored top lists; the suite's ``ks`` are not in
        the configuration. A run with ``retrieval`` settings also holds
        ``retrieval_depth`` (items an index retrieves per case), which sets
        the ANN metrics, recall and search speed.
        """
        return {
            "dataset": {"name": self.dataset_name, "key": self.dataset_key},
            "model": self.model, "params": self.params, "seed": self.seed, "protocol": self.protocol,
            "stage": self.stage,
            "evaluation": {"batch_size": self.batch_size, "exclude_seen": self.exclude_seen,
                           "top_width": self.top_width},
            "latency": dict(self.latency), "runtime": dict(self.runtime),
            # only when asked for, so that runs without retrieval keep their ids
            **({"retrieval": [dict(s) for s in self.retrieval], "retrieval_depth": self.retrieval_depth}
               if self.retrieval else {}),
        }  # fmt: skip

    @property
    def top_width(self) -> int:
        """Items kept per case in the stored top lists:
        :func:`harness.evaluation.evaluate.stored_top_width` of ``ks``."""
        return stored_top_width(self.ks)

    @property
    def retrieval_depth(self) -> int:
        """Items each retrieval setting's index retrieves per case:
        :func:`harness.evaluation.retrieval.retrieval_depth` of ``ks`` (the largest K,
        at least the K every retrieval row reports)."""
        from harness.evaluation.retrieval import retrieval_depth

        return retrieval_depth(self.ks)

    @property
    def config_digest(self) -> str:
        """SHA-256 of :meth:`config` (canonical JSON)."""
        return sha256_text(canonical_json(self.config()))

    @property
    def pool_digest(self) -> str:
        """SHA-256 of the config without the seed, and of the code: runs
        that may be averaged over seeds share it."""
        config = {k: v for k, v in self.config().items() if k != "seed"}
        return sha256_text(canonical_json({"config": config, "code": self.code_digest}))

    @property
    def run_id(self) -> str:
        digest = sha256_text(canonical_json({"config": self.config(), "code": self.code_digest}))[:12]
        stage = "" if self.stage == "test" else f"-{self.stage}"
        return f"{self.dataset_name}-{self.label}-s{self.seed}-{self.protocol}{stage}-{digest}"

    @property
    def display(self) -> str:
        """``dataset/label/seed`` (what ``--only`` also matches)."""
        return f"{self.dataset_name}/{self.label}/{self.seed}" + ("" if self.stage == "test" else f"/{self.stage}")

    def frozen(self) -> dict[str, Any]:
        """The configuration (kept for callers of the earlier name)."""
        return self.config()


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"sessionbench": __version__, "python": platform.python_version()}
    for pkg in ("torch", "numpy", "pandas", "pyarrow", "scipy", "scikit-learn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def runtime_versions() -> dict[str, str]:
    """Python's and the result-relevant libraries' versions (:data:`RESULT_LIBRARIES`)."""
    versions = _versions()
    return {k: v for k, v in versions.items() if k == "python" or k in RESULT_LIBRARIES}


def _full_params(model: str, params: dict[str, Any]) -> dict[str, Any]:
    from harness.models.registry import coerce_params, get_model_class

    cls = get_model_class(model)
    return {**cls.hyperparameters(), **coerce_params(cls, params)}


def effective_timeout(suite: Suite, model: ModelEntry, default: dict[str, float] | None = None) -> dict[str, float]:
    """Phase limits of a model's runs: the model entry's, else the suite's,
    else ``default`` (``--timeout``), per phase."""
    return {**(default or {}), **suite.timeout, **model.timeout}


def expand(
    suite: Suite,
    datasets: dict[str, tuple[str, str]],
    *,
    stage_of: Callable[[ModelEntry], str],
    timeout: dict[str, float] | None = None,
) -> list[RunSpec]:
    """The runs of a suite for the given stage rule.

    ``datasets`` maps a suite dataset entry's name to (dataset name, content
    key). ``stage_of(model)`` is ``"tune"`` for grid models (their grid
    points, scored on valid) or ``"test"``. ``timeout`` is the default
    phase limit (see :func:`effective_timeout`).
    """
    runs = []
    runtime = runtime_versions()
    for entry in suite.datasets:
        name, key = datasets[entry.name]
        for model in suite.models:
            code = model_fingerprint(model.name)
            stage = stage_of(model)
            limits = effective_timeout(suite, model, timeout)
            points = model.grid_points() if stage == "tune" else [model.params]
            protocols = ("next",) if stage == "tune" else suite.protocols
            for params, seed, protocol in ((p, s, pr) for p in points for s in model.seeds for pr in protocols):
                label = model.label if stage == "test" else _grid_label(model, params)
                runs.append(RunSpec(
                    suite=suite.name, dataset=entry.name, dataset_name=name, dataset_key=key,
                    data_dir=entry.data_dir, model=model.name, label=label,
                    params=_full_params(model.name, params), seed=seed, protocol=protocol, ks=suite.ks,
                    batch_size=suite.batch_size, exclude_seen=suite.exclude_seen, latency=dict(suite.latency),
                    stage=stage, code_digest=code.digest, code_files=code.files, code_bytes_digest=code.bytes_digest,
                    # retrieval is evaluated after test runs only: grid points and trials do not
                    # depend on it, and keep their ids (and stored runs) when it changes
                    runtime=runtime, timeout=limits, retrieval=model.retrieval if stage == "test" else (),
                ))  # fmt: skip
    return runs


def _grid_label(model: ModelEntry, params: dict[str, Any]) -> str:
    return model.label + "[" + ",".join(f"{k}={params[k]}" for k in sorted(model.grid)) + "]"


# --------------------------------------------------------------------------- #
# executing one run (inside a worker process)
# --------------------------------------------------------------------------- #


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


def base_manifest(spec: RunSpec, code: CodeFingerprint | None = None) -> dict[str, Any]:
    """The manifest fields known before the run starts (``code``: the
    fingerprint; only its digest is recorded when not given)."""
    return {
        "run_id": spec.run_id, "status": None, "suite": spec.suite, "stage": spec.stage,
        "dataset": spec.dataset_name, "model": spec.model, "model_class": _class_path(spec.model),
        "label": spec.label, "params": spec.params, "seed": spec.seed, "protocol": spec.protocol,
        "ks": list(spec.ks), "config": spec.config(),
        "config_digest": spec.config_digest, "pool_digest": spec.pool_digest,
        "code": code.to_manifest() if code is not None else {"digest": spec.code_digest, "files": None},
        "timeout": dict(spec.timeout), "selection": spec.selection, "data_dir": spec.data_dir,
    }  # fmt: skip


def _class_path(model: str) -> str | None:
    """``module:Qualname`` of the class ``model`` resolves to (None when it
    cannot be imported: the run records why it failed)."""
    from harness.models.registry import class_path, get_model_class

    try:
        return class_path(get_model_class(model))
    except SessionbenchError:
        return None


def planned_code(spec: RunSpec) -> CodeFingerprint:
    """The code fingerprint of ``spec``'s model as it is now, which must be
    the one the suite was planned with: taken from the spec when the files'
    bytes are unchanged, else computed afresh. Raises
    :class:`SessionbenchError` when the code changed since planning (a
    comment or docstring edit is no change)."""
    if spec.code_files and spec.code_bytes_digest == model_bytes_digest(spec.model):
        return CodeFingerprint(tuple(tuple(pair) for pair in spec.code_files))
    code = model_fingerprint(spec.model)
    if code.digest != spec.code_digest:
        raise SessionbenchError(f"source files changed since the suite was planned (code {code.digest[:12]}, "
                                f"planned {spec.code_digest[:12]}); run again")  # fmt: skip
    return code


def _failed(manifest: dict[str, Any], error_line: str, error: str | None = None, **extra: Any) -> dict[str, Any]:
    return {**manifest, "status": FAILED, "finished": _now(), "error": error or error_line + "\n",
            "error_line": error_line, **extra}  # fmt: skip


def execute_run(spec: RunSpec, stage_dir: str | Path, progress: bool = False, watchdog: Watchdog | None = None,
                *, checkpoint_dir: str | Path | None = None, log_file: str | Path | None = None,
                save_model: bool = False) -> None:
    """Fit, evaluate and time one run; write it (complete or failed) into
    the folder ``stage_dir`` (see :func:`harness.run.store.write_run_files`).

    ``checkpoint_dir``: where a model trained by epochs keeps its per-epoch
    checkpoint and resumes from (:meth:`EpochTrainedRecommender.checkpoint_to`);
    ``log_file``: the run's log, stored as ``log.txt``; ``save_model``: store
    the fitted model in ``model/``.

    With a ``watchdog``, ``fit`` and the scoring (evaluation and latency)
    run under the spec's phase limits; past one, the watchdog writes the
    failed run (``timeout after N s in fit``) and ends the process.
    """
    from harness.evaluation.evaluate import evaluate
    from harness.models.registry import make_model
    from harness.data.specs import load_dataset
    from harness.evaluation.timing import model_size, peak_rss_mb, single_session_latency

    manifest = {**base_manifest(spec), "started": _now(), "versions": _versions(), "git_commit": git_commit(),
                "machine": _machine(), "pid": os.getpid()}  # fmt: skip
    if watchdog is not None:
        def on_timeout(phase: str, limit: float) -> None:
            line = f"timeout after {format_seconds(limit)} s in {phase}"
            write_run_files(stage_dir, _failed(manifest, line, f"{line}: the run's process was ended\n",
                                               timeout_phase=phase), log=log_file)  # fmt: skip

        watchdog.on_timeout = on_timeout
    limit = watchdog.phase if watchdog is not None else _no_limit
    try:
        manifest["code"] = planned_code(spec).to_manifest()
        data = load_dataset(spec.dataset, data_dir=spec.data_dir)
        if data.meta.get("cache", {}).get("key") != spec.dataset_key:
            raise SessionbenchError(f"dataset {spec.dataset_name!r} changed since the suite was expanded; run again")
        if spec.stage == "tune":
            data = data.validation_view()
        model = make_model(spec.model, spec.params, source=f"run {spec.display}")
        if checkpoint_dir is not None and hasattr(model, "checkpoint_to"):
            model.checkpoint_to(checkpoint_dir)
        log.info("run %s: fitting %s on %s (seed %d)", spec.run_id, spec.label, spec.dataset_name, spec.seed)
        with limit("fit", spec.timeout.get("fit")):
            model.fit(data, seed=spec.seed)
        with limit("score", spec.timeout.get("score")):
            result = evaluate(model, data, protocol=spec.protocol, ks=spec.ks, batch_size=spec.batch_size,
                              exclude_seen=spec.exclude_seen, progress=progress, top_k=spec.top_width)  # fmt: skip
            # a run resumed from a checkpoint: its fit time includes the interrupted process's, up to it
            timings = {"fit_seconds": model.fit_seconds_ + model.fit_seconds_before(), **result.timings}
            if getattr(model, "resumed_", None):
                manifest["resumed"] = dict(model.resumed_)
            if spec.stage == "test":
                timings.update(single_session_latency(model, data.prefixes("test"), n_samples=spec.latency["samples"],
                                                      warmup=spec.latency["warmup"], seed=spec.seed))  # fmt: skip
        result.meta.update({"run_id": spec.run_id, "label": spec.label, "seed": spec.seed})
        timings.update({"peak_rss_mb": peak_rss_mb(), "model_size": model_size(model)})
        timings.update(getattr(model, "timings_", None) or {})  # a model's own (full-softmax models: softmax_gflops)
        if spec.retrieval and spec.stage == "test":
            from harness.evaluation.retrieval import evaluate_settings

            with limit("score", spec.timeout.get("score")):
                manifest["retrieval"] = evaluate_settings(model, data, spec.retrieval, protocol=spec.protocol,
                                                          ks=spec.ks, batch_size=spec.batch_size,
                                                          exclude_seen=spec.exclude_seen,
                                                          top_k=spec.retrieval_depth)  # fmt: skip
        manifest.update({
            "status": COMPLETE, "finished": _now(), "timings": timings, "metrics": result.metrics(sorted({*spec.ks, 20})),
            "cases": result.n_cases, "trains_by_epoch": type(model).trains_by_epoch,
            "best_epoch": getattr(model, "best_epoch_", None), "dataset_stats": data.stats(),
        })  # fmt: skip
        log.info("run %s: complete, MRR@20 %.4f", spec.run_id, manifest["metrics"].get("MRR@20", float("nan")))
        write_run_files(stage_dir, manifest, evaluation=result, curve=getattr(model, "training_curve_", None),
                        log=log_file, model=model if save_model else None)
    except Exception as err:  # the run fails, the suite goes on
        log.error("run %s failed: %s: %s", spec.run_id, type(err).__name__, err)
        write_run_files(stage_dir, _failed(manifest, f"{type(err).__name__}: {err}", traceback.format_exc()),
                        log=log_file)


class _no_limit:
    """``with _no_limit(phase, seconds):`` runs the block without a limit."""

    def __init__(self, phase: str, limit: float | None) -> None:
        pass

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _worker(spec_dict: dict[str, Any], stage_dir: str, progress: bool, parent_pid: int,
            checkpoint_dir: str | None = None, save_model: bool = False, log_level: int = logging.WARNING) -> None:
    """A run in a worker process that dies with ``parent_pid`` and keeps the
    spec's phase limits (in the runner's own process: neither). Its log goes
    to ``<stage_dir>.log`` (stored as the run's ``log.txt``) and, from
    ``log_level`` up (the CLI's ``-v``), to stderr."""
    from harness.logs import configure_cli, run_log_file

    watchdog = None
    if os.getpid() != parent_pid:
        die_with_parent(parent_pid)
        configure_cli(max(0, (logging.WARNING - log_level) // 10))
        # Ctrl-C reaches the whole process group: the runner, which stops its
        # workers, handles it; a worker's own KeyboardInterrupt would only
        # print a traceback while it is being stopped
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _thread_lock_for_progress_bars()
        watchdog = Watchdog(lambda phase, limit: None, parent_pid=parent_pid)
    spec = RunSpec(**{**spec_dict, "ks": tuple(spec_dict["ks"])})
    log_file = f"{stage_dir}.log"
    with run_log_file(log_file, stderr_level=log_level):
        execute_run(spec, stage_dir, progress, watchdog, checkpoint_dir=checkpoint_dir, log_file=log_file,
                    save_model=save_model)


def _thread_lock_for_progress_bars() -> None:
    """Give tqdm a thread lock in a worker process: by default its first bar
    creates a multiprocessing lock (a named semaphore), which a worker ended
    by Ctrl-C or by the runner never releases, so Python's resource tracker
    warned of a leaked semaphore at exit. A worker's bars write to its own
    stderr only and need no lock shared between processes."""
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


# --------------------------------------------------------------------------- #
# executors
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Task:
    """One run for an executor: call ``fn(*args)`` somewhere."""

    run_id: str
    fn: Callable[..., None]
    args: tuple
    limit_s: float | None = None  # wall-clock seconds after which the executor may end the task
    stage_dir: str | None = None  # the folder the task writes its run into (one of ``args``)
    gpu: bool = False  # the run would use a CUDA device (model ``uses_gpu``, device not "cpu")


#: how long a worker may take beyond its fit and score limits (loading data,
#: writing) before the executor ends it: the backstop for a model that keeps
#: its worker's watchdog thread from running
LIMIT_MARGIN_S = 300.0


def wants_gpu(spec: RunSpec) -> bool:
    """Whether a run would use a CUDA device: its model declares
    ``uses_gpu`` and its ``device`` parameter (if any) is not ``"cpu"``."""
    from harness.models.registry import get_model_class

    try:
        cls = get_model_class(spec.model)
    except SessionbenchError:
        return False
    return bool(getattr(cls, "uses_gpu", False)) and str(spec.params.get("device", "auto")) != "cpu"


class Executor(Protocol):
    """Runs tasks and reports each one's end. ``on_done(task, exitcode)``
    is called in the calling process with the exit status of the task's
    process (negative: killed by that signal; 0 for a task run in-process;
    :data:`~harness.run.watchdog.EXIT_TIMEOUT` when the executor ended it after
    ``task.limit_s``)."""

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
                while pending and len(running) < self.jobs and (task := self._next(pending)) is not None:
                    proc = self._start(ctx, task)
                    running[proc.sentinel] = (proc, task, time.monotonic())
                for sentinel in mp.connection.wait(list(running), timeout=1.0):
                    proc, task, _ = running.pop(sentinel)
                    proc.join()
                    self._release(task)
                    on_done(task, proc.exitcode)
                for sentinel, (proc, task, started) in list(running.items()):
                    if task.limit_s is not None and time.monotonic() - started > task.limit_s:
                        proc.kill()
                        proc.join()
                        del running[sentinel]
                        self._release(task)
                        on_done(task, EXIT_TIMEOUT)
        finally:  # Ctrl-C or an error here: stop the workers; stored runs stay
            for proc, _, _ in running.values():
                proc.terminate()
            for proc, _, _ in running.values():
                proc.join()


    def _next(self, pending: list[Task]) -> Task | None:
        """Take the next task that may start now (None: none may)."""
        return pending.pop(0)

    def _start(self, ctx: Any, task: Task) -> Any:
        """Start the task's process."""
        proc = ctx.Process(target=task.fn, args=task.args, name=f"sessionbench-{task.run_id}")
        proc.start()
        return proc

    def _release(self, task: Task) -> None:
        """The task's process has ended (subclasses free what it held)."""


class InlineExecutor:
    """Runs tasks one after another in this process (debugging, tests);
    phase time limits are not enforced here."""

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
    kept: list[str] = field(default_factory=list)  # failed redos whose previous complete run stays
    report: Any = None


class OnlyFilter:
    """``--only`` patterns: each is matched literally (run id,
    ``dataset/label/seed``, label, or a model entry's label, which takes its
    grid points too) when it equals one of them, else as a glob over run id,
    ``dataset/label/seed`` and label. A pattern that matches no run of the
    suite is a :class:`ConfigError`."""

    def __init__(self, patterns: Iterable[str] | None, suite: Suite, specs: list[RunSpec], stored: Iterable[str] = ()):
        self.patterns = list(patterns or [])
        entry_labels = [m.label for m in suite.models]
        names = {s.dataset: s.dataset_name for s in specs}
        # finals of tuned models are chosen later: their labels and displays are known now
        finals = [(f"{names.get(d.name, d.name)}/{m.label}/{seed}", m.label)
                  for d in suite.datasets for m in suite.models if m.grid or m.tune for seed in m.seeds]  # fmt: skip
        keys = {k for s in specs for k in self._keys(s)} | {k for pair in finals for k in pair} | set(entry_labels)
        keys |= set(stored)
        self.literal = {p for p in self.patterns if p in keys}
        for p in self.patterns:
            if p not in self.literal and not any(fnmatch.fnmatchcase(k, p) for k in keys):
                labels = list(dict.fromkeys([*entry_labels, *(s.label for s in specs)]))
                shown = ", ".join(labels[:8]) + (", ..." if len(labels) > 8 else "")
                raise ConfigError(f"--only {p!r} matches no run of suite {suite.name!r}; labels: {shown} "
                                  "(also run ids and dataset/label/seed; globs allowed)")  # fmt: skip

    @staticmethod
    def _keys(spec: RunSpec) -> tuple[str, ...]:
        return spec.run_id, spec.display, spec.label

    def __call__(self, spec: RunSpec) -> bool:
        if not self.patterns:
            return True
        keys = self._keys(spec)
        for p in self.patterns:
            if p in self.literal:
                if p in keys or spec.label.startswith(p + "["):
                    return True
            elif any(fnmatch.fnmatchcase(k, p) for k in keys):
                return True
        return False


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
    timeout: dict[str, float] | None = None,
    echo: Callable[[str], None] = lambda line: None,
    save_models: bool = False,
) -> SuiteOutcome:
    """Run every missing run of ``suite`` and (by default) write its report.

    ``save_models``: store each run's fitted model in ``model/`` of its folder.
    A run killed during training leaves its per-epoch checkpoint in
    ``runs/.ckpt-<run_id>/``; the next call resumes it from there.

    Output goes to ``out_dir`` (default ``reports/<suite name>``), locked
    for the whole call (:class:`harness.run.lock.OutputLock`; a live owner is a
    :class:`harness.run.lock.LockedError`). Datasets are prepared first, in this
    process, so a missing file stops the suite before any run starts. Then
    ``OUT/plan.json`` is written, the runs are executed (tune stage, then
    the chosen finals of tuned models, recorded in the plan). ``timeout``
    (phase -> seconds) is the limit of runs the suite gives none.
    """
    out = Path(out_dir) if out_dir is not None else paths.reports_dir(suite.name)
    if data_dir is not None:
        suite = replace(suite, datasets=tuple(replace(d, data_dir=data_dir) for d in suite.datasets))
    created = [folder for folder in (out, *out.parents) if not folder.exists()]
    try:
        with OutputLock(out) as lock:
            if lock.stale is not None:
                echo(f"took over the stale lock of {describe(lock.stale)}: that process is gone")
            return _run_locked(suite, out, jobs, force, only, executor, progress, report, timeout, echo,
                               save_models)
    except (SessionbenchError, KeyboardInterrupt):
        # bad input, or Ctrl-C / SIGTERM, before anything was written: leave no empty OUT behind
        _remove_empty(created)
        raise


def _remove_empty(folders: list[Path]) -> None:
    """Remove each of ``folders`` (deepest first) while it is empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (something was written), or gone
            return


def _run_locked(suite, out, jobs, force, only, executor, progress, report, timeout, echo,
                save_models=False) -> SuiteOutcome:
    from harness.evaluation.evaluate import check_ks
    from harness.evaluation.metrics import parse_metric_key
    from harness.data.specs import load_dataset

    outcome = SuiteOutcome(out_dir=out)
    clean_temporary(out)
    datasets = {}
    for position, entry in enumerate(suite.datasets):
        try:
            data = load_dataset(entry.name, data_dir=entry.data_dir)
        except UnknownNameError as err:  # name the suite's key, as for an unknown model
            raise UnknownNameError(f"{suite.path or 'suite'}: key datasets[{position}]: {err}") from None
        _check_distinct_dataset(suite, datasets, entry.name, data)
        check_ks(suite.ks, data, f"{suite.path or 'suite'}: key 'ks'")
        for i, model in enumerate(suite.models):
            if model.tune is not None:  # an objective's K may lie outside ks
                check_ks([parse_metric_key(model.tune.metric)[1]], data,
                         f"{suite.path or 'suite'}: key 'models[{i}].tune.metric'")
        datasets[entry.name] = (data.name, data.meta["cache"]["key"])
    executor = executor or LocalProcessExecutor(jobs)
    show = progress and jobs == 1

    def stage_one(model: ModelEntry) -> str:
        return "tune" if model.grid else "test"

    # tuned models have no fixed-parameter runs: their trials come from their studies
    first = [s for s in expand(suite, datasets, stage_of=stage_one, timeout=timeout)
             if s.label not in {m.label for m in suite.models if m.tune is not None}]  # fmt: skip
    stored = [p.name for p in runs_dir(out).iterdir()] if runs_dir(out).is_dir() else []
    wanted = OnlyFilter(only, suite, first, stored)
    plan = Plan(suite_name=suite.name, suite_text=suite.text, suite=resolved_suite(suite, datasets, timeout),
                run_ids=tuple(s.run_id for s in first))  # fmt: skip
    write_plan(out, plan)
    _execute([s for s in first if wanted(s)], out, executor, force, show, outcome, echo, progress,
             save_models=save_models)
    if any(m.tune is not None for m in suite.models):
        from harness.run.tuning import run_tuning

        trials = run_tuning(suite, datasets, out, jobs=jobs, timeout=timeout, wanted=wanted, echo=echo,
                            execute=lambda specs, worker, extra: _execute(specs, out, executor, force, show, outcome,
                                                                          echo, progress, worker, extra))  # fmt: skip
        first = first + trials
        plan = replace(plan, run_ids=plan.run_ids + tuple(s.run_id for s in trials))
        write_plan(out, plan)
    grid_models = [m for m in suite.models if m.grid or m.tune]
    if grid_models:
        finals = _tuned_finals(suite, grid_models, first, out, echo)
        write_plan(out, replace(plan, run_ids=plan.run_ids + tuple(s.run_id for s in finals),
                                selections=tuple(s.selection for s in finals)))  # fmt: skip
        _execute([s for s in finals if wanted(s)], out, executor, force, show, outcome, echo, progress,
                 save_models=save_models)
    _note_stale_checkpoints(out, echo)
    if report and any(True for _ in iter_runs(out)):
        from harness.report import last_report_options, write_report

        options, problem = last_report_options(out)  # as `sessionbench report` last drew it
        if problem is not None:
            log.warning("%s", problem)
        outcome.report = write_report(out, ks=suite.ks, **options)
    return outcome


def _check_distinct_dataset(suite: Suite, datasets: dict[str, tuple[str, str]], entry: str, data: Any) -> None:
    """Refuse a dataset entry whose dataset has the name of an earlier entry's
    (two paths of one spec, or two specs with one ``name``): runs are named and
    reported by dataset name, so they would repeat or mix."""
    key = data.meta["cache"]["key"]
    other = next((e for e, (name, _) in datasets.items() if name == data.name), None)
    if other is None:
        return
    why = ("are the same dataset; list it once" if datasets[other][1] == key else
           "are different datasets with the same name, whose runs and report rows would mix; "
           "give one spec another name")
    raise ConfigError(f"{suite.path or 'suite'}: key 'datasets': {quote(other)} and {quote(entry)} both prepare "
                      f"dataset {data.name!r} and {why}")


def _note_stale_checkpoints(out: Path, echo: Callable[[str], None]) -> None:
    """One line about checkpoints of runs the plan no longer lists (a run
    killed while training, then the code or configuration changed): they
    are never resumed, and can be large."""
    plan = read_plan(out)
    planned = set(plan.run_ids) if plan is not None else set()
    stale = [folder for run_id, folder in iter_checkpoints(out) if run_id not in planned]
    if stale:
        size = sum(folder_bytes(folder) for folder in stale) / 2**20
        echo(f"note   {len(stale)} training checkpoint(s) of runs outside this plan ({size:,.1f} MiB: earlier code "
             f"or configuration, never resumed); `sessionbench runs prune {out} --yes` deletes them")


def resolved_suite(suite: Suite, datasets: dict[str, tuple[str, str]], timeout: dict[str, float] | None) -> dict:
    """The suite as the runner resolved it (for ``plan.json``): datasets
    with their content keys, models with full hyper-parameters, limits and
    code digests, the library versions."""
    return {
        "name": suite.name, "description": suite.description, "path": None if suite.path is None else str(suite.path),
        "datasets": [{"entry": d.name, "data_dir": d.data_dir, "name": datasets[d.name][0], "key": datasets[d.name][1]}
                     for d in suite.datasets],
        "models": [{"name": m.name, "label": m.label, "params": _full_params(m.name, m.params), "grid": m.grid,
                    "seeds": list(m.seeds), "timeout": effective_timeout(suite, m, timeout),
                    "code_digest": model_fingerprint(m.name).digest,
                    "tune": None if m.tune is None else m.tune.to_dict()} for m in suite.models],
        "ks": list(suite.ks), "protocols": list(suite.protocols), "batch_size": suite.batch_size,
        "exclude_seen": suite.exclude_seen, "latency": dict(suite.latency), "runtime": runtime_versions(),
    }  # fmt: skip


def _tuned_finals(suite: Suite, grid_models: list[ModelEntry], specs: list[RunSpec], out: Path,
                  echo: Callable[[str], None]) -> list[RunSpec]:  # fmt: skip
    """For each grid (or tuned) model, dataset and seed: the test runs (one
    per protocol) of the grid point (trial) with the best validation MRR@20
    (a tuned model's objective; ties: the first point in grid or trial
    order), each carrying its ``selection`` record. Waits (no final) while a
    grid point has no stored result."""
    finals = []
    tune = [s for s in specs if s.stage == "tune"]
    for entry in suite.datasets:
        for model in grid_models:
            metric = model.tune.metric if model.tune is not None else SELECTION_METRIC
            sign = -1.0 if model.tune is not None and not model.tune.maximize else 1.0
            for seed in model.seeds:
                points = [s for s in tune if (s.dataset, s.model) == (entry.name, model.name)
                          and (s.seed == seed or model.tune is not None)  # trials use one seed for all finals
                          and s.label.startswith(model.label + "[")]  # fmt: skip
                if not points:
                    continue
                where = f"{points[0].dataset_name}/{model.label}/{seed}"
                candidates, missing = [], 0
                for spec in points:
                    path = run_path(out, spec.run_id)
                    record = load_run(path) if path.is_dir() else None
                    missing += record is None or record.problem is not None
                    value = record.metric(metric) if record and record.complete else None
                    candidates.append({"run_id": spec.run_id, "label": spec.label, "params": spec.params, "value": value})
                if missing:
                    echo(f"wait   {where}: {missing} of {len(points)} grid point(s) not run yet; no final chosen")
                    continue
                scored = [(sign * c["value"], -i) for i, c in enumerate(candidates) if c["value"] is not None]
                if not scored:
                    echo(f"wait   {where}: every grid point failed; no final chosen")
                    continue
                best = points[-max(scored)[1]]
                for protocol in suite.protocols:
                    final = replace(best, label=model.label, stage="test", protocol=protocol, seed=seed,
                                    retrieval=model.retrieval)
                    selection = {"dataset": best.dataset_name, "protocol": protocol, "label": model.label, "seed": seed,
                                 "metric": metric, "split": SELECTION_SPLIT, "candidates": candidates,
                                 "chosen": best.run_id, "params": best.params, "final": final.run_id}  # fmt: skip
                    finals.append(replace(final, selection=selection))
    return finals


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker process gave no exit status"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = str(-exitcode)
        return f"worker process killed by signal {name}"
    if exitcode == EXIT_ORPHANED:
        return f"worker process exited with code {exitcode} (its parent was gone)"
    return f"worker process exited with code {exitcode}"


def _install(spec: RunSpec, stage: Path, out: Path, exitcode: int | None) -> tuple[dict[str, Any], bool]:
    """Store what the worker left in ``stage`` (or a failed run saying how
    its process ended); returns (manifest, whether it was installed)."""
    manifest = read_manifest(stage) if stage.is_dir() else None
    if manifest is None or manifest.get("run_id") != spec.run_id or manifest.get("status") not in (COMPLETE, FAILED):
        limit = _limit(spec)
        if exitcode == EXIT_TIMEOUT and limit is not None:  # ended by the executor's backstop
            line = f"timeout after {format_seconds(limit)} s (the run's fit and score limits plus a margin)"
        else:
            line = _exit_reason(exitcode) if exitcode else "worker process ended without storing the run"
        manifest = _failed(base_manifest(spec), line, f"{line} before storing the run\n", exitcode=exitcode)
        write_run_files(stage, manifest, log=f"{stage}.log")
    Path(f"{stage}.log").unlink(missing_ok=True)
    return manifest, install_run(stage, out)


def _limit(spec: RunSpec) -> float | None:
    """The executor's backstop for a run with both phase limits, else None."""
    if "fit" in spec.timeout and "score" in spec.timeout:
        return spec.timeout["fit"] + spec.timeout["score"] + LIMIT_MARGIN_S
    return None


def _execute(specs, out, executor, force, show_inner, outcome, echo, progress, worker=None, extra=None,
             save_models=False) -> None:
    """Run the specs not already complete through ``executor`` and install
    their folders. Each task calls ``worker`` with ``(spec_dict, stage_dir,
    progress, parent_pid, *extra(spec))``; by default :func:`_worker`, with
    the run's checkpoint folder, ``save_models`` and the log level."""
    from tqdm.auto import tqdm

    outcome.planned.extend(specs)
    todo, skipped, unsaved = [], 0, 0
    for spec in specs:
        path = run_path(out, spec.run_id)
        record = load_run(path) if path.is_dir() else None
        if record is not None and record.complete and not force:
            outcome.skipped.append(spec.run_id)
            skipped += 1
            unsaved += save_models and not (path / MODEL_DIR).is_dir()
            if spec.selection is not None and record.manifest.get("selection") != spec.selection:
                update_manifest(path, selection=spec.selection)
            continue
        if record is not None and record.problem is not None:
            echo(f"redo   {spec.display}: stored run {spec.run_id} is broken ({record.problem})")
        todo.append(spec)
    if skipped:
        echo(f"{skipped} run(s) already complete, skipped (use --force to redo)")
    if unsaved:  # --save-models cannot add a model to a run it does not execute
        echo(f"note   {unsaved} of them have no saved model: --save-models saves the runs it executes; "
             "--force redoes them")
    if not todo:
        return
    base = runs_dir(out)
    base.mkdir(parents=True, exist_ok=True)
    stages = {s.run_id: base / f".tmp-{s.run_id}-{uuid.uuid4().hex[:8]}" for s in todo}
    if worker is None:
        log_level = logging.getLogger("harness").getEffectiveLevel()
        worker = _worker

        def extra(s: RunSpec) -> tuple:
            return (str(checkpoint_path(out, s.run_id)), save_models, log_level)

    tasks = [Task(s.run_id, worker, (asdict(s), str(stages[s.run_id]), show_inner, os.getpid(), *(extra(s) if extra else ())),
                  _limit(s), stage_dir=str(stages[s.run_id]), gpu=wants_gpu(s)) for s in todo]  # fmt: skip
    by_id = {s.run_id: s for s in todo}
    bar = tqdm(total=len(tasks), desc="runs", unit="run", disable=not progress, leave=True)

    def done(task: Task, exitcode: int) -> None:
        spec = by_id[task.run_id]
        manifest, installed = _install(spec, stages[task.run_id], out, exitcode)
        outcome.executed.append(task.run_id)
        if manifest["status"] != COMPLETE and str(manifest.get("error_line")).startswith(PRUNED_PREFIX):
            echo(f"pruned {spec.display}: {manifest['error_line'][len(PRUNED_PREFIX):].strip()}")  # not a failure
        elif manifest["status"] != COMPLETE:
            outcome.failed.append(task.run_id)
            if installed:
                echo(f"FAILED {spec.display}: {manifest.get('error_line', 'no error recorded')}")
            else:
                outcome.kept.append(task.run_id)
                echo(f"FAILED {spec.display}: {manifest.get('error_line', 'no error recorded')}; "
                     f"the previous complete run {task.run_id} is kept")  # fmt: skip
        else:
            shutil.rmtree(checkpoint_path(out, task.run_id), ignore_errors=True)  # nothing left to resume
            record = RunRecord(run_path(out, task.run_id), manifest)
            echo(f"done   {spec.display}: HitRate@20 {record.metric('HitRate@20'):.4f}  "
                 f"MRR@20 {record.metric('MRR@20'):.4f}  fit {manifest['timings']['fit_seconds']:.1f} s")
        bar.update(1)

    try:
        executor.run(tasks, done)
    finally:
        bar.close()
        for stage in stages.values():  # a Ctrl-C leaves unfinished stages behind (checkpoints stay)
            shutil.rmtree(stage, ignore_errors=True)
            Path(f"{stage}.log").unlink(missing_ok=True)

"""Executors beyond the default local process pool: GPU placement and Ray.

Both implement the runner's :class:`harness.run.runner.Executor` interface
(``run(tasks, on_done)``). Tasks from the runner call
``fn(spec_dict, stage_dir, progress, parent_pid, *extra)``; each run is a
fresh process, as with :class:`harness.run.runner.LocalProcessExecutor`.

- :class:`GpuLocalExecutor` (``--gpus 0,1``): local processes; a run whose
  model uses a GPU gets one device to itself (``CUDA_VISIBLE_DEVICES``), at
  most one such run per device at a time.
- :class:`RayExecutor` (``--executor ray [--address A]``): each run is a
  Ray task asking 1 CPU, and 1 GPU when its model uses one. Inside the task
  the run gets its own process (so phase time limits and peak memory work
  as locally) and writes into a folder of the worker's machine; the task
  returns that folder's files, which are written into the runner's staging
  folder and installed by the runner (atomic, as for local runs). A Ray
  worker that dies is retried once; a second death stores the run as failed.

Ray is imported only by :class:`RayExecutor`.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.run.runner import LocalProcessExecutor, Task
from harness.run.watchdog import EXIT_TIMEOUT

log = logging.getLogger(__name__)

#: position of the staging folder and of the parent's pid in a runner task's arguments
STAGE_ARG, PARENT_ARG = 1, 3


def parse_gpus(text: str) -> tuple[int, ...]:
    """``"0,1"`` -> ``(0, 1)``; a :class:`ConfigError` for anything else."""
    try:
        ids = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        ids = ()
    if not ids or min(ids) < 0 or len(set(ids)) != len(ids):
        raise ConfigError(f"--gpus {text}: expected distinct CUDA device numbers such as 0,1")
    return ids


def check_gpus(ids: Sequence[int], text: str | None = None) -> None:
    """Raise a one-line :class:`ConfigError` naming the devices in ``ids``
    that this machine does not have (as torch sees it)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    missing = [i for i in ids if i >= count]
    if missing:
        shown = text if text is not None else ",".join(map(str, ids))
        have = f"{count} CUDA device(s)" if count else "no CUDA device"
        raise ConfigError(f"--gpus {shown}: CUDA device(s) {', '.join(map(str, missing))} not found "
                          f"(this machine has {have})")  # fmt: skip


class GpuLocalExecutor(LocalProcessExecutor):
    """Local processes, ``jobs`` at a time, with GPU runs spread over
    ``gpus``: each gets ``CUDA_VISIBLE_DEVICES`` set to one free device
    and waits while every device is busy; CPU runs see no device."""

    def __init__(self, jobs: int = 1, gpus: Sequence[int] = ()) -> None:
        super().__init__(jobs)
        self.gpus = tuple(gpus)
        self._free = list(self.gpus)
        self._held: dict[str, int] = {}

    def _next(self, pending: list[Task]) -> Task | None:
        task = next((t for t in pending if not t.gpu or self._free), None)
        if task is not None:
            pending.remove(task)
            if task.gpu:
                self._held[task.run_id] = self._free.pop(0)
        return task

    def _start(self, ctx: Any, task: Task) -> Any:
        # a spawned child reads its environment when it starts: set it around start() only
        device = self._held.get(task.run_id)
        before = os.environ.get("CUDA_VISIBLE_DEVICES")
        os.environ["CUDA_VISIBLE_DEVICES"] = "" if device is None else str(device)
        try:
            return super()._start(ctx, task)
        finally:
            if before is None:
                del os.environ["CUDA_VISIBLE_DEVICES"]
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = before

    def _release(self, task: Task) -> None:
        device = self._held.pop(task.run_id, None)
        if device is not None:
            self._free.append(device)


# --------------------------------------------------------------------------- #
# Ray
# --------------------------------------------------------------------------- #


def _in_child(fn: Callable[..., None], args: tuple, stage_dir: str | None,
              limit_s: float | None = None) -> tuple[int | None, dict[str, bytes]]:  # fmt: skip
    """Body of a Ray task: run ``fn(*args)`` in a fresh process whose run
    folder is local to this worker; return its exit status and the
    folder's files (name -> bytes). A process still running after
    ``limit_s`` seconds (the task's backstop) is killed: status
    :data:`~harness.run.watchdog.EXIT_TIMEOUT`."""
    local = tempfile.mkdtemp(prefix="sessionbench-ray-")
    try:
        args = list(args)
        if stage_dir is not None:
            args[STAGE_ARG] = os.path.join(local, "run")
            args[PARENT_ARG] = os.getpid()  # the child dies with this worker, not with the remote driver
        proc = mp.get_context("spawn").Process(target=fn, args=tuple(args))
        proc.start()
        proc.join(limit_s)
        exitcode = proc.exitcode
        if exitcode is None:  # past the backstop
            proc.kill()
            proc.join()
            exitcode = EXIT_TIMEOUT
        files = {}
        if stage_dir is not None and os.path.isdir(args[STAGE_ARG]):
            for path in sorted(Path(args[STAGE_ARG]).iterdir()):
                if path.is_file():
                    files[path.name] = path.read_bytes()
        return exitcode, files
    finally:
        shutil.rmtree(local, ignore_errors=True)


#: with "0", Ray treats the machine as a single node and binds to 127.0.0.1
RAY_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class RayExecutor:
    """Runs tasks as Ray tasks (see the module docstring).

    ``address``: a running cluster (``ray.init(address=...)``); None starts
    a local Ray instance on loopback, without the dashboard, unless Ray is
    already initialised in this process. ``gpus``: the devices a local
    instance may use. ``retries``: how often a task whose worker died is
    run again.
    """

    def __init__(self, address: str | None = None, gpus: Sequence[int] | None = None, retries: int = 1) -> None:
        self.address = address
        self.gpus = None if gpus is None else tuple(gpus)
        self.retries = int(retries)

    def _connect(self) -> Any:
        if self.address is None:
            # Ray picks the machine's network address for a local instance
            # unless told it is a single-machine set-up; this keeps every
            # socket of the local instance on loopback (read at import time).
            os.environ.setdefault(RAY_LOOPBACK_ENV, "0")
        try:
            import ray
        except ImportError:
            raise ConfigError("--executor ray needs Ray: pip install 'sessionbench[ray]'") from None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is not None:
                kwargs["address"] = self.address
            else:
                kwargs["_node_ip_address"] = "127.0.0.1"
                if self.gpus is not None:
                    kwargs["num_gpus"] = len(self.gpus)
                    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.gpus))
            ray.init(**kwargs)
        return ray

    def run(self, tasks: list[Task], on_done: Callable[[Task, int], None]) -> None:
        ray = self._connect()
        gpus_there = ray.cluster_resources().get("GPU", 0) > 0
        remote = ray.remote(_in_child)
        running = {}
        for task in tasks:
            options = {"num_cpus": 1, "num_gpus": 1 if task.gpu and gpus_there else 0, "max_retries": self.retries,
                       "retry_exceptions": False, "name": f"sessionbench-{task.run_id}"}  # fmt: skip
            running[remote.options(**options).remote(task.fn, task.args, task.stage_dir, task.limit_s)] = task
        try:
            while running:
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in ready:
                    task = running.pop(ref)
                    on_done(task, self._collect(ray, ref, task))
        finally:  # Ctrl-C or an error: stop what is still running; stored runs stay
            for ref in running:
                ray.cancel(ref, force=True)

    @staticmethod
    def _collect(ray: Any, ref: Any, task: Task) -> int | None:
        """Write the task's returned files into its staging folder; its exit
        status, or None when the task died (retries spent)."""
        try:
            exitcode, files = ray.get(ref)
        except ray.exceptions.RayError as err:
            log.warning("run %s: Ray task failed: %s", task.run_id, str(err).splitlines()[0] if str(err) else err)
            return None
        if task.stage_dir is not None and files:
            stage = Path(task.stage_dir)
            if stage.exists():
                shutil.rmtree(stage)
            stage.mkdir(parents=True)
            for name, data in files.items():
                (stage / name).write_bytes(data)
        return exitcode


def make_executor(kind: str, *, jobs: int = 1, address: str | None = None, gpus: str | None = None) -> Any:
    """The executor of ``--executor``/``--address``/``--gpus`` (None: the
    runner's default local pool). Unknown devices are a :class:`ConfigError`."""
    ids = None if gpus is None else parse_gpus(gpus)
    if kind not in ("local", "ray"):
        raise ConfigError(f"--executor {kind}: expected local or ray")
    if address is not None and kind != "ray":
        raise ConfigError("--address needs --executor ray")
    if ids is not None and (kind == "local" or address is None):
        check_gpus(ids, gpus)
    if kind == "ray":
        return RayExecutor(address=address, gpus=ids)
    return GpuLocalExecutor(jobs, ids) if ids is not None else None

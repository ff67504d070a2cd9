"""The results store: one folder per run, written once, verified when read.

Layout of a suite's output folder::

    <out>/
      plan.json                 the suite last run into this folder: its text,
                                resolved form, expected run ids, tuning choices
      .lock                     held by the one `sessionbench run` writing here
      runs/
        <run_id>/               a finished run (complete or failed)
          manifest.json         config, code fingerprint, status, versions,
                                machine, times, timings, size and SHA-256 of
                                every other file of the folder
          ranks.parquet         per-case ranks and top-K lists (complete runs;
                                the EvaluationResult format of harness.evaluation.evaluate)
          curve.csv             per-epoch training curve (models trained by epoch)
          log.txt               the run's log lines (INFO and above of sessionbench's
                                loggers: epochs, progress, warnings)
          model/                the fitted model (`run --save-models`;
                                SessionRecommender.save's folder)
        .tmp-<run_id>-<token>/  a run being written; never read
        .ckpt-<run_id>/         checkpoints of an unfinished fit, resumed by the
                                next `run`, removed once the run is complete
      report/                   written by `sessionbench report`

A run folder is written under a temporary name and renamed when finished,
so a run is either wholly there or absent. A failed run is stored too (its
manifest has ``status: failed`` and the traceback) so that reports can list
it; the runner retries it next time. A failed attempt never replaces a
complete run (:func:`install_run`). A run counts as complete only when its
manifest says so *and* every file it lists has the recorded size and SHA-256
*and* its ``ranks.parquet`` has the columns and metadata of an evaluation
table (:func:`verify_run`); anything else is *broken* and is redone by the next
``run``. Everything a report shows is computed from these files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.errors import SessionbenchError, quote
from harness.evaluation.evaluate import ID_COLUMNS, EvaluationFormatError, EvaluationResult, schema_problem
from harness.evaluation.metrics import metric_key, parse_metric_key

RUNS_DIR = "runs"
CHECKPOINT_PREFIX = ".ckpt-"  # + run id: the per-epoch checkpoints of an unfinished fit
MANIFEST = "manifest.json"
RANKS = "ranks.parquet"
CURVE = "curve.csv"
LOG = "log.txt"
MODEL_DIR = "model"
PLAN_FILE = "plan.json"
COMPLETE, FAILED, BROKEN = "complete", "failed", "broken"


# --------------------------------------------------------------------------- #
# runs
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class RunRecord:
    """A stored run, as reports see it.

    ``manifest`` keys: ``run_id``, ``status``, ``suite``, ``stage`` (``tune``
    or ``test``), ``dataset`` (name), ``model`` (registry name or
    module:Class), ``label`` (the model configuration's display name, one
    colour per label), ``params`` (resolved hyper-parameters), ``seed``,
    ``protocol``, ``ks`` (the cut-offs of the suite that made the run; not
    part of its identity), ``config`` (the canonical resolved configuration
    the run id covers, without code), ``config_digest`` (SHA-256 of
    ``config``), ``pool_digest`` (SHA-256 of ``config`` without the seed and
    of the code digest: runs that may be averaged over seeds share it),
    ``code`` (``{"digest", "files": [{"path", "sha256"}]}``, the source
    fingerprint), ``files`` (``{name: {"bytes", "sha256"}}`` of the other
    files), ``selection`` (finals chosen by tuning: what was compared),
    ``versions``, ``git_commit``, ``machine``, ``started``, ``finished``,
    ``timings`` (see :mod:`harness.evaluation.timing`), ``metrics`` (summary at the K
    of the suite that made the run, derived; read a metric with
    :meth:`metric`, which computes any other K from the evaluation),
    ``trains_by_epoch``, ``error`` and ``error_line``
    (failed runs only).

    ``problem`` is None for a run that passed verification, else one line
    saying why not (the run is then *broken*; its manifest may be minimal:
    ``{"run_id": <folder name>, "status": "broken"}``).
    """

    path: Path
    manifest: dict[str, Any]
    problem: str | None = None

    @property
    def run_id(self) -> str:
        """The manifest's run id; a broken run's folder name."""
        return self.path.name if self.problem is not None else self.manifest["run_id"]

    @property
    def status(self) -> str:
        """``complete``, ``failed`` or ``broken`` (failed verification)."""
        return BROKEN if self.problem is not None else self.manifest["status"]

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE

    @property
    def config_digest(self) -> str | None:
        """SHA-256 of the resolved configuration (without code); None for old runs."""
        return self.manifest.get("config_digest")

    @property
    def code_digest(self) -> str | None:
        """SHA-256 over the source files that could run; None for old runs."""
        return (self.manifest.get("code") or {}).get("digest")

    @property
    def pool_digest(self) -> str | None:
        """Equal for runs that differ at most in the seed (same config and code)."""
        return self.manifest.get("pool_digest")

    def __getattr__(self, key: str) -> Any:
        # dataset, model, label, seed, protocol, timings, ... straight from the manifest
        try:
            return self.__dict__["manifest"][key]
        except KeyError:
            raise AttributeError(key) from None

    @cached_property
    def evaluation(self) -> EvaluationResult:
        """The per-case results (complete runs only). A ``ranks.parquet``
        that cannot be read as one gives a one-line :class:`SessionbenchError`
        naming the run and the file; :func:`verify_run` has already marked
        most such runs broken from the file's schema and statistics."""
        try:
            return EvaluationResult.load(self.path / RANKS)
        except EvaluationFormatError as err:
            raise SessionbenchError(f"run {self.run_id}: {err}") from None

    def metric(self, key: str) -> float:
        """The value of metric ``key`` (``NAME@K``, e.g. ``MRR@20``) of this
        complete run: what every reader (tuning, selection of finals,
        reports) takes a run's metric from.

        A run is reused by suites of other ``ks`` than the one that made
        it, so its manifest's ``metrics`` summary may lack the K asked for;
        the value then comes from the stored evaluation: rank metrics at
        any K, Coverage and Popularity at K up to the stored top-list width
        (``evaluation.top_k``). Raises :class:`SessionbenchError` for a run
        that is not complete, a key that is not ``NAME@K``, or a list metric
        wider than the stored lists.
        """
        try:
            spec, k = parse_metric_key(key)
        except ValueError as err:
            raise SessionbenchError(str(err)) from None
        key = metric_key(spec.name, k)
        stored = (self.manifest.get("metrics") or {}).get(key)
        if stored is not None:
            return float(stored)
        if not self.complete:
            raise SessionbenchError(f"run {self.run_id} is {self.status}: it has no {key}")
        ev = self.evaluation
        if spec.kind != "rank" and k > ev.top_k:
            raise SessionbenchError(f"run {self.run_id}: {key} needs top lists of {k} items, but the run stored "
                                    f"{ev.top_k} per case; add {k} to the suite's ks to run it with wider lists")
        return ev.metrics([k], names=[spec.name])[key]

    def curve(self) -> pd.DataFrame | None:
        """The training curve (one row per epoch), or None."""
        path = self.path / CURVE
        return pd.read_csv(path) if path.is_file() else None


def runs_dir(out_dir: str | Path) -> Path:
    """``<out_dir>/runs``."""
    return Path(out_dir) / RUNS_DIR


def run_path(out_dir: str | Path, run_id: str) -> Path:
    """``<out_dir>/runs/<run_id>``."""
    return runs_dir(out_dir) / run_id


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of a run folder, or None when absent or unreadable."""
    manifest, _ = _load_manifest(Path(path))
    return manifest


def _load_manifest(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(manifest, None) or (None, one-line reason)."""
    file = path / MANIFEST
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, f"{MANIFEST} missing"
    except (OSError, UnicodeDecodeError) as err:
        return None, f"{MANIFEST}: unreadable ({type(err).__name__}: {err})"
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"{MANIFEST}: invalid JSON (line {err.lineno}, column {err.colno})"
    if not isinstance(manifest, dict):
        return None, f"{MANIFEST}: expected a JSON object, got {type(manifest).__name__}"
    return manifest, None


def verify_run(path: str | Path) -> str | None:
    """None when the run folder at ``path`` is intact, else one line saying why not.

    Intact: a readable manifest with ``run_id`` equal to the folder name and
    a ``status``; every file of ``manifest["files"]`` present with the
    recorded size and SHA-256; a complete run records ``ranks.parquet``,
    whose footer holds an evaluation table's schema metadata and columns and
    no null case ids (:func:`_ranks_problem`).
    """
    path = Path(path)
    manifest, problem = _load_manifest(path)
    if problem is not None:
        return problem
    for key in ("run_id", "status"):
        if key not in manifest:
            return f"{MANIFEST}: key {key!r} missing"
    if manifest["run_id"] != path.name:
        return f"{MANIFEST}: run_id {manifest['run_id']!r} differs from the folder name"
    if manifest["status"] not in (COMPLETE, FAILED):
        return f"{MANIFEST}: status {manifest['status']!r}, expected {COMPLETE!r} or {FAILED!r}"
    problem = _manifest_type_problem(manifest)
    if problem is not None:
        return problem
    files = manifest.get("files")
    if not isinstance(files, dict):
        return f"{MANIFEST}: no file sizes and checksums recorded (key 'files')"
    if manifest["status"] == COMPLETE and RANKS not in files:
        return f"{MANIFEST}: a complete run must record {RANKS}"
    for name, want in sorted(files.items()):
        problem = _check_file(path / name, name, want)
        if problem is not None:
            return problem
    if manifest["status"] == COMPLETE:
        return _ranks_problem(path / RANKS)
    return None


_RANKS_CACHE: dict[tuple[str, int, int, int], str | None] = {}


def _ranks_problem(file: Path) -> str | None:
    """None when ``ranks.parquet`` has an evaluation table's metadata and
    columns and its statistics record no null ids, else one line. The
    checksums only say the file is the one recorded: a hand-edited file
    recorded with its new checksum (a column dropped, ids nulled) passed
    them, and the report then failed on it. Reads the Parquet footer only;
    cached like the checksums."""
    key = _file_key(file)
    if key not in _RANKS_CACHE:
        _RANKS_CACHE[key] = _read_ranks_problem(file)
    return _RANKS_CACHE[key]


def _read_ranks_problem(file: Path) -> str | None:
    try:
        with pq.ParquetFile(file) as parquet:
            problem = schema_problem(parquet.schema_arrow)
            footer = parquet.metadata
    except (OSError, pa.ArrowException) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return f"{RANKS}: not a readable Parquet file ({quote(first, 120)})"
    if problem is not None:
        return f"{RANKS}: {problem}"
    for group in range(footer.num_row_groups):
        row_group = footer.row_group(group)
        for column in range(row_group.num_columns):
            chunk = row_group.column(column)
            stats = chunk.statistics
            # a writer may leave statistics out; EvaluationResult.from_table still refuses the nulls
            if chunk.path_in_schema in ID_COLUMNS and stats is not None and stats.has_null_count and stats.null_count:
                return f"{RANKS}: column {chunk.path_in_schema!r} holds null values, expected none"
    return None


#: the manifest keys that listings, reports and comparisons read, and the type each must have where present
_MANIFEST_TYPES: dict[str, tuple[type, str]] = {
    **{key: (str, "a string") for key in ("run_id", "suite", "stage", "dataset", "model", "label", "protocol",
                                          "config_digest")},
    "seed": (int, "an integer"),
    "ks": (list, "a list of integers"),
    "params": (dict, "an object"),
    "metrics": (dict, "an object"),
}


def _manifest_type_problem(manifest: dict[str, Any]) -> str | None:
    """One line about the first key of a (hand-edited or foreign) manifest
    with the wrong type, else None; the files' checksums do not cover the
    manifest itself."""
    for key, (kind, expected) in _MANIFEST_TYPES.items():
        value = manifest.get(key)
        if value is None:
            continue
        wrong = not isinstance(value, kind) or isinstance(value, bool)
        if key == "ks" and not wrong:
            wrong = any(not isinstance(k, int) or isinstance(k, bool) for k in value)
        if wrong:
            return f"{MANIFEST}: key {key!r}: expected {expected}, got {type(value).__name__} {quote(value, 60)}"
    return None


def _check_file(file: Path, name: str, want: Any) -> str | None:
    if not isinstance(want, dict) or not isinstance(want.get("bytes"), int) or not isinstance(want.get("sha256"), str):
        return f"{MANIFEST}: files.{name}: expected {{bytes, sha256}}"
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        return f"{name} missing"
    if size != want["bytes"]:
        return f"{name}: {size:,} bytes, manifest records {want['bytes']:,}"
    if file_sha256(file) != want["sha256"]:
        return f"{name}: SHA-256 differs from the manifest's"
    return None


_SHA_CACHE: dict[tuple[str, int, int, int], str] = {}


def _file_key(file: Path) -> tuple[str, int, int, int]:
    """What a per-process cache of a file's content keys on: its path, size,
    modification time and inode (any rewrite changes one of them)."""
    st = file.stat()
    return str(file), st.st_size, st.st_mtime_ns, st.st_ino


def file_sha256(file: Path) -> str:
    """The SHA-256 of a file (hex); cached per process (:func:`_file_key`)."""
    key = _file_key(file)
    digest = _SHA_CACHE.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digest = _SHA_CACHE[key] = h.hexdigest()
    return digest


def load_run(path: str | Path) -> RunRecord:
    """The run folder at ``path``, verified (``problem`` set when it fails)."""
    path = Path(path)
    problem = verify_run(path)
    manifest = read_manifest(path)
    if manifest is None or not isinstance(manifest.get("run_id"), str) or "status" not in manifest:
        manifest = {"run_id": path.name, "status": BROKEN}
    return RunRecord(path, manifest, problem)


def is_complete(out_dir: str | Path, run_id: str) -> bool:
    """True when the run's folder exists, is complete and passes verification."""
    path = run_path(out_dir, run_id)
    return path.is_dir() and load_run(path).complete


def iter_runs(
    out_dir: str | Path, *, include_failed: bool = False, include_broken: bool = False
) -> Iterator[RunRecord]:
    """The stored runs (sorted by run id): complete ones, and with the flags
    the failed ones and the *broken* ones (folders that fail
    :func:`verify_run`, e.g. a truncated ``ranks.parquet`` or an unreadable
    manifest; yielded with ``problem`` set)."""
    base = runs_dir(out_dir)
    if not base.is_dir():
        return
    for path in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        record = load_run(path)
        if record.problem is not None:
            if include_broken:
                yield record
        elif record.complete or include_failed:
            yield record


def write_run_files(
    folder: str | Path,
    manifest: dict[str, Any],
    *,
    evaluation: EvaluationResult | None = None,
    curve: list[dict[str, Any]] | None = None,
    log: str | Path | None = None,
    model: Any = None,
) -> Path:
    """Write a run's files into ``folder`` (created; emptied if present),
    the manifest last, with the size and SHA-256 of every other file
    (those in sub-folders too, by their ``/``-separated relative path).

    ``log``: a log file copied in as ``log.txt`` (as it is at this moment);
    ``model``: a fitted model saved into ``model/``."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if evaluation is not None:
        evaluation.save(folder / RANKS)
    if curve:
        pd.DataFrame(curve).to_csv(folder / CURVE, index=False)
    if model is not None:
        model.save(folder / MODEL_DIR)
    if log is not None and Path(log).is_file():
        shutil.copyfile(log, folder / LOG)
    files = {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p != folder / MANIFEST}  # fmt: skip
    manifest = {**manifest, "files": files}
    _write_json(folder / MANIFEST, manifest)
    return folder


def install_run(tmp: str | Path, out_dir: str | Path) -> bool:
    """Move the finished run folder ``tmp`` to ``runs/<run_id>``.

    A failed attempt never replaces a verified complete run of the same id
    (a failing ``--force`` redo leaves the old run untouched): ``tmp`` is then
    removed and False returned. Otherwise the folder is swapped in atomically
    (see :func:`replace_folder`) and True returned.
    """
    tmp = Path(tmp)
    manifest = read_manifest(tmp)
    if manifest is None:
        raise ValueError(f"{tmp}: no readable {MANIFEST}")
    final = run_path(out_dir, manifest["run_id"])
    if manifest.get("status") != COMPLETE and final.is_dir() and load_run(final).complete:
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    replace_folder(tmp, final)
    return True


def write_run(
    out_dir: str | Path,
    manifest: dict[str, Any],
    *,
    evaluation: EvaluationResult | None = None,
    curve: list[dict[str, Any]] | None = None,
) -> Path:
    """Write a run folder atomically (temporary folder, then rename).

    An existing folder of the same run is replaced, except that a failed run
    never replaces a verified complete one (see :func:`install_run`).
    """
    base = runs_dir(out_dir)
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{manifest['run_id']}-{os.getpid()}"
    write_run_files(tmp, manifest, evaluation=evaluation, curve=curve)
    install_run(tmp, out_dir)
    return run_path(out_dir, manifest["run_id"])


def update_manifest(path: str | Path, **fields: Any) -> None:
    """Set top-level manifest fields of a stored run (atomic file replace).
    Only for fields that describe the run's context (e.g. ``selection``),
    never its results: the manifest is not covered by ``files``."""
    path = Path(path)
    manifest = read_manifest(path)
    if manifest is None:
        raise ValueError(f"{path}: no readable {MANIFEST}")
    _write_json(path / MANIFEST, {**manifest, **fields})


def replace_folder(tmp: Path, final: Path) -> None:
    """Move the finished folder ``tmp`` to ``final``, replacing any previous
    one; readers see either the old folder or the new one, never a mix."""
    if final.exists():
        old = final.parent / f".old-{final.name}-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


def clean_temporary(out_dir: str | Path) -> int:
    """Remove leftovers of interrupted writes; returns how many. Call it only
    while holding the output folder's lock (another writer's temporary
    folders would go too)."""
    base = runs_dir(out_dir)
    if not base.is_dir():
        return 0
    stale = [p for p in base.iterdir() if p.is_dir() and p.name.startswith((".tmp-", ".old-"))]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    for path in base.glob(".tmp-*.log"):  # a worker's log whose runner was ended
        path.unlink(missing_ok=True)
    return len(stale)


def checkpoint_path(out_dir: str | Path, run_id: str) -> Path:
    """The folder of a run's training checkpoints, beside the run folders."""
    return runs_dir(out_dir) / f"{CHECKPOINT_PREFIX}{run_id}"


def iter_checkpoints(out_dir: str | Path) -> Iterator[tuple[str, Path]]:
    """``(run_id, folder)`` of every checkpoint folder left by an unfinished
    fit (sorted by run id): a run killed while training, resumed by the next
    ``run`` whose plan holds that id."""
    base = runs_dir(out_dir)
    if not base.is_dir():
        return
    for path in sorted(base.glob(CHECKPOINT_PREFIX + "*")):
        if path.is_dir():
            yield path.name[len(CHECKPOINT_PREFIX):], path


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def remove_checkpoint(out_dir: str | Path, run_id: str) -> None:
    """Delete a run's checkpoint folder, if any."""
    folder = checkpoint_path(out_dir, run_id)
    if folder.is_dir():
        _remove_folder(folder)


def remove_run(out_dir: str | Path, run_id: str) -> None:
    """Delete a stored run folder."""
    _remove_folder(run_path(out_dir, run_id))


def _remove_folder(folder: Path) -> None:
    """Rename ``folder`` away first, so it vanishes at once (a leftover of an
    interrupted delete is an ``.old-`` folder, which :func:`clean_temporary`
    removes), then delete it."""
    gone = folder.parent / f".old-{folder.name}-{os.getpid()}"
    folder.rename(gone)
    shutil.rmtree(gone, ignore_errors=True)


# --------------------------------------------------------------------------- #
# plans
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Plan:
    """What the last ``sessionbench run`` into an output folder expected.

    ``suite_text``: the suite file's YAML text (or a YAML dump of the suite
    mapping when it came from no file); ``suite``: the resolved suite
    (datasets with content keys, models with full hyper-parameters, seeds,
    ks, protocols, evaluation options); ``run_ids``: every run of the suite,
    tune and test stages (finals of tuned models are added once chosen);
    ``selections``: one entry per (dataset, protocol, model label, seed) of a
    tuned model, with keys ``dataset``, ``protocol``, ``label``, ``seed``,
    ``metric``, ``split``, ``candidates`` (``[{"run_id", "params",
    "value"}]``, value None for a run that did not complete), ``chosen``
    (run id), ``params`` (the chosen grid point's full hyper-parameters) and
    ``final`` (the test run's id). Runs of the folder outside ``run_ids`` are
    superseded (``sessionbench runs prune`` deletes them).
    """

    suite_name: str
    suite_text: str
    suite: dict[str, Any]
    run_ids: tuple[str, ...]
    selections: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def read_plan(out_dir: str | Path) -> Plan | None:
    """The plan of an output folder, or None when it has none.

    Raises ValueError naming the file when ``plan.json`` exists but cannot
    be read as a plan.
    """
    path = Path(out_dir) / PLAN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON (line {err.lineno}, column {err.colno})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 (byte 0x{err.object[err.start]:02x} at offset {err.start})") from None
    problem = _plan_problem(data)
    if problem is not None:  # a run list read from a damaged plan would let `runs prune --yes` delete good runs
        raise ValueError(f"{path}: not a sessionbench plan ({problem})")
    return Plan(suite_name=data["suite_name"], suite_text=data["suite_text"], suite=data["suite"],
                run_ids=tuple(data["run_ids"]), selections=tuple(data.get("selections", ())))  # fmt: skip


def _plan_problem(data: Any) -> str | None:
    """What makes ``data`` (plan.json's content) not a plan, else None."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    expected = {"suite_name": (str, "a string"), "suite_text": (str, "a string"), "suite": (dict, "an object"),
                "run_ids": (list, "a list of run ids"), "selections": (list, "a list of objects")}
    for key, (kind, what) in expected.items():
        if key not in data:
            if key == "selections":
                continue
            return f"key {key!r} missing"
        value = data[key]
        items_ok = {"run_ids": str, "selections": dict}.get(key)
        if not isinstance(value, kind) or (items_ok and not all(isinstance(v, items_ok) for v in value)):
            return f"key {key!r}: expected {what}, got {type(value).__name__} {quote(value, 60)}"
    return None


def write_plan(out_dir: str | Path, plan: Plan) -> Path:
    """Write ``<out_dir>/plan.json`` atomically (a reader sees the old or the new plan)."""
    path = Path(out_dir) / PLAN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(plan)
    data["run_ids"], data["selections"] = list(plan.run_ids), list(plan.selections)
    _write_json(path, data)
    return path


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def _write_json(path: Path, data: Any) -> None:
    """Write JSON to a sibling temporary file, then rename over ``path``."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "numerator") and hasattr(value, "denominator"):
        return f"{value.numerator}/{value.denominator}"
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

"""Which stored runs a report shows, and why the others are left out.

A results folder can hold more than its current suite: runs of an older
version of the suite, runs that failed, runs whose files no longer match
their manifest. :func:`select_runs` sorts them:

- with a plan (``plan.json``, written by ``sessionbench run``): exactly the
  runs the plan lists are shown; any other complete run of the folder is
  *superseded / not in the plan*, listed by run id and label, never pooled;
- runs of stage ``tune`` (grid points scored on the validation split) are
  *tuning* runs: they never enter the test tables and figures; the report
  gives them a tuning section per model (the grid, each point's validation
  score, the chosen configuration);
- runs failing verification (:func:`harness.run.store.verify_run`) and failed
  runs are listed one line each;
- pooling: the seeds of one label are averaged only when they share the
  configuration (apart from the seed) and the code; two runs of one label
  in one (dataset, protocol) that differ is an error (:class:`ReportError`)
  naming both runs. Folders without a plan (older output) follow the same
  rule.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import SessionbenchError
from harness.run.store import COMPLETE, RANKS, Plan, RunRecord, iter_runs, read_manifest, read_plan


class ReportError(SessionbenchError):
    """The stored runs cannot be reported as they are (e.g. two configurations under one label)."""


@dataclass(frozen=True)
class Candidate:
    """One grid point of a tuning: its run, hyper-parameters and validation score (None: not complete)."""

    run_id: str
    params: dict[str, Any]
    value: float | None


@dataclass(frozen=True)
class Tuning:
    """How one model label was tuned on one dataset, protocol and seed."""

    dataset: str
    protocol: str
    label: str
    seed: Any
    metric: str
    candidates: tuple[Candidate, ...]
    chosen: str | None  # run id of the chosen grid point
    params: dict[str, Any]  # the chosen hyper-parameters
    final: str | None  # run id of the test run

    @property
    def grid_keys(self) -> list[str]:
        """The hyper-parameters the grid varied (all of them when it has one point)."""
        keys = sorted({k for c in self.candidates for k in c.params} | set(self.params))
        varied = [k for k in keys if len({repr(c.params.get(k)) for c in self.candidates}) > 1]
        return varied or keys

    def grid_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` restricted to :attr:`grid_keys` (what tables show of a grid point)."""
        return {k: params.get(k) for k in self.grid_keys if k in params}


@dataclass
class Selection:
    """The runs of a results folder, sorted for the report.

    Attributes:
        test: complete, verified runs of stage ``test`` that the report shows.
        tune: complete, verified grid-point runs (stage ``tune``).
        superseded: ``(run_id, label, stage)`` of complete runs outside the plan.
        failed: ``(run_id, label, last error line)`` of failed runs (in the plan, when there is one).
        broken: ``(run_id, problem)`` of runs failing verification.
        missing: run ids the plan lists that the folder lacks.
        unverified: run ids of complete runs written before the store recorded
            checksums (older output): shown, and listed as unverified.
        tunings: one :class:`Tuning` per tuned (dataset, protocol, label, seed).
        plan: the folder's plan, or None (older output).
        style: the suite's ``style:`` map (from the plan's suite text), or {}.
    """

    test: list[RunRecord] = field(default_factory=list)
    tune: list[RunRecord] = field(default_factory=list)
    superseded: list[tuple[str, str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    broken: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    tunings: list[Tuning] = field(default_factory=list)
    plan: Plan | None = None
    style: dict[str, dict[str, str]] = field(default_factory=dict)


def label_of(record: RunRecord) -> str:
    """The display label of a run (its model name, or run id, when the manifest has none)."""
    man = record.manifest
    return str(man.get("label") or man.get("model") or record.run_id)


def stage_of(record: RunRecord) -> str:
    return str(record.manifest.get("stage") or "test")


def _last_line(text: Any) -> str:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "(no error recorded)"


def select_runs(out_dir: str | Path) -> Selection:
    """Sort the runs of ``out_dir`` (see the module docstring); raises
    :class:`ReportError` for an unreadable plan or runs that must not be pooled."""
    try:
        plan = read_plan(out_dir)
    except ValueError as err:
        raise ReportError(str(err)) from None
    sel = Selection(plan=plan)
    in_plan = set(plan.run_ids) if plan is not None else None
    seen: set[str] = set()
    for record in iter_runs(out_dir, include_failed=True, include_broken=True):
        seen.add(record.run_id)
        if record.problem is not None:
            legacy = _legacy_record(record)
            if legacy is None:
                sel.broken.append((record.run_id, record.problem))
                continue
            sel.unverified.append(record.run_id)
            record = legacy
        if in_plan is not None and record.run_id not in in_plan:
            if record.complete:
                sel.superseded.append((record.run_id, label_of(record), stage_of(record)))
            continue
        if not record.complete:
            error = record.manifest.get("error_line") or _last_line(record.manifest.get("error"))
            sel.failed.append((record.run_id, label_of(record), str(error)))
        elif stage_of(record) == "tune":
            sel.tune.append(record)
        else:
            sel.test.append(record)
    if plan is not None:
        sel.missing = [rid for rid in plan.run_ids if rid not in seen]
        sel.style = _style_map(plan)
        sel.tunings = [_tuning_from_selection(s) for s in plan.selections]
    else:
        sel.tunings = _tunings_without_plan(sel.test, sel.tune)
    check_pooling(sel.test)
    return sel


def _legacy_record(record: RunRecord) -> RunRecord | None:
    """A complete run of older output, written before manifests recorded file
    checksums (no ``files`` key, ranks present): usable, though unverifiable."""
    man = read_manifest(record.path)
    if (man is None or "files" in man or man.get("status") != COMPLETE or man.get("run_id") != record.path.name
            or not (record.path / RANKS).is_file()):
        return None
    return RunRecord(record.path, man)


def _style_map(plan: Plan) -> dict[str, dict[str, str]]:
    from harness.report.styles import validate_style_map

    try:
        data = yaml.safe_load(plan.suite_text) if plan.suite_text else None
    except yaml.YAMLError:
        return {}
    if not isinstance(data, dict) or "style" not in data:
        return {}
    return validate_style_map(data["style"], f"suite {plan.suite_name!r} (plan.json)")


def _tuning_from_selection(s: dict[str, Any]) -> Tuning:
    cands = tuple(
        Candidate(str(c.get("run_id")), dict(c.get("params") or {}),
                  None if c.get("value") is None else float(c["value"]))
        for c in s.get("candidates") or ()
    )
    return Tuning(
        dataset=str(s.get("dataset")), protocol=str(s.get("protocol")), label=str(s.get("label")),
        seed=s.get("seed"), metric=str(s.get("metric") or "MRR@20"), candidates=cands,
        chosen=s.get("chosen") or s.get("chosen_run_id"),
        params=dict(s.get("params") or s.get("chosen_params") or {}),
        final=s.get("final") or s.get("final_run_id"),
    )  # fmt: skip


def _tunings_without_plan(test: list[RunRecord], tune: list[RunRecord]) -> list[Tuning]:
    """Older folders: a test run's ``manifest["selection"]`` when present, else the
    tune runs named ``<label>[...]`` of the same dataset and seed, scored by
    their validation MRR@20."""
    out = []
    for record in test:
        chosen = record.manifest.get("selection")
        if isinstance(chosen, dict):
            s = {"dataset": record.manifest.get("dataset"), "protocol": record.manifest.get("protocol"),
                 "label": label_of(record), "seed": record.manifest.get("seed"), "final": record.run_id, **chosen}
            out.append(_tuning_from_selection(s))
            continue
        label = label_of(record)
        points = [t for t in tune if label_of(t).startswith(label + "[")
                  and t.manifest.get("dataset") == record.manifest.get("dataset")
                  and t.manifest.get("seed") == record.manifest.get("seed")]
        if not points:
            continue
        cands = tuple(Candidate(t.run_id, dict(t.manifest.get("params") or {}), t.metric("MRR@20")) for t in points)
        params = dict(record.manifest.get("params") or {})
        chosen = next((c.run_id for c in cands if c.params == params), None)
        out.append(Tuning(str(record.manifest.get("dataset")), str(record.manifest.get("protocol")), label,
                          record.manifest.get("seed"), "MRR@20", cands, chosen, params, record.run_id))
    return out


def _pool_key(record: RunRecord) -> str:
    """Equal for runs that may be averaged over seeds: the store's
    ``pool_digest`` (configuration without the seed, and code), or for
    older runs a digest of their frozen spec without the seed."""
    if record.pool_digest:
        return str(record.pool_digest)
    spec = dict(record.manifest.get("spec") or {"model": record.manifest.get("model"),
                                                  "params": record.manifest.get("params")})
    spec.pop("seed", None)
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def check_pooling(records: Iterable[RunRecord]) -> None:
    """Raise :class:`ReportError` when two runs of one (dataset, protocol, label)
    differ in configuration (other than the seed) or code."""
    first: dict[tuple[str, str, str], RunRecord] = {}
    for record in sorted(records, key=lambda r: r.run_id):
        man = record.manifest
        key = (str(man.get("dataset")), str(man.get("protocol")), label_of(record))
        other = first.setdefault(key, record)
        if other is record or _pool_key(other) == _pool_key(record):
            continue
        if other.code_digest and record.code_digest and other.code_digest != record.code_digest:
            what = f"code (code digests {other.code_digest[:12]} and {record.code_digest[:12]})"
        else:
            a, b = other.config_digest or "-", record.config_digest or "-"
            what = f"configuration (config digests {a[:12]} and {b[:12]})"
        raise ReportError(
            f"runs {other.run_id} and {record.run_id} share the label {key[2]!r} on {key[0]} ({key[1]}) but differ "
            f"in {what}; they cannot be averaged: delete one (sessionbench runs prune) or give it another label"
        )


def drawing_code() -> dict[str, str | None]:
    """What drew a report: the sessionbench version, a digest of the report
    code (``harness/report/``, the statistics and marks included, which run
    ids do not cover: see ``harness.run.fingerprint.OUTSIDE_RUNS``) and the
    git commit of a source checkout (``-dirty`` with uncommitted edits)."""
    from harness import __version__
    from harness.run.fingerprint import git_commit, outside_runs_digest

    return {"sessionbench": __version__, "report_code": outside_runs_digest(), "git_commit": git_commit()}


def drawing_code_text(stamp: dict[str, str | None]) -> str:
    """One line for a report's files: ``sessionbench 0.2.0, report code
    1a2b3c4d5e6f, git 0123456789ab (with uncommitted edits)``."""
    text = f"sessionbench {stamp['sessionbench']}, report code {str(stamp['report_code'])[:12]}"
    return text + (f", {git_text(stamp['git_commit'])}" if stamp.get("git_commit") else "")


def git_text(commit: str) -> str:
    """``git 0123456789ab``, and ``(with uncommitted edits)`` for a dirty checkout's commit."""
    sha, dirty = commit.removesuffix("-dirty"), commit.endswith("-dirty")
    return f"git {sha[:12]}" + (" (with uncommitted edits)" if dirty else "")

"""Results integrity: run ids that cover everything that can change a
result, verified runs, safe --force, plans, one writer per output folder,
workers that die with their parent, time limits and literal --only."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_runner import TINY_SPEC

from harness.run import fingerprint
from harness.cli import main
from harness.errors import ConfigError, SessionbenchError
from harness.run.lock import LockedError, OutputLock
from harness.run.runner import InlineExecutor, LocalProcessExecutor, expand, planned_code, run_suite
from harness.run.store import checkpoint_path, iter_runs, read_plan, run_path
from harness.run.suites import parse_suite
from harness.yamlfile import load_yaml_text
from suite_helpers import prepare_workdir, run_inline, tiny_suite

REPO = Path(__file__).resolve().parents[1]

PLUGINS = '''
import os, signal, time
import torch
from harness.models.plugin import SessionRecommender

class Zero(SessionRecommender):
    """Scores zero; fails in fit while $FAIL_NOW is set; sleeps $SLEEP_FIT s in fit."""
    def _fit(self, data, *, seed):
        if os.environ.get("FAIL_NOW"):
            raise RuntimeError("failing on purpose")
        time.sleep(float(os.environ.get("SLEEP_FIT", "0")))
    def _score(self, batch):
        return torch.zeros(len(batch), self.n_items_ + 1)

class SlowFit(Zero):
    """Sleeps for ever in fit."""
    def _fit(self, data, *, seed):
        time.sleep(3600)

class SleepScore(Zero):
    """Sleeps for ever in score."""
    def _score(self, batch):
        time.sleep(3600)

class HoldsTheInterpreter(Zero):
    """Sleeps in C code without releasing the interpreter lock."""
    def _fit(self, data, *, seed):
        import ctypes
        ctypes.PyDLL(None).sleep(3600)

class ExitInScore(Zero):
    """Leaves without a word."""
    def _score(self, batch):
        os._exit(3)

class KillSelf(Zero):
    """Dies by a signal."""
    def _fit(self, data, *, seed):
        os.kill(os.getpid(), signal.SIGKILL)
'''


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    return prepare_workdir(tmp_path, monkeypatch, spec=TINY_SPEC, dataset="tinysyn", plugins=PLUGINS, module="integrity_plugins")


def suite(workdir, models, **extra):
    return tiny_suite(workdir, "tinysyn", models, **extra)


def ids(s, datasets=None):
    """Run ids of a suite's test stage, without preparing data."""
    datasets = datasets or {d.name: ("tinysyn", "key") for d in s.datasets}
    return {spec.label: spec.run_id for spec in expand(s, datasets, stage_of=lambda m: "test")}


# -- run identity --------------------------------------------------------------


def test_label_reuse_with_a_changed_param_or_evaluation_option_gets_a_new_id(workdir):
    base = ids(suite(workdir, [{"name": "markov", "label": "m"}]))["m"]
    assert ids(suite(workdir, [{"name": "markov", "label": "m", "params": {"pruning": 7}}]))["m"] != base
    assert ids(suite(workdir, [{"name": "markov", "label": "m"}], latency={"samples": 9, "warmup": 1}))["m"] != base
    assert ids(suite(workdir, [{"name": "markov", "label": "m"}], exclude_seen=True))["m"] != base
    assert ids(suite(workdir, [{"name": "markov", "label": "m"}], batch_size=7))["m"] != base
    # limits cannot change a result: same id
    assert ids(suite(workdir, [{"name": "markov", "label": "m", "timeout": 5}], timeout={"fit": 1}))["m"] == base


@pytest.fixture()
def tree_copy(tmp_path, monkeypatch):
    """Fingerprints read a copy of sessionbench's packages (edited by tests)."""
    copy = tmp_path / "tree"
    for top in fingerprint.BUILTIN_PACKAGES:
        shutil.copytree(REPO / top, copy / top, ignore=shutil.ignore_patterns("__pycache__"))
    real = fingerprint.package_location

    def located(top):
        if top in fingerprint.BUILTIN_PACKAGES:
            return copy, sorted((copy / top).rglob("*.py"))
        return real(top)

    monkeypatch.setattr(fingerprint, "package_location", located)
    fingerprint.clear_cache()
    yield copy
    fingerprint.clear_cache()


def _edit(path: Path, text: str = "\n_EDITED = 1\n") -> None:
    path.write_text(path.read_text() + text)
    fingerprint.clear_cache()  # a new process would read the files afresh


@pytest.mark.parametrize(
    "edited", ["harness/evaluation/metrics.py", "harness/models/training.py", "srgnn/model.py", "srgnn/graph.py", "baselines/rules.py"]
)
def test_editing_any_source_file_that_can_run_changes_the_run_ids(workdir, tree_copy, edited):
    s = suite(workdir, ["pop", "markov", "itemknn", "sr"])
    before = ids(s)
    _edit(tree_copy / edited)
    after = ids(s)
    assert all(after[label] != before[label] for label in before), (edited, before, after)


def test_comments_docstrings_and_layout_are_not_code(workdir, tree_copy):
    """Only what Python runs counts: a comment, a docstring or blank lines
    keep every run id, and so does a run whose files got such an edit
    between planning and running; the smallest change of code does not."""
    s = suite(workdir, ["pop", "markov"])
    before = ids(s)
    rules = tree_copy / "baselines" / "rules.py"
    original = rules.read_text()
    _edit(rules, "\n\n# a comment\n")
    _edit(tree_copy / "harness" / "evaluation" / "metrics.py", "\n")
    text = rules.read_text()
    docstring = text.index('"""') + 3
    rules.write_text(text[:docstring] + "Reworded. " + text[docstring:])  # the module docstring
    fingerprint.clear_cache()
    assert ids(s) == before
    assert fingerprint.code_hash(b"x = 1\n") != fingerprint.code_hash(b"x = 2\n")
    assert fingerprint.code_hash(b"def f():\n    'doc'\n") == fingerprint.code_hash(b"def f():\n    pass\n")
    assert fingerprint.code_hash(b"def f(:\n") == hashlib.sha256(b"def f(:\n").hexdigest()  # no code: bytes

    rules.write_text(original)
    fingerprint.clear_cache()
    (spec,) = [sp for sp in expand(s, {d.name: ("tinysyn", "key") for d in s.datasets}, stage_of=lambda m: "test")
               if sp.label == "markov"]
    assert planned_code(spec).digest == spec.code_digest  # unchanged bytes: the plan's hashes
    _edit(rules, "  # trailing comment\n")
    assert planned_code(spec).files == tuple(spec.code_files)  # compiled afresh: the same code
    _edit(rules, "\n_EDITED = 2\n")
    with pytest.raises(SessionbenchError, match="source files changed since the suite was planned"):
        planned_code(spec)


def test_code_hashes_agree_between_processes(tmp_path):
    """Run ids are compared across processes (a plan, its workers, the next
    `run`): the hash of a file's code must not depend on what a process has
    imported or on its string-hash seed (marshal's output does)."""
    (tmp_path / "consts.py").write_text("def f(self, x):\n    return x in {'a', 'b', 'c', 'self'}, (1.5, b'z')\n")
    files = [*sorted(map(str, (REPO / "harness").glob("**/*.py"))), str(tmp_path / "consts.py")]
    probe = ("import sys; {imports}from harness.run.fingerprint import code_hash; "
             "print([code_hash(open(f, 'rb').read()) for f in sys.argv[1:]])")
    outputs = set()
    for seed, imports in (("1", ""), ("2", "import numpy, pandas, torch, harness.run.runner; ")):
        done = subprocess.run([sys.executable, "-c", probe.format(imports=imports), *files], capture_output=True,
                              text=True, cwd=REPO, env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        outputs.add(done.stdout)
    assert len(outputs) == 1, outputs


def test_editing_the_report_code_keeps_the_run_ids(workdir, tree_copy):
    """The report only reads stored runs: redrawing a figure must not make every run stale."""
    s = suite(workdir, ["pop", "markov"])
    before = ids(s)
    _edit(tree_copy / "harness" / "report" / "figures.py")
    assert ids(s) == before


def test_a_code_edit_makes_the_next_run_redo_the_runs(workdir, tree_copy):
    s = suite(workdir, ["pop", "markov"])
    out = workdir / "out"
    assert len(run_inline(s, out).executed) == 2
    assert run_inline(s, out).executed == []
    _edit(tree_copy / "baselines" / "rules.py")
    again = run_inline(s, out)
    assert len(again.executed) == 2 and not again.skipped
    plan = read_plan(out)
    assert sorted(plan.run_ids) == sorted(again.executed) and len(list(iter_runs(out))) == 4  # old ones superseded
    run = next(r for r in iter_runs(out) if r.run_id in plan.run_ids)
    files = {f["path"]: f["code_sha256"] for f in run.manifest["code"]["files"]}
    assert "baselines/rules.py" in files and "harness/evaluation/metrics.py" in files and "srgnn/graph.py" in files
    assert run.code_digest == fingerprint.model_fingerprint("pop").digest
    assert len(run.config_digest) == 64 and run.manifest["config"]["params"] == run.params


def test_plugin_helper_modules_are_fingerprinted_and_kept_apart(workdir):
    for pkg, files in {"myplug": {"__init__.py": "", "helpers.py": "SCALE = 1\n",
                                  "model.py": PLUGINS.replace("class Zero", "from myplug.helpers import SCALE\n\n"
                                                              "class Zero")},
                       "otherplug": {"__init__.py": "", "util.py": "X = 1\n"}}.items():  # fmt: skip
        (workdir / pkg).mkdir()
        for name, text in files.items():
            (workdir / pkg / name).write_text(text)
    fingerprint.clear_cache()
    s = suite(workdir, ["pop", "myplug.model:Zero"])
    before = ids(s)
    _edit(workdir / "otherplug" / "util.py")
    assert ids(s) == before  # an unrelated package changes nothing
    _edit(workdir / "myplug" / "helpers.py")
    after = ids(s)
    assert after["pop"] == before["pop"]  # built-in runs do not see plugin code
    assert after["Zero"] != before["Zero"]  # the plugin's helper module is part of its code
    paths = [p for p, _ in fingerprint.model_fingerprint("myplug.model:Zero").files]
    assert "myplug/helpers.py" in paths and "harness/evaluation/metrics.py" in paths and "otherplug/util.py" not in paths


def test_a_single_module_plugins_imported_helpers_are_fingerprinted(workdir):
    """A plugin module beside its helper modules (no package): the helpers
    it imports, the ones they import (by statement or by a literal name),
    are its code; an installed library and a module nothing imports are not."""
    (workdir / "soloplug.py").write_text(PLUGINS.replace("class Zero", "import numpy\nimport solohelp\n\nclass Zero"))
    (workdir / "solohelp.py").write_text("import importlib\nfrom deephelp import SCALE\n\n"
                                         "late = importlib.import_module('dynhelp')\n")
    (workdir / "deephelp.py").write_text("SCALE = 1\n")
    (workdir / "dynhelp.py").write_text("X = 1\n")
    (workdir / "unused.py").write_text("X = 1\n")
    fingerprint.clear_cache()
    s = suite(workdir, ["pop", "soloplug:Zero"])
    before = ids(s)
    _edit(workdir / "unused.py")
    assert ids(s) == before
    for helper in ("solohelp.py", "deephelp.py", "dynhelp.py"):
        _edit(workdir / helper)
        after = ids(s)
        assert after["Zero"] != before["Zero"] and after["pop"] == before["pop"], helper
        before = after
    paths = [p for p, _ in fingerprint.model_fingerprint("soloplug:Zero").files]
    assert {"soloplug.py", "solohelp.py", "deephelp.py", "dynhelp.py"} <= set(paths)
    assert not any(p.startswith(("numpy/", "unused")) for p in paths)


def test_a_plugin_name_pointed_at_another_class_of_the_same_files_gets_a_new_id(workdir, monkeypatch):
    """An entry point is package metadata, not code: re-pointing a plugin's
    name at another class of the same, unedited module must not reuse the
    first class's runs; the manifest and the report name the class."""
    from harness.models import registry

    (workdir / "twoclass.py").write_text(PLUGINS)
    import twoclass

    fingerprint.clear_cache()
    monkeypatch.setitem(registry._REGISTRY, "twoname", twoclass.SlowFit)
    s = suite(workdir, ["pop", "twoname"])
    before = ids(s)
    planned = fingerprint.model_bytes_digest("twoname")
    assert fingerprint.model_fingerprint("twoname").bytes_digest == planned  # the run's check agrees with the plan
    monkeypatch.setitem(registry._REGISTRY, "twoname", twoclass.Zero)
    after = ids(s)
    assert after["twoname"] != before["twoname"] and after["pop"] == before["pop"]
    assert fingerprint.model_bytes_digest("twoname") != planned
    paths = [p for p, _ in fingerprint.model_fingerprint("twoname").files]
    assert "<class twoclass:Zero>" in paths and "twoclass.py" in paths
    assert not any(p.startswith("<class") for p, _ in fingerprint.model_fingerprint("pop").files)
    out = workdir / "out"
    run_inline(s, out)
    stored = {r.label: r.manifest for r in iter_runs(out)}
    assert stored["twoname"]["model_class"] == "twoclass:Zero"
    assert stored["pop"]["model_class"] == "baselines.popularity:Popularity"
    assert main(["report", str(out)]) == 0
    summary = (out / "report" / "summary.md").read_text()
    assert "`twoname` (`twoclass:Zero`)" in summary and "`pop` (" not in summary


# -- verification ----------------------------------------------------------------


def test_a_truncated_ranks_file_is_not_complete_and_is_redone(workdir):
    s = suite(workdir, ["pop", "markov"])
    out = workdir / "out"
    run_inline(s, out)
    victim = next(r for r in iter_runs(out) if r.label == "markov")
    ranks = victim.path / "ranks.parquet"
    ranks.write_bytes(ranks.read_bytes()[:500])
    lines = []
    again = run_inline(s, out, echo=lines.append)
    assert again.executed == [victim.run_id]
    assert any(line.startswith("redo   tinysyn/markov/0: stored run") and "ranks.parquet: 500 bytes, manifest records"
               in line for line in lines), lines  # fmt: skip
    assert {r.label for r in iter_runs(out)} == {"pop", "markov"}


def test_a_garbled_manifest_is_listed_broken_and_redone(workdir, capsys):
    s = suite(workdir, ["pop", "markov"])
    out = workdir / "out"
    run_inline(s, out)
    victim = next(r for r in iter_runs(out) if r.label == "pop")
    (victim.path / "manifest.json").write_text('{"run_id": "x",\n  "status": ')
    assert main(["runs", "ls", str(out)]) == 0
    listing = capsys.readouterr().out
    (line,) = [ln for ln in listing.splitlines() if victim.run_id in ln]
    assert line.startswith("broken") and "manifest.json: invalid JSON (line 2" in line
    assert run_inline(s, out).executed == [victim.run_id]


def test_a_failing_force_redo_keeps_the_complete_run(workdir, monkeypatch):
    s = suite(workdir, ["integrity_plugins:Zero"])
    out = workdir / "out"
    (run_id,) = run_inline(s, out).executed
    before = {p.name: p.read_bytes() for p in run_path(out, run_id).iterdir()}
    monkeypatch.setenv("FAIL_NOW", "1")
    lines = []
    forced = run_inline(s, out, force=True, echo=lines.append)
    assert forced.failed == [run_id] and forced.kept == [run_id]
    assert any("failing on purpose; the previous complete run" in line for line in lines), lines
    assert {p.name: p.read_bytes() for p in run_path(out, run_id).iterdir()} == before
    assert [r.status for r in iter_runs(out, include_failed=True, include_broken=True)] == ["complete"]
    monkeypatch.delenv("FAIL_NOW")
    assert run_inline(s, out, force=True).executed == [run_id]  # a successful redo replaces it


# -- plans ---------------------------------------------------------------------


def test_plan_records_the_suite_the_runs_and_the_tuning_choice(workdir):
    s = suite(workdir, ["pop", {"name": "markov", "grid": {"pruning": [0, 5]}}])
    out = workdir / "out"
    run_inline(s, out)
    plan = read_plan(out)
    runs = {r.run_id: r for r in iter_runs(out)}
    assert plan.suite_name == "t" and set(plan.run_ids) == set(runs) and len(runs) == 4
    assert "markov" in plan.suite_text and plan.suite["models"][1]["grid"] == {"pruning": [0, 5]}
    assert plan.suite["datasets"][0]["key"] and plan.suite["models"][0]["code_digest"]
    (sel,) = plan.selections
    tune = {r.params["pruning"]: r for r in runs.values() if r.manifest["stage"] == "tune"}
    values = {c["params"]["pruning"]: c["value"] for c in sel["candidates"]}
    assert values == {k: r.manifest["metrics"]["MRR@20"] for k, r in tune.items()}
    best = max(tune.values(), key=lambda r: r.manifest["metrics"]["MRR@20"])
    assert (sel["metric"], sel["split"], sel["label"], sel["seed"], sel["protocol"]) == ("MRR@20", "valid", "markov",
                                                                                        0, "next")  # fmt: skip
    assert sel["chosen"] == best.run_id and sel["params"] == best.params
    final = runs[sel["final"]]
    assert final.manifest["stage"] == "test" and final.manifest["selection"] == sel


def test_runs_ls_and_prune_follow_the_plan(workdir, capsys):
    out = workdir / "out"
    run_inline(suite(workdir, ["pop", "markov"]), out)
    run_inline(suite(workdir, ["pop"]), out)  # the plan now holds pop only
    markov = next(r.run_id for r in iter_runs(out) if r.label == "markov")
    assert main(["runs", "ls", str(out)]) == 0
    listing = capsys.readouterr().out
    assert "plan: suite t, 1 runs (0 not stored)" in listing
    rows = {ln.split()[-1]: ln.split()[:2] for ln in listing.splitlines()[2:]}
    assert rows[markov] == ["complete", "no"] and sorted(rows.values()) == [["complete", "no"], ["complete", "yes"]]
    assert main(["runs", "prune", str(out)]) == 1
    captured = capsys.readouterr()
    assert f"would delete  complete  {markov}" in captured.out and "--yes" in captured.err
    assert len(list(iter_runs(out))) == 2
    assert main(["runs", "prune", str(out), "--yes"]) == 0
    assert [r.label for r in iter_runs(out)] == ["pop"] and "1 run(s) deleted" in capsys.readouterr().out
    assert main(["runs", "prune", str(out)]) == 0



def test_checkpoints_are_listed_and_pruned_with_their_runs(workdir, capsys):
    """A run killed while training leaves runs/.ckpt-<id>/; once the code or
    configuration changes no run resumes it, so ls shows it and prune
    deletes it, while a checkpoint the plan still lists stays."""
    out = workdir / "out"
    run_inline(suite(workdir, ["pop", "markov"]), out)
    planned = {r.label: r.run_id for r in iter_runs(out)}
    stale_id = planned["markov"].rsplit("-", 1)[0] + "-0123456789ab"  # earlier code: another id
    for run_id, size in ((stale_id, 3 * 2**20), (planned["pop"], 2**20)):
        checkpoint_path(out, run_id).mkdir()
        (checkpoint_path(out, run_id) / "checkpoint.pt").write_bytes(b"\0" * size)

    lines = []
    run_suite(suite(workdir, ["pop", "markov"]), out_dir=out, executor=InlineExecutor(), report=False,
              echo=lines.append)
    assert [line for line in lines if line.startswith("note ")] == [
        f"note   1 training checkpoint(s) of runs outside this plan (3.0 MiB: earlier code or configuration, "
        f"never resumed); `sessionbench runs prune {out} --yes` deletes them"]

    assert main(["runs", "ls", str(out)]) == 0
    listing = capsys.readouterr().out
    assert "in use by" not in listing
    rows = {ln.split()[0 if "unfinished" in ln else -1]: ln for ln in listing.splitlines()[2:]}
    assert "(checkpoint 1.0 MiB, the next run resumes from it)" in next(v for v in rows.values()
                                                                         if planned["pop"] in v)
    (stale,) = [ln for ln in listing.splitlines() if stale_id in ln]
    assert stale.split()[:2] == ["unfinished", "no"]
    assert stale.endswith("(checkpoint 3.0 MiB, not in the plan: runs prune deletes it)")

    assert main(["runs", "prune", str(out)]) == 1
    assert f"would delete  unfinished  {stale_id}  (and its checkpoint, 3.0 MiB)" in capsys.readouterr().out
    assert main(["runs", "prune", str(out), "--yes"]) == 0
    assert not checkpoint_path(out, stale_id).exists() and checkpoint_path(out, planned["pop"]).is_dir()
    assert {r.run_id for r in iter_runs(out)} == set(planned.values())

    with OutputLock(out, command="sessionbench run"):  # a live writer: its run may be training now
        assert main(["runs", "ls", str(out)]) == 0
        assert f"in use by sessionbench run (pid {os.getpid()}" in capsys.readouterr().out


# -- --only ----------------------------------------------------------------------


def test_only_matches_grid_labels_literally_and_refuses_no_match(workdir, capsys):
    s = suite(workdir, ["pop", {"name": "markov", "grid": {"pruning": [0, 5]}}])
    out = workdir / "out"
    one = run_inline(s, out, only=["markov[pruning=0]"])
    assert [spec.label for spec in one.planned] == ["markov[pruning=0]"] and len(one.executed) == 1
    pop = run_inline(s, out, only=["tinysyn/pop/0"])
    assert [spec.label for spec in pop.planned] == ["pop"] and len(pop.executed) == 1
    assert [spec.label for spec in run_inline(s, out, only=["p?p"]).planned] == ["pop"]  # a glob
    # a model entry's label takes its grid points and, once chosen, its final
    both = run_inline(s, workdir / "o3", only=["markov"])
    assert sorted(spec.label for spec in both.planned) == ["markov", "markov[pruning=0]", "markov[pruning=5]"]
    with pytest.raises(ConfigError, match=r"--only 'sr\[steps=2\]' matches no run of suite 't'; labels: pop, markov"):
        run_inline(s, out, only=["sr[steps=2]"])
    (workdir / "t.yaml").write_text(f"datasets: [{workdir / 'tinysyn.yaml'}]\nmodels: [pop]\n")
    assert main(["run", str(workdir / "t.yaml"), "--out", str(out), "--only", "popp", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--only 'popp' matches no run of suite 't'; labels: pop" in err


# -- processes: limits and deaths ------------------------------------------------------


def test_runs_past_their_limit_or_whose_process_dies_are_stored_failed(workdir, monkeypatch):
    monkeypatch.setattr("harness.run.runner.LIMIT_MARGIN_S", 2.0)
    s = suite(workdir, [
        {"name": "integrity_plugins:HoldsTheInterpreter", "label": "holds", "timeout": 1},
        "pop",
        {"name": "integrity_plugins:SlowFit", "label": "slowfit", "timeout": {"fit": 1}},
        {"name": "integrity_plugins:SleepScore", "label": "sleepscore", "timeout": {"fit": 30, "score": 1.5}},
        {"name": "integrity_plugins:ExitInScore", "label": "exits"},
        {"name": "integrity_plugins:KillSelf", "label": "killed"},
    ])  # fmt: skip
    lines = []
    outcome = run_suite(s, out_dir=workdir / "out", executor=LocalProcessExecutor(jobs=2), report=False,
                        timeout={"fit": 60, "score": 60}, echo=lines.append)  # fmt: skip
    assert len(outcome.executed) == 6 and len(outcome.failed) == 5
    runs = {r.label: r for r in iter_runs(workdir / "out", include_failed=True, include_broken=True)}
    assert runs["pop"].complete
    assert runs["slowfit"].manifest["error_line"] == "timeout after 1 s in fit"
    assert runs["sleepscore"].manifest["error_line"] == "timeout after 1.5 s in score"
    assert runs["exits"].manifest["error_line"] == "worker process exited with code 3"
    assert runs["killed"].manifest["error_line"] == "worker process killed by signal SIGKILL"
    # the watchdog thread cannot run: the executor ends the worker after both limits and the margin
    assert runs["holds"].manifest["error_line"].startswith("timeout after 4 s")
    assert all(r.status == "failed" and r.problem is None for label, r in runs.items() if label != "pop")
    assert any(line.startswith("FAILED tinysyn/slowfit/0: timeout after 1 s in fit") for line in lines), lines
    assert not [p for p in (workdir / "out" / "runs").iterdir() if p.name.startswith(".")]


def test_slow_fit_limit_is_per_run_and_not_in_the_id(workdir):
    s = suite(workdir, [{"name": "integrity_plugins:Zero", "label": "z", "timeout": 1}], timeout={"score": 9})
    spec = expand(s, {s.datasets[0].name: ("tinysyn", "k")}, stage_of=lambda m: "test")[0]
    assert spec.timeout == {"fit": 1.0, "score": 1.0}
    s2 = suite(workdir, [{"name": "integrity_plugins:Zero", "label": "z"}], timeout={"score": 9})
    spec2 = expand(s2, {s2.datasets[0].name: ("tinysyn", "k")}, stage_of=lambda m: "test", timeout={"fit": 4})[0]
    assert spec2.timeout == {"fit": 4.0, "score": 9.0} and spec2.run_id == spec.run_id


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_one_writer_per_folder_and_workers_die_with_a_killed_parent(workdir, capsys):
    (workdir / "suite.yaml").write_text(textwrap.dedent(f"""
        name: k
        datasets: [{workdir / 'tinysyn.yaml'}]
        models: ["integrity_plugins:Zero"]
        ks: [20]
        latency: {{samples: 3, warmup: 1}}
        """))
    out = workdir / "out"
    env = {**os.environ, "SLEEP_FIT": "8", "PYTHONPATH": str(workdir)}
    cmd = [sys.executable, "-m", "harness.cli", "run", str(workdir / "suite.yaml"), "--out", str(out), "--no-report"]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, workers = time.time() + 120, []
        while time.time() < deadline and not workers:
            time.sleep(0.3)
            workers = [c for c in _children(proc.pid)
                       if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]  # fmt: skip
        assert workers, "no worker process started"
        # a second run into the same folder: one line, exit 2
        assert main(["run", str(workdir / "suite.yaml"), "--out", str(out), "--no-report"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"in use by sessionbench run (pid {proc.pid} on host" in err
        with pytest.raises(LockedError):
            OutputLock(out).acquire()
        proc.kill()  # SIGKILL to the main process only
        proc.wait()
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), "the worker outlived its parent"
        time.sleep(10)  # past the end of the worker's fit: nothing may appear
        assert not [p for p in (out / "runs").iterdir() if not p.name.startswith(".")]
    finally:
        proc.kill()
    # the lock file of the dead process is taken over, and the run completes
    lines = []
    outcome = run_suite(parse_suite({"datasets": [str(workdir / "tinysyn.yaml")], "models": ["pop"], "ks": [20],
                                     "latency": {"samples": 3, "warmup": 1}}),
                        out_dir=out, executor=InlineExecutor(), report=False, echo=lines.append)  # fmt: skip
    assert lines[0].startswith(f"took over the stale lock of sessionbench run (pid {proc.pid} on host")
    assert len(outcome.executed) == 1 and not (out / ".lock").exists()


def test_a_lock_file_of_a_dead_process_is_taken_over(tmp_path):
    (tmp_path / ".lock").write_text(json.dumps({"pid": 2**22 + 1, "host": "elsewhere", "command": "sessionbench run",
                                                "started": "2026-01-01T00:00:00+00:00"}))  # fmt: skip
    with OutputLock(tmp_path) as lock:
        assert lock.stale["pid"] == 2**22 + 1
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
        with pytest.raises(LockedError, match=f"in use by sessionbench run \\(pid {os.getpid()} on host"):
            OutputLock(tmp_path).acquire()
    assert not (tmp_path / ".lock").exists()
    with OutputLock(tmp_path) as lock:
        assert lock.stale is None


def test_evaluate_timeout_is_one_line_and_exit_124(workdir):
    env = {**os.environ, "SLEEP_FIT": "60", "PYTHONPATH": str(workdir)}
    done = subprocess.run([sys.executable, "-m", "harness.cli", "evaluate", "--dataset", str(workdir / "tinysyn.yaml"),
                           "--model", "integrity_plugins:Zero", "--timeout", "1"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 124, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "sessionbench: error: timeout after 1 s in fit"


@pytest.mark.parametrize(
    "timeout, match",
    [
        (0, r"key 'timeout': expected a positive number of seconds or a mapping with fit, score, got int 0"),
        ("ten", r"key 'timeout': expected a positive number"),
        (True, r"key 'timeout': expected a positive number"),
        ({"fit": -1}, r"key 'timeout.fit': expected a positive number of seconds, got int -1"),
        ({"train": 5}, r"unknown key 'timeout.train'; expected one of fit, score"),
    ],
)
def test_timeouts_are_validated_with_file_and_key(timeout, match):
    with pytest.raises(ConfigError, match=r"t.yaml: " + match):
        parse_suite({"datasets": ["synthetic"], "models": ["pop"], "timeout": timeout}, Path("t.yaml"))
    with pytest.raises(ConfigError, match=match.replace("'timeout", "'models\\[0\\].timeout")):
        parse_suite({"datasets": ["synthetic"], "models": [{"name": "pop", "timeout": timeout}]}, Path("t.yaml"))


def test_a_timeout_written_1e3_is_a_number():
    """YAML 1.1 reads 1e3 (no dot) as a string; a timeout takes the number it spells."""
    text = "datasets: [synthetic]\nmodels: [{name: pop, timeout: {fit: 1e3}}]\ntimeout: 2e2\n"
    suite = parse_suite(load_yaml_text(text, "t.yaml"))
    assert suite.timeout == {"fit": 200.0, "score": 200.0} and suite.models[0].timeout == {"fit": 1000.0}


def test_timeout_option_on_the_command_line_is_checked(capsys):
    with pytest.raises(SystemExit):
        main(["run", "default", "--timeout", "0"])
    assert "expected a positive number of seconds, got '0'" in capsys.readouterr().err

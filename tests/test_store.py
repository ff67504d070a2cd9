"""The results store: verification of run folders, broken runs, plans and
the rule that a failed attempt never replaces a complete run."""

import json

import pytest

from harness.evaluation.evaluate import evaluate
from harness.run.store import (
    BROKEN,
    COMPLETE,
    FAILED,
    Plan,
    install_run,
    is_complete,
    iter_runs,
    read_plan,
    run_path,
    verify_run,
    write_plan,
    write_run,
    write_run_files,
)
from harness.models.testing import tiny_dataset


class _Pop:
    """The smallest model evaluate() accepts: scores by item id."""

    def __init__(self, data):
        self.n = data.n_items

    def score(self, batch):
        import torch

        return torch.arange(self.n + 1, dtype=torch.float32).repeat(len(batch), 1)


@pytest.fixture(scope="module")
def evaluation():
    data = tiny_dataset(n_test=20, seed=0)
    return evaluate(_Pop(data), data, ks=(5, 20))


def _complete(out, run_id, evaluation):
    return write_run(out, {"run_id": run_id, "status": COMPLETE, "label": "pop", "dataset": "d", "seed": 0,
                           "protocol": "next", "config_digest": "c" * 64, "code": {"digest": "d" * 64, "files": []}},
                     evaluation=evaluation)  # fmt: skip


def test_manifest_records_size_and_sha256_of_every_file(tmp_path, evaluation):
    path = _complete(tmp_path, "r1", evaluation)
    manifest = json.loads((path / "manifest.json").read_text())
    ranks = path / "ranks.parquet"
    assert manifest["files"]["ranks.parquet"]["bytes"] == ranks.stat().st_size
    assert len(manifest["files"]["ranks.parquet"]["sha256"]) == 64
    assert verify_run(path) is None and is_complete(tmp_path, "r1")
    record = next(iter_runs(tmp_path))
    assert record.problem is None and record.config_digest == "c" * 64 and record.code_digest == "d" * 64


def test_truncated_ranks_make_the_run_broken_not_complete(tmp_path, evaluation):
    path = _complete(tmp_path, "r1", evaluation)
    ranks = path / "ranks.parquet"
    size = ranks.stat().st_size
    ranks.write_bytes(ranks.read_bytes()[:100])
    assert verify_run(path) == f"ranks.parquet: 100 bytes, manifest records {size:,}"
    assert not is_complete(tmp_path, "r1")
    assert list(iter_runs(tmp_path, include_failed=True)) == []
    (broken,) = iter_runs(tmp_path, include_broken=True)
    assert broken.status == BROKEN and not broken.complete and broken.problem.startswith("ranks.parquet: 100 bytes")


def _rewrite_ranks(path, change):
    """Replace a run's ranks.parquet by ``change(table)`` and record the new
    file's size and checksum, as a hand edit that kept the manifest in step would."""
    import pyarrow.parquet as pq

    from harness.run.store import file_sha256

    ranks = path / "ranks.parquet"
    pq.write_table(change(pq.read_table(ranks)), ranks)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["ranks.parquet"] = {"bytes": ranks.stat().st_size, "sha256": file_sha256(ranks)}
    (path / "manifest.json").write_text(json.dumps(manifest))


def _drop_session(table):
    return table.remove_column(table.schema.get_field_index("session"))


def _null_session(table):
    import pyarrow as pa

    return table.set_column(table.schema.get_field_index("session"), "session",
                            pa.array([None] * table.num_rows, type=pa.int64()))


@pytest.mark.parametrize("change, problem", [
    (_drop_session, "ranks.parquet: lacks columns ['session']"),
    (lambda table: table.replace_schema_metadata(None),
     "ranks.parquet: no 'sessionbench.evaluation' schema metadata; not an evaluation result"),
    (_null_session, "ranks.parquet: column 'session' holds null values, expected none"),
])
def test_ranks_that_are_not_an_evaluation_table_fail_verification_despite_matching_checksums(
        tmp_path, evaluation, change, problem):
    path = _complete(tmp_path, "r1", evaluation)
    _rewrite_ranks(path, change)
    assert verify_run(path) == problem
    assert not is_complete(tmp_path, "r1") and list(iter_runs(tmp_path)) == []
    (broken,) = iter_runs(tmp_path, include_broken=True)
    assert broken.status == BROKEN and broken.problem == problem


def test_unreadable_ranks_of_a_run_taken_as_complete_are_one_line_naming_run_and_file(tmp_path, evaluation):
    # what verification cannot see from the footer (a null inside a ranks list) still ends in one line
    import pyarrow as pa

    from harness.errors import SessionbenchError
    from harness.run.store import RunRecord, load_run

    path = _complete(tmp_path, "r1", evaluation)
    _rewrite_ranks(path, lambda t: t.set_column(
        t.schema.get_field_index("ranks"), "ranks",
        pa.array([None, *t.column("ranks").to_pylist()[1:]], type=pa.list_(pa.int32()))))
    record = load_run(path)
    assert record.problem is None
    with pytest.raises(SessionbenchError, match=rf"^run r1: {path / 'ranks.parquet'}: evaluation table: column "
                                                r"'ranks': 1 null values, expected none$"):
        RunRecord(record.path, record.manifest).evaluation


def test_the_report_lists_a_run_with_a_damaged_ranks_file_as_failing_verification(tmp_path, capsys):
    from report_fixtures import add_run

    from harness.cli import main

    data = tiny_dataset(n_test=30, seed=0)
    add_run(tmp_path, data, "pop", 0)
    bad = add_run(tmp_path, data, "markov", 0)
    _rewrite_ranks(run_path(tmp_path, bad), _drop_session)  # the report printed a ValueError traceback
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"failed verification, not shown: {bad}: ranks.parquet: lacks columns ['session']" in out


def test_same_size_corruption_and_missing_files_are_caught(tmp_path, evaluation):
    path = _complete(tmp_path, "r1", evaluation)
    ranks = path / "ranks.parquet"
    data = bytearray(ranks.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ranks.write_bytes(bytes(data))
    assert verify_run(path) == "ranks.parquet: SHA-256 differs from the manifest's"
    ranks.unlink()
    assert verify_run(path) == "ranks.parquet missing"


@pytest.mark.parametrize(
    "text, problem",
    [
        (None, "manifest.json missing"),
        ('{\n  "run_id": "r1",\n  "status": complete\n}', "manifest.json: invalid JSON (line 3, column 13)"),
        ("[1, 2]", "manifest.json: expected a JSON object, got list"),
        ('{"run_id": "r1"}', "manifest.json: key 'status' missing"),
        ('{"run_id": "other", "status": "complete", "files": {}}', "manifest.json: run_id 'other' differs"),
        ('{"run_id": "r1", "status": "complete"}', "manifest.json: no file sizes and checksums recorded"),
    ],
)
def test_unreadable_manifests_are_listed_broken_with_the_reason(tmp_path, evaluation, text, problem):
    path = _complete(tmp_path, "r1", evaluation)
    if text is None:
        (path / "manifest.json").unlink()
    else:
        (path / "manifest.json").write_text(text)
    (record,) = iter_runs(tmp_path, include_failed=True, include_broken=True)
    assert record.problem.startswith(problem) and record.status == BROKEN
    assert record.run_id == "r1"
    assert list(iter_runs(tmp_path, include_failed=True)) == []


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("label", 5, "manifest.json: key 'label': expected a string, got int 5"),
        ("seed", "zero", "manifest.json: key 'seed': expected an integer, got str 'zero'"),
        ("seed", True, "manifest.json: key 'seed': expected an integer, got bool True"),
        ("ks", [5, "x"], "manifest.json: key 'ks': expected a list of integers, got list [5, 'x']"),
        ("config_digest", 7, "manifest.json: key 'config_digest': expected a string, got int 7"),
    ],
)
def test_a_manifest_key_of_the_wrong_type_makes_the_run_broken(tmp_path, evaluation, capsys, key, value, problem):
    """A hand-edited or foreign manifest is listed broken with the key, never a traceback in ls or report."""
    from harness.cli import main

    path = _complete(tmp_path, "r1", evaluation)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, key: value}))
    (record,) = iter_runs(tmp_path, include_failed=True, include_broken=True)
    assert record.status == BROKEN and record.problem == problem
    assert main(["runs", "ls", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "broken" in out and problem in out


@pytest.mark.parametrize(
    "content, problem",
    [
        ('{"suite_name": "s", "suite_text": "", "suite": {}, "run_ids": "r1"}',
         "key 'run_ids': expected a list of run ids, got str 'r1'"),
        ('{"suite_name": 5, "suite_text": "", "suite": {}, "run_ids": []}', "key 'suite_name': expected a string"),
        ('{"suite_name": "s", "suite_text": "", "run_ids": []}', "key 'suite' missing"),
        ("[]", "expected a JSON object, got list"),
    ],
)
def test_a_damaged_plan_is_refused_and_prune_deletes_nothing(tmp_path, evaluation, capsys, content, problem):
    """A run list read from a damaged plan (a string is iterable) would let prune --yes delete good runs."""
    from harness.cli import main

    _complete(tmp_path, "r1", evaluation)
    (tmp_path / "plan.json").write_text(content)
    with pytest.raises(ValueError, match="not a sessionbench plan"):
        read_plan(tmp_path)
    assert main(["runs", "prune", str(tmp_path), "--yes"]) == 2
    assert f"plan.json: not a sessionbench plan ({problem}" in capsys.readouterr().err
    assert is_complete(tmp_path, "r1")


def test_a_failed_attempt_never_replaces_a_complete_run(tmp_path, evaluation):
    path = _complete(tmp_path, "r1", evaluation)
    before = (path / "manifest.json").read_bytes()
    tmp = write_run_files(tmp_path / "runs" / ".tmp-r1-x", {"run_id": "r1", "status": FAILED, "error": "boom"})
    assert install_run(tmp, tmp_path) is False
    assert (path / "manifest.json").read_bytes() == before and not tmp.exists()
    # a broken run is replaced by the failed attempt (it is redone next time)
    (path / "ranks.parquet").write_bytes(b"x")
    tmp = write_run_files(tmp_path / "runs" / ".tmp-r1-y", {"run_id": "r1", "status": FAILED, "error": "boom"})
    assert install_run(tmp, tmp_path) is True
    (record,) = iter_runs(tmp_path, include_failed=True)
    assert record.status == FAILED and record.problem is None


def test_plan_round_trip_and_absence(tmp_path):
    assert read_plan(tmp_path) is None
    plan = Plan(suite_name="t", suite_text="name: t\n", suite={"name": "t", "ks": [5, 20]}, run_ids=("a", "b"),
                selections=({"label": "sr", "chosen": "a", "final": "b", "candidates": []},))
    write_plan(tmp_path, plan)
    assert read_plan(tmp_path) == plan
    assert not [p for p in tmp_path.iterdir() if p.name != "plan.json"]  # no temporary file left
    (tmp_path / "plan.json").write_text("{")
    with pytest.raises(ValueError, match=r"plan.json: invalid JSON \(line 1, column 2\)"):
        read_plan(tmp_path)


def test_run_path_layout(tmp_path):
    assert run_path(tmp_path, "x") == tmp_path / "runs" / "x"


def test_runs_ls_shows_the_code_digest_beside_the_config(tmp_path, evaluation, capsys):
    """Two runs of one configuration made with different code (a superseded run after an edit)
    differ in the code column of `runs ls`, so the listing says why one was superseded."""
    from harness.cli import main

    _complete(tmp_path, "r1", evaluation)
    path = _complete(tmp_path, "r2", evaluation)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["code"]["digest"] = "e" * 64
    write_run(tmp_path, manifest, evaluation=evaluation)
    assert main(["runs", "ls", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("status"))
    assert header.split()[-4:] == ["config", "code", "run", "id"]
    rows = {line.split()[-1]: line.split() for line in lines if line.split()[-1] in ("r1", "r2")}
    assert rows["r1"][-3] == rows["r2"][-3] == "c" * 12
    assert (rows["r1"][-2], rows["r2"][-2]) == ("d" * 12, "e" * 12)

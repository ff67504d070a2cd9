"""A suite's ``ks`` are not part of a run's identity: runs store full ranks
and top lists ``stored_top_width(ks)`` wide, so a suite whose K change
within that width reuses every stored run, and every reader (report,
selection of finals, tuning) computes the K it needs from them."""

import pandas as pd
import pytest

from harness.errors import ConfigError, SessionbenchError
from harness.evaluation.evaluate import stored_top_width
from harness.evaluation.metrics import DEFAULT_TOP_WIDTH
from harness.run.runner import InlineExecutor, RunSpec, run_suite
from harness.run.store import iter_runs, load_run, read_plan, run_path
from harness.run.tuning import study_path, trial_history
from suite_helpers import prepare_workdir, tiny_suite

# more than 100 items, so that a suite may ask for K = 100
WIDE_SPEC = """
name: wide
description: synthetic data with a catalogue wider than 100 items
source: generated
format: synthetic
generator: {n_sessions: 600, n_items: 300, seed: 7, days: 10, zipf_exponent: 0.3}
preprocess: {method: standard, test_days: 2, valid_days: 2, min_item_support: 1}
"""


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    return prepare_workdir(tmp_path, monkeypatch, spec=WIDE_SPEC, dataset="wide", plugins="", module="identity_plugins")


def _spec(ks, **changes) -> RunSpec:
    fields = dict(suite="s", dataset="d", dataset_name="d", dataset_key="k", data_dir=None, model="pop", label="pop",
                  params={}, seed=0, protocol="next", ks=ks, batch_size=10, exclude_seen=False, latency={})
    return RunSpec(**{**fields, **changes})


def test_the_run_id_holds_the_stored_top_width_not_the_ks():
    assert DEFAULT_TOP_WIDTH == 50
    assert [stored_top_width(ks) for ks in ((5, 20), (1,), (50,), (20, 51), (100,))] == [50, 50, 50, 51, 100]
    base = _spec((5, 20))
    for ks in ((10, 20, 50), (20,), (1, 2, 3)):
        other = _spec(ks)
        assert (other.run_id, other.config_digest, other.pool_digest) == (base.run_id, base.config_digest,
                                                                          base.pool_digest)
    assert "ks" not in base.config() and base.config()["evaluation"]["top_width"] == 50
    wider = _spec((5, 100))
    assert wider.run_id != base.run_id and wider.config()["evaluation"]["top_width"] == 100
    assert _spec((100,)).run_id == wider.run_id  # same width, same run
    assert _spec((5, 20), seed=1).run_id != base.run_id  # what does change a result still does


def test_a_run_with_retrieval_settings_holds_its_depth_the_largest_k():
    ann = ({"method": "exact", "rerank": 1},)
    base = _spec((5, 20), model="srgnn", retrieval=ann)
    assert base.config()["retrieval_depth"] == 20 and base.config()["evaluation"]["top_width"] == 50
    assert _spec((5, 10, 20), model="srgnn", retrieval=ann).run_id == base.run_id
    assert _spec((1, 5), model="srgnn", retrieval=ann).run_id == base.run_id  # the rows report K = 20
    deeper = _spec((5, 50), model="srgnn", retrieval=ann)
    assert deeper.run_id != base.run_id and deeper.config()["retrieval_depth"] == 50
    # without retrieval settings the same change keeps the run
    assert _spec((5, 50), model="srgnn").run_id == _spec((5, 20), model="srgnn").run_id
    assert "retrieval_depth" not in _spec((5, 20), model="srgnn").config()


def test_a_change_of_ks_within_the_width_reruns_nothing_and_the_report_computes_the_new_k(workdir):
    out = workdir / "out"
    models = ["pop", "markov"]
    first = run_suite(tiny_suite(workdir, "wide", models, ks=[5, 20]), out_dir=out, executor=InlineExecutor(),
                      report=False)
    assert len(first.executed) == 2 and not first.failed
    stored = {r.run_id: r for r in iter_runs(out)}
    assert all(r.manifest["ks"] == [5, 20] and r.evaluation.top_k == 50 for r in stored.values())

    lines = []
    second = run_suite(tiny_suite(workdir, "wide", models, ks=[7, 10, 20, 50]), out_dir=out,
                       executor=InlineExecutor(), echo=lines.append)
    assert second.executed == [] and sorted(second.skipped) == sorted(stored)
    assert "2 run(s) already complete, skipped (use --force to redo)" in lines
    assert read_plan(out).suite["ks"] == [7, 10, 20, 50]
    table = pd.read_csv(out / "report" / "tables" / "t_wide_next.csv").set_index("label")
    for record in stored.values():
        # K = 7 is in neither the earlier ks nor the report's fixed cut-offs: computed from the stored ranks
        expected = record.evaluation.metrics([7, 10, 50], names=["HitRate", "MRR", "NDCG"])
        assert "MRR@7" not in record.manifest["metrics"]
        for key in ("HitRate@7", "MRR@7", "NDCG@7", "HitRate@10", "MRR@10", "HitRate@50", "NDCG@50"):
            assert table.loc[record.label, key] == pytest.approx(expected[key], abs=1e-9)  # CSV: 10 digits
            assert record.metric(key) == pytest.approx(expected[key], abs=1e-12)
        assert record.metric("MRR@20") == record.manifest["metrics"]["MRR@20"]  # the stored summary
        assert record.metric("Coverage@50") == pytest.approx(record.evaluation.metrics([50])["Coverage@50"])
        with pytest.raises(SessionbenchError, match=r"Coverage@60 needs top lists of 60 items, but the run stored 50"):
            record.metric("Coverage@60")

    third = run_suite(tiny_suite(workdir, "wide", models, ks=[20, 100]), out_dir=out, executor=InlineExecutor(),
                      report=False)
    assert len(third.executed) == 2 and not set(third.executed) & set(stored)
    wider = [load_run(run_path(out, run_id)) for run_id in third.executed]
    assert all(r.evaluation.top_k == 100 and r.manifest["config"]["evaluation"]["top_width"] == 100 for r in wider)
    assert all(r.metric("Coverage@100") == pytest.approx(r.evaluation.metrics([100])["Coverage@100"]) for r in wider)


def test_a_tuned_model_selects_by_a_k_its_trials_never_stored(workdir):
    out = workdir / "out"

    def tuned(metric: str, ks: list[int]):
        tune = {"space": {"pruning": {"type": "categorical", "choices": [0, 1, 2, 5]}}, "trials": 3,
                "sampler": "random", "seed": 0, "metric": metric}
        return tiny_suite(workdir, "wide", [{"name": "markov", "tune": tune}], ks=ks)

    first = run_suite(tuned("MRR@20", [5, 20]), out_dir=out, executor=InlineExecutor(), report=False)
    assert not first.failed
    trials = {r.run_id: r for r in iter_runs(out) if r.manifest["stage"] == "tune"}
    assert 1 <= len(trials) <= 3

    # other ks, same objective: the same study and runs, nothing is asked or run again
    again = run_suite(tuned("MRR@20", [5, 10, 20, 50]), out_dir=out, executor=InlineExecutor(), report=False)
    assert again.executed == []
    history = trial_history(study_path(out, "wide", "markov"))
    assert len(history) == 3 and len({h["study"] for h in history}) == 1

    # an objective at a K no trial's manifest holds: a new study whose seeded sampler draws the same
    # points, so the same runs; the values come from their stored ranks
    lines = []
    run_suite(tuned("HitRate@3", [5, 20]), out_dir=out, executor=InlineExecutor(), report=False, echo=lines.append)
    assert not any(line.startswith("done") and "[trial=" in line for line in lines)
    history = [h for h in trial_history(study_path(out, "wide", "markov")) if h["state"] == "COMPLETE"]
    latest = [h for h in history if h["study"] != history[0]["study"]]
    assert len(latest) == 3 and {h["run_id"] for h in latest} <= set(trials)
    for h in latest:
        assert "HitRate@3" not in trials[h["run_id"]].manifest["metrics"]
        assert h["value"] == pytest.approx(trials[h["run_id"]].evaluation.metrics([3])["HitRate@3"])
    (selection,) = read_plan(out).selections
    assert selection["metric"] == "HitRate@3"
    values = [c["value"] for c in selection["candidates"]]
    assert values == [pytest.approx(trials[c["run_id"]].evaluation.metrics([3])["HitRate@3"])
                      for c in selection["candidates"]]
    best = max(range(len(values)), key=lambda i: (values[i], -i))  # ties: the first candidate
    assert selection["chosen"] == selection["candidates"][best]["run_id"]
    final = load_run(run_path(out, selection["final"]))
    assert final.complete and final.manifest["params"]["pruning"] == selection["params"]["pruning"]


def test_an_objective_k_beyond_the_catalogue_is_refused_before_any_run(workdir):
    tune = {"space": {"pruning": {"type": "categorical", "choices": [0, 1]}}, "trials": 1, "metric": "MRR@1000"}
    suite = tiny_suite(workdir, "wide", [{"name": "markov", "tune": tune}])
    with pytest.raises(ConfigError, match=r"key 'models\[0\].tune.metric': K=1000 exceeds the .* items of dataset"):
        run_suite(suite, out_dir=workdir / "out", executor=InlineExecutor(), report=False)
    assert not (workdir / "out" / "runs").exists()


def test_a_report_without_a_plan_takes_the_union_of_its_runs_ks(workdir):
    from harness.report.collection import collect

    out = workdir / "out"
    run_suite(tiny_suite(workdir, "wide", ["pop"], ks=[5, 20]), out_dir=out, executor=InlineExecutor(), report=False)
    run_suite(tiny_suite(workdir, "wide", ["markov"], ks=[7, 20]), out_dir=out, executor=InlineExecutor(),
              report=False)
    assert collect(out, n_bootstrap=10).report_ks == (7, 20)  # the plan: the last suite's
    (out / "plan.json").unlink()  # older output: no plan
    assert collect(out, n_bootstrap=10).report_ks == (5, 7, 20)

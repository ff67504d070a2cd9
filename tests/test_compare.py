"""sessionbench compare: paired differences between two result folders or two labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from report_fixtures import add_run

from harness import report
from harness.cli import main
from harness.report.compare import compare, write_comparison
from harness.report.provenance import ReportError
from harness.run.store import read_manifest
from harness.models.testing import tiny_dataset

N_BOOT = 200


@pytest.fixture(scope="module")
def two_settings(tmp_path_factory):
    """The same suite at two settings of one model: A with gru4rec scoring like popularity,
    B with gru4rec scoring by transitions; pop identical in both."""
    data = tiny_dataset(n_test=60, seed=0)
    a, b = tmp_path_factory.mktemp("A"), tmp_path_factory.mktemp("B")
    for out, kind in ((a, "pop"), (b, "markov")):
        add_run(out, data, "pop", 0, kind="pop")
        for seed in (0, 1):
            add_run(out, data, "gru4rec", seed, kind=kind, params={"hidden": 32 if kind == "pop" else 64})
    return a, b


def test_differences_match_the_stored_metrics(two_settings):
    a, b = two_settings
    result = compare(a, b, n_bootstrap=N_BOOT)
    t = result.table
    assert set(t["label_a"]) == {"pop", "gru4rec"} and (t["label_a"] == t["label_b"]).all()
    assert set(t["metric"]) == {f"{m}@{k}" for m in ("HitRate", "MRR", "NDCG") for k in (20, 50)}
    for row in t.itertuples():
        side = {}
        for name, folder in (("a", a), ("b", b)):
            runs = [read_manifest(p) for p in (folder / "runs").iterdir() if p.name.startswith(f"tiny-{row.label_a}-")]
            side[name] = np.mean([m["metrics"][row.metric] for m in runs])
        assert row.mean_a == pytest.approx(side["a"]) and row.mean_b == pytest.approx(side["b"])
        assert row.diff == pytest.approx(side["b"] - side["a"])
        assert row.diff_ci_low <= row.diff + 1e-12 and row.diff <= row.diff_ci_high + 1e-12
        assert row.seeds_a == row.seeds_b == (2 if row.label_a == "gru4rec" else 1)
    np.testing.assert_allclose(t["p_holm"], report.holm(t["p"].to_numpy()))
    # identical pop runs: no difference at all; transitions beat popularity on this data
    pop = t[t["label_a"] == "pop"]
    assert (pop["diff"] == 0).all() and (pop["p"] == 1).all() and not pop["significant"].any()
    gru = t[(t["label_a"] == "gru4rec") & (t["metric"] == "MRR@20")].iloc[0]
    assert gru["diff"] > 0 and gru["significant"] and gru["diff_ci_low"] > 0


def test_written_outputs_and_text(two_settings, tmp_path):
    a, b = two_settings
    result = compare(a, b, n_bootstrap=N_BOOT, metrics=["mrr"], ks=[20])
    paths = write_comparison(result, tmp_path / "cmp")
    stem = f"compare_{a.name}_vs_{b.name}"  # two comparisons' figures can go into one paper
    assert {p.name for p in paths} == {f"{stem}.{e}" for e in ("md", "csv", "png", "pdf", "txt", "tex")}
    csv = pd.read_csv(tmp_path / "cmp" / f"{stem}.csv")
    assert list(csv["metric"]) == ["MRR@20", "MRR@20"]
    text = result.text()
    assert "gru4rec" in text and "MRR@20" in text and "B - A" in text
    assert "| gru4rec | MRR@20 |" in (tmp_path / "cmp" / f"{stem}.md").read_text()
    # the caption names what a paper's reader knows (the folders: no plan here), never a local path
    caption = (tmp_path / "cmp" / f"{stem}.txt").read_text()
    assert f"(A: folder {a.name}, B: folder {b.name})" in caption and str(a) not in caption
    cases = result.table["n_cases"].iloc[0]
    assert f"({cases:,} test cases of {result.table['n_sessions'].iloc[0]:,} sessions)" in caption


def test_a_caption_of_one_pair_names_the_models_and_suites(two_settings, tmp_path):
    from harness.run.store import Plan, write_plan

    _, b = two_settings
    folder = tmp_path / "one"
    import shutil

    shutil.copytree(b, folder)
    write_plan(folder, Plan("variant", "name: variant\n", {}, tuple(sorted(p.name for p in (folder / "runs").iterdir()))))
    result = compare(folder, folder, labels=("pop", "gru4rec"), n_bootstrap=50, metrics=["mrr"], ks=[20])
    write_comparison(result, tmp_path / "cmp")
    caption = (tmp_path / "cmp" / "compare_variant_pop_vs_variant_gru4rec.txt").read_text()
    assert "(A: pop of suite variant, B: gru4rec of suite variant)" in caption


def test_two_labels_of_one_folder(two_settings, capsys):
    _, b = two_settings
    assert main(["compare", str(b), "--labels", "pop", "gru4rec", "--n-bootstrap", "50", "--ks", "20"]) == 0
    out = capsys.readouterr().out
    assert "pop -> gru4rec" in out and (b / "compare" / f"compare_{b.name}_pop_vs_{b.name}_gru4rec.csv").is_file()


def test_nothing_to_compare_is_one_line(two_settings, tmp_path, capsys):
    a, _ = two_settings
    other = tmp_path / "other"
    add_run(other, tiny_dataset(n_test=60, seed=0), "sr", 0)
    with pytest.raises(ReportError, match="share no"):
        compare(a, other)
    with pytest.raises(ReportError, match="label 'nope' not in A"):
        compare(a, a, labels=("nope", "pop"))
    # same label, other test cases (another dataset seed): not comparable
    shifted = tmp_path / "shifted"
    add_run(shifted, tiny_dataset(n_test=60, seed=3), "pop", 0)
    with pytest.raises(ReportError, match="test cases differ"):
        compare(a, shifted)
    for argv in (["compare", str(a), str(other)], ["compare", str(a)], ["compare", str(a), str(tmp_path / "none")],
                 ["compare", str(a), str(a), "--metrics", "speed"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("sessionbench: error:")


def test_a_comparison_names_its_runs_what_it_left_out_and_runs_shared(two_settings, tmp_path):
    """Every compared pair names the runs behind each side (ids, code, hyper-parameters) in compare.md
    and compare.csv; a label only one side has is named, not passed over; the same runs on both sides
    are said to differ by nothing by construction."""
    a, b = two_settings
    extra = tmp_path / "B+"
    import shutil

    shutil.copytree(b, extra)
    add_run(extra, tiny_dataset(n_test=60, seed=0), "sr", 0)
    result = compare(a, extra, n_bootstrap=50, metrics=["mrr"], ks=[20])
    assert "only in B, not compared: sr on tiny (next)" in result.notes
    assert "pop on tiny (next): A's and B's runs rank every test case alike (the same runs, or runs that " \
        "predict alike): every difference is zero" in result.notes
    assert not any(n.startswith("gru4rec") for n in result.notes)
    write_comparison(result, tmp_path / "cmp")
    csv = pd.read_csv(next((tmp_path / "cmp").glob("compare_*.csv"))).set_index("label_a")
    assert csv.loc["gru4rec", "run_ids_a"] == "tiny-gru4rec-s0-next;tiny-gru4rec-s1-next"
    assert csv.loc["gru4rec", "params_a"] == '{"hidden": 32}' and csv.loc["gru4rec", "params_b"] == '{"hidden": 64}'
    md = next((tmp_path / "cmp").glob("compare_*.md")).read_text()
    runs = md.split("## Runs", 1)[1]
    assert "`tiny-gru4rec-s1-next`" in runs and '{"hidden": 32}' in runs and '{"hidden": 64}' in runs
    assert "Note: only in B, not compared: sr on tiny (next)" in md
    (tex,) = [p.read_text() for p in (tmp_path / "cmp").glob("compare_*.tex")]
    assert "sessionbench compare" in tex and "\\graphicspath{{cmp/}}" in tex


def test_two_comparisons_into_one_folder_keep_their_own_tables(two_settings, tmp_path):
    a, b = two_settings
    first = write_comparison(compare(a, b, n_bootstrap=50, ks=[20]), tmp_path / "cmp")
    second = write_comparison(compare(b, b, labels=("pop", "gru4rec"), n_bootstrap=50, ks=[20]), tmp_path / "cmp")
    assert not {p.name for p in first} & {p.name for p in second}
    assert all(p.is_file() for p in first + second)


def test_the_default_cut_offs_are_the_two_largest_both_suites_ask_for(two_settings, tmp_path):
    from harness.run.store import Plan, write_plan

    a, b = two_settings
    assert compare(a, b, n_bootstrap=20, metrics=["mrr"]).table["metric"].tolist()[:2] == ["MRR@20", "MRR@50"]
    folders = []
    for name, ks in (("x", [5, 10, 20]), ("y", [1, 5, 10, 20, 50])):
        import shutil

        folder = tmp_path / name
        shutil.copytree(a, folder)
        runs = tuple(sorted(p.name for p in (folder / "runs").iterdir()))
        write_plan(folder, Plan(name, f"name: {name}\n", {"ks": ks}, runs))
        folders.append(folder)
    table = compare(*folders, n_bootstrap=20, metrics=["mrr"]).table
    assert sorted(set(table["metric"])) == ["MRR@10", "MRR@20"]  # the suites share 5, 10, 20: not 50


def test_compare_names_other_evaluation_settings_and_keeps_default_k_within_the_catalogue(tmp_path):
    data = tiny_dataset(n_test=60, seed=0)
    a, b = tmp_path / "A", tmp_path / "B"
    for out, exclude in ((a, False), (b, True)):
        add_run(out, data, "pop", 0, extra={"config": {"evaluation": {"exclude_seen": exclude, "top_width": 50}},
                                           "dataset_stats": {"n_items": 30}})
    result = compare(a, b, n_bootstrap=20, metrics=["mrr"])
    assert list(result.table["metric"]) == ["MRR@20"]  # 50 > the 30 items: left out, and said
    assert "K = 50 left out: above the 30 items of the catalogue" in " ".join(result.notes)
    assert ("pop on tiny (next): A and B were evaluated under other settings (exclude_seen False -> True)"
            in " ".join(result.notes))
    assert list(compare(a, b, n_bootstrap=20, metrics=["mrr"], ks=[5]).table["metric"]) == ["MRR@5"]

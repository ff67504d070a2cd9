"""scripts/scale_report.py: the tables it prints from its JSON lines."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("scale_report", ROOT / "scripts" / "scale_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LOAD = {"load_start": 1.0, "load_mean": 1.5, "load_max": 2.0, "peak_rss_gb": 1.25}


def test_table_keeps_the_last_measurement_of_each_row(tmp_path, capsys):
    rows = [
        {"kind": "prepare", "dataset": "d", "prepare_seconds": 4.25, "cache_load_seconds": 0.5,
         "train_prefixes": 10, "test_cases": 3, **LOAD},
        {"kind": "model", "dataset": "d", "model": "pop", "fit_seconds": 9.0, "score_seconds": 9.0,
         "rank_seconds": 9.0, "overhead_share": 1.0, **LOAD},
        {"kind": "model", "dataset": "d", "model": "pop", "fit_seconds": 0.5, "fit_cpu_seconds": 0.25,
         "score_seconds": 2.0, "score_cpu_seconds": 1.0, "rank_seconds": 1.0, "rank_cpu_seconds": 0.75,
         "metric_seconds": 0.1, "write_seconds": 0.1, "overhead_share": 0.6, **LOAD},
        {"kind": "epoch", "dataset": "d", "model": "srgnn", "subset_prefixes": 2000, "subset_epoch_seconds": 4.0,
         "epoch_seconds_extrapolated": 200.0, "train_tr_epoch_seconds_extrapolated": 150.0, **LOAD},
    ]
    results = tmp_path / "scale.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_script().main(["table", str(results)]) == 0
    out = capsys.readouterr().out
    assert "| d | 4.2 | 0.5 | 1.25 | 1.0/1.5/2.0 | 10 | 3 |" in out
    assert "| d | pop | 0.5 (0.2) | 2.0 (1.0) | 1.0 (0.8) | 0.20 | 60% | 1.25 | 1.0/1.5/2.0 |" in out
    assert "9.0" not in out  # the earlier pop measurement is replaced
    assert "| d | srgnn | 2000 | 4.0 | 2.00 | 200 | 150 | 1.25 | 1.0/1.5/2.0 |" in out


TINY_SPEC = """
name: tinyscale
description: tiny synthetic data for the whole-run table
source: generated
format: synthetic
generator: {n_sessions: 300, n_items: 30, seed: 5, days: 10}
preprocess: {method: standard, test_days: 2, valid_days: 2}
"""


def test_runs_table_reads_epochs_and_timings_of_stored_runs(tmp_path, monkeypatch, capsys):
    from harness.run.store import iter_runs
    from suite_helpers import prepare_workdir, run_inline, tiny_suite

    workdir = prepare_workdir(tmp_path, monkeypatch, spec=TINY_SPEC, dataset="tinyscale", plugins="",
                              module="no_plugins")
    gru = {"name": "gru4rec", "params": {"hidden_size": 8, "batch_size": 16, "epochs": 3, "patience": 1,
                                         "device": "cpu", "loss": "bpr-max", "n_sample": 32}}
    out = workdir / "out"
    assert not run_inline(tiny_suite(workdir, "tinyscale", ["pop", gru], ks=[20]), out).failed
    script = load_script()
    assert script.main(["runs", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split(" | ")[1]: line for line in lines[2:]}
    assert set(rows) == {"pop", "gru4rec"}

    record = next(r for r in iter_runs(out) if r.label == "gru4rec")
    curve = record.curve()
    select, refit = curve[curve["phase"] == "select"], curve[curve["phase"] == "refit"]
    best = int(select.loc[select["valid_MRR@20"].idxmax(), "epoch"])
    assert best == record.manifest["best_epoch"] and len(refit) == best
    cells = rows["gru4rec"].strip("| ").split(" | ")
    assert cells[3] == f"{len(select)} (best {best})" and cells[5] == str(best)
    assert cells[10] == f"{record.manifest['cases']:,}"
    assert cells[13] == f"{record.metric('HitRate@20'):.4f} / {record.metric('MRR@20'):.4f}"
    assert rows["pop"].split(" | ")[3:7] == ["-", "-", "-", "-"]  # no epochs

    # a resumed fit says from where and how many seconds came before
    record.manifest["resumed"] = {"phase": "select", "epoch": 2, "fit_seconds_before": 1234.4}
    record.manifest["timings"]["fit_seconds"] = 2000.0
    assert script._run_cells(record)[7] == "2,000 (resumed after select epoch 2: 1,234 before)"


def test_runs_table_of_a_folder_without_runs_says_so(tmp_path, capsys):
    assert load_script().main(["runs", str(tmp_path)]) == 1
    assert "no complete test runs in" in capsys.readouterr().err

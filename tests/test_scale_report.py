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

"""Measure preparation and the non-neural models on the full-size datasets.

Usage::

    # once: the full-size stand-ins (docs/scale.md)
    sessionbench datasets generate yoochoose diginetica --out DATA
    # preparation from the raw files, then a load from the cache
    python scripts/scale_report.py prepare --data-dir DATA --datasets yoochoose-1-64,yoochoose-1-4,diginetica \\
        --results scale.jsonl
    # every model on every dataset, one process each
    python scripts/scale_report.py models --data-dir DATA --datasets yoochoose-1-4,diginetica \\
        --models pop,spop,markov,ar,sr,itemknn,sknn,vsknn,stan,vstan --results scale.jsonl
    # the Markdown tables of docs/scale.md
    python scripts/scale_report.py table scale.jsonl
    # whole runs of the scale suite, from their stored manifests and curves
    python scripts/scale_report.py runs OUT [OUT ...]

Each measurement runs in a child process under ``/usr/bin/time -v`` (its
"Maximum resident set size" is the peak RSS reported) and ``nice -n 5``.
The child prints one JSON object with its own timings:

``prepare``
    ``prepare_seconds`` (raw files to the stored cache, with a fresh cache
    folder for that dataset), ``cache_load_seconds`` (a second load, from the
    cache, in the same process).
``model``
    ``load_seconds`` (prepared data from the cache), ``fit_seconds``,
    ``score_seconds`` (inside ``model.score``), ``rank_seconds`` (ranking and
    top lists), ``metric_seconds`` (every metric at K = 5, 10, 20),
    ``write_seconds`` (the per-case Parquet file), ``overhead_share``
    ((rank + metric + write) / score).

``runs`` reads complete runs (``sessionbench run scale --out OUT``), not
measurements: one row per run with its commit, its epochs (selection, best,
refit; the seconds of each phase's epochs), ``fit_seconds`` (and what a
resumed fit counted from before), scoring and ranking seconds, test cases,
latency, peak RSS, HitRate@20 and MRR@20.

The parent samples ``/proc/loadavg`` every 2 s while the child runs and
appends one JSON line per measurement to ``--results`` with the command,
the peak RSS, the exit status and the load (1-minute average: at start,
mean and maximum).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NON_NEURAL = ("pop", "spop", "markov", "ar", "sr", "itemknn", "sknn", "vsknn", "stan", "vstan")
KS = (5, 10, 20)


# --------------------------------------------------------------------------- #
# children (run under /usr/bin/time -v)
# --------------------------------------------------------------------------- #


def child_prepare(args: argparse.Namespace) -> dict:
    """Prepare one dataset into a fresh cache folder, then load it back."""
    from harness.data.specs import load_dataset

    cache = Path(args.cache_dir)
    for old in cache.glob(f"{args.dataset}-*"):  # a fresh preparation, not a cache hit
        shutil.rmtree(old)
    t0 = time.perf_counter()
    data = load_dataset(args.dataset, data_dir=args.data_dir, cache_dir=cache)
    t1 = time.perf_counter()
    assert data.meta["cache"]["hit"] is False
    del data
    again = load_dataset(args.dataset, data_dir=args.data_dir, cache_dir=cache)
    t2 = time.perf_counter()
    assert again.meta["cache"]["hit"] is True
    return {
        "prepare_seconds": t1 - t0,
        "cache_load_seconds": t2 - t1,
        "n_items": int(again.n_items),
        **{f"{split}_sessions": int(again.split(split).n_sessions) for split in ("train", "test")},
        "train_prefixes": int(again.train.n_prefixes),
        "test_cases": int(again.test.n_prefixes),
    }


def child_model(args: argparse.Namespace) -> dict:
    """Load the prepared data, fit, evaluate, compute metrics, write ranks."""
    from harness.evaluation.evaluate import evaluate
    from harness.models.registry import make_model
    from harness.data.specs import load_dataset

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = load_dataset(args.dataset, data_dir=args.data_dir, cache_dir=args.cache_dir)
    t1 = time.perf_counter()
    model = make_model(args.model, {})
    c0 = time.process_time()
    model.fit(data, seed=0)
    c1 = time.process_time()
    score_cpu = [0.0]
    plain_score = model.score

    def timed_score(batch):  # the CPU seconds inside score (evaluate times its wall seconds)
        start = time.process_time()
        try:
            return plain_score(batch)
        finally:
            score_cpu[0] += time.process_time() - start

    model.score = timed_score
    result = evaluate(model, data, ks=KS, batch_size=args.batch_size)
    t2 = time.perf_counter()
    c2 = time.process_time()
    metrics = result.metrics(KS)
    t3 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result.save(Path(tmp) / "cases.parquet")
        t4 = time.perf_counter()
    timings = result.timings
    overhead = timings["rank_seconds"] + (t3 - t2) + (t4 - t3)
    return {
        "load_seconds": t1 - t0,
        "fit_seconds": model.fit_seconds_,
        "fit_cpu_seconds": c1 - c0,
        "score_cpu_seconds": score_cpu[0],
        "rank_cpu_seconds": (c2 - c1) - score_cpu[0],
        "score_seconds": timings["score_seconds"],
        "rank_seconds": timings["rank_seconds"],
        "evaluate_seconds": timings["total_seconds"],
        "metric_seconds": t3 - t2,
        "write_seconds": t4 - t3,
        "overhead_share": overhead / timings["score_seconds"] if timings["score_seconds"] > 0 else None,
        "test_cases": result.n_cases,
        "n_items": int(data.n_items),
        "HitRate@20": metrics["HitRate@20"],
        "MRR@20": metrics["MRR@20"],
        "torch_threads": torch.get_num_threads(),
    }


def child_epoch(args: argparse.Namespace) -> dict:
    """One training epoch of a neural model on the prefixes of the first
    ``--sessions`` training sessions (the full catalogue, so the softmax has
    its real width); the cost per training prefix, extrapolated to a whole
    epoch over every training prefix."""
    import torch

    from harness.data.dataset import SessionDataset
    from harness.models.registry import make_model
    from harness.data.specs import load_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, data_dir=args.data_dir, cache_dir=args.cache_dir)
    train = data.train.head(args.sessions)
    subset = SessionDataset(data.name, data.n_items, data.item_map, train, train, data.valid, data.test, data.meta)
    model = make_model(args.model, {"epochs": 1, "patience": 0}).fit(subset, seed=0)
    seconds = model.training_curve_[0]["seconds"]
    per_prefix = seconds / train.n_prefixes
    return {
        "subset_sessions": int(train.n_sessions),
        "subset_prefixes": int(train.n_prefixes),
        "subset_epoch_seconds": seconds,
        "batch_size": int(model.get_params().get("batch_size", 0)),
        "train_prefixes": int(data.train.n_prefixes),
        "train_tr_prefixes": int(data.train_tr.n_prefixes),
        "n_items": int(data.n_items),
        "epoch_seconds_extrapolated": per_prefix * data.train.n_prefixes,
        "train_tr_epoch_seconds_extrapolated": per_prefix * data.train_tr.n_prefixes,
        "default_epochs": int(make_model(args.model, {}).get_params()["epochs"]),
        "torch_threads": torch.get_num_threads(),
    }


# --------------------------------------------------------------------------- #
# parent: one child per measurement
# --------------------------------------------------------------------------- #


class LoadSampler:
    """The 1-minute load average, sampled every ``every`` seconds in a thread."""

    def __init__(self, every: float = 2.0) -> None:
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self.every)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        s = self.samples or [os.getloadavg()[0]]
        return {"load_start": s[0], "load_mean": sum(s) / len(s), "load_max": max(s)}


def measure(kind: str, extra: list[str], args: argparse.Namespace) -> dict:
    """Run one child under ``/usr/bin/time -v`` and ``nice``; returns its row."""
    child = [sys.executable, str(Path(__file__).resolve()), f"child-{kind}", "--data-dir", str(args.data_dir),
             "--cache-dir", str(args.cache_dir), *extra]
    command = ["/usr/bin/time", "-v", "nice", "-n", str(args.nice), *child]
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with LoadSampler() as load:
        t0 = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu = [float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr)]
    row = {"kind": kind, "started": started, "command": shlex.join(command), "returncode": proc.returncode,
           "wall_seconds": wall, "cpu_seconds": sum(cpu) if cpu else None,
           "peak_rss_gb": int(rss.group(1)) / 2**20 if rss else None, **load.summary()}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode == 0 and lines:
        row.update(json.loads(lines[-1]))
    else:
        row["error"] = proc.stderr.strip().splitlines()[-25:]
    return row


def _append(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def run_prepare(args: argparse.Namespace) -> int:
    for dataset in args.datasets.split(","):
        row = measure("prepare", ["--dataset", dataset], args)
        _append(args.results, {"dataset": dataset, **row})
    return 0


def _measure_each(kind: str, args: argparse.Namespace, extra: list[str]) -> int:
    """One child measurement of ``kind`` per (dataset, model), each appended to the results."""
    for dataset in args.datasets.split(","):
        for model in args.models.split(","):
            options = ["--dataset", dataset, "--model", model, *extra]
            if args.threads:
                options += ["--threads", str(args.threads)]
            row = measure(kind, options, args)
            _append(args.results, {"dataset": dataset, "model": model, **row})
    return 0


def run_epochs(args: argparse.Namespace) -> int:
    return _measure_each("epoch", args, ["--sessions", str(args.sessions)])


def run_models(args: argparse.Namespace) -> int:
    return _measure_each("model", args, ["--batch-size", str(args.batch_size)])


# --------------------------------------------------------------------------- #
# tables
# --------------------------------------------------------------------------- #


def _f(value: object, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _load(r: dict) -> str:
    return f"{_f(r['load_start'])}/{_f(r['load_mean'])}/{_f(r['load_max'])}"


def _print_table(headers: list[str], align: str, rows: list[list[str]]) -> None:
    """A Markdown table; ``align`` has one letter per column, ``l`` or ``r``."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
    for cells in rows:
        print("| " + " | ".join(cells) + " |")


def _model_cells(r: dict) -> list[str]:
    share = r.get("overhead_share")
    return [r["dataset"], r["model"], f"{_f(r.get('fit_seconds'))} ({_f(r.get('fit_cpu_seconds'))})",
            f"{_f(r.get('score_seconds'))} ({_f(r.get('score_cpu_seconds'))})",
            f"{_f(r.get('rank_seconds'))} ({_f(r.get('rank_cpu_seconds'))})",
            _f((r.get("metric_seconds") or 0) + (r.get("write_seconds") or 0), 2),
            "-" if share is None else f"{100 * share:.0f}%", _f(r["peak_rss_gb"], 2), _load(r)]


def _epoch_cells(r: dict) -> list[str]:
    rate = 1000 * r["subset_epoch_seconds"] / r["subset_prefixes"]
    return [r["dataset"], r["model"], str(r["subset_prefixes"]), _f(r["subset_epoch_seconds"]), _f(rate, 2),
            _f(r["epoch_seconds_extrapolated"], 0), _f(r["train_tr_epoch_seconds_extrapolated"], 0),
            _f(r["peak_rss_gb"], 2), _load(r)]


def run_table(args: argparse.Namespace) -> int:
    rows = [json.loads(line) for line in Path(args.results).read_text().splitlines() if line.strip()]
    latest: dict[tuple, dict] = {}
    for row in rows:  # the last measurement of each (kind, dataset, model) counts
        latest[(row["kind"], row["dataset"], row.get("model"))] = row
    prepared = [r for r in latest.values() if r["kind"] == "prepare"]
    if prepared:
        _print_table(["dataset", "prepare s", "cache load s", "peak RSS GiB", "load (start/mean/max)",
                      "train prefixes", "test cases"], "lrrrlrr",
                     [[r["dataset"], _f(r.get("prepare_seconds")), _f(r.get("cache_load_seconds")),
                       _f(r["peak_rss_gb"], 2), _load(r), str(r.get("train_prefixes", "-")),
                       str(r.get("test_cases", "-"))] for r in prepared])
        print()
    models = [r for r in latest.values() if r["kind"] == "model"]
    if models:
        _print_table(["dataset", "model", "fit s (CPU s)", "score s (CPU s)", "rank s (CPU s)", "metrics + write s",
                      "overhead / score", "peak RSS GiB", "load start/mean/max"], "llrrrrrrl",
                     [_model_cells(r) for r in models])
        print()
    epochs = [r for r in latest.values() if r["kind"] == "epoch"]
    if epochs:
        _print_table(["dataset", "model", "timed prefixes", "timed epoch s", "s per 1000 prefixes",
                      "train epoch s (extrapolated)", "train_tr epoch s (extrapolated)", "peak RSS GiB",
                      "load start/mean/max"], "llrrrrrrl",
                     [_epoch_cells(r) for r in epochs if "subset_prefixes" in r])
    return 0


def _seconds_range(seconds: list[float]) -> str:
    if not seconds:
        return "-"
    low, high = min(seconds), max(seconds)
    return f"{low:,.0f}" if round(low) == round(high) else f"{low:,.0f}-{high:,.0f}"


def _epoch_cells_of_run(curve) -> list[str]:
    """Selection epochs (best), their seconds; refit epochs, their seconds."""
    if curve is None or curve.empty:
        return ["-", "-", "-", "-"]
    select = curve[curve["phase"] == "select"] if "phase" in curve else curve
    refit = curve[curve["phase"] == "refit"] if "phase" in curve else curve.iloc[:0]
    metric = next((c for c in curve.columns if c.startswith("valid_")), None)
    best = "" if metric is None or select.empty else f" (best {int(select.loc[select[metric].idxmax(), 'epoch'])})"
    return [f"{len(select)}{best}", _seconds_range(list(select["seconds"])),
            str(len(refit)) if len(refit) else "-", _seconds_range(list(refit["seconds"]))]


def _run_cells(record) -> list[str]:
    timings = record.timings
    resumed = record.manifest.get("resumed")
    fit = f"{timings['fit_seconds']:,.0f}"
    if resumed:
        fit += f" (resumed after {resumed['phase']} epoch {resumed['epoch']}: {resumed['fit_seconds_before']:,.0f} before)"
    rss = timings.get("peak_rss_mb")
    return [record.dataset, record.label, str(record.manifest.get("git_commit") or "-")[:7],
            *_epoch_cells_of_run(record.curve()), fit, _f(timings.get("score_seconds")),
            _f(timings.get("rank_seconds")), f"{record.manifest.get('cases', 0):,}",
            f"{_f(timings.get('latency_ms_p50'))} / {_f(timings.get('latency_ms_p95'))}",
            "-" if rss is None else _f(rss / 1024, 2),
            f"{record.metric('HitRate@20'):.4f} / {record.metric('MRR@20'):.4f}"]


def run_runs(args: argparse.Namespace) -> int:
    from harness.run.store import iter_runs

    records = [r for out in args.outs for r in iter_runs(out) if r.stage == "test"]
    if not records:
        print(f"no complete test runs in {', '.join(map(str, args.outs))}", file=sys.stderr)
        return 1
    _print_table(["dataset", "model", "commit", "selection epochs", "s each", "refit epochs", "s each",
                  "fit_seconds", "score s", "rank s", "test cases", "latency p50 / p95 ms", "peak RSS GiB",
                  "HitRate@20 / MRR@20"], "lllrrrrrrrrrrr", [_run_cells(r) for r in records])
    return 0


# --------------------------------------------------------------------------- #


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", required=True, type=Path, help="folder of the full-size raw files")
        p.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("SESSIONBENCH_CACHE", "fullsize-cache")),
                       help="prepared-data cache (default $SESSIONBENCH_CACHE)")

    for name in ("prepare", "models", "epochs"):
        p = sub.add_parser(name)
        common(p)
        p.add_argument("--datasets", default="yoochoose-1-64,yoochoose-1-4,diginetica")
        p.add_argument("--results", required=True, type=Path, help="JSON lines file to append to")
        p.add_argument("--nice", type=int, default=5)
        p.add_argument("--batch-size", type=int, default=500)
        if name == "epochs":
            p.add_argument("--models", default="srgnn,gru4rec")
            p.add_argument("--sessions", type=int, default=8000, help="training sessions of the timed epoch")
            p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
        if name == "models":
            p.add_argument("--models", default=",".join(NON_NEURAL))
            p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
    p = sub.add_parser("child-prepare")
    common(p)
    p.add_argument("--dataset", required=True)
    p = sub.add_parser("child-model")
    common(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--threads", type=int, default=0)
    p = sub.add_parser("child-epoch")
    common(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--sessions", type=int, default=8000)
    p.add_argument("--threads", type=int, default=0)
    p = sub.add_parser("table")
    p.add_argument("results", type=Path)
    p = sub.add_parser("runs")
    p.add_argument("outs", type=Path, nargs="+", help="output folders of sessionbench run")
    args = parser.parse_args(argv)

    if args.command.startswith("child-"):
        children = {"child-prepare": child_prepare, "child-model": child_model, "child-epoch": child_epoch}
        out = children[args.command](args)
        print(json.dumps(out))
        return 0
    return {"prepare": run_prepare, "models": run_models, "epochs": run_epochs, "table": run_table,
            "runs": run_runs}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

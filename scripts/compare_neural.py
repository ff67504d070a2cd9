"""Fit sessionbench's neural models on one dataset and print test accuracy and epoch times.

Usage::

    .venv/bin/python scripts/compare_neural.py --dataset yoochoose-100k \\
        --data-dir PATH/TO/yoochoose-100k --models narm,stamp,sasrec,bprmf,fpmc [--param narm.lr=0.002]

For each model: HitRate@20 and MRR@20 on the test split (next-item
protocol, sessionbench's metric code), the epoch chosen on the validation
split, the mean seconds of a training epoch (from ``training_curve_``), the
mean CPU seconds of this process in a training epoch (CPU time depends much
less than wall-clock time on what else runs on the machine), the fit time, and the equivalent ``sessionbench evaluate`` command. Prints one
Markdown table and, with ``--json FILE``, writes the rows.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import yaml

from harness.evaluation.evaluate import evaluate
from harness.models.registry import available_models
from harness.data.specs import load_dataset


def parse_params(pairs: list[str]) -> dict[str, dict]:
    """``["narm.lr=0.002"]`` -> ``{"narm": {"lr": 0.002}}`` (values read as YAML scalars)."""
    params: dict[str, dict] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        model, dot, name = key.partition(".")
        if not sep or not dot:
            raise SystemExit(f"--param {pair!r}: expected MODEL.KEY=VALUE")
        params.setdefault(model, {})[name] = yaml.safe_load(value)
    return params


def run(model_name: str, params: dict, data, args) -> dict:
    """Fit, evaluate on test, and summarise one model."""
    model = available_models()[model_name](**params)
    cpu_seconds = []
    train_epoch = model._train_epoch

    def timed_epoch(epoch: int) -> float:  # the CPU time of each training epoch alone
        start = time.process_time()
        loss = train_epoch(epoch)
        cpu_seconds.append(time.process_time() - start)
        return loss

    model._train_epoch = timed_epoch  # an instance attribute: fit drops it with the training state
    model.fit(data, seed=args.seed)
    metrics = evaluate(model, data, ks=(20,)).metrics()
    curve = model.training_curve_
    seconds = [row["seconds"] for row in curve]
    flags = " ".join(f"--param {k}={v}" for k, v in params.items())
    command = (f"sessionbench evaluate --dataset {args.dataset} --data-dir {args.data_dir} --model {model_name} "
               f"--seed {args.seed} --k 20 {flags}").strip()
    return {"model": model_name, "params": params, "HitRate@20": metrics["HitRate@20"],
            "MRR@20": metrics["MRR@20"], "best_epoch": model.best_epoch_, "epochs_run": len(curve),
            "seconds_per_epoch": sum(seconds) / len(seconds), "fit_seconds": model.fit_seconds_,
            "cpu_seconds_per_epoch": sum(cpu_seconds) / len(cpu_seconds),
            "command": command}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--models", default="narm,stamp,sasrec,bprmf,fpmc")
    parser.add_argument("--param", action="append", default=[], metavar="MODEL.KEY=VALUE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--verbose", action="store_true", help="log every epoch's loss and validation MRR@20")
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    params = parse_params(args.param)
    data = load_dataset(args.dataset, data_dir=args.data_dir)
    rows = []
    print("| model | HitRate@20 | MRR@20 | best epoch | epochs run | s / epoch | CPU s / epoch | fit s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        row = run(name, params.get(name, {}), data, args)
        rows.append(row)
        print(f"| {name} | {row['HitRate@20']:.4f} | {row['MRR@20']:.4f} | {row['best_epoch']} | "
              f"{row['epochs_run']} | {row['seconds_per_epoch']:.2f} | {row['cpu_seconds_per_epoch']:.2f} | "
              f"{row['fit_seconds']:.0f} |", flush=True)
    for row in rows:
        print(row["command"])
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

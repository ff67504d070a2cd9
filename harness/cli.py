"""The ``sessionbench`` command line.

Errors a user can cause are printed as one line (``sessionbench: error:
...``) with exit status 2 and no traceback. Logging is configured here and
nowhere else.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from harness.errors import ConfigError, SessionbenchError

log = logging.getLogger("sessionbench")

DEFAULT_KS = (5, 10, 20, 50)


def _parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(k) for k in text.split(",") if k.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return tuple(sorted(set(ks)))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="D",
        help="folder with the raw files (default: $SESSIONBENCH_DATA, else datasets/raw/)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="sessionbench",
        description="Benchmark harness for session-based recommendation.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ds = sub.add_parser("datasets", help="list dataset presets, or print a dataset's statistics",
                        description="List the dataset presets with the raw file each needs, or print statistics.")
    ds_sub = ds.add_subparsers(dest="datasets_command", metavar="SUBCOMMAND")
    ds_list = ds_sub.add_parser("list", help="list the presets (the default)")
    ds_list.add_argument("--json", action="store_true", help="print JSON")
    ds_stats = ds_sub.add_parser("stats", help="prepare a dataset and print its statistics",
                                 description="Prepare (or load from cache) a dataset and print per-split statistics.")
    ds_stats.add_argument("name", help="preset name or path of a spec YAML")
    _add_data_dir(ds_stats)
    ds_stats.add_argument("--json", action="store_true", help="print JSON")
    ds.set_defaults(handler=_cmd_datasets, json=False)

    models = sub.add_parser("models", help="list registered models with their hyper-parameters",
                            description="List the registered models with their hyper-parameters and defaults.")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(handler=_cmd_models)

    run = sub.add_parser("run", help="run a benchmark suite (only the missing runs) and write its report",
                         description="Expand a suite into runs, execute the missing ones (each in its own "
                                     "process), store them under OUT/runs/ and write OUT/report/.")
    run.add_argument("suite", nargs="?", default="default",
                     help="suite name (suites/NAME.yaml) or path of a suite YAML (default: default)")
    _add_data_dir(run)
    run.add_argument("--out", metavar="DIR", help="output folder (default: reports/<suite name>)")
    run.add_argument("--jobs", type=_positive_int, default=1, metavar="N", help="runs in parallel (default 1)")
    run.add_argument("--force", action="store_true", help="redo runs that are already complete")
    run.add_argument("--only", action="append", metavar="PATTERN",
                     help="run only runs whose id or dataset/label/seed matches this glob (repeatable)")
    run.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="where runs and tuning trials execute: local processes (default) or Ray tasks")
    run.add_argument("--address", metavar="ADDR", help="with --executor ray: a running Ray cluster's address "
                     "(default: start a local Ray instance)")
    run.add_argument("--gpus", metavar="I,J,...", help="CUDA devices to spread GPU runs over, one run per device "
                     "at a time (e.g. 0,1)")
    run.set_defaults(handler=_cmd_run)

    rep = sub.add_parser("report", help="write figures and tables from stored runs",
                         description="Read the stored runs of OUT_DIR and write OUT_DIR/report/.")
    rep.add_argument("out_dir", nargs="?", default=None,
                     help="a suite's output folder (default: reports/default)")
    rep.set_defaults(handler=_cmd_report)

    ev = sub.add_parser("evaluate", help="fit one model on one dataset and print its metrics",
                        description="Fit a model on a dataset's training split and evaluate it on the test split.")
    ev.add_argument("--dataset", required=True, help="preset name or path of a spec YAML")
    ev.add_argument("--model", required=True, help="registered name or package.module:ClassName")
    ev.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a hyper-parameter (repeat for several); values are read as YAML scalars")
    ev.add_argument("--k", type=_parse_ks, default=DEFAULT_KS, metavar="K,K,...",
                    help="cut-offs (default 5,10,20,50)")
    ev.add_argument("--protocol", choices=("next", "rest"), default="next",
                    help="next: the next item is the target; rest: all remaining items are (default next)")
    ev.add_argument("--exclude-seen", action="store_true", help="remove items already in the prefix from the ranking")
    ev.add_argument("--batch-size", type=_positive_int, default=500, help="prefixes per scoring batch (default 500)")
    _add_data_dir(ev)
    ev.add_argument("--seed", type=int, default=0, help="random seed for fit (default 0)")
    ev.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ev.set_defaults(handler=_cmd_evaluate)
    return parser


# -- datasets ---------------------------------------------------------------


def _cmd_datasets(args: argparse.Namespace) -> int:
    from harness import specs

    if args.datasets_command == "stats":
        data = specs.load_dataset(args.name, data_dir=args.data_dir)
        stats = data.stats()
        if args.json:
            print(json.dumps(stats, indent=2))
        else:
            print(_format_stats(stats))
        return 0
    presets = specs.list_presets()
    if args.json:
        print(json.dumps([p.describe() for p in presets], indent=2))
        return 0
    print("Dataset presets (raw files are looked for in --data-dir, else $SESSIONBENCH_DATA, else datasets/raw/,")
    print("directly or in a sub-folder named after the preset):\n")
    for p in presets:
        info = p.describe()
        print(f"{info['name']}")
        print(f"  {info['description']}")
        print(f"  raw files: {info['files'] or 'none (generated)'}")
        print(f"  source:    {info['source']}")
        print()
    return 0


def _format_stats(stats: dict[str, Any]) -> str:
    splits = [k for k in ("train", "train_tr", "valid", "test") if k in stats]
    rows = list(stats[splits[0]].keys())
    width = max(len(r) for r in rows) + 2
    cols = [max(12, *(len(str(stats[s][r])) + 2 for r in rows)) for s in splits]
    lines = [f"dataset {stats['dataset']}: {stats['n_items']} items", ""]
    lines.append("".ljust(width) + "".join(s.rjust(c) for s, c in zip(splits, cols)))
    for r in rows:
        cells = []
        for s, c in zip(splits, cols):
            v = stats[s][r]
            cells.append((f"{v:.2f}" if isinstance(v, float) else str(v)).rjust(c))
        lines.append(r.ljust(width) + "".join(cells))
    return "\n".join(lines)


# -- models -----------------------------------------------------------------


def _cmd_models(args: argparse.Namespace) -> int:
    from harness.registry import available_models

    models = available_models()  # logs a warning for each broken plugin
    if args.json:
        out = {
            name: {"class": f"{cls.__module__}.{cls.__qualname__}", "hyperparameters": cls.hyperparameters()}
            for name, cls in models.items()
        }
        print(json.dumps(out, indent=2, default=str))
        return 0
    for name, cls in models.items():
        doc = (cls.__doc__ or "").strip().splitlines()
        print(f"{name:<12} {doc[0] if doc else cls.__qualname__}")
        params = cls.hyperparameters()
        if params:
            print(" " * 13 + ", ".join(f"{k}={v!r}" for k, v in params.items()))
    return 0


# -- run and report ---------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from harness.runner import run_suite
    from harness.suites import load_suite

    executor = None
    if args.executor != "local" or args.gpus is not None or args.address is not None:
        from harness.executors import make_executor

        executor = make_executor(args.executor, jobs=args.jobs, address=args.address, gpus=args.gpus)
    suite = load_suite(args.suite)
    outcome = run_suite(
        suite, out_dir=args.out, data_dir=args.data_dir, jobs=args.jobs, force=args.force, only=args.only,
        executor=executor, progress=sys.stderr.isatty(), report=not args.no_report, echo=tqdm.write,
    )  # fmt: skip
    print(f"suite {suite.name}: {len(outcome.planned)} runs planned, {len(outcome.skipped)} already complete, "
          f"{len(outcome.executed)} executed, {len(outcome.failed)} failed; results in {outcome.out_dir}")
    if outcome.report is not None:
        print(outcome.report.text)
        print(f"report: {outcome.report.path}")
    return 1 if outcome.failed else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.report import write_report
    from harness.runner import REPO_ROOT
    from harness.store import iter_runs

    out = Path(args.out_dir) if args.out_dir else REPO_ROOT / "reports" / "default"
    if not any(True for _ in iter_runs(out, include_failed=True)):
        raise ConfigError(f"{out}: no stored runs found (expected {out}/runs/<run_id>/manifest.json); "
                          "run `sessionbench run` first")
    summary = write_report(out)
    print(summary.text)
    print(f"report: {summary.path}")
    return 0


# -- evaluate ---------------------------------------------------------------


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from harness import specs
    from harness.evaluate import evaluate
    from harness.registry import make_model, parse_param

    params: dict[str, Any] = {}
    for text in args.param:
        key, value = parse_param(text)
        if key in params:
            raise ConfigError(f"--param {key} given twice")
        params[key] = value
    model = make_model(args.model, params)
    data = specs.load_dataset(args.dataset, data_dir=args.data_dir)
    log.info("fitting %r on %s (%d training sessions)", model, data.name, data.train.n_sessions)
    model.fit(data, seed=args.seed)
    result = evaluate(
        model,
        data,
        protocol=args.protocol,
        ks=args.k,
        batch_size=args.batch_size,
        exclude_seen=args.exclude_seen,
        progress=not args.json and sys.stderr.isatty(),
    )
    metrics = result.metrics(args.k)
    timings = {"fit_seconds": model.fit_seconds_, **result.timings}
    if args.json:
        out = {
            "dataset": data.name,
            "model": model.name or args.model,
            "params": model.get_params(),
            "protocol": args.protocol,
            "cases": result.n_cases,
            "metrics": metrics,
            "timings": timings,
        }
        print(json.dumps(out, indent=2, default=str))
        return 0
    print(f"{model!r} on {data.name}, protocol {args.protocol}, {result.n_cases} test cases, seed {args.seed}")
    print(format_metric_table(metrics, args.k))
    print("  ".join(f"{k}={v:.4g}" for k, v in timings.items()))
    return 0


def format_metric_table(metrics: dict[str, float], ks: Sequence[int]) -> str:
    """A plain-text table: one row per metric, one column per K."""
    names: list[str] = []
    for key in metrics:
        name = key.split("@")[0]
        if name not in names:
            names.append(name)
    lines = ["metric      " + "".join(f"@{k}".rjust(10) for k in ks)]
    for name in names:
        cells = "".join(
            (f"{metrics[f'{name}@{k}']:.4f}" if f"{name}@{k}" in metrics else "-").rjust(10) for k in ks
        )
        lines.append(f"{name:<12}{cells}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sessionbench`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.handler(args)
    except SessionbenchError as err:
        print(f"sessionbench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sessionbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The ``sessionbench`` command line.

Errors a user can cause are printed as one line (``sessionbench: error:
...``) with exit status 2 and no traceback (so is an operating-system error
on a path the user gave: too long, no permission, a file for a folder); a model whose own code raises
under ``evaluate`` gives one line and exit status 1. ``--traceback`` prints
the full traceback first. Output into a pipe whose reader has gone
(``sessionbench models | head -1``) ends quietly with status 141, as a
SIGPIPE would. Logging is configured here and nowhere else.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import tempfile
import threading
import traceback
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.errors import QUOTE_LIMIT, ConfigError, ModelFailure, SessionbenchError, quote
from harness.limits import MAX_BOOTSTRAP, MAX_K, MAX_SEED, MIN_TIMEOUT_SECONDS
from harness.logs import configure_cli
from harness.models.plugin_template import DEFAULT_MODEL, DEFAULT_PACKAGE

log = logging.getLogger("sessionbench")


def _parse_ks(text: str) -> tuple[int, ...]:
    """``5,10,20`` -> (5, 10, 20): sorted, unique, each in 1..MAX_K."""
    expected = f"expected comma-separated integers in 1..{MAX_K}, got {quote(text)}"
    try:
        ks = tuple(_int(k) for k in text.split(",") if k.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(expected) from None
    if not ks or min(ks) < 1 or max(ks) > MAX_K:
        raise argparse.ArgumentTypeError(expected)
    return tuple(sorted(set(ks)))


def _int(text: str) -> int:
    """A decimal integer (``int`` would also take ``1_000`` and refuse 5000 digits with its own message)."""
    text = text.strip()
    if not text.lstrip("+-").isdigit() or not text.isascii() or len(text) > 30:
        raise ValueError(text)
    return int(text)


def _positive_int(text: str) -> int:
    try:
        value = _int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {quote(text)}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {quote(text)}")
    return value


def _bootstrap_count(text: str) -> int:
    """``--n-bootstrap``: an integer in 1..MAX_BOOTSTRAP."""
    try:
        value = _int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_BOOTSTRAP:
        raise argparse.ArgumentTypeError(f"expected an integer in 1..{MAX_BOOTSTRAP}, got {quote(text)}")
    return value


def _parse_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--figure-width", default="column", metavar="W",
                        help="print width of the figures: column, text or inches (default column)")
    parser.add_argument("--column-width", type=_width_inches, default=3.3, metavar="IN",
                        help=f"inches of --figure-width column, {_MIN_WIDTH:g} to {_MAX_WIDTH:g} (default 3.3)")
    parser.add_argument("--text-width", type=_width_inches, default=7.0, metavar="IN",
                        help=f"inches of --figure-width text, {_MIN_WIDTH:g} to {_MAX_WIDTH:g} (default 7.0)")
    parser.add_argument("--metrics", type=_parse_names, default=None, metavar="NAME,...",
                        help="table columns: metrics (HitRate, Recall, MRR, NDCG, Coverage, Popularity) and "
                             "timings (fit_seconds, prefixes_per_second, latency_ms_p50, latency_ms_p95); "
                             "default HitRate,MRR,NDCG,fit_seconds")
    parser.add_argument("--ks", type=_parse_ks, default=None, metavar="K,K,...",
                        help="cut-offs of the tables' metric columns (default: the two largest of the suite's ks)")
    parser.add_argument("--models", type=_parse_names, default=None, metavar="LABEL,...",
                        help="only these model labels (default: all)")
    parser.add_argument("--layout", choices=("narrow", "wide"), default="narrow",
                        help="LaTeX table: narrow (one column of a two-column paper, the default) or wide "
                             "(table* across both columns)")
    parser.add_argument("--n-bootstrap", type=_bootstrap_count, default=1000, metavar="N",
                        help=f"bootstrap replicates per confidence interval, at most {MAX_BOOTSTRAP:,} (default 1000)")


#: The figure widths, in inches, that harness.report.figure_width_inches draws at.
_MIN_WIDTH, _MAX_WIDTH = 2.0, 20.0


def _width_inches(text: str) -> float:
    """``--column-width`` / ``--text-width``: checked here, not only when a
    figure of that width is drawn, because the report stores both in its
    options.json (a NaN there is not JSON) whichever width it draws at."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not _MIN_WIDTH <= value <= _MAX_WIDTH:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"expected a width between {_MIN_WIDTH:g} and {_MAX_WIDTH:g} inches, "
                                         f"got {quote(text)}")
    return value


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {quote(text)}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {quote(text)}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {quote(text)}")
    if value < MIN_TIMEOUT_SECONDS:
        raise argparse.ArgumentTypeError(f"expected at least {MIN_TIMEOUT_SECONDS:g} second (limits are checked "
                                         f"every 0.1 s), got {quote(text)}")
    return value


def _seed(text: str) -> int:
    """A seed NumPy and torch accept: an integer in 0..2**32 - 1."""
    try:
        value = _int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected an integer in 0..{MAX_SEED}, got {quote(text)}")
    return value


def check_output_dir(out: str | Path, option: str = "--out") -> None:
    """Refuse an output folder that cannot be created or written, before any work starts.

    ``out`` may not exist yet: then its nearest existing ancestor must be a
    writable folder. Writing is tested by creating (and at once removing) a
    temporary file, which is what counts, whoever runs the command.

    Raises:
        ConfigError: ``out`` (or an ancestor) is a file, or the folder cannot
            be written.
    """
    if not str(out).strip():  # Path("") is the current folder: runs, plan and report would land there
        raise ConfigError(f"{option}: expected a folder path, got {quote(str(out))}")
    out = Path(out)
    if "\0" in str(out):
        raise ConfigError(f"{option} {quote(str(out))}: a path cannot contain a NUL character")
    try:
        existing = out
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError(f"{option} {out}: {existing} is a file; expected a folder (or a path to create)")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ConfigError(f"{option} {out}: cannot write there ({exc.strerror or type(exc).__name__}); "
                          "expected a writable folder") from None


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other error
    of the command line (exit status 2, the usage only with ``--help``)."""

    def error(self, message: str) -> typing.NoReturn:
        # argparse quotes the offending argument whole: cut it like every other quoted input
        message = re.sub(r"'([^']{%d,})'" % (QUOTE_LIMIT + 1), lambda m: quote(m.group(1)), message)
        _print_error(f"{self.prog}: error: {message} (see {self.prog} --help)")
        raise SystemExit(2)


def _add_data_dir(parser: argparse.ArgumentParser, **extra: Any) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="D",
        **extra,
        help="folder with the raw files (default: $SESSIONBENCH_DATA, else the user data folder)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = _Parser(
        prog="sessionbench",
        description="Benchmark harness for session-based recommendation.",
    )
    from harness import __version__

    # the version every run's manifest records (versions.sessionbench), to cite or compare with
    parser.add_argument("--version", action="version", version=f"sessionbench {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("--traceback", action="store_true",
                        help="on an error, print the full traceback before the one-line message")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ds = sub.add_parser("datasets", help="list dataset presets and their state, fetch public data, print statistics",
                        description="List the dataset presets with their raw files and whether they are present "
                                    "(the default), fetch the public files, or print a dataset's statistics.")
    ds_sub = ds.add_subparsers(dest="datasets_command", metavar="SUBCOMMAND")
    _add_data_dir(ds)
    ds.add_argument("--json", action="store_true", help="print JSON")
    ds_list = ds_sub.add_parser("list", help="list the presets and the state of their raw files (the default)")
    # SUPPRESS: a --data-dir or --json given before `list` is kept
    _add_data_dir(ds_list, default=argparse.SUPPRESS)
    ds_list.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    ds_fetch = ds_sub.add_parser(
        "fetch", help="download public raw files into the data folder",
        description="Download, check (size, SHA-256) and unpack the public files of each NAME (a download or a "
                    "preset name) into DATA_DIR/<folder>/. A partial download is resumed; a file that fails its "
                    "checksum is set aside. Files behind a registration print the steps to get them by hand.")
    ds_fetch.add_argument("names", nargs="+", metavar="NAME", help="download or preset name (see `sessionbench datasets`)")
    _add_data_dir(ds_fetch)
    ds_fetch.add_argument("--mirror", metavar="URL_OR_DIR",
                          help="another base URL, or a local folder, holding the same file names "
                               "(as <mirror>/<folder>/<file> or <mirror>/<file>)")
    ds_stats = ds_sub.add_parser("stats", help="prepare a dataset and print its statistics",
                                 description="Prepare (or load from cache) a dataset and print per-split statistics.")
    ds_stats.add_argument("name", help="preset name or path of a spec YAML")
    _add_data_dir(ds_stats)
    ds_stats.add_argument("--json", action="store_true", help="print JSON")
    ds_gen = ds_sub.add_parser(
        "generate", help="write full-size synthetic stand-ins of the competition files",
        description="Write seeded synthetic files in the exact raw formats and at the real sizes of "
                    "yoochoose-clicks.dat (33,003,944 rows) and DIGINETICA train-item-views.csv (1,235,380 rows), "
                    "for timing at scale without downloads (not for accuracy claims). The presets yoochoose-1-64, "
                    "yoochoose-1-4 and diginetica read them with --data-dir DIR.")
    ds_gen.add_argument("names", nargs="+", choices=("yoochoose", "diginetica"), metavar="NAME",
                        help="yoochoose and/or diginetica")
    ds_gen.add_argument("--out", required=True, metavar="DIR", help="folder to write the files into")
    ds_gen.add_argument("--scale", type=_scale, default=1.0, metavar="F",
                        help="fraction of the real row count, in (0, 1] (default 1)")
    ds_gen.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    ds.set_defaults(handler=_cmd_datasets)

    models = sub.add_parser("models", help="list registered models with their hyper-parameters",
                            description="List the registered models with their hyper-parameters and defaults.")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(handler=_cmd_models)

    suites = sub.add_parser("suites", help="list the shipped suites with their datasets and models",
                            description="List the shipped suites (`sessionbench run NAME`): each one's "
                                        "description, datasets, models and seeds.")
    suites.add_argument("--json", action="store_true", help="print JSON")
    suites.set_defaults(handler=_cmd_suites)

    plugin = sub.add_parser("plugin", help="start a model of your own as an installable plugin package",
                            description="Write the plugin template: an installable package with one model, "
                                        "its entry point and its conformance tests.")
    plugin_sub = plugin.add_subparsers(dest="plugin_command", metavar="SUBCOMMAND", required=True)
    plugin_new = plugin_sub.add_parser(
        "new", help="write a fresh copy of the plugin template into a new folder",
        description="Write the plugin template into DIR (created; an existing folder must be empty, nothing is "
                    "overwritten): pyproject.toml with the entry point, the package with the model RepeatRecent, "
                    "its tests and a README. It installs with `pip install -e DIR` and passes its tests as written.")
    plugin_new.add_argument("dir", metavar="DIR", help="folder to create (or an empty one)")
    plugin_new.add_argument("--package", default=DEFAULT_PACKAGE, metavar="NAME",
                            help="import package and distribution name, a Python identifier "
                                 f"(default {DEFAULT_PACKAGE})")
    plugin_new.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME",
                            help=f"name the model is registered under, e.g. in suites (default {DEFAULT_MODEL})")
    plugin_new.set_defaults(handler=_cmd_plugin_new)

    run = sub.add_parser("run", help="run a benchmark suite (only the missing runs) and write its report",
                         description="Expand a suite into runs, execute the missing ones (each in its own "
                                     "process), store them under OUT/runs/ and write OUT/report/.")
    run.add_argument("suite", nargs="?", default="default",
                     help="name of a shipped suite or path of a suite YAML (default: default)")
    _add_data_dir(run)
    run.add_argument("--out", metavar="DIR", help="output folder (default: reports/<suite name> of the current folder)")
    run.add_argument("--jobs", type=_positive_int, default=1, metavar="N", help="runs in parallel (default 1)")
    run.add_argument("--force", action="store_true", help="redo runs that are already complete")
    run.add_argument("--only", action="append", metavar="PATTERN",
                     help="run only runs whose label, run id or dataset/label/seed is PATTERN, else matches it "
                          "as a glob (repeatable)")
    run.add_argument("--timeout", type=_positive_seconds, metavar="SECONDS",
                     help="time limit of fit and of scoring, for runs the suite gives no timeout")
    run.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="where runs and tuning trials execute: local processes (default) or Ray tasks")
    run.add_argument("--address", metavar="ADDR", help="with --executor ray: a running Ray cluster's address "
                     "(default: start a local Ray instance)")
    run.add_argument("--gpus", metavar="I,J,...", help="CUDA devices to spread GPU runs over, one run per device "
                     "at a time (e.g. 0,1)")
    run.add_argument("--save-models", action="store_true",
                     help="store each fitted model in model/ of its run folder (SessionRecommender.load reads it)")
    run.set_defaults(handler=_cmd_run)

    runs = sub.add_parser("runs", help="list or prune the stored runs of an output folder",
                          description="List the stored runs of OUT (with broken and failed ones), or delete "
                                      "the runs that its plan.json no longer lists.")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="SUBCOMMAND", required=True)
    runs_ls = runs_sub.add_parser("ls", help="list the runs: status, label, dataset, seed, protocol, config, plan",
                                  description="List every run folder of OUT/runs/ with its status (complete, "
                                              "failed, broken), and whether OUT/plan.json lists it; a run "
                                              "killed while training shows its checkpoint (status unfinished "
                                              "when it has no run folder).")
    runs_ls.add_argument("out_dir", metavar="OUT", help="a suite's output folder")
    runs_ls.add_argument("--json", action="store_true", help="print JSON")
    runs_ls.set_defaults(handler=_cmd_runs_ls)
    runs_prune = runs_sub.add_parser("prune", help="delete the runs that OUT/plan.json does not list",
                                     description="Delete the run folders and training checkpoints of OUT/runs/ "
                                                 "that the plan of the last `sessionbench run` into OUT does not "
                                                 "list (superseded runs).")
    runs_prune.add_argument("out_dir", metavar="OUT", help="a suite's output folder")
    runs_prune.add_argument("--yes", action="store_true", help="delete them (without it: only list them)")
    runs_prune.set_defaults(handler=_cmd_runs_prune)

    rep = sub.add_parser("report", help="write figures and tables from stored runs",
                         description="Read the stored runs of OUT_DIR (the runs of its plan) and write "
                                     "OUT_DIR/report/: figures drawn at their print width, LaTeX/Markdown/CSV "
                                     "tables, a tuning section per tuned model, and the runs left out and why.")
    rep.add_argument("out_dir", nargs="?", default=None,
                     help="a suite's output folder (default: reports/default of the current folder)")
    _add_report_options(rep)
    rep.set_defaults(handler=_cmd_report)

    cmp_ = sub.add_parser("compare", help="compare the shared runs of two result folders (or two labels)",
                          description="For the runs two result folders share (same dataset, protocol and test "
                                      "cases), or two labels of one folder: per-metric differences B - A with "
                                      "paired bootstrap CIs and paired t-tests (Holm-corrected), as a text table, "
                                      "Markdown, CSV and a figure.")
    cmp_.add_argument("a", help="result folder A")
    cmp_.add_argument("b", nargs="?", default=None, help="result folder B (default: A, with --labels)")
    cmp_.add_argument("--labels", nargs=2, metavar=("X", "Y"),
                      help="compare label X of A with label Y of B (default: every label both folders have)")
    cmp_.add_argument("--metrics", type=_parse_names, default=None, metavar="NAME,...",
                      help="metrics to compare (default HitRate,MRR,NDCG)")
    cmp_.add_argument("--ks", type=_parse_ks, default=None, metavar="K,K,...",
                      help="cut-offs (default: the two largest K both suites ask for, as their reports' tables; "
                           "20,50 for folders without a plan)")
    cmp_.add_argument("--out", metavar="DIR", help="where to write compare_<A>_vs_<B>.md, .csv and the figure "
                                                   "(default: B/compare/ or A/compare/)")
    cmp_.add_argument("--figure-width", default="column", metavar="W",
                      help="column, text or inches (default column)")
    cmp_.add_argument("--n-bootstrap", type=_bootstrap_count, default=1000, metavar="N",
                      help=f"bootstrap replicates, at most {MAX_BOOTSTRAP:,} (default 1000)")
    cmp_.set_defaults(handler=_cmd_compare)

    ev = sub.add_parser("evaluate", help="fit one model on one dataset and print its metrics",
                        description="Fit a model on a dataset's training split and evaluate it on the test split.")
    ev.add_argument("--dataset", required=True, help="preset name or path of a spec YAML")
    ev.add_argument("--model", required=True, help="registered name or package.module:ClassName")
    ev.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a hyper-parameter (repeat for several); values are read as YAML scalars")
    ev.add_argument("--k", type=_parse_ks, default=None, metavar="K,K,...",
                    help=f"cut-offs, each at most {MAX_K} (default 5,10,20,50)")
    ev.add_argument("--protocol", choices=("next", "rest"), default="next",
                    help="next: the next item is the target; rest: all remaining items are (default next)")
    ev.add_argument("--exclude-seen", action="store_true", help="remove items already in the prefix from the ranking")
    ev.add_argument("--batch-size", type=_positive_int, default=500, help="prefixes per scoring batch (default 500)")
    _add_data_dir(ev)
    ev.add_argument("--seed", type=_seed, default=0, help=f"random seed for fit, 0..{MAX_SEED} (default 0)")
    ev.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ev.add_argument("--retrieval", metavar="METHOD",
                    help="rank only the top-K that an index retrieves from the model's embeddings: exact, "
                         "faiss-flat, faiss-hnsw, faiss-ivf, faiss-ivfpq, faiss-lsh or annoy (docs/retrieval.md)")
    ev.add_argument("--retrieval-param", action="append", default=[], metavar="KEY=VALUE",
                    help="an index parameter, e.g. efSearch=64 (repeat for several)")
    ev.add_argument("--timeout", type=_positive_seconds, metavar="SECONDS",
                    help="time limit of fit and of the evaluation each (exit status 124 past it)")
    ev.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                    help="on an error, print the full traceback (also accepted before the command)")
    ev.set_defaults(handler=_cmd_evaluate)
    return parser


# -- datasets ---------------------------------------------------------------


def _cmd_datasets(args: argparse.Namespace) -> int:
    from harness.data import fetch, specs

    if args.datasets_command == "stats":
        data = specs.load_dataset(args.name, data_dir=args.data_dir)
        stats = data.stats()
        if args.json:
            print(json.dumps(stats, indent=2))
        else:
            print(_format_stats(stats))
        return 0
    if args.datasets_command == "fetch":
        fetch.fetch(args.names, data_dir=args.data_dir, mirror=args.mirror)
        return 0
    if args.datasets_command == "generate":
        from harness.data.fullsize import generate_all

        check_output_dir(args.out)
        generate_all(args.out, tuple(dict.fromkeys(args.names)), scale=args.scale, seed=args.seed, echo=print)
        return 0
    return _list_datasets(args)


def _list_datasets(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness import paths
    from harness.data import fetch, specs

    presets = specs.list_presets()
    data_dir = Path(args.data_dir) if args.data_dir else paths.data_dir()
    specs.check_data_dir(data_dir)
    available = fetch.downloads(presets)
    rows = []
    for p in presets:
        state, detail = fetch.preset_state(p, data_dir, available)
        rows.append({**p.describe(), "state": state, "state_detail": detail})
    if args.json:
        print(json.dumps({"data_dir": str(data_dir), "presets": rows,
                          "downloads": {name: [e.file for e in files] for name, files in available.items()}},
                         indent=2))  # fmt: skip
        return 0
    print(f"Dataset presets; raw files are looked for in {data_dir}")
    print("(--data-dir, else $SESSIONBENCH_DATA, else the user data folder), directly or in a sub-folder")
    print("named after the preset:\n")
    for info in rows:
        print(f"{info['name']}  [{info['state']}]")
        print(f"  {info['description']}")
        print(f"  raw files: {info['files'] or 'none (generated)'}")
        if info["state"] != "generated":
            label = "get with" if info["state"] == "missing" else "found"
            print(f"  {label + ':':<10} {info['state_detail']}")
        print(f"  source:    {info['source']}")
        print()
    print("Downloads (sessionbench datasets fetch NAME):")
    for name, files in available.items():
        how = "by hand" if all(e.url is None for e in files) else "by script"
        print(f"  {name:<18} {', '.join(e.file for e in files)} ({how})")
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
    from harness.models.registry import available_models

    models = available_models()  # logs a warning for each broken plugin
    if args.json:
        out = {
            name: {"class": f"{cls.__module__}.{cls.__qualname__}", "hyperparameters": cls.hyperparameters()}
            for name, cls in models.items()
        }
        print(json.dumps(out, indent=2, default=str))
        return 0
    for name, cls in models.items():
        print(f"{name:<12} {_summary_line(cls.__doc__) or cls.__qualname__}")
        params = cls.hyperparameters()
        if params:
            print(" " * 13 + ", ".join(f"{k}={v!r}" for k, v in params.items()))
    return 0


# -- suites -----------------------------------------------------------------


def _cmd_suites(args: argparse.Namespace) -> int:
    from harness.run.suites import load_suite, shipped_suites

    suites = [load_suite(name) for name in shipped_suites()]
    if args.json:
        out = {suite.name: {"description": suite.description, "datasets": [d.name for d in suite.datasets],
                            "models": [m.label for m in suite.models], "seeds": sorted({s for m in suite.models
                                                                                     for s in m.seeds})}
               for suite in suites}
        print(json.dumps(out, indent=2))
        return 0
    width = max((len(suite.name) for suite in suites), default=0) + 2
    for suite in suites:
        print(f"{suite.name:<{width}}{' '.join(suite.description.split())}")
        print(" " * width + "datasets: " + ", ".join(d.name for d in suite.datasets))
        print(" " * width + "models: " + ", ".join(m.label for m in suite.models))
    return 0


def _summary_line(doc: str | None) -> str:
    """A docstring's first paragraph on one line (a summary may wrap over several lines)."""
    paragraph = (doc or "").strip().split("\n\n", 1)[0]
    return " ".join(paragraph.split())


# -- plugin -----------------------------------------------------------------


def _cmd_plugin_new(args: argparse.Namespace) -> int:
    from harness.models.plugin_template import write_plugin

    check_output_dir(args.dir, option="DIR")
    folder = Path(args.dir)
    written = write_plugin(folder, package=args.package, model=args.model)
    print(f"wrote {len(written)} files into {folder}:")
    for path in written:
        print(f"  {path.relative_to(folder).as_posix()}")
    print(f"next: pip install -e {folder}   (then `sessionbench models` lists {args.model!r}; "
          f"`pytest {folder / 'tests'}` runs its tests)")
    return 0


# -- run and report ---------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from harness.paths import reports_dir
    from harness.run.runner import run_suite
    from harness.run.suites import load_suite

    executor = None
    if args.executor != "local" or args.gpus is not None or args.address is not None:
        from harness.run.executors import make_executor

        executor = make_executor(args.executor, jobs=args.jobs, address=args.address, gpus=args.gpus)
    suite = load_suite(args.suite)
    check_output_dir(args.out if args.out is not None else reports_dir(suite.name))
    outcome = run_suite(
        suite, out_dir=args.out, data_dir=args.data_dir, jobs=args.jobs, force=args.force, only=args.only,
        executor=executor, progress=sys.stderr.isatty(), report=not args.no_report, echo=tqdm.write,
        timeout=None if args.timeout is None else {"fit": args.timeout, "score": args.timeout},
        save_models=args.save_models,
    )  # fmt: skip
    print(f"suite {suite.name}: {len(outcome.planned)} run(s) planned, {len(outcome.skipped)} already complete, "
          f"{len(outcome.executed)} executed, {len(outcome.failed)} failed; results in {outcome.out_dir}")
    if outcome.report is not None:
        print(outcome.report.text)
        print(f"report: {outcome.report.path}")
    return 1 if outcome.failed else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.paths import reports_dir
    from harness.report import TableSpec, check_table_metrics, write_report
    from harness.run.store import iter_runs

    out = Path(args.out_dir) if args.out_dir else reports_dir("default")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file; expected a suite's output folder (holding runs/)")
    if not any(True for _ in iter_runs(out, include_failed=True, include_broken=True)):
        raise ConfigError(f"{out}: no stored runs found (expected {out}/runs/<run_id>/manifest.json); "
                          "run `sessionbench run` first")
    if args.ks:
        from harness.report.collection import check_ks_against_items

        check_ks_against_items(args.ks, iter_runs(out), "--ks")
    chosen = {"metrics": None if args.metrics is None else check_table_metrics(args.metrics), "ks": args.ks}
    spec = TableSpec(layout=args.layout, **{k: v for k, v in chosen.items() if v is not None})
    summary = write_report(out, n_bootstrap=args.n_bootstrap, figure_width=args.figure_width,
                           column_width=args.column_width, text_width=args.text_width, table=spec,
                           models=args.models)
    for line in summary.warnings:
        print(f"sessionbench: warning: {line}", file=sys.stderr)
    print(summary.text)
    print(f"report: {summary.path}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.report.compare import compare, write_comparison

    a = Path(args.a)
    b = Path(args.b) if args.b else a
    if b == a and not args.labels:
        raise ConfigError("compare: give two result folders, or one folder and --labels X Y")
    if args.out:
        check_output_dir(args.out)
    if args.ks:
        from harness.report.collection import check_ks_against_items
        from harness.run.store import iter_runs

        for folder in dict.fromkeys((a, b)):
            check_ks_against_items(args.ks, iter_runs(folder), "--ks")
    result = compare(a, b, labels=args.labels, metrics=args.metrics, ks=args.ks, n_bootstrap=args.n_bootstrap)
    out = Path(args.out) if args.out else b / "compare"
    written = write_comparison(result, out, figure_width=args.figure_width)
    print(result.text())
    print(f"compare: {written[0].parent}")
    return 0


# -- runs -------------------------------------------------------------------


def _stored_runs_folder(out_dir: str) -> Path:
    """``out_dir``, which must hold stored runs (checked before a lock would create it)."""
    from harness.run.store import runs_dir

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file; expected a suite's output folder (holding runs/)")
    if not runs_dir(out).is_dir():
        raise ConfigError(f"{out}: no stored runs (expected {runs_dir(out)}/<run_id>/manifest.json)")
    return out


def _runs_table(out_dir: str) -> tuple[list[dict[str, Any]], Any]:
    """One row per run folder of ``out_dir``, and one per checkpoint of a run
    that has no folder (status ``unfinished``), with the plan (None without
    one). ``checkpoint_bytes``: the size of the run's checkpoint folder, or
    None when it has none. A checkpoint without a run folder is a run
    killed while training, or one training now (``unfinished``)."""
    from harness.run.store import folder_bytes, iter_checkpoints, iter_runs, read_plan

    out = _stored_runs_folder(out_dir)
    try:
        plan = read_plan(out)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    planned = set(plan.run_ids) if plan is not None else None
    rows = []
    for r in iter_runs(out, include_failed=True, include_broken=True):
        m = r.manifest if r.problem is None else {**r.manifest, "status": "broken"}
        rows.append({
            "run_id": r.run_id, "status": r.status, "stage": m.get("stage", ""), "label": m.get("label", ""),
            "dataset": m.get("dataset", ""), "seed": m.get("seed", ""), "protocol": m.get("protocol", ""),
            "config_digest": r.config_digest or "", "code_digest": r.code_digest or "",
            "in_plan": None if planned is None else r.run_id in planned,
            "problem": r.problem or m.get("error_line") or "", "checkpoint_bytes": None,
        })  # fmt: skip
    by_id = {row["run_id"]: row for row in rows}
    for run_id, folder in iter_checkpoints(out):
        row = by_id.get(run_id)
        if row is None:  # killed with its runner, or before anything was stored
            row = {key: "" for key in ("stage", "label", "dataset", "seed", "protocol", "config_digest",
                                       "code_digest", "problem")}
            row.update(run_id=run_id, status="unfinished", in_plan=None if planned is None else run_id in planned)
            rows.append(row)
        row["checkpoint_bytes"] = folder_bytes(folder)
    rows.sort(key=lambda row: row["run_id"])
    return rows, plan


def _checkpoint_note(row: dict[str, Any]) -> str:
    """What ``runs ls`` says of a run's checkpoint (empty without one)."""
    size = row["checkpoint_bytes"]
    if size is None:
        return ""
    fate = {True: "the next run resumes from it", False: "not in the plan: runs prune deletes it",
            None: "resumed by a run whose plan holds it"}[row["in_plan"]]
    return f"checkpoint {size / 2**20:,.1f} MiB, {fate}"


def _cmd_runs_ls(args: argparse.Namespace) -> int:
    rows, plan = _runs_table(args.out_dir)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from harness.run.lock import describe, holder

    if plan is None:
        print(f"{args.out_dir}: no plan.json (written by `sessionbench run`); plan membership unknown")
    else:
        missing = set(plan.run_ids) - {r["run_id"] for r in rows if r["status"] != "unfinished"}
        print(f"plan: suite {plan.suite_name}, {len(plan.run_ids)} runs ({len(missing)} not stored)")
    owner = holder(args.out_dir)
    if owner is not None:
        print(f"in use by {describe(owner)}: an unfinished run may be training now")
    # code beside config: a run superseded by an edit of the code has the same config digest
    header = ("status", "plan", "label", "dataset", "seed", "protocol", "stage", "config", "code", "run id")
    # str(): a broken run's manifest may hold anything under these keys
    table = [[r["status"], {None: "-", True: "yes", False: "no"}[r["in_plan"]], str(r["label"]), str(r["dataset"]),
              str(r["seed"]), str(r["protocol"]), str(r["stage"]), str(r["config_digest"])[:12] or "-",
              str(r["code_digest"])[:12] or "-", r["run_id"]]
             for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for row, r in zip(table, rows):
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
        notes = [r["problem"] if r["status"] != "complete" else "", _checkpoint_note(r)]
        notes = "; ".join(note for note in notes if note)
        print(line + (f"  ({notes})" if notes else ""))
    return 0


def _cmd_runs_prune(args: argparse.Namespace) -> int:
    from harness.run.lock import OutputLock
    from harness.run.store import remove_checkpoint, remove_run

    _stored_runs_folder(args.out_dir)  # a mistyped folder is not created by the lock
    with OutputLock(args.out_dir, command="sessionbench runs prune"):
        rows, plan = _runs_table(args.out_dir)
        if plan is None:
            raise ConfigError(f"{args.out_dir}: no plan.json, so no run is known to be superseded; "
                              "`sessionbench run` writes one")  # fmt: skip
        gone = [r for r in rows if not r["in_plan"]]
        for r in gone:
            size = r["checkpoint_bytes"]
            what = "" if size is None else f"  (and its checkpoint, {size / 2**20:,.1f} MiB)"
            print(f"{'deleted' if args.yes else 'would delete'}  {r['status']:<8}  {r['run_id']}{what}")
        if not args.yes:
            if gone:
                print(f"{len(gone)} run(s) outside the plan of suite {plan.suite_name}; "
                      "run again with --yes to delete them", file=sys.stderr)
                return 1
            print(f"nothing to prune: every run is in the plan of suite {plan.suite_name}")
            return 0
        for r in gone:
            if r["status"] != "unfinished":
                remove_run(args.out_dir, r["run_id"])
            remove_checkpoint(args.out_dir, r["run_id"])
        print(f"{len(gone)} run(s) deleted; {len(rows) - len(gone)} kept")
    return 0


# -- evaluate ---------------------------------------------------------------


def _cmd_evaluate(args: argparse.Namespace) -> int:
    """Fit and evaluate one model. Bad input or a broken plugin contract
    raises :class:`SessionbenchError` (exit 2); an exception raised by the
    model's own ``fit`` or ``score`` becomes :class:`ModelFailure` (exit 1)."""
    from harness.data import specs
    from harness.evaluation.evaluate import check_ks, evaluate
    from harness.evaluation.metrics import DEFAULT_KS
    from harness.models.plugin import calling_model
    from harness.models.registry import make_model, parse_param

    params: dict[str, Any] = {}
    for text in args.param:
        key, value = parse_param(text)
        if key in params:
            raise ConfigError(f"--param {key} given twice")
        params[key] = value
    model = make_model(args.model, params)
    retrieval = _retrieval_option(args, model)
    data = specs.load_dataset(args.dataset, data_dir=args.data_dir)
    ks = args.k or DEFAULT_KS
    check_ks(ks, data, "--k")
    limit = _phase_limits(args.timeout)
    log.info("fitting %r on %s (%d training sessions)", model, data.name, data.train.n_sessions)
    with limit("fit", args.timeout), calling_model(model, "fit"):
        model.fit(data, seed=args.seed)
    with limit("score", args.timeout):
        result = evaluate(
            model,
            data,
            protocol=args.protocol,
            ks=ks,
            batch_size=args.batch_size,
            exclude_seen=args.exclude_seen,
            progress=not args.json and sys.stderr.isatty(),
            retrieval=retrieval,
        )
    metrics = result.metrics(ks)
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
        if retrieval is not None:
            out["retrieval"] = result.meta["retrieval"]
        print(json.dumps(out, indent=2, default=str))
        return 0
    print(f"{model!r} on {data.name}, protocol {args.protocol}, {result.n_cases} test cases, seed {args.seed}")
    print(format_metric_table(metrics, ks))
    print("  ".join(f"{k}={v:.4g}" for k, v in timings.items()))
    if retrieval is not None:
        print(_format_retrieval(result.meta["retrieval"]))
    return 0


def _retrieval_option(args: argparse.Namespace, model: Any) -> Any:
    """The :class:`harness.evaluation.retrieval.Retrieval` of ``--retrieval`` (None without it)."""
    if args.retrieval is None:
        if args.retrieval_param:
            raise ConfigError("--retrieval-param needs --retrieval METHOD")
        return None
    from harness.models.registry import parse_param
    from harness.evaluation.retrieval import Retrieval, require_embeddings

    params: dict[str, Any] = {}
    for text in args.retrieval_param:
        try:
            key, value = parse_param(text)
        except ConfigError as err:
            raise ConfigError(str(err).replace("--param", "--retrieval-param")) from None
        if key in params:  # as for --param: a silent "last one wins" hides a typo in a long command
            raise ConfigError(f"--retrieval-param {key} given twice")
        params[key] = value
    retrieval = Retrieval(args.retrieval, params, seed=args.seed)  # checks the method and parameters
    require_embeddings(model, args.retrieval)
    return retrieval


def _format_retrieval(info: dict[str, Any]) -> str:
    recall = "  ".join(f"@{k} {v:.4f}" for k, v in info["recall"].items())
    return (f"retrieval {info['label']} ({info['mips']}): ANN recall {recall}\n"
            f"  build {info['build_seconds']:.3g} s, index {info['index_bytes'] / 2**20:.3g} MiB, "
            f"single query p50 {info['latency_ms_p50']:.3g} ms p95 {info['latency_ms_p95']:.3g} ms, "
            f"batched {info['batch_qps']:.4g} queries/s ({info['threads']} threads)")


def _phase_limits(timeout: float | None) -> Any:
    """``limit(phase, seconds)`` context managers: a watchdog that prints one
    line and ends the process (status 124) past the limit, or no-ops."""
    from contextlib import nullcontext

    if timeout is None:
        return lambda phase, seconds: nullcontext()
    from harness.run.watchdog import Watchdog, format_seconds

    def stop(phase: str, seconds: float) -> None:
        print(f"sessionbench: error: timeout after {format_seconds(seconds)} s in {phase}", file=sys.stderr, flush=True)

    return Watchdog(stop).phase


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


def _report(err: Exception, full: bool, hint: str = "") -> None:
    """Print ``err`` as one line on stderr (after its traceback when ``full``)."""
    if full:
        traceback.print_exception(err, file=sys.stderr)
        hint = ""
    message = " ".join(str(err).split())  # one line, whatever the message holds
    _print_error(f"sessionbench: error: {message}{hint}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sessionbench`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_cli(args.verbose)
    try:
        with _sigterm_interrupts():
            return args.handler(args)
    except SessionbenchError as err:
        _report(err, args.traceback)
        return 2
    except ModelFailure as err:
        _report(err, args.traceback, hint=" (run with --traceback for the model's traceback)")
        return 1
    except BrokenPipeError:  # the reader of our output went away (`sessionbench models | head`): not an error
        return _stdout_closed()
    except OSError as err:  # a path the system refuses (too long, no permission, a file for a folder, disk full)
        _report(ConfigError(_os_error_message(err)), args.traceback)
        return 2
    except Terminated:
        print(f"sessionbench: terminated{_kept(args)}", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"sessionbench: interrupted{_kept(args)}", file=sys.stderr)
        return 130


def _kept(args: argparse.Namespace) -> str:
    """What an interrupted ``run`` kept, and how to go on."""
    if getattr(args, "handler", None) is not _cmd_run:
        return ""
    return ("; the runs it completed and the epoch checkpoints of the one it was training are kept: "
            "the same command goes on from there")


class Terminated(KeyboardInterrupt):
    """SIGTERM received by the command: raised in the main thread like
    Ctrl-C's ``KeyboardInterrupt`` (a subclass, so every cleanup that an
    interruption runs -- workers stopped, the output folder's lock released
    -- runs for it too, and no ``except Exception`` takes it for a model's
    failure)."""


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While the command runs, SIGTERM raises :class:`Terminated` instead of
    ending the process on the spot (the previous handler is restored after;
    only the main thread may set one)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stdout_closed() -> int:
    """Exit quietly once stdout's reader has gone: point stdout at the null
    device (so the flush at exit cannot fail again) and return 141, the
    status of a process ended by SIGPIPE as shells report it."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (e.g. captured in tests)
        pass
    return 141


def _os_error_message(err: OSError) -> str:
    """``path: reason`` of an operating-system error, the path cut like any quoted input."""
    reason = err.strerror or type(err).__name__
    if err.filename is None:
        return reason
    name = str(err.filename)
    return f"{quote(name) if len(name) > QUOTE_LIMIT else name}: {reason}"


def _print_error(message: str) -> None:
    """Print one line to stderr even when it holds characters stderr cannot
    encode (a file name with undecodable bytes, for instance)."""
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    line = " ".join(message.splitlines())  # every line break: \r, \v, \x1c, \u2028 too
    print(line.encode(encoding, "backslashreplace").decode(encoding, "replace"), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

"""Fuzzing the command line: argument lists from a grammar of sub-commands,
options and values (numbers at the edges, junk text, odd paths).

Each argument list runs ``harness.cli.main`` in-process: the exit status is
0 or 2, stderr holds no traceback (and one line on status 2), and nothing is
written outside the temporary output and cache folders. ``run`` stops where
the runner would start (the runner has its own tests); every other command
runs for real, on a tiny dataset. A few lists also run as a subprocess.
See tests/fuzzing.py for the profiles.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from fuzzing import REPO, WATCHED, assert_one_line_error, fuzz_settings, no_hang, tree
from hypothesis import event, given
from hypothesis import strategies as st

import harness.run.runner
from harness.cli import main

EVENTS = "session,item,time\n" + "".join(
    f"{s},{(s * 3 + j) % 7},{1_400_000_000 + s * 20_000 + j}\n" for s in range(1, 40) for j in range(3)
)
SPEC = "name: tiny\ndescription: d\nsource: s\nformat: table\nfiles: {events: events.csv}\n" \
       "preprocess: {method: standard, min_item_support: 1}\n"
SUITE = "datasets: [TINY]\nmodels: [pop]\n"


class _Reached(Exception):
    """``run`` got past every check and would now start the runner."""


@pytest.fixture(scope="module")
def base():
    """A folder with a tiny dataset (spec and raw file) and a suite that uses it."""
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        (base / "events.csv").write_text(EVENTS)
        (base / "tiny.yaml").write_text(SPEC)
        (base / "suite.yaml").write_text(SUITE.replace("TINY", str(base / "tiny.yaml")))
        (base / "afile").write_text("")
        yield base


junk = st.one_of(
    st.sampled_from(["", " ", "-", "--", "-1", "0", "1", "5,10", "0,5", ",", "5,,", "1e3", "99999999999999999999",
                     "10000000000", "4294967295", "4294967296", "nan", "inf", "+3", "٣", "1_0", "x" * 5000,
                     "9" * 5000, "\udcff", "é", "a=b", "=", "k=", "=1"]),
    st.text(max_size=10),
)
paths = st.sampled_from(["BASE/out", "BASE/afile", "BASE/afile/sub", "BASE/new/deeper/out", "BASE", "BASE/x\0y",
                         "BASE/" + "n" * 300, "", "."])
datasets_ = st.sampled_from(["BASE/tiny.yaml", "nosuch", "BASE/missing.yaml", "BASE/events.csv", "../x", ""])
models = st.sampled_from(["pop", "spop", "markov", "nosuch", "nosuch:Class", ":X", "a..b:C", ""])
params = st.one_of(
    st.sampled_from(["tiebreak=0.3", "tiebreak=2", "tiebreak=x", "pruning=99999999999999999999", "pruning=-1",
                     "k=1", "noequals", "=1", "tiebreak=[1]", "tiebreak={a: 1}", "tiebreak=&a", "tiebreak=" + "[" * 50,
                     "pruning=010", "pruning=-07", "tiebreak=no", "fallback=off", "tiebreak=1e-3", "pruning=0x10"]),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["tiebreak", "pruning", "fallback", "x"]), junk),
)


def option(flag: str, value: st.SearchStrategy) -> st.SearchStrategy:
    return st.tuples(st.just(flag), value).map(list)


def mostly(valid: list[str], other: st.SearchStrategy) -> st.SearchStrategy:
    """A valid value three times in four, else ``other``."""
    return st.integers(0, 3).flatmap(lambda i: st.sampled_from(valid) if i else other)


evaluate_options = st.lists(
    st.one_of(
        option("--param", mostly(["tiebreak=0.3", "pruning=5", "fallback=pop"], params)),
        option("--k", mostly(["5,10", "1", "20,1000", " 3 , 4 "], junk)),
        option("--seed", mostly(["0", "7", "4294967295"], junk)),
        option("--batch-size", mostly(["1", "64"], junk)),
        option("--timeout", mostly(["30", "1e9"], junk)),
        option("--protocol", st.sampled_from(["next", "rest", "all"])), option("--data-dir", paths),
        st.just(["--exclude-seen"]), st.just(["--json"]), st.just(["-v"]),
    ),
    max_size=4,
).flatmap(lambda groups: st.one_of(st.just(groups), st.just(groups), st.just(groups), st.lists(junk, max_size=1).map(
    lambda extra: [*groups, extra]))
).map(lambda groups: [token for group in groups for token in group])


@st.composite
def argv(draw) -> list[str]:
    command = draw(st.sampled_from(["evaluate", "evaluate", "evaluate", "run", "run", "datasets", "models", "report",
                                    "junk"]))
    if command == "evaluate":
        head = ["evaluate"]
        if draw(st.integers(0, 9)):
            head += ["--dataset", draw(mostly(["BASE/tiny.yaml"], datasets_))]
        if draw(st.integers(0, 9)):
            head += ["--model", draw(mostly(["pop", "spop", "markov"], models))]
        return head + draw(evaluate_options)
    if command == "run":
        tokens = ["run", draw(st.sampled_from(["BASE/suite.yaml", "nosuch", "BASE/tiny.yaml", "BASE/afile", "../up"]))]
        for flag, value in (("--out", paths), ("--jobs", junk), ("--only", junk), ("--data-dir", paths)):
            if draw(st.booleans()):
                tokens += [flag, draw(value)]
        return tokens + draw(st.sampled_from([[], ["--force"], ["--no-report"], ["--bogus"]]))
    if command == "datasets":
        return draw(st.sampled_from([["datasets"], ["datasets", "list", "--json"], ["datasets", "stats"],
                                     ["datasets", "stats", "BASE/tiny.yaml"], ["datasets", "stats", "BASE/tiny.yaml",
                                                                              "--json"], ["datasets", "nope"]]))
        + draw(st.lists(junk, max_size=1))
    if command == "models":
        return ["models", *draw(st.sampled_from([[], ["--json"], ["extra"]]))]
    if command == "report":
        return ["report", draw(paths)]
    return draw(st.lists(junk, max_size=4))


def _run(tokens: list[str], capsys) -> tuple[int, str]:
    """main(tokens) in-process: (exit status, stderr)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with no_hang():
            try:
                code = main(tokens)
            except SystemExit as exc:  # argparse: --help or a bad argument
                code = exc.code
            except _Reached:
                code = 0
    finally:  # main configures logging on the captured stderr of this example only
        root.handlers[:], root.level = handlers, level
    return code, capsys.readouterr().err


@fuzz_settings(80)
@given(tokens=argv())
def test_fuzz_command_line(tokens, base, capsys, monkeypatch):
    tokens = [t.replace("BASE", str(base)) for t in tokens]
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(base / "cache"))
    monkeypatch.delenv("SESSIONBENCH_DATA", raising=False)
    monkeypatch.chdir(base)

    def reached(*args, **kwargs):
        raise _Reached

    monkeypatch.setattr(harness.run.runner, "run_suite", reached)
    before, before_base = tree(*WATCHED), tree(base)
    code, err = _run(tokens, capsys)
    command = tokens[0] if tokens and tokens[0] in ("evaluate", "run", "datasets", "models", "report") else "other"
    event(f"{command}: exit {code}")
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err and "Logging error" not in err, err
    if code == 2:
        assert_one_line_error(err)
        assert len(err.strip().splitlines()) == 1, err
    assert tree(*WATCHED) == before
    created = {p for p, _, _ in tree(base)} - {p for p, _, _ in before_base}
    assert all(Path(p).is_relative_to(base / "cache") for p in created), created


@pytest.mark.parametrize(
    "tokens",
    [
        ["evaluate", "--dataset", "BASE/tiny.yaml", "--model", "pop", "--k", "99999999999999999999"],
        ["run", "BASE/suite.yaml", "--out", "BASE/afile"],
        ["datasets", "stats", "BASE/events.csv"],
        ["\udcff"],
    ],
)
def test_console_script_never_shows_a_traceback(tokens, base):
    """The same property through the console entry point, as a user meets it."""
    tokens = [t.replace("BASE", str(base)) for t in tokens]
    env = {"PATH": os.environ.get("PATH", ""), "SESSIONBENCH_CACHE": str(base / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", *tokens], capture_output=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip
    err = proc.stderr.decode("utf-8", errors="replace")
    assert proc.returncode == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err

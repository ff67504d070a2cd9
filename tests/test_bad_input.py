"""Bad input that used to slip past the checks: each case gives one line
naming the file and key (or option) and what was expected, with exit
status 2, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import suites
from harness.cli import main
from harness.errors import ConfigError

#: an integer that YAML reads exactly and that no float can hold
HUGE = int("9" * 400)


def _suite_error(data: dict) -> str:
    with pytest.raises(ConfigError) as err:
        suites.parse_suite({"datasets": ["synthetic"], **data}, Path("suites/t.yaml"))
    message = str(err.value)
    assert "\n" not in message, message
    return message


def _cli_error(capsys, *argv: str) -> str:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"models": ["pop"], "timeout": HUGE}, "key 'timeout': expected a positive number of seconds"),
        ({"models": ["pop"], "timeout": {"fit": HUGE}}, "key 'timeout.fit': expected a positive number of seconds"),
        ({"models": [{"name": "pop", "timeout": HUGE}]}, "key 'models[0].timeout': expected a positive number"),
        ({"models": [{"name": "gru4rec", "params": {"learning_rate": HUGE}}]},
         "key models[0].params: learning_rate: expected a finite number, got 999"),
        ({"models": [{"name": "gru4rec", "grid": {"learning_rate": [0.1, HUGE]}}]},
         "key models[0].grid: learning_rate: expected a finite number"),
        ({"models": [{"name": "sknn", "tune": {"seconds": HUGE}}]},
         "key models[0].tune.seconds: expected a positive number of seconds"),
        ({"models": [{"name": "gru4rec", "tune": {"space": {"learning_rate": {"type": "categorical",
                                                                               "choices": [0.1, HUGE]}}}}]},
         "key models[0].tune.space.learning_rate.choices: learning_rate: expected a finite number"),
    ],
)
def test_an_integer_beyond_the_float_range_is_refused(data, expected):
    message = _suite_error(data)
    assert expected in message and "(400 characters)" in message


def test_an_integer_beyond_the_float_range_on_the_command_line(capsys):
    line = _cli_error(capsys, "evaluate", "--dataset", "synthetic", "--model", "gru4rec",
                      "--param", f"learning_rate={HUGE}")
    assert "--param: learning_rate: expected a finite number" in line


def test_an_integer_beyond_the_float_range_in_a_generator(tmp_path, monkeypatch):
    from harness import specs

    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: s\ndescription: d\nsource: s\nformat: synthetic\n"
                    f"generator: {{n_sessions: 100, n_items: 20, seed: 0, days: 5, zipf_exponent: {HUGE}}}\n"
                    "preprocess: {method: standard, test_days: 1}\n")
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match="zipf_exponent must be a finite number"):
        specs.load_dataset(str(spec))

"""Bad input that used to slip past the checks: each case gives one line
naming the file and key (or option) and what was expected, with exit
status 2, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.run import suites
from harness.cli import main
from harness.errors import ConfigError, SessionbenchError

#: an integer that YAML reads exactly and that no float can hold
HUGE = int("9" * 400)


def _suite_error(data: dict) -> str:
    with pytest.raises(SessionbenchError) as err:  # ConfigError, or ContractError for a plugin
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


LONG_KEY, MULTILINE_KEY = "k" * 5000, "a\nb"


@pytest.mark.parametrize("key", [LONG_KEY, MULTILINE_KEY])
@pytest.mark.parametrize("make", [
    lambda key: {"models": [{"name": "sknn", "tune": {key: 1}}]},
    lambda key: {"models": ["pop"], "style": {"pop": {key: "x"}}},
    lambda key: {"models": ["pop"], "style": {key: 1}},
    lambda key: {"models": [{"name": "srgnn", "retrieval": {key: 1}}]},
    lambda key: {"models": [{"name": "srgnn", "retrieval": {"method": key}}]},
    lambda key: {"models": [{"name": "srgnn", "retrieval": {"method": "annoy", key: 1}}]},
], ids=["tune key", "style key", "style label", "retrieval entry", "retrieval method", "retrieval parameter"])
def test_a_long_or_multi_line_key_is_cut_in_the_message(make, key):
    # such keys were pasted whole into the message (5,000 characters, or several lines)
    message = _suite_error(make(key))
    assert len(message) < 400 and ("characters)" in message if key == LONG_KEY else "a\\nb" in message), message


@pytest.mark.parametrize(("entry", "expected"), [
    ({"name": "sasrec", "params": {"n_heads": 3}}, "sasrec: hidden_size (50) must be a multiple of n_heads (3)"),
    ({"name": "narm", "params": {"device": "gpu"}}, "narm: device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'"),
    ({"name": "srgnn", "params": {"device": "cuda:x"}}, "device must be"),
    ({"name": "sasrec", "grid": {"n_heads": [1, 2, 3]}}, "must be a multiple of n_heads (3)"),  # one grid point
])
def test_hyperparameters_that_fail_the_models_own_check_stop_a_suite_at_load(entry, expected):
    """A rule across hyper-parameters, or a device name that names none, used to fail the run when it
    started, after the suite's other runs."""
    message = _suite_error({"models": ["pop", entry]})
    assert expected in message and "models" in message, message


def test_a_device_this_machine_lacks_is_left_to_the_run():
    """The suite may run where CUDA is: only the form of the name is checked at load."""
    suites.parse_suite({"datasets": ["synthetic"], "models": [{"name": "narm", "params": {"device": "cuda:1"}}]},
                       Path("suites/t.yaml"))


def test_an_empty_output_folder_is_refused(tmp_path, monkeypatch, capsys):
    """`--out ""` is the current folder to pathlib: runs, plan and report used to land there."""
    monkeypatch.chdir(tmp_path)
    line = _cli_error(capsys, "run", "default", "--out", "")
    assert "--out: expected a folder path, got ''" in line
    assert not any(tmp_path.iterdir())


def test_a_data_folder_that_does_not_exist_is_named_not_passed_over(tmp_path, capsys):
    """A mistyped --data-dir used to fall back to a file beside the spec without a word."""
    rows = "".join(f"{s},{s % 5 + k},{1_600_000_000 + 86_400 * (s // 10) + k}\n" for s in range(60) for k in range(3))
    (tmp_path / "log.csv").write_text("session,item,time\n" + rows)
    (tmp_path / "mine.yaml").write_text(
        "name: mine\ndescription: d\nsource: s\nformat: table\nfiles: {events: log.csv}\n"
        "read: {session: session, item: item, time: time}\n"
        "preprocess: {method: standard, test_days: 1, valid_days: 1}\n")
    line = _cli_error(capsys, "evaluate", "--dataset", str(tmp_path / "mine.yaml"), "--model", "pop",
                      "--data-dir", str(tmp_path / "typo"))
    assert "the data folder does not exist" in line and "typo" in line, line


def test_a_value_of_nested_yaml_aliases_is_shown_in_part(tmp_path, capsys):
    """A few hundred bytes of nested aliases expand to a million strings (ten levels to
    billions): the message shows a part, without writing the whole value out first."""
    levels = "  - &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"  - &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(5))
    suite = tmp_path / "bomb.yaml"
    suite.write_text("name: bomb\ndatasets: [synthetic]\nmodels: [pop]\ndescription:\n" + levels)
    line = _cli_error(capsys, "run", str(suite), "--out", str(tmp_path / "out"))
    assert "key 'description'" in line and "over 10,000 elements" in line and len(line) < 600, line


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
    from harness.data import specs

    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: s\ndescription: d\nsource: s\nformat: synthetic\n"
                    f"generator: {{n_sessions: 100, n_items: 20, seed: 0, days: 5, zipf_exponent: {HUGE}}}\n"
                    "preprocess: {method: standard, test_days: 1}\n")
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match="zipf_exponent must be a finite number"):
        specs.load_dataset(str(spec))


def test_a_tune_seed_beyond_32_bits_is_refused_at_load():
    # NumPy's and Optuna's samplers take 32-bit seeds; a larger one failed when the search started
    message = _suite_error({"models": [{"name": "sknn", "tune": {"seed": 2**32}}]})
    assert "key models[0].tune.seed: expected an integer >= 0 and <= 4294967295, got 4294967296" in message


def test_a_resumed_search_with_the_largest_seed_gets_a_valid_sampler_seed():
    from harness.run.tuning import make_sampler

    suite = suites.parse_suite({"datasets": ["synthetic"], "models": [{"name": "sknn", "tune": {"seed": 2**32 - 1}}]})
    sampler = make_sampler(suite.models[0].tune, start=5)  # raised ValueError from NumPy before
    assert sampler is not None


def test_a_float_range_over_an_integer_hyperparameter_is_refused_at_load():
    # each trial would draw a float such as 3.19 and fail when it ran, after the data were prepared
    message = _suite_error({"models": [{"name": "sknn", "tune": {"space": {"k": {"type": "float", "low": 1,
                                                                                "high": 5}}}}]})
    assert message.startswith("suites/t.yaml: key models[0].tune.space.k.type: k takes an integer")
    assert "use type: int" in message


@pytest.mark.parametrize("choices, shown", [([50, 100, 50], "50"), ([0.5, "0.5", 1], "0.5"),
                                            (["cosine", "jaccard", "cosine"], "'cosine'")])
def test_a_repeated_categorical_choice_is_refused(choices, shown):
    # it would be drawn twice as often as the others, silently
    name = "alpha" if 0.5 in choices else "k" if 50 in choices else "similarity"
    message = _suite_error({"models": [{"name": "sknn" if name != "alpha" else "itemknn",
                                        "tune": {"space": {name: {"type": "categorical", "choices": choices}}}}]})
    assert message.startswith(f"suites/t.yaml: key models[0].tune.space.{name}.choices: {shown} is listed twice")


def test_a_step_wider_than_the_range_is_refused_and_a_fitting_one_kept():
    space = {"alpha": {"type": "float", "low": 0.25, "high": 0.5, "step": 0.5}}
    message = _suite_error({"models": [{"name": "itemknn", "tune": {"space": space}}]})
    assert message.startswith("suites/t.yaml: key models[0].tune.space.alpha.step: 0.5 is larger than "
                              "high - low = 0.25")
    space["alpha"]["step"] = 0.25
    suite = suites.parse_suite({"datasets": ["synthetic"], "models": [{"name": "itemknn", "tune": {"space": space}}]})
    assert suite.models[0].tune.space[0].step == 0.25


@pytest.mark.parametrize("timeout, key", [(0.5, "'timeout'"), ({"fit": 1e-300}, "'timeout.fit'")])
def test_a_time_limit_shorter_than_the_watchdog_can_enforce_is_refused(timeout, key, capsys):
    # the watchdog looks every 0.1 s: a phase under that passed any shorter limit unchecked
    message = _suite_error({"models": ["pop"], "timeout": timeout})
    assert message.startswith(f"suites/t.yaml: key {key}: expected at least 1 second")
    assert "expected at least 1 second" in _cli_error(capsys, "run", "default", "--timeout", "0.05")
    assert suites.parse_suite({"datasets": ["synthetic"], "models": ["pop"], "timeout": 1}).timeout["fit"] == 1.0


@pytest.mark.parametrize("tune", [{"trials": 50}, {"trials": -1}, 7])
def test_a_suite_tune_section_without_any_entry_to_search_is_refused(tune):
    # it holds defaults for entries with a tune section; with none, the suite silently searched nothing
    message = _suite_error({"models": ["pop", {"name": "sknn", "params": {"k": 5}}], "tune": tune})
    assert message.startswith("suites/t.yaml: key 'tune': ") and "none has one" in message


def test_a_suite_tune_section_with_an_entry_to_search_is_kept():
    suite = suites.parse_suite({"datasets": ["synthetic"], "models": ["pop", {"name": "sknn", "tune": "default"}],
                                "tune": {"trials": 3}})
    assert suite.models[1].tune.trials == 3 and suite.models[0].tune is None


@pytest.mark.parametrize("value, expected", [(2**31, "got 2147483648"), (10**400, "(401 characters)")],
                         ids=["2**31", "10**400"])
def test_a_retrieval_parameter_beyond_a_c_int_is_refused_at_load(value, expected):
    # faiss raised OverflowError inside the run, which was stored as failed
    message = _suite_error({"models": [{"name": "srgnn", "retrieval": {"method": "faiss-ivf", "nprobe": value}}]})
    assert "key 'nprobe': expected an integer >= 1 and <= 2147483647" in message and expected in message


@pytest.mark.parametrize("setting, expected", [
    ({"method": "faiss-hnsw", "M": 1}, "key 'M': expected an integer >= 2"),  # faiss segfaulted in the run
    ({"method": "faiss-ivfpq", "nbits": 30}, "key 'nbits': expected an integer >= 1 and <= 24"),
    ({"method": "faiss-lsh", "nbits": 100_000_000}, "key 'nbits': expected an integer >= 1 and <= 16384"),
])
def test_retrieval_parameters_faiss_cannot_take_are_refused_at_load(setting, expected):
    message = _suite_error({"models": [{"name": "srgnn", "retrieval": setting}]})
    assert expected in message, message


def test_a_k_beyond_the_retrieval_depth_is_refused():
    """HitRate@50 of a 20-item search equalled HitRate@20, silently."""
    from harness.evaluation.evaluate import evaluate
    from harness.evaluation.retrieval import Retrieval
    from harness.models.testing import tiny_dataset

    from baselines.popularity import Popularity

    data = tiny_dataset(n_test=20, seed=0)
    model = Popularity().fit(data)
    with pytest.raises(ConfigError, match=r"^ks: K = 50 is beyond the retrieval depth top_k = 20"):
        evaluate(model, data, ks=(5, 20, 50), top_k=20, retrieval=Retrieval("exact"))


def test_more_inverted_lists_than_items_is_a_one_line_error():
    import numpy as np

    from harness.evaluation.retrieval import make_index, make_setting

    items = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    with pytest.raises(ConfigError, match=r"^retrieval faiss-ivf: nlist = 100 lists for 50 items; expected at most 50"):
        make_index(make_setting("faiss-ivf", {"nlist": 100})).build(items)


SPEC = """\
name: tiny
description: d
source: s
format: synthetic
generator: {{n_sessions: {n}, n_items: 30, seed: 0, days: 6}}
preprocess: {{method: standard, test_days: 1, valid_days: 1, min_item_support: 1}}
"""


@pytest.mark.parametrize("second, why", [("same/../a.yaml", "are the same dataset; list it once"),
                                         ("b.yaml", "are different datasets with the same name")])
def test_two_dataset_entries_that_prepare_one_dataset_name_are_refused(tmp_path, monkeypatch, capsys, second, why):
    # both entries' runs are named and reported as 'tiny': they ran twice, or ran and then mixed in the report
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "same").mkdir()
    (tmp_path / "a.yaml").write_text(SPEC.format(n=150))
    (tmp_path / "b.yaml").write_text(SPEC.format(n=160))
    suite = tmp_path / "s.yaml"
    suite.write_text(f"datasets: [{tmp_path / 'a.yaml'}, {tmp_path / second}]\nmodels: [pop]\nks: [5]\n"
                     "latency: {samples: 1, warmup: 0}\n")
    out = tmp_path / "out"
    line = _cli_error(capsys, "run", str(suite), "--out", str(out), "--no-report")
    assert line.startswith(f"sessionbench: error: {suite}: key 'datasets': ") and why in line
    assert "both prepare dataset 'tiny'" in line
    assert not (out / "plan.json").exists() and not any((out / "runs").glob("*"))


# --------------------------------------------------------------------------- #
# report and compare options
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> Path:
    """A result folder of two fake models on a tiny dataset."""
    from report_fixtures import add_run

    from harness.models.testing import tiny_dataset

    out = tmp_path_factory.mktemp("stored")
    data = tiny_dataset(n_test=30, seed=0)
    for label in ("pop", "markov"):
        add_run(out, data, label, 0, extra={"dataset_stats": {"dataset": "tiny", "n_items": data.n_items}})
    return out


@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_k_above_the_number_of_items_is_refused_by_report_and_compare(stored, capsys, command):
    # run and evaluate refuse it; the report printed HitRate@K = 1 for every model
    from harness.run.store import iter_runs

    n_items = next(iter_runs(stored)).manifest["dataset_stats"]["n_items"]
    extra = ["--labels", "pop", "markov"] if command == "compare" else []
    line = _cli_error(capsys, command, str(stored), *extra, "--ks", f"5,{n_items + 1}")
    assert f"--ks: K={n_items + 1} exceeds the {n_items} items of dataset 'tiny'" in line
    assert not (stored / "report").exists() and not (stored / "compare").exists()


@pytest.mark.parametrize("option", ["--column-width", "--text-width"])
@pytest.mark.parametrize("value", ["nan", "-1", "0", "inf", "1.9", "20.5", "wide"])
def test_report_figure_widths_outside_2_to_20_inches_are_refused_by_option(stored, capsys, option, value):
    # a NaN width was stored into report/options.json (not JSON) when no figure was drawn at it
    line = _cli_error(capsys, "report", str(stored), option, value)
    assert line.endswith(f"argument {option}: expected a width between 2 and 20 inches, got {value!r} "
                         "(see sessionbench report --help)")
    assert not (stored / "report").exists()


def test_a_retrieval_parameter_given_twice_is_refused_like_a_param(capsys):
    # the last one silently won, where a repeated --param is refused
    line = _cli_error(capsys, "evaluate", "--dataset", "synthetic", "--model", "pop", "--retrieval", "faiss-hnsw",
                      "--retrieval-param", "efSearch=1", "--retrieval-param", "efSearch=2")
    assert line == "sessionbench: error: --retrieval-param efSearch given twice"


@pytest.mark.parametrize("command", ["report", "compare"])
def test_too_many_bootstrap_replicates_are_refused(stored, capsys, command):
    # 10**12 replicates ended in a MemoryError traceback
    extra = ["--labels", "pop", "markov"] if command == "compare" else []
    line = _cli_error(capsys, command, str(stored), *extra, "--n-bootstrap", "1000000000000")
    assert "argument --n-bootstrap: expected an integer in 1..100000, got '1000000000000'" in line


# --------------------------------------------------------------------------- #
# plugin classes with a wrong interface
# --------------------------------------------------------------------------- #

PLUGINS = '''
import torch
from harness.models.plugin import SessionRecommender


class Scores(SessionRecommender):
    def _fit(self, data, *, seed):
        pass

    def _score(self, batch):
        return torch.zeros(len(batch), self.n_items_ + 1)


class NoFit(SessionRecommender):
    def fit(self, data, *, seed=0):  # the public method instead of _fit
        return self

    def _score(self, batch):
        return torch.zeros(len(batch), self.n_items_ + 1)


class RangesAsTuples(Scores):
    hyperparameter_ranges = {"alpha": (0, 1)}

    def __init__(self, *, alpha=0.5):
        self.alpha = alpha


class RangesAsList(Scores):
    hyperparameter_ranges = [1]

    def __init__(self, *, alpha=0.5):
        self.alpha = alpha


class NoEmbeddings(Scores):
    provides_embeddings = True
'''


@pytest.fixture()
def plugins(tmp_path, monkeypatch) -> str:
    """The module name of PLUGINS, importable from ``tmp_path``."""
    (tmp_path / "wrong_plugins.py").write_text(PLUGINS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "wrong_plugins"


def test_a_plugin_without_fit_is_named_as_such(plugins, capsys):
    # it was reported as "__init__() raised TypeError: Can't instantiate abstract class"
    line = _cli_error(capsys, "evaluate", "--dataset", "synthetic", "--model", f"{plugins}:NoFit")
    assert "(wrong_plugins.NoFit): does not implement _fit; a model implements _fit(self, data, *, seed)" in line
    assert "__init__" not in line


def test_a_plugin_without_fit_stops_a_suite_at_load(plugins):
    message = _suite_error({"models": [f"{plugins}:Scores", f"{plugins}:NoFit"]})
    assert message.startswith("suites/t.yaml: key models[1].name: model 'NoFit'")
    assert "does not implement _fit" in message


@pytest.mark.parametrize("cls, argv, shown", [
    ("RangesAsTuples", ["--param", "alpha=0.5"], "{'alpha': (0, 1)}"),  # AttributeError: no .expected()
    ("RangesAsList", [], "[1]"),  # TypeError in dict.update
])
def test_malformed_hyperparameter_ranges_are_a_contract_error(plugins, capsys, cls, argv, shown):
    line = _cli_error(capsys, "evaluate", "--dataset", "synthetic", "--model", f"{plugins}:{cls}", *argv)
    assert f"wrong_plugins.{cls}: hyperparameter_ranges must map hyper-parameter names to " in line
    assert line.endswith(f"got {shown}")


def test_provides_embeddings_without_the_methods_is_a_contract_error(plugins, capsys):
    # an AttributeError traceback under evaluate, and a failed run in a suite
    line = _cli_error(capsys, "evaluate", "--dataset", "synthetic", "--model", f"{plugins}:NoEmbeddings",
                      "--retrieval", "exact")
    assert "wrong_plugins.NoEmbeddings declares provides_embeddings but has no session_embeddings or embed " \
           "and no item_embeddings method" in line
    message = _suite_error({"models": [{"name": f"{plugins}:NoEmbeddings", "retrieval": {"method": "exact"}}]})
    assert message.startswith("suites/t.yaml: key models[0].retrieval: model wrong_plugins.NoEmbeddings declares")


# --------------------------------------------------------------------------- #
# what a refused suite leaves behind
# --------------------------------------------------------------------------- #


def test_an_unknown_dataset_names_the_suite_key_and_leaves_no_output_folder(tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text("datasets: [synthetic, nosuch]\nmodels: [pop]\n")
    out = tmp_path / "new" / "out"
    line = _cli_error(capsys, "run", str(suite), "--out", str(out))
    assert line.startswith(f"sessionbench: error: {suite}: key datasets[1]: unknown dataset 'nosuch'")
    assert not (tmp_path / "new").exists()  # the folders the run created were empty: removed again


def test_an_interruption_before_anything_was_stored_leaves_no_output_folder(tmp_path, monkeypatch):
    """Ctrl-C while the data are read left an empty output folder behind."""
    from harness.data import specs
    from harness.run.runner import run_suite

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(specs, "load_dataset", interrupted)
    out = tmp_path / "new" / "out"
    with pytest.raises(KeyboardInterrupt):
        run_suite(suites.parse_suite({"datasets": ["synthetic"], "models": ["pop"]}, Path("t.yaml")), out_dir=out)
    assert not (tmp_path / "new").exists()


def test_report_of_a_file_says_it_is_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    line = _cli_error(capsys, "report", str(tmp_path / "afile"))
    assert line.endswith("afile: is a file; expected a suite's output folder (holding runs/)"), line


def test_a_folder_where_a_raw_file_should_be_is_named_as_a_folder(tmp_path, capsys):
    (tmp_path / "log.csv").mkdir()
    (tmp_path / "mine.yaml").write_text(
        "name: mine\ndescription: d\nsource: s\nformat: table\nfiles: {events: log.csv}\n"
        "read: {session: session, item: item, time: time}\n"
        "preprocess: {method: standard, test_days: 1, valid_days: 1}\n")
    line = _cli_error(capsys, "evaluate", "--dataset", str(tmp_path / "mine.yaml"), "--model", "pop",
                      "--data-dir", str(tmp_path))
    assert f"({tmp_path / 'log.csv'} is a folder)" in line, line


def test_a_refused_suite_keeps_an_output_folder_that_existed(tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text(f"datasets: [{tmp_path / 'missing.yaml'}]\nmodels: [pop]\n")
    out = tmp_path / "out"
    out.mkdir()
    assert "missing.yaml: dataset spec file not found" in _cli_error(capsys, "run", str(suite), "--out", str(out))
    assert out.is_dir() and not any(out.iterdir())


def test_a_non_ascii_package_name_gets_a_valid_suggestion(tmp_path, capsys):
    # the suggestion was the refused name itself: "é" counts as a word character outside ASCII
    line = _cli_error(capsys, "plugin", "new", str(tmp_path / "p"), "--package", "récit")
    assert line.endswith("not a keyword (e.g. 'r_cit')") and not (tmp_path / "p").exists()


@pytest.mark.parametrize("params, expected", [
    ({"k": None}, "k: expected an integer, got null"),
    ({"similarity": None}, "similarity: expected a string, got null"),
])
def test_a_null_hyperparameter_is_refused_at_load(params, expected):
    # `k:` with nothing after it was accepted, then failed in every run of the suite
    message = _suite_error({"models": [{"name": "sknn", "params": params}]})
    assert message.startswith(f"suites/t.yaml: key models[0].params: {expected}")


def test_an_empty_param_value_is_refused_before_the_data_are_read(capsys):
    line = _cli_error(capsys, "evaluate", "--dataset", "nosuch-dataset", "--model", "sknn", "--param", "k=")
    assert "--param: k: expected an integer, got null" in line


# --------------------------------------------------------------------------- #
# pre-split files
# --------------------------------------------------------------------------- #


def _sessions_frame(sessions):
    rows = [(sid, item, 1_700_000_000.0 + day * 86400 + k * 60) for sid, day, items in sessions
            for k, item in enumerate(items)]
    return pd.DataFrame(rows, columns=["session", "item", "time"])


@pytest.mark.parametrize("roles", [("train", "test"), ("train_tr", "valid")])
def test_presplit_files_sharing_sessions_are_refused(roles):
    # one file given as train and test scored every model on its own training sessions, silently
    from harness.data import preprocess as pp
    from harness.errors import DataError

    train = _sessions_frame([(s, 0.1 * s, ["a", "b", "c"]) for s in range(1, 9)])
    files = {"train": train, "test": _sessions_frame([(50, 3.0, ["a", "b"])]),
             "train_tr": train.iloc[:12], "valid": _sessions_frame([(7, 2.0, ["a", "b"])])}
    files[roles[1]] = pd.concat([files[roles[1]], files[roles[0]].iloc[:6]], ignore_index=True)  # 2 shared
    sources = {role: f"{role}.txt" for role in files}
    with pytest.raises(DataError) as err:
        pp.prepare_presplit(files, pp.PresplitConfig(), name="p", sources=sources)
    assert str(err.value).startswith(f"{roles[1]}.txt: 2 of the ") and f"also in the {roles[0]} file " \
        f"{roles[0]}.txt; expected {roles[0]} and {roles[1]} files without common sessions" in str(err.value)


@pytest.mark.filterwarnings("ignore:.*split is empty")
def test_presplit_data_sharing_sessions_are_refused_from_the_cache_too(tmp_path, monkeypatch):
    # data prepared before the check existed (simulated by switching it off) stay in the cache
    from harness.data import preprocess as pp
    from harness.errors import DataError
    from harness.data.specs import load_dataset

    train = _sessions_frame([(s, 0.1 * s, ["a", "b", "c"]) for s in range(1, 9)])
    train.to_csv(tmp_path / "train.csv", index=False)
    pd.concat([_sessions_frame([(50, 3.0, ["a", "b"])]), train.iloc[:6]]).to_csv(tmp_path / "test.csv", index=False)
    spec = tmp_path / "shared.yaml"
    spec.write_text("name: shared\ndescription: d\nsource: s\nformat: table\n"
                    "files: {train: train.csv, test: test.csv}\npreprocess: {method: presplit}\n")
    cache = tmp_path / "cache"
    with monkeypatch.context() as patched:
        patched.setattr(pp, "require_disjoint_sessions", lambda *args: None)
        assert load_dataset(spec, data_dir=tmp_path, cache_dir=cache).meta["cache"]["hit"] is False
    with pytest.raises(DataError) as err:
        load_dataset(spec, data_dir=tmp_path, cache_dir=cache)
    assert str(err.value).startswith(f"{tmp_path / 'test.csv'}: 2 of the 3 sessions of the test file are also in "
                                      f"the train file {tmp_path / 'train.csv'}")


def test_presplit_files_without_common_sessions_are_read():
    from harness.data import preprocess as pp

    train = _sessions_frame([(s, 0.1 * s, ["a", "b", "c"]) for s in range(1, 9)])
    files = {"train": train, "test": _sessions_frame([(50, 3.0, ["a", "b"])]),
             "train_tr": train.iloc[:12], "valid": _sessions_frame([(7, 2.0, ["a", "b"])])}
    data = pp.prepare_presplit(files, pp.PresplitConfig(), name="p", sources={r: r for r in files})
    assert data.test.n_sessions == 1 and data.valid.n_sessions == 1

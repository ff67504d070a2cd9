"""What a broken plugin does to `sessionbench evaluate`: one line naming the
plugin and the fix, exit 2 for a broken contract, exit 1 for the model's own
exception, never a traceback (unless --traceback asks for one)."""

from __future__ import annotations

import contextlib
import sys

import contract_plugins
import numpy as np
import pytest
import torch
from data_paths import DIGINETICA_SAMPLE, require_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.errors import ConfigError, ContractError, DataError, ModelFailure
from harness.models.registry import coerce_params, get_model_class, make_model, parse_param

DIGI = ["--dataset", "diginetica", "--data-dir", str(DIGINETICA_SAMPLE.parent), "--k", "20"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("plugin-errors-cache")


@pytest.fixture(autouse=True)
def cache(cache_dir, monkeypatch):
    monkeypatch.setenv("SESSIONBENCH_CACHE", str(cache_dir))


def evaluate_cli(capsys, model, *extra):
    require_data("diginetica-sample")
    code = main(["evaluate", *DIGI, "--model", model, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err, *parts):
    assert err.count("\n") == 1 and err.startswith("sessionbench: error: "), err
    assert "Traceback" not in err
    for part in parts:
        assert part in err, err


# --------------------------------------------------------------------------- #
# importing and instantiating
# --------------------------------------------------------------------------- #


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on the import path (as the current directory) for plugin modules."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("plug_")]:
        del sys.modules[name]


@pytest.mark.parametrize(
    ("source", "parts"),
    [
        ("def broken(:\n    pass\n", ["syntax error in", "plug_mod.py, line 1", "python -c 'import plug_mod'"]),
        ("raise RuntimeError('no GPU found')\n", ["RuntimeError: no GPU found", "plug_mod.py, line 1)"]),
        ("import not_installed_dep_xyz\n", ["ModuleNotFoundError: No module named 'not_installed_dep_xyz'"]),
        ("x = 1 / 0\n", ["ZeroDivisionError: division by zero"]),
    ],
)
def test_a_module_that_fails_to_import_is_one_line(plugin_dir, capsys, source, parts):
    (plugin_dir / "plug_mod.py").write_text(source)
    code, _, err = evaluate_cli(capsys, "plug_mod:Model")
    assert code == 2
    assert_one_line(err, "model 'plug_mod:Model': importing module 'plug_mod' failed with", *parts)


def test_a_plugin_importing_a_module_of_the_old_flat_layout_is_told_where_they_went(plugin_dir):
    (plugin_dir / "plug_old.py").write_text("from harness.plugin import SessionRecommender\n"
                                            "from harness.data.specs import load_dataset\n"
                                            "import harness.dataset\n")
    with pytest.raises(ContractError, match="it imports modules that sessionbench 0.2 moved into sub-packages "
                                            r"\(.*plug_old\.py\); change these imports: harness\.dataset -> "
                                            r"harness\.data\.dataset, harness\.plugin -> harness\.models\.plugin$"):
        get_model_class("plug_old:Model")


def test_a_missing_module_is_still_an_unknown_name(plugin_dir):
    with pytest.raises(Exception, match="cannot import module 'plug_absent'") as info:
        get_model_class("plug_absent:Model")
    assert not isinstance(info.value, ContractError)


@pytest.mark.parametrize(
    ("model", "parts"),
    [
        ("NoStore", ["__init__ does not store the hyper-parameter 'alpha'", "add `self.alpha = alpha`"]),
        ("Required", ["__init__ argument 'alpha' has no default", "def __init__(self, *, alpha=...)"]),
        ("InitRaises", ["__init__() raised RuntimeError: cannot open the device", "only store"]),
    ],
)
def test_init_breaking_the_contract_is_one_line(capsys, model, parts):
    code, _, err = evaluate_cli(capsys, f"contract_plugins:{model}")
    assert code == 2
    assert_one_line(err, f"model '{model}' (contract_plugins.{model})", *parts)


def test_init_raising_a_config_error_keeps_it():
    class Strict(contract_plugins.Popular):
        def __init__(self, *, alpha: float = 1.0):
            self.alpha = alpha
            if alpha < 0:
                raise ConfigError(f"alpha must be >= 0, got {alpha}")

    contract_plugins.Strict = Strict
    try:
        with pytest.raises(ConfigError, match="alpha must be >= 0, got -1.0"):
            make_model("contract_plugins:Strict", {"alpha": -1})
    finally:
        del contract_plugins.Strict


# --------------------------------------------------------------------------- #
# non-finite hyper-parameters
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("text", ["learning_rate=.inf", "learning_rate=-.inf", "learning_rate=.nan",
                                  "learning_rate=1e999", "learning_rate=nan", "learning_rate=-inf"])  # fmt: skip
def test_non_finite_floats_are_refused_at_parse_time(capsys, text):
    code, _, err = evaluate_cli(capsys, "gru4rec", "--param", text)
    assert code == 2
    assert_one_line(err, "--param: learning_rate: expected a finite number, got")


def test_non_finite_floats_are_refused_for_every_kind_of_default():
    class Kinds(contract_plugins.Popular):
        def __init__(self, *, f: float = 1.0, i: int = 1, anything=None):
            self.f, self.i, self.anything = f, i, anything

    for key in ("f", "anything"):
        with pytest.raises(ConfigError, match=rf"{key}: expected a finite number, got inf"):
            coerce_params(Kinds, {key: parse_param("x=.inf")[1]}, source="suite.yaml: key models.params")
    with pytest.raises(ConfigError, match=r"i: expected a (64-bit )?integer"):
        coerce_params(Kinds, {"i": float("nan")})
    assert coerce_params(Kinds, {"f": "1e-3", "i": 2, "anything": 0.5}) == {"f": 1e-3, "i": 2, "anything": 0.5}


# --------------------------------------------------------------------------- #
# a model that raises in fit or score
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("model", "method", "detail"),
    [("FitRaises", "fit", "ValueError: the optimiser diverged at step 3"),
     ("ScoreRaises", "score", "KeyError: 'missing key'")],
)  # fmt: skip
def test_a_model_that_raises_exits_1_with_one_line(capsys, model, method, detail):
    code, out, err = evaluate_cli(capsys, f"contract_plugins:{model}")
    assert (code, out) == (1, "")
    assert_one_line(err, f"model '{model}' (contract_plugins.{model}) failed in {method}: {detail}", "--traceback")


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.data("diginetica-sample")
def test_traceback_shows_the_models_frames(capsys, where):
    argv = ["evaluate", *DIGI, "--model", "contract_plugins:ScoreRaises"]
    argv = ["--traceback", *argv] if where == "before" else [*argv, "--traceback"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "contract_plugins.py" in err and "KeyError" in err
    assert err.splitlines()[-1].startswith("sessionbench: error: model 'ScoreRaises'")


def test_traceback_also_applies_to_input_errors(capsys):
    assert main(["--traceback", "evaluate", "--dataset", "nope", "--model", "pop"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1].startswith("sessionbench: error: ")


def test_model_failure_keeps_the_cause():
    err = ValueError("x")
    failure = ModelFailure("model 'm' (a.M)", "fit", err)
    assert (failure.model, failure.method, failure.error) == ("model 'm' (a.M)", "fit", err)
    assert str(failure) == "model 'm' (a.M) failed in fit: ValueError: x"


# --------------------------------------------------------------------------- #
# any output, any exception: exit 0, 1 or 2, never a traceback
# --------------------------------------------------------------------------- #

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64, torch.int32, torch.bool,
          torch.complex64]  # fmt: skip
EXCEPTIONS = [ValueError, RuntimeError, KeyError, IndexError, ZeroDivisionError, AssertionError, TypeError,
              AttributeError, ContractError, ConfigError, DataError]  # fmt: skip


@st.composite
def tensor_outputs(draw):
    """(a function building the scores, whether they keep the contract)."""
    d_rows = draw(st.sampled_from([0, 0, 0, -1, 1]))
    d_cols = draw(st.sampled_from([0, 0, 0, -1, 1]))
    extra_dim = draw(st.booleans()) and draw(st.booleans())
    dtype = draw(st.sampled_from(DTYPES))
    poison = draw(st.sampled_from([None, None, float("nan"), float("inf"), -float("inf")]))
    poison_col0 = draw(st.booleans())  # column 0 is padding: anything goes there
    layout = draw(st.sampled_from(["dense"] * 6 + ["sparse", "meta"]))
    seed = draw(st.integers(0, 2**16))

    def build(batch, n_items):
        shape = (len(batch) + d_rows, n_items + 1 + d_cols) + ((1,) if extra_dim else ())
        gen = torch.Generator().manual_seed(seed)
        scores = (torch.rand(shape, generator=gen) * 10).to(dtype)
        if poison is not None and scores.is_floating_point() and scores.numel():
            flat = scores.reshape(scores.shape[0], -1)
            flat[0, 0 if poison_col0 else -1] = poison
            scores = flat.reshape(shape)
        if layout == "sparse":
            scores = scores.to_sparse()
        elif layout == "meta":
            scores = torch.empty(shape, dtype=dtype, device="meta")
        return scores

    ok = (d_rows, d_cols, extra_dim, layout) == (0, 0, False, "dense") and dtype.is_floating_point
    ok = ok and (poison is None or poison_col0)
    return build, ok


@st.composite
def behaviours(draw):
    """A plugin's behaviour and the exit status the documentation promises."""
    kind = draw(st.sampled_from(["tensor", "tensor", "tensor", "object", "raise_fit", "raise_score"]))
    curve = draw(st.sampled_from([None, "garbage", [{"phase": "train"}], [{"phase": "train", "epoch": 1,
                                                                          "loss": 1.0, "seconds": 0.1}]]))
    if kind == "tensor":
        build, ok = draw(tensor_outputs())
        return {"fit": None, "score": build, "curve": curve}, 0 if ok else 2
    if kind == "object":
        obj = draw(st.sampled_from([None, 1.5, "scores", [[0.0]], np.zeros((1, 1))]))
        return {"fit": None, "score": lambda batch, n: obj, "curve": curve}, 2
    exc = draw(st.sampled_from(EXCEPTIONS))
    expected = 2 if issubclass(exc, (ContractError, ConfigError, DataError)) else 1

    def raising(*args):
        raise exc("made to fail")

    ok_scores = lambda batch, n: torch.zeros(len(batch), n + 1)  # noqa: E731
    if kind == "raise_fit":
        return {"fit": raising, "score": ok_scores, "curve": curve}, expected
    return {"fit": None, "score": raising, "curve": curve}, expected


@contextlib.contextmanager
def behaving(behaviour):
    saved = dict(contract_plugins.BEHAVIOUR)
    contract_plugins.BEHAVIOUR.update(behaviour)
    try:
        yield
    finally:
        contract_plugins.BEHAVIOUR.update(saved)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=behaviours())
@pytest.mark.data("diginetica-sample")
def test_any_plugin_output_gives_0_1_or_2_and_never_a_traceback(case, capsys):
    behaviour, expected = case
    with behaving(behaviour):
        code = main(["evaluate", *DIGI, "--model", "contract_plugins:Scripted", "--json"])
    out, err = capsys.readouterr()
    assert code == expected, err
    assert "Traceback" not in err
    if code:
        assert_one_line(err, "model 'Scripted' (contract_plugins.Scripted)")
        assert out == ""
    else:
        assert '"HitRate@20"' in out


def test_contract_errors_name_what_was_expected(capsys):
    with behaving({"score": lambda batch, n: torch.zeros(len(batch), n)}):
        code, _, err = evaluate_cli(capsys, "contract_plugins:Scripted")
    assert code == 2
    assert_one_line(err, "score returned shape", "expected [B, n_items + 1] = (99, 310)")
    with behaving({"score": lambda batch, n: torch.zeros(len(batch), n + 1).to_sparse()}):
        code, _, err = evaluate_cli(capsys, "contract_plugins:Scripted")
    assert_one_line(err, "score must return a dense tensor")
    with behaving({"score": lambda batch, n: np.zeros((len(batch), n + 1))}):
        code, _, err = evaluate_cli(capsys, "contract_plugins:Scripted")
    assert_one_line(err, "score must return a torch.Tensor of shape [B, n_items + 1] = [99, 310], got ndarray")

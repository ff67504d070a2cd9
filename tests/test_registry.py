"""Finding models: @register, entry points, module:Class strings, params."""

import sys
import textwrap

import pytest

from harness.errors import ConfigError, ContractError, UnknownNameError
from harness.models.plugin import SessionRecommender
from harness.models.registry import (
    Choice,
    available_models,
    coerce_params,
    get_model_class,
    hyperparameter_ranges,
    make_model,
    model_name_problem,
    parse_param,
    register,
)


def test_builtin_models_are_found_through_entry_points():
    models = available_models()
    assert {"pop", "spop"} <= set(models)
    assert models["pop"].name == "pop"


def test_register_refuses_a_duplicate_name():
    with pytest.raises(ContractError, match="'pop' is already registered by baselines.popularity.Popularity"):

        @register("pop")
        class Impostor(SessionRecommender):  # noqa: F841
            def _fit(self, data, *, seed): ...
            def _score(self, batch): ...


@pytest.mark.parametrize("name, why", [
    ("", "expected a non-empty string"),
    ("pkg:Cls", "':' and '=' are not allowed in a model name"),
    ("a=b", "':' and '=' are not allowed in a model name"),
    ("two words", "white space and unprintable characters are not allowed in a model name"),
    ("bell\a", "white space and unprintable characters are not allowed in a model name"),
    ("[section]", "a model name cannot start with '\\['"),
])  # fmt: skip
def test_register_refuses_a_name_that_cannot_be_typed_or_be_an_entry_point(name, why):
    with pytest.raises(ContractError, match=f"invalid model name .*: {why}$"):

        @register(name)
        class Odd(SessionRecommender):  # noqa: F841
            def _fit(self, data, *, seed): ...
            def _score(self, batch): ...


def test_every_built_in_name_and_a_dotted_dashed_one_are_valid():
    assert all(model_name_problem(name) is None for name in [*available_models(), "my-model.v2", "x[1]"])


def test_register_refuses_a_non_model():
    with pytest.raises(ContractError, match="not a SessionRecommender"):
        register("thing")(dict)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown model 'nope'; registered models: .*pop"):
        get_model_class("nope")


def test_module_colon_class_from_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "my_plugin_mod.py").write_text(textwrap.dedent("""
        import torch
        from harness.models.plugin import SessionRecommender

        class Const(SessionRecommender):
            def __init__(self, *, level: float = 1.0):
                self.level = level
            def _fit(self, data, *, seed):
                pass
            def _score(self, batch):
                return torch.full((len(batch), self.n_items_ + 1), self.level)
        """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    model = make_model("my_plugin_mod:Const", {"level": "1e-3"})
    assert model.level == pytest.approx(1e-3)


def test_module_colon_class_errors():
    with pytest.raises(UnknownNameError, match="cannot import module 'no_such_mod_xyz'"):
        get_model_class("no_such_mod_xyz:Model")
    with pytest.raises(UnknownNameError, match="has no attribute 'Nope'"):
        get_model_class("harness.models.plugin:Nope")
    with pytest.raises(ContractError, match="not a subclass"):
        get_model_class("harness.data.dataset:PrefixBatch")


def test_params_are_read_as_yaml_scalars():
    assert parse_param("tiebreak=0.25") == ("tiebreak", 0.25)
    assert parse_param("name=log") == ("name", "log")
    assert parse_param("flag=true") == ("flag", True)
    assert parse_param("lr=1e-3") == ("lr", "1e-3")  # YAML 1.1; coerced by the model's default type


@pytest.mark.parametrize("bad", ["noequals", "=3", "a b=3", "x=[1, 2]"])
def test_bad_param_text(bad):
    with pytest.raises(ConfigError, match="--param"):
        parse_param(bad)


def test_params_are_checked_against_the_model():
    spop = get_model_class("spop")
    assert coerce_params(spop, {"tiebreak": "1e-3"}) == {"tiebreak": 1e-3}
    assert coerce_params(spop, {"tiebreak": 0}) == {"tiebreak": 0.0}
    with pytest.raises(ConfigError, match="no hyper-parameter 'alpha'; it takes: tiebreak"):
        coerce_params(spop, {"alpha": 1})
    with pytest.raises(ConfigError, match="tiebreak: expected a number, got 'high'"):
        coerce_params(spop, {"tiebreak": "high"})


def test_every_named_option_of_a_built_in_model_is_declared():
    """A hyper-parameter that names an option (a loss, a similarity, a
    fallback) declares its values, so a typo in a suite, a tuning space or
    --param stops when it is loaded instead of failing in each fit; the
    default is one of them. (``device`` is open-ended: "cuda:3".)"""
    built_in = {name: cls for name, cls in available_models().items()
                if cls.__module__.split(".")[0] in ("baselines", "srgnn", "harness")}
    assert len(built_in) >= 17
    for name, cls in built_in.items():
        ranges = hyperparameter_ranges(cls)
        for key, default in cls.hyperparameters().items():
            if isinstance(default, str) and key != "device":
                assert isinstance(ranges.get(key), Choice), f"{name}.{key}"
                assert default in ranges[key].values, f"{name}.{key}"
    for name, cls in built_in.items():  # each declared value fits
        for key, allowed in hyperparameter_ranges(cls).items():
            if isinstance(allowed, Choice):
                for value in allowed.values:
                    assert coerce_params(cls, {key: value}) == {key: value}, f"{name}.{key}={value}"


@pytest.mark.parametrize(
    "model, param, expected",
    [
        # a named option outside its declared values
        ("gru4rec", "loss=cross-entropi",
         "loss: expected one of 'cross-entropy', 'bpr-max', 'top1-max', got 'cross-entropi' (did you mean 'cross-entropy'?)"),
        ("vstan", "similarity=jaccard", "similarity: expected one of 'cosine', 'vec', got 'jaccard'"),
        ("markov", "fallback=popularity", "fallback: expected one of 'pop', 'none', got 'popularity'"),
        # ``no`` is YAML 1.1 for false: the error says so instead of a bare "got False"
        ("sknn", "similarity=no", "similarity: expected a string, got the boolean False (YAML reads yes, no, on, off"),
        ("sknn", "k=yes", "k: expected an integer, got the boolean True (YAML reads"),
        ("spop", "tiebreak=off", "tiebreak: expected a number, got the boolean False (YAML reads"),
    ],
)
def test_a_value_read_from_text_is_refused_with_what_was_expected(model, param, expected):
    with pytest.raises(ConfigError) as err:
        coerce_params(get_model_class(model), dict([parse_param(param)]))
    assert expected in str(err.value)


def _with_entry_point(monkeypatch, folder, module: str, source: str, name: str, value: str) -> None:
    """``module`` (``source``) importable from ``folder``, and one more entry
    point ``name = value`` of sessionbench's group, read afresh."""
    import importlib.metadata

    from harness.models import registry

    (folder / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(folder))
    extra = importlib.metadata.EntryPoint(name=name, value=value, group=registry.ENTRY_POINT_GROUP)
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [*real(group=group), extra])
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "BROKEN_PLUGINS", {})


def test_a_broken_entry_point_is_named_when_used(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    _with_entry_point(monkeypatch, tmp_path, "plug_ep_broken", "def f(:\n", "broken-ep", "plug_ep_broken")
    with pytest.raises(ContractError, match=r"'broken-ep' = 'plug_ep_broken'.*syntax error in .*plug_ep_broken\.py, "
                                            r"line 1: .*python -c 'import plug_ep_broken'"):
        get_model_class("broken-ep")
    assert "pop" in available_models()  # the others are still there
    assert main(["evaluate", "--dataset", "synthetic", "--model", "broken-ep"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken-ep" in err and "Traceback" not in err


def test_an_entry_point_naming_a_class_its_module_lacks_says_to_reinstall(tmp_path, monkeypatch):
    """The module imports; its entry point names a class it no longer has
    (renamed in the code, metadata not reinstalled)."""
    _with_entry_point(monkeypatch, tmp_path, "plug_ep_renamed",
                      "from baselines.popularity import Popularity as NewName\n", "renamed-ep", "plug_ep_renamed:OldName")
    with pytest.raises(ContractError, match=r"module 'plug_ep_renamed' imports but has no 'OldName'; .*"
                                            r"reinstall the plugin \(pip install -e DIR\)"):
        get_model_class("renamed-ep")

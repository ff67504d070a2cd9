"""`sessionbench plugin new` writes the plugin template (package data, so an
installed wheel has it too) under the names asked for; the result installs,
registers through its entry point, passes its own conformance tests and runs
in a suite; a clashing plugin is named; bad names and folders are refused."""

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fuzzing import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from harness.cli import main
from harness.errors import ConfigError
from harness.models.plugin_template import check_model_name, check_package_name, render, template_sources, write_plugin
from harness.models.registry import model_name_problem

#: the names the installed copy is written under (not the defaults, so renaming is what is tested)
PACKAGE, MODEL = "recentrec", "recent"


def install(source: Path, target: Path) -> None:
    """pip-install a copy of ``source`` into ``target`` (building writes beside the sources)."""
    copy = target.parent / f"{target.name}-src"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    source = copy
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def cli(*args, site: Path, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "SESSIONBENCH_CACHE": str(cwd / "cache")}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The folder `sessionbench plugin new` wrote, and what it printed."""
    work = tmp_path_factory.mktemp("new")
    proc = cli("plugin", "new", "myplugin", "--package", PACKAGE, "--model", MODEL, site=work / "none", cwd=work)
    assert proc.returncode == 0, proc.stderr
    return work / "myplugin", proc.stdout


@pytest.fixture(scope="module")
def site(written, tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    install(written[0], target)
    return target


def test_plugin_new_writes_the_renamed_template(written):
    folder, stdout = written
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == ["README.md", "pyproject.toml", f"{PACKAGE}/__init__.py", f"{PACKAGE}/model.py",
                     "tests/test_model.py"]
    assert f"wrote 5 files into {folder.name}:" in stdout and f"  {PACKAGE}/model.py\n" in stdout
    pyproject = (folder / "pyproject.toml").read_text()
    assert f'"{MODEL}" = "{PACKAGE}.model:RepeatRecent"' in pyproject and f'packages = ["{PACKAGE}"]' in pyproject
    assert f"from {PACKAGE}.model import RepeatRecent" in (folder / "tests" / "test_model.py").read_text()
    assert "mysessionrec" not in "".join(p.read_text() for p in folder.rglob("*") if p.is_file())


def test_installed_plugin_is_listed_by_its_entry_point_name(site, tmp_path):
    proc = cli("models", site=site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"\n{MODEL} " in proc.stdout and "decay=0.5" in proc.stdout
    assert f"{MODEL:<12} Repeat: the prefix's items, most recent first, then by training popularity.\n" in proc.stdout


def test_a_decay_out_of_range_is_refused_before_fitting(site, tmp_path):
    proc = cli("evaluate", "--dataset", "synthetic", "--model", MODEL, "--param", "decay=0", site=site, cwd=tmp_path)
    assert proc.returncode == 2 and "decay" in proc.stderr and "(0, 1]" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_templates_own_tests_pass(written, site, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(written[0] / "tests")],
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)},
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout  # conformance, exact scores, registration under MODEL


def test_plugin_runs_in_a_suite_and_appears_in_the_report(site, tmp_path):
    (tmp_path / "tiny.yaml").write_text(textwrap.dedent("""
        name: tiny
        description: tiny synthetic data
        source: generated
        format: synthetic
        generator: {n_sessions: 600, n_items: 50, seed: 1, days: 10}
        preprocess: {method: standard, test_days: 2, valid_days: 2}
        """))
    (tmp_path / "suite.yaml").write_text(textwrap.dedent(f"""
        name: plugin
        datasets: [{tmp_path / 'tiny.yaml'}]
        models: [pop, {MODEL}]
        ks: [5, 20]
        latency: {{samples: 5, warmup: 1}}
        """))
    proc = cli("run", str(tmp_path / "suite.yaml"), "--out", "out", site=site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = next((tmp_path / "out" / "report").rglob("*.csv")).read_text()
    assert MODEL in table and "pop" in table


def test_a_plugin_that_takes_a_builtin_name_is_named_and_ignored(tmp_path):
    clash = tmp_path / "clash"
    write_plugin(clash, package="clashrec", model="clashing")
    # `plugin new` refuses a taken name, so the entry point is edited by hand
    text = (clash / "pyproject.toml").read_text().replace('"clashing" = "', '"pop" = "')
    (clash / "pyproject.toml").write_text(text)
    site = tmp_path / "site"
    install(clash, site)
    proc = cli("models", site=site, cwd=tmp_path)
    assert proc.returncode == 0
    assert "'pop' is already registered by baselines.popularity.Popularity" in proc.stderr
    assert "clashrec.model:RepeatRecent" in proc.stderr
    assert "\npop " in "\n" + proc.stdout  # the built-in keeps its name


def test_the_default_names_and_odd_ones_give_valid_files():
    """Every placeholder is filled; a model name with quotes is still a valid
    TOML key and Python string (the registry allows it)."""
    tomllib = pytest.importorskip("tomllib")  # standard library from Python 3.11
    assert not any("{{" in text for text in render().values())  # every placeholder filled
    for package, model in (("mysessionrec", "repeat"), ("odd_pkg", 'we"ird\\{{package}}')):
        files = render(package, model)
        assert set(files) == {"README.md", "pyproject.toml", f"{package}/__init__.py", f"{package}/model.py",
                              "tests/test_model.py"}
        project = tomllib.loads(files["pyproject.toml"])
        assert project["project"]["name"] == package
        assert project["project"]["entry-points"]["sessionbench.models"] == {model: f"{package}.model:RepeatRecent"}
        tests = ast.parse(files["tests/test_model.py"])
        assert model in {n.value for n in ast.walk(tests) if isinstance(n, ast.Constant)}
        for name in (f"{package}/__init__.py", f"{package}/model.py"):
            ast.parse(files[name])


@fuzz_settings(60)
@given(package=st.one_of(st.text(max_size=12), st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)),
       model=st.text(max_size=12))
def test_any_names_are_refused_in_one_line_or_written_as_valid_files(package, model):
    """Whatever the names, either a one-line ConfigError or files whose
    pyproject.toml registers exactly ``model`` for ``package``."""
    tomllib = pytest.importorskip("tomllib")
    try:
        check_package_name(package)
        check_model_name(model)
    except ConfigError as err:
        assert "\n" not in str(err) and str(err).startswith(("--package ", "--model "))
        return
    files = render(package, model)
    project = tomllib.loads(files["pyproject.toml"])
    assert project["project"]["entry-points"]["sessionbench.models"] == {model: f"{package}.model:RepeatRecent"}
    assert model_name_problem(model) is None
    ast.parse(files["tests/test_model.py"])


def test_the_template_is_package_data_without_python_modules():
    """Stored as *.tmpl files, so no template file is a sessionbench module or a test pytest collects."""
    sources = template_sources()
    assert sources and all(name.endswith(".tmpl") for name in sources)
    root = Path(__file__).resolve().parents[1] / "harness" / "models" / "templates"
    on_disk = sorted(p.relative_to(root / "plugin").as_posix() for p in root.rglob("*") if p.is_file())
    assert on_disk == list(sources)  # nothing else there: no .py, no __init__.py, no cache


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("package, expected", [
    ("my-rec", "expected a Python identifier: ASCII letters, digits and underscores, not starting with a digit, "
               "not a keyword (e.g. 'my_rec')"),
    ("1rec", "expected a Python identifier"),
    ("class", "expected a Python identifier"),
    ("réc", "expected a Python identifier"),
    ("json", "a module of that name is part of the standard library; choose another name"),
    ("harness", "a module of that name is part of sessionbench; choose another name"),
    ("pytest", "a module of that name is already importable"),
])  # fmt: skip
def test_a_bad_package_name_is_refused_in_one_line(package, expected, capsys, tmp_path):
    code, out, err = run(capsys, "plugin", "new", str(tmp_path / "p"), "--package", package)
    assert code == 2 and err.startswith(f"sessionbench: error: --package {package!r}: {expected}"), err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "p").exists()


@pytest.mark.parametrize("model, expected", [
    ("my:model", "':' and '=' are not allowed in a model name"),
    ("a=b", "':' and '=' are not allowed in a model name"),
    ("my model", "white space and unprintable characters are not allowed in a model name"),
    ("[x]", "a model name cannot start with '['"),
    ("pop", "already registered by baselines.popularity.Popularity (a plugin under a taken name is ignored); "
            "choose another name"),
])  # fmt: skip
def test_a_bad_model_name_is_refused_in_one_line(model, expected, capsys, tmp_path):
    code, out, err = run(capsys, "plugin", "new", str(tmp_path / "p"), "--model", model)
    assert code == 2 and err == f"sessionbench: error: --model {model!r}: {expected}\n", err
    assert not (tmp_path / "p").exists()


def test_an_existing_folder_is_written_only_when_empty(capsys, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    code, out, err = run(capsys, "plugin", "new", str(full))
    assert code == 2 and err == (f"sessionbench: error: {full}: the folder is not empty; expected a new or empty "
                                 "folder (nothing was written)\n")  # fmt: skip
    assert [p.name for p in full.iterdir()] == ["notes.txt"] and (full / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    code, out, err = run(capsys, "plugin", "new", str(tmp_path / "file"))
    assert code == 2 and "file is a file" in err and len(err.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run(capsys, "plugin", "new", str(empty))
    assert code == 0 and (empty / "mysessionrec" / "model.py").is_file() and err == ""
    code, out, err = run(capsys, "plugin", "new", str(empty))  # a second time: refused, nothing overwritten
    assert code == 2 and "the folder is not empty" in err


def test_plugin_needs_a_subcommand_and_a_folder(capsys):
    for argv in (["plugin"], ["plugin", "new"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1, err

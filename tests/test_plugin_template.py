"""The plugin template installs, registers through its entry point, passes
its own conformance test and runs in a suite; a clashing plugin is named."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "examples" / "plugin-template"


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
def site(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    install(TEMPLATE, target)
    return target


def test_installed_plugin_is_listed_by_its_entry_point_name(site, tmp_path):
    proc = cli("models", site=site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "\nrepeat " in proc.stdout and "decay=0.5" in proc.stdout
    assert "repeat       Repeat: the prefix's items, most recent first, then by training popularity.\n" in proc.stdout


def test_a_decay_out_of_range_is_refused_before_fitting(site, tmp_path):
    proc = cli("evaluate", "--dataset", "synthetic", "--model", "repeat", "--param", "decay=0", site=site, cwd=tmp_path)
    assert proc.returncode == 2 and "decay" in proc.stderr and "(0, 1]" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_templates_own_tests_pass(site, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TEMPLATE / "tests")],
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)},
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


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
        models: [pop, repeat]
        ks: [5, 20]
        latency: {{samples: 5, warmup: 1}}
        """))
    proc = cli("run", str(tmp_path / "suite.yaml"), "--out", "out", site=site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = next((tmp_path / "out" / "report").rglob("*.csv")).read_text()
    assert "repeat" in table and "pop" in table


def test_a_plugin_that_takes_a_builtin_name_is_named_and_ignored(tmp_path):
    clash = tmp_path / "clash"
    shutil.copytree(TEMPLATE, clash, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    text = (clash / "pyproject.toml").read_text().replace('repeat = "', 'pop = "').replace('name = "mysessionrec"', 'name = "clashrec"')
    (clash / "pyproject.toml").write_text(text)
    site = tmp_path / "site"
    install(clash, site)
    proc = cli("models", site=site, cwd=tmp_path)
    assert proc.returncode == 0
    assert "'pop' is already registered by baselines.popularity.Popularity" in proc.stderr
    assert "mysessionrec.model:RepeatRecent" in proc.stderr
    assert "\npop " in "\n" + proc.stdout  # the built-in keeps its name

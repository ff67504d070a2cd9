"""sessionbench as an installed package: a wheel built from the sources holds
the presets and suites, installs into a fresh virtual environment, runs the
default suite from an empty working directory, and writes nothing outside
that directory and the user folders (never inside the installed package)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from harness.models.plugin_template import template_sources

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("harness", "baselines", "srgnn", "pyproject.toml", "README.md")
IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "*.pyc")


def snapshot(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Every file under ``folder`` -> its mtime (ns); byte-code caches and ``skip`` folders left out."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d not in ("__pycache__", *skip)]
        for name in filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(folder))] = path.lstat().st_mtime_ns
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built offline from a copy of the sources (building writes beside them)."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        (shutil.copytree(ROOT / name, src / name, ignore=IGNORE) if (ROOT / name).is_dir()
         else shutil.copy(ROOT / name, src / name))  # fmt: skip
    dist = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                           "-w", str(dist), str(src)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [built] = dist.glob("sessionbench-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A new virtual environment with the wheel installed; the project
    environment's packages (torch, pandas...) are reused through a .pth file
    rather than downloaded."""
    env = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    site = Path(subprocess.run([env / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())  # fmt: skip
    # a plain path entry: the project's own .pth files (an editable sessionbench) are not run
    (site / "zz_project_packages.pth").write_text(sysconfig.get_path("purelib") + "\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install",
                           "--no-deps", "--no-index", "--quiet", str(wheel)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return env


def test_the_wheel_ships_presets_suites_and_every_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for preset in ("diginetica", "diginetica-sample", "synthetic", "yoochoose-1-4", "yoochoose-1-64",
                   "yoochoose-100k"):  # fmt: skip
        assert f"harness/presets/datasets/{preset}.yaml" in names
    for suite in ("default", "yoochoose-100k", "diginetica-sample"):
        assert f"harness/presets/suites/{suite}.yaml" in names
    expected = {str(p.relative_to(ROOT)) for pkg in ("harness", "baselines", "srgnn")
                for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts}  # fmt: skip
    assert expected <= names
    # the plugin template of `sessionbench plugin new`, file for file, and nothing else under its folder
    template = {f"harness/models/templates/plugin/{name}" for name in template_sources()}
    assert len(template) == 5 and {n for n in names if n.startswith("harness/models/templates/")} == template


@pytest.mark.slow
def test_installed_package_runs_the_default_suite_from_an_empty_folder(venv, tmp_path):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache"),
           "XDG_CONFIG_HOME": str(home / "config")}  # fmt: skip
    site_before = snapshot(venv)
    checkout_before = snapshot(ROOT, skip=(".git", ".venv", ".pytest_cache", ".hypothesis", ".benchmarks"))

    def sessionbench(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(venv / "bin" / "sessionbench"), *args], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    where = subprocess.run([venv / "bin" / "python", "-c", "import harness; print(harness.__file__)"],
                           env=env, cwd=work, capture_output=True, text=True).stdout  # fmt: skip
    assert where.startswith(str(venv)), where  # the wheel's copy, not the checkout
    listing = sessionbench("datasets").stdout
    assert str(home / "data" / "sessionbench" / "data") in listing
    assert "yoochoose-100k  [missing]" in listing and "synthetic  [generated]" in listing
    assert "srgnn" in sessionbench("models").stdout  # entry points of the installed distribution
    run = sessionbench("run", "default", "--only", "synthetic/pop/*", "--only", "synthetic/markov/*").stdout
    assert "2 executed, 0 failed" in run
    assert (work / "reports" / "default" / "report").is_dir()
    assert len(list((work / "reports" / "default" / "runs").iterdir())) == 2
    assert list((home / "cache" / "sessionbench").glob("synthetic-*/meta.json"))  # the user cache folder
    # nothing inside the installed package or the checkout; every new file in the two folders
    assert snapshot(venv) == site_before
    assert snapshot(ROOT, skip=(".git", ".venv", ".pytest_cache", ".hypothesis", ".benchmarks")) == checkout_before
    written = {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()}
    assert written <= {"work", "home"}


@pytest.mark.slow
def test_the_plugin_template_installs_against_the_installed_wheel(venv, tmp_path):
    """The installed wheel's `sessionbench plugin new` writes the template; its
    dependency ``sessionbench`` is met by the installed wheel (no index is
    asked: ``--no-index``), its model is registered and its own tests pass."""
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}

    def command(*args: str | Path) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(a) for a in args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    command(venv / "bin" / "sessionbench", "plugin", "new", "plugin")  # the default names
    command(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-index",
            "--no-build-isolation", "--quiet", tmp_path / "plugin")
    models = command(venv / "bin" / "sessionbench", "models").stdout
    assert "\nrepeat " in "\n" + models and "decay=0.5" in models
    # pytest comes from the project environment (the .pth file); the plugin from the venv
    tests = command(venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "plugin/tests").stdout
    assert "3 passed" in tests

"""Where sessionbench reads and writes by default.

Nothing is ever written inside the installed package: the package only
*reads* its shipped presets. Defaults follow the working directory and the
platform's conventions (via ``platformdirs``):

==================  ===========================================================
what                default
==================  ===========================================================
raw data            ``$SESSIONBENCH_DATA``, else the user data folder
                    (Linux: ``~/.local/share/sessionbench/data``)
prepared-data cache ``$SESSIONBENCH_CACHE``, else the user cache folder
                    (Linux: ``~/.cache/sessionbench``)
suite results       ``./reports/<suite>`` of the current working directory
dataset presets     ``harness/presets/datasets/*.yaml`` (package data)
shipped suites      ``harness/presets/suites/*.yaml`` (package data)
==================  ===========================================================

Each function reads the environment when called, so a test (or a user) can
change a variable without re-importing anything.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import platformdirs

__all__ = [
    "APP_NAME",
    "DATA_ENV",
    "CACHE_ENV",
    "data_dir",
    "cache_dir",
    "reports_dir",
    "preset_dir",
    "suite_dir",
]

APP_NAME = "sessionbench"
DATA_ENV = "SESSIONBENCH_DATA"
CACHE_ENV = "SESSIONBENCH_CACHE"


def _from_env(variable: str) -> Path | None:
    value = os.environ.get(variable, "").strip()
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    """The raw-data folder: ``$SESSIONBENCH_DATA`` if set and not empty, else
    ``<user data folder>/data`` (one sub-folder per dataset inside)."""
    return _from_env(DATA_ENV) or platformdirs.user_data_path(APP_NAME, appauthor=False) / "data"


def cache_dir() -> Path:
    """The prepared-data cache: ``$SESSIONBENCH_CACHE`` if set and not empty,
    else the user cache folder of sessionbench."""
    return _from_env(CACHE_ENV) or platformdirs.user_cache_path(APP_NAME, appauthor=False)


def reports_dir(suite_name: str | None = None) -> Path:
    """``reports/`` of the current working directory (absolute), or
    ``reports/<suite_name>`` in it: where a suite's runs and report go."""
    base = Path.cwd() / "reports"
    return base if suite_name is None else base / suite_name


def _package_folder(*parts: str) -> Path:
    # pip always installs this package as plain files, so the resource is a
    # real folder; Path() makes globbing and error messages ordinary.
    return Path(str(resources.files("harness").joinpath(*parts)))


def preset_dir() -> Path:
    """The folder of the shipped dataset presets (read-only package data)."""
    return _package_folder("presets", "datasets")


def suite_dir() -> Path:
    """The folder of the shipped suites (read-only package data)."""
    return _package_folder("presets", "suites")

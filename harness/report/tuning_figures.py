"""Figures of hyper-parameter searches (``tune:`` sections of a suite).

One figure per tuned model and dataset, from the stored stage-``tune`` runs
of its trials (labels ``<label>[trial=NNNN]``) and the objective recorded in
``OUT/plan.json``:

- left: each trial's validation objective by trial number (failed or
  pruned trials as crosses on the axis) and the best-so-far curve;
- right: one panel per searched hyper-parameter, the objective against the
  values tried (the range the search explored).

Only stored runs are read (no Optuna import); a folder without trials
gives no figure.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from harness.report.collection import file_slug
from harness.report.figures import log_axis, save_figure
from harness.run.store import iter_runs, read_plan

_TRIAL = re.compile(r"^(?P<label>.+)\[trial=(?P<number>\d+)\]$")


def collect_trials(out_dir: str | Path) -> dict[tuple[str, str], dict[str, Any]]:
    """``(dataset, label) -> {"metric", "maximize", "space", "trials"}``
    where ``trials`` is a list (by number) of ``{"number", "value", "params",
    "status"}``; ``value`` is None for failed or pruned trials."""
    plan = read_plan(out_dir)
    tuned = {m["label"]: m["tune"] for m in (plan.suite.get("models", []) if plan else []) if m.get("tune")}
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for record in iter_runs(out_dir, include_failed=True):
        manifest = record.manifest
        match = _TRIAL.match(str(manifest.get("label", "")))
        if manifest.get("stage") != "tune" or match is None or match["label"] not in tuned:
            continue
        tune = tuned[match["label"]]
        entry = found.setdefault((manifest["dataset"], match["label"]), {
            "metric": tune["metric"], "maximize": tune["direction"] == "maximize", "space": list(tune["space"]),
            "trials": []})  # fmt: skip
        value = record.metric(tune["metric"]) if record.complete else None
        entry["trials"].append({"number": int(match["number"]), "value": value, "status": manifest.get("status"),
                                "params": {k: manifest["params"].get(k) for k in entry["space"]}})  # fmt: skip
    for entry in found.values():
        entry["trials"].sort(key=lambda t: t["number"])
    return found


def best_so_far(values: list[float | None], maximize: bool = True) -> list[float | None]:
    """The running best of ``values`` (None: no finished trial yet)."""
    best, out = None, []
    for v in values:
        if v is not None and math.isfinite(v) and (best is None or (v > best if maximize else v < best)):
            best = v
        out.append(best)
    return out


def plot_search(dataset: str, label: str, entry: dict[str, Any]):
    """The figure of one search (see the module docstring)."""
    import matplotlib.pyplot as plt

    trials, metric, space = entry["trials"], entry["metric"], entry["space"]
    n_params = max(1, len(space))
    cols = min(3, n_params)
    rows = math.ceil(n_params / cols)
    fig = plt.figure(figsize=(4.2 + 2.6 * cols, max(3.0, 2.3 * rows)), constrained_layout=True)
    grid = fig.add_gridspec(rows, cols + 2)
    ax = fig.add_subplot(grid[:, :2])
    numbers = [t["number"] for t in trials]
    values = [t["value"] for t in trials]
    done = [(n, v) for n, v in zip(numbers, values) if v is not None]
    low = min((v for _, v in done), default=0.0)
    if done:
        ax.scatter(*zip(*done), s=14, color="0.35", label="trial", zorder=3)
    failed = [n for n, v in zip(numbers, values) if v is None]
    if failed:
        ax.plot(failed, [low] * len(failed), linestyle="none", marker="x", markersize=5, color="tab:red",
                label="failed or pruned", zorder=3)  # fmt: skip
    best = best_so_far(values, entry["maximize"])
    ax.step(numbers, [b if b is not None else float("nan") for b in best], where="post", color="tab:blue",
            label="best so far")  # fmt: skip
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"valid {metric}")
    ax.set_title(f"{label} on {dataset}: {len(done)} of {len(trials)} trials finished")
    ax.legend(loc="best", fontsize="small")
    for i, name in enumerate(space):
        sub = fig.add_subplot(grid[i // cols, 2 + i % cols])
        pairs = [(t["params"].get(name), t["value"]) for t in trials if t["value"] is not None]
        xs = [x for x, _ in pairs]
        if xs and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
            sub.scatter(xs, [y for _, y in pairs], s=10, color="0.35")
            if min(xs) > 0 and max(xs) / min(xs) > 100:
                log_axis(sub)  # plain-number ticks, as the report's other log axes
        elif xs:
            cats = sorted({str(x) for x in xs})
            sub.scatter([cats.index(str(x)) for x in xs], [y for _, y in pairs], s=10, color="0.35")
            sub.set_xticks(range(len(cats)), cats, rotation=30, fontsize="small")
        sub.set_title(name, fontsize="small")
        sub.tick_params(labelsize="small")
    return fig


def write_tuning_figures(out_dir: str | Path, folder: Path, prefix: str | None = None) -> list[Path]:
    """Write ``<prefix>_<dataset>_<label>_tuning.{png,pdf}`` into ``folder``
    for every search stored under ``out_dir`` (``prefix``: the suite's name,
    see :func:`harness.report.collection.file_prefix`); returns the paths
    written."""
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    for (dataset, label), entry in sorted(collect_trials(out_dir).items()):
        fig = plot_search(dataset, label, entry)
        try:
            slug = file_slug(prefix, dataset, label, "tuning")
            paths.extend(save_figure(fig, folder / slug))
        finally:
            plt.close(fig)
    return paths

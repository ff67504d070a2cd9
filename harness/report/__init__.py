"""Reports: paper-ready figures and tables, computed from the stored runs only.

:func:`write_report` reads the complete runs of a results store
(:func:`harness.run.store.iter_runs`), recomputes every metric from the stored
per-case ranks and top-K lists, and writes ``<out_dir>/report/``::

    report/
      summary.md                     every figure and table with its caption; the
                                     tuning of tuned models; runs left out and why
                                     (superseded, failed, failing verification); methods
      figures/<group>_<kind>.png     for each (dataset, protocol) "group" (named
                                       <suite>_<dataset>_<protocol>): bars,
      figures/<group>_<kind>.pdf       metric_vs_k, accuracy_latency, prefix_length,
      figures/<group>_<kind>.txt|.tex  training_curves (PNG 300 dpi, PDF, caption as text
                                       and as a LaTeX figure)
      tables/<group>.md|.tex|.csv    the results table (and its CIs)
      tables/<group>_significance.csv  the paired tests against the best model
      tables/<group>_tuning.md|.csv  the grid points of tuned models (when any)

The report is written to a temporary folder and then replaces the previous
one, so a report folder is never half old, half new; a temporary folder
left by a killed report is removed by the next one. Figures and tables are
deterministic given ``seed`` (PDFs carry no creation date).

The package's parts: :mod:`~harness.report.styles` (colours and markers),
:mod:`~harness.report.statistics` (bootstrap, tests), :mod:`~harness.report.collection`
(reading the store), :mod:`~harness.report.tables`, :mod:`~harness.report.figures`;
this module writes the report folder. The statistics are described in
:mod:`harness.report.statistics`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError, quote
from harness.evaluation.metrics import METRICS, RANK_METRICS
from harness.limits import MAX_BOOTSTRAP, MAX_K
from harness.report.collection import Collected, Group, beside, collect, file_prefix
from harness.report.constants import (
    COLUMN_WIDTH, FIGURES_DIR, LIST_K, PREFIX_BINS, REPORT_DIR, TABLES_DIR, TEXT_WIDTH, TIMINGS, Timing,
)
from harness.report.figures import _PLOTTERS, _RC, FIGURE_KINDS, save_figure, wider_than_a_column, write_captions
from harness.report.retrieval import write_retrieval
from harness.report.provenance import ReportError, Selection, Tuning, drawing_code, drawing_code_text, git_text
from harness.report.statistics import ALPHA, bootstrap_ci, holm, paired_ttest, pareto_front
from harness.report.styles import KNOWN_MODELS, Style, model_styles, style_collisions
from harness.report.tuning_figures import write_tuning_figures
from harness.report.tables import (
    TableSpec, _compact_text, _latex_table, _markdown_table, _md_escape, _params_text, _table_frame,
    check_table_metrics, latex_escape,
)
from harness.run.store import replace_folder


@dataclass(frozen=True)
class ReportSummary:
    """What :func:`write_report` wrote.

    Attributes:
        path: the report folder (``<out_dir>/report``).
        summary_path: ``report/summary.md``.
        text: the compact table (model x HitRate/Recall/NDCG/MRR@20 and @50,
            fit seconds, p95 latency), one block per (dataset, protocol), then
            one line per run left out (failed, failing verification) and the
            count of superseded runs; what ``sessionbench run`` prints.
        figures: every PNG, PDF and caption file written.
        tables: every table file written (md, tex, csv).
        n_runs: complete runs shown.
        failed: ``(run_id, label, last line of the error)`` of each failed run.
        broken: ``(run_id, problem)`` of each run failing verification.
        superseded: ``(run_id, label, stage)`` of complete runs outside the plan.
        notes: remarks on the statistics (e.g. skipped tests because case lists differ).
        warnings: one line per figure or curve that could not be drawn.
    """

    path: Path
    summary_path: Path
    text: str
    figures: tuple[Path, ...] = ()
    tables: tuple[Path, ...] = ()
    n_runs: int = 0
    failed: tuple[tuple[str, str, str], ...] = ()
    broken: tuple[tuple[str, str], ...] = ()
    superseded: tuple[tuple[str, str, str], ...] = ()
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.text}\n\nreport: {self.summary_path}"


def figure_width_inches(width: str | float, *, column_width: float = COLUMN_WIDTH,
                        text_width: float = TEXT_WIDTH) -> float:
    """``column`` -> ``column_width``, ``text`` -> ``text_width``, a number -> itself (inches, 2 to 20)."""
    if width == "column":
        value, option = column_width, "--column-width"
    elif width == "text":
        value, option = text_width, "--text-width"
    else:
        option = "--figure-width"
        try:
            value = float(width)
        except (TypeError, ValueError):
            raise ConfigError(f"--figure-width: expected column, text or a width in inches, got {width!r}") from None
    if not 2.0 <= value <= 20.0:
        raise ConfigError(f"{option}: expected a width between 2 and 20 inches, got {value:g}")
    return value


_TMP_NAME = re.compile(rf"^\.{REPORT_DIR}\.tmp-(\d+)$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale_reports(out_dir: str | Path) -> list[Path]:
    """Remove ``.report.tmp-<pid>`` folders of reports whose process is gone; returns them."""
    removed = []
    base = Path(out_dir)
    if not base.is_dir():
        return removed
    for path in sorted(base.iterdir()):
        m = _TMP_NAME.match(path.name)
        if m and path.is_dir() and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def write_report(
    out_dir: str | Path, *, ks: Iterable[int] | int | None = None, n_bootstrap: int = 1000, seed: int = 0,
    figure_width: str | float = "column", column_width: float = COLUMN_WIDTH, text_width: float = TEXT_WIDTH,
    table: TableSpec | None = None, models: Iterable[str] | None = None,
    style: dict[str, dict[str, str]] | None = None,
) -> ReportSummary:
    """Write the figures, tables and summary of the runs stored under ``out_dir``.

    Args:
        out_dir: a results folder (holding ``runs/``, see :mod:`harness.run.store`).
        ks: the cut-offs computed for the CSV and the significance tests
            (default: the ``ks`` of the suite last run into the folder, from
            its plan; for a folder without one, every K its runs' manifests
            record). Any K works: metrics come from the stored ranks, so
            runs made under other ``ks`` are reported at these.
        n_bootstrap: bootstrap replicates per confidence interval.
        seed: seed of the bootstrap; equal seeds give identical reports.
        figure_width: ``column``, ``text`` or inches: the print width every
            figure is drawn at (fonts 7-8 pt at that width).
        column_width, text_width: inches of ``column`` and ``text``.
        table: the tables' columns and layout (default :class:`TableSpec()`:
            HitRate, MRR, NDCG at the two largest of the report's ``ks``
            (20 and 50 for the default suite) and fit time, one column wide).
        models: only these labels (default: every label).
        style: ``{label: {color, marker, hatch}}`` over the plan's suite ``style:`` map.

    Returns:
        a :class:`ReportSummary` (its ``str()`` is what ``sessionbench run`` prints).
    Raises:
        ReportError: runs of one label that must not be averaged (one line naming both).
    """
    out_dir = Path(out_dir)
    table = table or TableSpec()
    options = {"figure_width": figure_width, "column_width": column_width, "text_width": text_width,
               "n_bootstrap": int(n_bootstrap),
               "table": {"metrics": list(table.metrics), "ks": None if table.ks is None else list(table.ks),
                         "layout": table.layout}}  # as asked: a later `run` redraws with them
    if table.layout not in ("narrow", "wide"):
        raise ConfigError(f"--layout: expected narrow or wide, got {table.layout!r}")
    width = figure_width_inches(figure_width, column_width=column_width, text_width=text_width)
    wide = wider_than_a_column(width, column_width)  # figure* in the LaTeX snippets
    results = collect(out_dir, ks=ks, n_bootstrap=n_bootstrap, seed=seed, table_ks=table.ks, models=models,
                      style=style)
    table = dataclasses.replace(table, ks=results.table_ks)
    groups, styles = results.groups, results.styles
    n_bootstrap = int(n_bootstrap)

    clean_stale_reports(out_dir)
    final = out_dir / REPORT_DIR
    tmp = out_dir / f".{REPORT_DIR}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / FIGURES_DIR).mkdir(parents=True)
    (tmp / TABLES_DIR).mkdir()

    warnings = list(results.warnings)
    figures: dict[tuple[str, str], tuple[list[Path], str]] = {}
    tables: dict[str, list[Path]] = {}
    try:
        for g in groups:
            for kind in FIGURE_KINDS:
                drawn = _draw(g, kind, styles, width, tmp / FIGURES_DIR, warnings.append, wide=wide)
                if drawn is not None:
                    figures[(g.slug, kind)] = drawn
        prefix = file_prefix(results.selection)
        searches = _draw_searches(out_dir, tmp / FIGURES_DIR, warnings.append, prefix)
        if searches:
            figures[("tuning", "search")] = (searches, "hyper-parameter searches: best so far and values tried")
        for g in groups:
            tables[g.slug] = _write_tables(g, tmp / TABLES_DIR, n_bootstrap, table)
            tables[g.slug] += _write_tuning(g, results.selection.tunings, tmp / TABLES_DIR)
        notes = tuple(f"{g.title}: {n}" for g in groups for n in g.notes)
        notes += tuple(f"{a} and {b} are drawn alike (same colour and the same marker or hatch, or the same hatch "
                       "on bars of about the same grey); set `style:` in "
                       "the suite to tell them apart" for a, b in style_collisions(styles))
        text = _compact_text(groups, table.ks) + _left_out_text(results.selection)
        stamp = drawing_code()
        summary_md = _summary_markdown(results, figures, text, n_bootstrap, seed, notes, warnings, table,
                                       drawn_by=drawing_code_text(stamp))
        # ANN retrieval (runs whose suite asked for it): figures, tables and a summary section
        retrieval_figures, tables["retrieval"], retrieval_md = write_retrieval(results.selection.test, tmp, width,
                                                                               wide=wide, prefix=prefix)
        figures[("retrieval", "")] = (retrieval_figures, None)
        (tmp / "summary.md").write_text(summary_md + "".join(f"\n{line}" for line in retrieval_md))
        _stamp_latex(tmp, drawing_code_text(stamp))
        (tmp / OPTIONS_FILE).write_text(json.dumps({**options, "drawn_by": stamp}, indent=1) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    replace_folder(tmp, final)

    def moved(paths: Iterable[Path]) -> tuple[Path, ...]:
        return tuple(final / p.relative_to(tmp) for p in paths)

    sel = results.selection
    return ReportSummary(
        path=final, summary_path=final / "summary.md", text=text,
        figures=moved(p for ps, _ in figures.values() for p in ps),
        tables=moved(p for ps in tables.values() for p in ps),
        n_runs=results.n_runs, failed=results.failed, broken=tuple(sel.broken), superseded=tuple(sel.superseded),
        notes=notes, warnings=tuple(warnings),
    )  # fmt: skip


#: the presentation options a report was drawn with (in the report folder)
OPTIONS_FILE = "options.json"


def _stamp_latex(folder: Path, line: str) -> None:
    """Start every LaTeX file of a report with a comment naming the code
    that drew it, so a table pasted into a paper can still be traced."""
    for tex in sorted(folder.rglob("*.tex")):
        tex.write_text(f"% drawn by {line}\n" + tex.read_text())


def last_report_options(out_dir: str | Path) -> tuple[dict, str | None]:
    """The presentation options of the report last written into ``out_dir``
    (``report/options.json``), as :func:`write_report` keywords, so that
    ``sessionbench run`` redraws the report as ``sessionbench report`` last
    drew it: figure, column and text widths, bootstrap replicates and the
    tables' columns, cut-offs and layout (not ``--models``: new runs must
    show). Returns ``(options, problem)``: ``({}, None)`` when there is no
    such report, ``({}, why)`` when its file cannot be used."""
    path = Path(out_dir) / REPORT_DIR / OPTIONS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}, None
    except (OSError, ValueError) as err:
        return {}, f"{path}: unreadable ({err}); drawing with the default options"
    try:
        options = _checked_options(data)
    except (KeyError, TypeError, ValueError, ConfigError) as err:
        return {}, f"{path}: not a report's options ({err}); drawing with the default options"
    return options, None


def _checked_options(data: dict) -> dict:
    """The keywords of :func:`write_report` that a stored ``options.json``
    holds, held to the command line's rules (a hand-edited file must not
    hang a run with 10**7 replicates or draw a table of no columns)."""
    table = data["table"]
    metrics, ks = table["metrics"], table["ks"]
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise ValueError(f"table.metrics: expected a non-empty list of names, got {quote(metrics)}")
    if ks is not None and not (isinstance(ks, list) and ks and all(type(k) is int and 1 <= k <= MAX_K for k in ks)):
        raise ValueError(f"table.ks: expected null or a list of integers in 1..{MAX_K}, got {quote(ks)}")
    if table["layout"] not in ("narrow", "wide"):
        raise ValueError(f"table.layout: expected narrow or wide, got {quote(table['layout'])}")
    n_bootstrap = data["n_bootstrap"]
    if type(n_bootstrap) is not int or not 1 <= n_bootstrap <= MAX_BOOTSTRAP:
        raise ValueError(f"n_bootstrap: expected an integer in 1..{MAX_BOOTSTRAP}, got {quote(n_bootstrap)}")
    options = {"figure_width": data["figure_width"], "column_width": float(data["column_width"]),
               "text_width": float(data["text_width"]), "n_bootstrap": n_bootstrap,
               "table": TableSpec(metrics=check_table_metrics(metrics), layout=table["layout"],
                                  ks=None if ks is None else tuple(ks))}
    for name in ("column_width", "text_width"):
        if not math.isfinite(options[name]) or options[name] <= 0:
            raise ValueError(f"{name}: expected a positive width in inches, got {quote(data[name])}")
    figure_width_inches(options["figure_width"], column_width=options["column_width"],
                        text_width=options["text_width"])
    return options


def _draw_searches(out_dir: Path, folder: Path, warn: Callable[[str], None], prefix: str | None) -> list[Path]:
    """The figures of the folder's hyper-parameter searches (see
    :mod:`harness.report.tuning_figures`); a failure costs these figures only."""
    import matplotlib

    try:
        with matplotlib.rc_context(_RC):
            return write_tuning_figures(out_dir, folder, prefix)
    except Exception as err:  # noqa: BLE001 - as for every figure: the rest of the report stands
        warn(f"tuning figures not drawn ({type(err).__name__}: {str(err).strip()[:200]})")
        return []


def _draw(group: Group, kind: str, styles: dict[str, Style], width: float, folder: Path,
          warn: Callable[[str], None], *, wide: bool = False) -> tuple[list[Path], str] | None:
    """Draw and save one figure (PNG, PDF, caption .txt and LaTeX .tex); a failure costs this figure
    only (one warning)."""
    import matplotlib

    def warn_here(message: str) -> None:
        warn(f"{group.title}: {message}")

    stem = folder / f"{group.slug}_{kind}"
    try:
        with matplotlib.rc_context(_RC):
            drawn = _PLOTTERS[kind](group, styles, width, warn_here)
            if drawn is None:
                return None
            paths = save_figure(drawn.figure, stem)
    except Exception as err:  # noqa: BLE001 - one figure failing must not cost the rest of the report
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        warn_here(f"figure {kind} not drawn ({type(err).__name__}: {message})")
        for leftover in folder.glob(f"{stem.name}.*"):
            leftover.unlink()
        return None
    return paths + write_captions(stem, drawn.caption, wide=wide), drawn.caption


def _write_tables(group: Group, folder: Path, n_boot: int, spec: TableSpec) -> list[Path]:
    stem = folder / group.slug
    paths = [beside(stem, ".md"), beside(stem, ".tex"), beside(stem, ".csv"), beside(stem, "_significance.csv")]
    paths[0].write_text(_markdown_table(group, spec, n_boot))
    paths[1].write_text(_latex_table(group, spec, n_boot))
    _table_frame(group).to_csv(paths[2], float_format="%.10g")
    group.significance.to_csv(paths[3], index=False, float_format="%.10g")
    return paths


def _group_tunings(group: Group, tunings: list[Tuning]) -> list[Tuning]:
    return [t for t in tunings if (t.dataset, t.protocol) == (group.dataset, group.protocol)]


def _write_tuning(group: Group, tunings: list[Tuning], folder: Path) -> list[Path]:
    """``<group>_tuning.md`` and ``.csv``: every grid point's validation score, the chosen one marked."""
    import pandas as pd

    mine = _group_tunings(group, tunings)
    if not mine:
        return []
    rows = [{"label": t.label, "seed": t.seed, "params": _params_text(t.grid_params(c.params)), "metric": t.metric,
             "validation": c.value, "chosen": c.run_id == t.chosen, "run_id": c.run_id, "final_run_id": t.final}
            for t in mine for c in t.candidates]
    csv = folder / f"{group.slug}_tuning.csv"
    pd.DataFrame(rows).to_csv(csv, index=False, float_format="%.10g")
    md = folder / f"{group.slug}_tuning.md"
    md.write_text("\n".join(_tuning_markdown(mine)) + "\n")
    return [md, csv]


def _tuning_markdown(tunings: list[Tuning]) -> list[str]:
    lines = []
    for t in tunings:
        lines += [f"#### {_md_escape(t.label)}, seed {t.seed}", "",
                  f"Grid points fitted on the training part of train and scored on the validation split "
                  f"({t.metric}); chosen: {_params_text(t.grid_params(t.params))} (test run `{t.final}`).", "",
                  f"| grid point | validation {t.metric} | chosen |", "|:---|---:|:---:|"]
        for c in t.candidates:
            value = "failed" if c.value is None else f"{c.value:.4f}"
            mark = "✔" if c.run_id == t.chosen else ""
            lines.append(f"| {_md_escape(_params_text(t.grid_params(c.params)))} | {value} | {mark} |")
        lines.append("")
    return lines


def _runs_markdown(group: Group) -> list[str]:
    """The runs behind each row of the group's tables and figures: ids, code and every hyper-parameter."""
    if not group.provenance:
        return []
    lines = ["### Runs", "",
             "Each model's numbers average exactly these runs (seeds share configuration and code); "
             "`../runs/<run>/manifest.json` holds the resolved configuration, the code fingerprint (SHA-256 of "
             "every source file), the library versions and the machine.", "",
             "| model | runs (by seed) | code | hyper-parameters |", "|:---|:---|:---|:---|"]
    for label in group.labels:
        runs = group.provenance.get(label, [])
        if not runs:
            continue
        first = runs[0]
        ids = "<br>".join(f"`{r['run_id']}`" + _resumed_text(r.get("resumed")) for r in runs)
        code = f"`{first['code_digest'][:12]}`" if first["code_digest"] else "unknown"
        if first.get("git_commit"):
            code += f" ({git_text(first['git_commit'])})"
        params = f"{_model_text(first)}: " + _md_escape(_params_text(first["params"]))
        lines.append(f"| {_md_escape(label)} | {ids} | {code} | {params} |")
    return lines + [""]


def _model_text(run: dict) -> str:
    """The model name and, for a plugin registered under a name, the class
    it resolved to (a built-in name is bound in sessionbench's code)."""
    from harness.run.fingerprint import BUILTIN_PACKAGES

    name, cls = f"`{run['model']}`", run.get("model_class")
    if cls and ":" not in run["model"] and cls.split(".")[0].split(":")[0] not in BUILTIN_PACKAGES:
        name += f" (`{cls}`)"
    return name


def _resumed_text(resumed: dict | None) -> str:
    if not resumed:
        return ""
    return (f" (resumed after {resumed.get('phase', '')} epoch {resumed.get('epoch', '?')}; its fit time adds "
            "the first process's time up to that checkpoint)")


def _left_out_text(sel: Selection) -> str:
    """One line per run not shown (failed, failing verification), and a count of superseded runs."""
    lines = [f"failed: {rid} ({label}): {err}" for rid, label, err in sel.failed]
    lines += [f"failed verification, not shown: {rid}: {problem}" for rid, problem in sel.broken]
    if sel.superseded:
        lines.append(f"{len(sel.superseded)} superseded run(s) not in the plan, not shown (listed in summary.md)")
    if sel.missing:
        lines.append(f"{len(sel.missing)} run(s) of the plan not stored yet (left out by --only, failed to "
                     "start or interrupted; `sessionbench run` of the suite runs them)")
    if sel.unverified:
        lines.append(f"{len(sel.unverified)} run(s) of older output without checksums: shown, unverified")
    return ("\n\n" + "\n".join(lines)) if lines else ""


def _summary_markdown(
    results: Collected, figures: dict, text: str, n_boot: int, seed: int, notes: tuple[str, ...],
    warnings: list[str], spec: TableSpec, *, drawn_by: str,
) -> str:
    groups, sel = results.groups, results.selection
    n_runs = sum(sum(g.n_seeds.values()) for g in groups)
    if sel.plan is not None:
        source = (f"the {n_runs} complete test run(s) of the plan of suite `{sel.plan.suite_name}` "
                  f"(`../plan.json`, {len(sel.plan.run_ids)} run(s) planned)")
    else:
        source = (f"the {n_runs} complete test run(s) stored in `../runs/` (no plan file: older output; "
                  "seeds are averaged only within one configuration)")
    lines = [
        "# sessionbench report", "", f"Drawn by {drawn_by}.", "",
        f"Computed from {source}; each dataset's *Runs* section names the runs behind every model. Every "
        "accuracy number is recomputed from the runs' stored per-case ranks, every timing is the runs' own "
        f"measurement; the report is deterministic given its bootstrap seed ({seed}, {n_boot} replicates).", "",
        "## At a glance", "", "```", text, "```", "",
    ]
    for g in groups:
        lines += [f"## {g.title}", ""]
        seeds = ", ".join(f"{label}: {g.n_seeds[label]}" for label in g.labels)
        lines += [f"Models (seeds): {seeds}.", "", "### Tables", ""]
        lines += [
            f"- [`tables/{g.slug}.md`](tables/{g.slug}.md): the results table in Markdown (means over seeds, "
            "best in bold, † significantly worse than the column's best), then its 95% CIs.",
            f"- [`tables/{g.slug}.tex`](tables/{g.slug}.tex): the same in LaTeX (booktabs, "
            f"{'one column' if spec.layout == 'narrow' else 'both columns'} wide), with a second table of the "
            "95% CIs.",
            f"- [`tables/{g.slug}.csv`](tables/{g.slug}.csv): every column at every K with `_ci_low`/`_ci_high`, "
            "all timings (p99 latency, peak memory, model size)"
            + (", and the tuned hyper-parameters." if g.tuned else "."),
            f"- [`tables/{g.slug}_significance.csv`](tables/{g.slug}_significance.csv): each model against "
            "the best per metric: difference, its paired session-bootstrap 95% CI, the cluster-robust paired "
            "t statistic over test sessions, p and Holm-adjusted p.", "",
        ]
        lines += ["### Figures", ""]
        for kind in FIGURE_KINDS:
            entry = figures.get((g.slug, kind))
            if entry is None:
                continue
            paths, caption = entry
            png, pdf, txt, tex = (p.name for p in paths)
            lines += [f"- [`figures/{png}`](figures/{png}) ([PDF](figures/{pdf}), [caption](figures/{txt}), "
                      f"[LaTeX](figures/{tex})): {caption}", "",
                      f"  ![{kind}](figures/{png})", ""]
        lines += _runs_markdown(g)
        tun = _group_tunings(g, sel.tunings)
        if tun:
            lines += ["### Tuning", "",
                      "Grid points are scored on the validation split only; they never appear in the test tables "
                      f"or figures. Also in [`tables/{g.slug}_tuning.csv`](tables/{g.slug}_tuning.csv).", ""]
            lines += _tuning_markdown(tun)
        if g.notes:
            lines += ["### Notes", ""] + [f"- {n}" for n in g.notes] + [""]
    lines += ["## Runs not shown", ""]
    if not (sel.superseded or sel.failed or sel.broken or sel.missing):
        lines += ["None: every stored run is shown (tuning runs in the tuning sections).", ""]
    if sel.superseded:
        lines += ["### Superseded / not in the plan", "",
                  "Complete runs in `../runs/` that the current plan does not list (made by an earlier version "
                  "of the suite, of a model's code or of the data); "
                  "never pooled with the shown runs.", "", "| run | label | stage |", "|:---|:---|:---|"]
        lines += [f"| `{rid}` | {_md_escape(label)} | {stage} |" for rid, label, stage in sel.superseded] + [""]
    if sel.broken:
        lines += ["### Failing verification", "",
                  "Run folders whose files do not match their manifest (size or SHA-256); not shown, and redone "
                  "by the next `sessionbench run`.", "", "| run | problem |", "|:---|:---|"]
        lines += [f"| `{rid}` | {_md_escape(problem)} |" for rid, problem in sel.broken] + [""]
    if sel.failed:
        lines += ["### Failed runs", "", "| run | model | error (last line) |", "|:---|:---|:---|"]
        lines += [f"| `{rid}` | {_md_escape(label)} | {_md_escape(err)} |" for rid, label, err in sel.failed] + [""]
    if sel.missing:
        lines += ["### Missing", "", "Runs of the plan not (yet) in `../runs/`:", ""]
        lines += [f"- `{rid}`" for rid in sel.missing] + [""]
    if sel.unverified:
        lines += ["### Shown unverified", "",
                  "Runs written before run folders recorded file sizes and checksums (older output): shown, but "
                  "their files cannot be checked against their manifests.", ""]
        lines += [f"- `{rid}`" for rid in sel.unverified] + [""]
    if warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in warnings] + [""]
    lines += [
        "## Methods", "",
        "- **Metrics**: full ranking over all items, ties broken pessimistically; per-case values "
        "from the stored target ranks (" + "; ".join(METRICS[n].formula for n in RANK_METRICS) + ").",
        "- **Unit of resampling and testing**: the test session. Every prefix of a test session is an "
        "evaluation case, so a session of n events gives n - 1 correlated cases; treating them as "
        "independent would make the intervals too narrow and the tests too confident.",
        f"- **Confidence intervals**: 95% percentile bootstrap with {n_boot} replicates. Each replicate "
        "resamples the test sessions with replacement, each with all its prefixes (the same draws for every "
        "model of a dataset), and, independently per model, its seeds with replacement (two-level bootstrap); "
        "the statistic is the mean over resampled seeds of the ratio of the resampled sums of per-case values "
        "to the resampled number of cases (still a mean over cases).",
        "- **Significance**: for every accuracy column, each model against the best one (direction from the "
        "metric registry): a two-sided cluster-robust paired t-test over the test sessions on the per-case "
        "differences (paired by session and prefix length, per-case values averaged over seeds): "
        "t = mean difference over cases / its cluster-robust (CR1) standard error, on G - 1 degrees of "
        "freedom for G sessions; Holm step-down correction across models; a model is significantly worse "
        f"than the best when the adjusted p < {ALPHA}. A paired session-bootstrap 95% CI of the difference "
        "is in the significance CSV.",
        "- **Timings**: means over seeds of the stored measurements (fit seconds; batch throughput in "
        "prefixes/s; single-session latency percentiles in ms, one prefix at a time after warm-up).",
        "- **Pooling**: seeds are averaged only when they share the configuration (apart from the seed) and "
        "the code; tuned models are reported with the configuration chosen on the validation split.",
    ]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


__all__ = [
    "ALPHA",
    "COLUMN_WIDTH",
    "FIGURE_KINDS",
    "KNOWN_MODELS",
    "LIST_K",
    "PREFIX_BINS",
    "TEXT_WIDTH",
    "ReportError",
    "ReportSummary",
    "Style",
    "TIMINGS",
    "TableSpec",
    "Timing",
    "Collected",
    "Group",
    "bootstrap_ci",
    "check_table_metrics",
    "clean_stale_reports",
    "collect",
    "figure_width_inches",
    "holm",
    "latex_escape",
    "model_styles",
    "paired_ttest",
    "pareto_front",
    "write_report",
]

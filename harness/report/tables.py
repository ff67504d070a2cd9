"""The results tables: Markdown, LaTeX (booktabs), CSV, and the compact text summary."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.errors import ConfigError
from harness.evaluation.metrics import METRICS, RANK_METRICS, MetricSpec, metric_key
from harness.report.collection import Group, counts_text
from harness.report.constants import (
    LIST_K, TABLE_METRICS, TABLE_TIMINGS, TIMINGS, Timing,
)
from harness.report.statistics import ALPHA


@dataclass(frozen=True)
class TableSpec:
    r"""Which columns the results tables show and how they are laid out.

    Attributes:
        metrics: metric names (HitRate, Recall, MRR, NDCG, Coverage, Popularity)
            and timing keys (fit_seconds, prefixes_per_second, latency_ms_p50,
            latency_ms_p95), in column order.
        ks: cut-offs of the rank metrics (Coverage and Popularity use LIST_K);
            None: the report's largest (:func:`~harness.report.collection.default_table_ks`).
        layout: ``narrow``: a one-column ``table`` (the default, fits
            \columnwidth of a two-column article with the default columns);
            ``wide``: a ``table*`` across both columns.
    """

    metrics: tuple[str, ...] = TABLE_METRICS + TABLE_TIMINGS
    ks: tuple[int, ...] | None = None
    layout: str = "narrow"

    def columns(self) -> list[_Column]:
        """The table's columns, metrics first (each at every K), then timings."""
        if self.ks is None:
            raise ValueError("TableSpec.ks is resolved by the report (table_ks) before columns are made")
        cols: list[_Column] = []
        for name in self.metrics:
            if name in RANK_METRICS:
                cols += [_Column(metric_key(name, k), f"@{k}", name, METRICS[name], None) for k in self.ks]
            elif name in ("Coverage", "Popularity"):
                cols.append(_Column(metric_key(name, LIST_K), f"@{LIST_K}", name, METRICS[name], None))
        cols += [_Column(TIMINGS[t].key, TIMINGS[t].header, "", None, TIMINGS[t]) for t in self.metrics
                 if t in TIMINGS]
        return cols


def check_table_metrics(names: Sequence[str]) -> tuple[str, ...]:
    """Validate ``--metrics``: metric names (any case) or timing keys; returns canonical names."""
    known = {n.lower(): n for n in (*RANK_METRICS, "Coverage", "Popularity", *TIMINGS)}
    out = []
    for name in names:
        canon = known.get(str(name).strip().lower())
        if canon is None:
            raise ConfigError(f"--metrics: unknown column {name!r}; expected some of {', '.join(known.values())}")
        if canon not in out:
            out.append(canon)
    return tuple(out)


@dataclass(frozen=True)
class _Column:
    key: str  # metric key or timing key
    header: str  # second header row (under the group name)
    group: str  # first header row: metric name, or "" for a timing
    metric: MetricSpec | None
    timing: Timing | None

    def best(self, values: Sequence[float]) -> int | None:
        return (self.metric or self.timing).best(values)


def _fmt_metric(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:.4f}"


def _fmt_short(value: float) -> str:
    """Three decimals without the leading zero (".412"), as in most papers' tables."""
    if not np.isfinite(value):
        return "–"
    text = f"{value:.3f}"
    return text[1:] if text.startswith("0.") else text


def _fmt_quantity(value: float) -> str:
    if not np.isfinite(value):
        return "–"
    a = abs(value)
    if a >= 1000:
        return f"{value:,.0f}"
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _fmt(col: _Column, value: float, short: bool = False) -> str:
    if col.metric is None:
        return _fmt_quantity(value)
    return _fmt_short(value) if short else _fmt_metric(value)


def _best_mask(col: _Column, values: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """Where the column's best value is, ties as printed (``texts``) included:
    two cells that read the same are both bold or neither; none for neutral metrics."""
    best = col.best(values)
    if best is None:
        return np.zeros(len(values), dtype=bool)
    return np.array([t == texts[best] for t in texts]) & np.isfinite(values)


def _significant_mask(group: Group, col: _Column) -> np.ndarray:
    sig = group.significance
    rows = sig[(sig["metric"] == col.key) & sig["significant"].astype(bool)] if len(sig) else sig
    marked = set(rows["label"]) if len(rows) else set()
    return np.array([label in marked for label in group.labels])


def seeds_phrase(n_seeds: dict[str, int]) -> str:
    """"3 seeds for gru4rec and srgnn, 1 for the others" (labels in table order)."""
    counts: dict[int, list[str]] = {}
    for label, n in n_seeds.items():
        counts.setdefault(n, []).append(label)
    if len(counts) == 1:
        (n,) = counts
        return f"{n} seed{'s' if n != 1 else ''} per model"
    common = max(counts, key=lambda n: (len(counts[n]), -n))
    parts = [f"{n} seed{'s' if n != 1 else ''} for {_and(counts[n])}" for n in sorted(counts, reverse=True)
             if n != common]
    return ", ".join(parts) + f", {common} for the others"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _caption(group: Group, spec: TableSpec, n_boot: int, *, latex: bool) -> str:
    """The table caption after the title: what the numbers are and how they were tested."""
    dag = r"$^{\dagger}$" if latex else "†"
    ci = (r"95\% session-bootstrap CIs are in Table~\ref{tab:sessionbench-" + group.slug + "-ci}." if latex
          else "95% session-bootstrap CIs are in the second table.")
    timings = [TIMINGS[t].header for t in spec.metrics if t in TIMINGS]
    # labels and tuned values may hold "_" (my_model, weighting=log_decay): LaTeX would stop on them
    esc = latex_escape if latex else str
    n_seeds = {esc(label): n for label, n in group.n_seeds.items()}
    period = f", {group.test_period}" if getattr(group, "test_period", None) else ""
    text = (
        f"Means over {seeds_phrase(n_seeds)}; {counts_text(group.n_cases.values(), 'test case')} (all prefixes "
        f"of {counts_text(group.n_sessions.values(), 'test session')}"
        f"{period}), "
        f"full ranking. {ci} Bold: best per column. {dag}: significantly worse than the column's best "
        f"(two-sided paired t-test over the test sessions, cluster-robust since the prefixes of one session "
        f"are correlated; Holm-corrected across models, alpha = {ALPHA})."
    )
    if timings:
        text += f" {', '.join(timings)}: mean over seeds."
    if "Popularity" in spec.metrics:
        text += f" Popularity@{LIST_K} is descriptive (never bold)."
    tuned = getattr(group, "tuned", None) or {}
    if tuned:
        chosen = "; ".join(f"{esc(label)}: {esc(_params_text(p))}" for label, p in tuned.items())
        text += f" Tuned on the validation split: {chosen}."
    return text


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "defaults"


def _table_frame(group: Group) -> pd.DataFrame:
    """The CSV: one row per label; mean, ci_low, ci_high of every column."""
    out = pd.DataFrame(index=pd.Index(group.labels, name="label"))
    out["n_seeds"] = [group.n_seeds[label] for label in group.labels]
    out["n_cases"] = [group.n_cases[label] for label in group.labels]
    out["n_sessions"] = [group.n_sessions[label] for label in group.labels]
    tuned = getattr(group, "tuned", None) or {}
    if tuned:
        out["tuned_params"] = [_params_text(tuned[label]) if label in tuned else "" for label in group.labels]
    runs = getattr(group, "provenance", None) or {}
    if runs:  # which runs each row averages, and their exact configuration and code
        first = {label: (runs.get(label) or [{}])[0] for label in group.labels}
        out["run_ids"] = [" ".join(r["run_id"] for r in runs.get(label, [])) for label in group.labels]
        out["model"] = [first[label].get("model", "") for label in group.labels]
        out["params"] = [json.dumps(first[label].get("params", {}), sort_keys=True, default=str)
                         for label in group.labels]
        for key in ("pool_digest", "code_digest"):
            out[key] = [first[label].get(key, "") for label in group.labels]
    ci_cols = set(group.ci_low.columns)
    for col in group.means.columns:
        out[col] = group.means[col]
        if col in ci_cols:
            out[f"{col}_ci_low"] = group.ci_low[col]
            out[f"{col}_ci_high"] = group.ci_high[col]
    return out


def _markdown_table(group: Group, spec: TableSpec, n_boot: int) -> str:
    cols = spec.columns()
    headers = ["model"] + [c.key if c.metric is not None else c.header for c in cols]
    lines = [f"### {group.title}", "", _caption(group, spec, n_boot, latex=False), ""]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join([":---"] + ["---:"] * len(cols)) + "|")
    cells = {c.key: _column_cells(group, c, markdown=True) for c in cols}
    for i, label in enumerate(group.labels):
        lines.append("| " + " | ".join([_md_escape(label)] + [cells[c.key][i] for c in cols]) + " |")
    ci_cols = [c for c in cols if c.key in group.ci_low.columns and c.metric is not None]
    if ci_cols:
        lines += ["", f"95% percentile bootstrap CIs ({n_boot} replicates; test sessions resampled with all their "
                  "prefixes, which are correlated cases, and seeds where several):", ""]
        lines.append("| " + " | ".join(["model"] + [c.key for c in ci_cols]) + " |")
        lines.append("|" + "|".join([":---"] + ["---:"] * len(ci_cols)) + "|")
        ci_cells = _ci_cells(group, ci_cols)
        for i, label in enumerate(group.labels):
            lines.append("| " + " | ".join([_md_escape(label)] + [ci_cells[c.key][i] for c in ci_cols]) + " |")
    if group.notes:
        lines += [""] + [f"Note: {n}" for n in group.notes]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return str(text).replace("|", r"\|")


def _column_cells(group: Group, col: _Column, *, markdown: bool, short: bool = False) -> list[str]:
    values = group.means[col.key].to_numpy(np.float64) if col.key in group.means.columns \
        else np.full(len(group.labels), np.nan)
    texts = [_fmt(col, value, short) for value in values]
    best = _best_mask(col, values, texts)
    sig = _significant_mask(group, col)
    out = []
    for i, text in enumerate(texts):
        if markdown:
            if best[i]:
                text = f"**{text}**"
            if sig[i]:
                text += "†"
        else:
            text = text.replace("–", "--")
            if best[i]:
                text = rf"\textbf{{{text}}}"
            if sig[i]:
                text += r"$^{\dagger}$"
        out.append(text)
    return out


def _ci_cells(group: Group, cols: list[_Column], short: bool = False) -> dict[str, list[str]]:
    fmt = _fmt_short if short else (lambda v: f"{v:.3f}")
    out = {}
    for c in cols:
        lo, hi = group.ci_low[c.key].to_numpy(), group.ci_high[c.key].to_numpy()
        out[c.key] = ["–" if not (np.isfinite(a) and np.isfinite(b)) else f"[{fmt(a)}, {fmt(b)}]"
                      for a, b in zip(lo, hi)]
    return out


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _latex_tabular(group: Group, cols: list[_Column], cells: dict[str, list[str]]) -> list[str]:
    spec = "@{}l" + "".join("r" for _ in cols) + "@{}"
    groups: list[tuple[str, int]] = []
    for c in cols:
        if groups and groups[-1][0] == c.group and c.group:
            groups[-1] = (c.group, groups[-1][1] + 1)
        else:
            groups.append((c.group, 1))
    top, rules, start = ["Model"], [], 2
    for name, width in groups:
        if name:
            top.append(rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(name)}}}")
            rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
        else:
            top.append("")
        start += width
    second = [""] + [latex_escape(c.header) for c in cols]
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(top) + r" \\", "".join(rules),
             " & ".join(second) + r" \\", r"\midrule"]
    for i, label in enumerate(group.labels):
        lines.append(" & ".join([latex_escape(label)] + [cells[c.key][i] for c in cols]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return lines


def _latex_table(group: Group, spec: TableSpec, n_boot: int) -> str:
    r"""Two booktabs tables: the means (bold best, daggers) and their 95% CIs.

    ``narrow``: ``table`` at \footnotesize with 3-decimal values (".412"),
    sized for one column of a two-column article; ``wide``: ``table*`` at
    \small with 4 decimals. The CI table is a ``table*`` in both (intervals
    are twice as wide as means)."""
    narrow = spec.layout == "narrow"
    cols = spec.columns()
    cells = {c.key: _column_cells(group, c, markdown=False, short=narrow) for c in cols}
    label_base = f"tab:sessionbench-{group.slug}"
    caption = latex_escape(group.title) + ". " + _caption(group, spec, n_boot, latex=True)
    env = "table" if narrow else "table*"
    lines = [
        "% generated by sessionbench report from the stored runs; needs \\usepackage{booktabs}",
        rf"\begin{{{env}}}[t]", r"\centering", r"\footnotesize" if narrow else r"\small",
        r"\setlength{\tabcolsep}{3pt}" if narrow else r"\setlength{\tabcolsep}{4pt}",
        rf"\caption{{{caption}}}", rf"\label{{{label_base}}}",
    ]
    lines += _latex_tabular(group, cols, cells)
    lines += [rf"\end{{{env}}}", ""]
    ci_cols = [c for c in cols if c.key in group.ci_low.columns and c.metric is not None]
    if ci_cols:
        ci_cells = {k: [v.replace("–", "--") for v in vals]
                    for k, vals in _ci_cells(group, ci_cols, short=True).items()}
        ci_caption = (
            rf"{latex_escape(group.title)}: 95\% percentile bootstrap confidence intervals of the means in "
            rf"Table~\ref{{{label_base}}} ({n_boot} replicates; test sessions resampled with replacement, "
            r"each with all its prefixes since these are correlated cases, and seeds where several: "
            r"two-level bootstrap)."
        )
        lines += [r"\begin{table*}[t]", r"\centering", r"\footnotesize", r"\setlength{\tabcolsep}{3pt}",
                  rf"\caption{{{ci_caption}}}", rf"\label{{{label_base}-ci}}"]
        lines += _latex_tabular(group, ci_cols, ci_cells)
        lines += [r"\end{table*}", ""]
    return "\n".join(lines)


def _compact_text(groups: Sequence[Group], ks: Sequence[int]) -> str:
    """The compact summary printed at the end of ``sessionbench run``, at the table's cut-offs ``ks``."""
    if not groups:
        return "no complete runs"
    blocks = []
    for g in groups:
        keys = [metric_key(n, k) for k in ks for n in ("HitRate", "Recall", "NDCG", "MRR")]
        # one target per case (next-item protocol): Recall@K repeats HitRate@K, show it once
        recall = [k for k in keys if k.startswith("Recall@") and k in g.means.columns]
        if recall and np.allclose(g.means[recall].to_numpy(np.float64),
                                  g.means[[k.replace("Recall", "HitRate") for k in recall]].to_numpy(np.float64),
                                  equal_nan=True):
            keys = [k for k in keys if not k.startswith("Recall@")]
        headers = ["model"] + keys + ["fit s", "p95 ms"]
        rows = []
        for label in g.labels:
            row = [label] + [_fmt_metric(g.means.loc[label, k]) if k in g.means.columns else "–" for k in keys]
            row += [_fmt_quantity(g.means.loc[label, "fit_seconds"]),
                    _fmt_quantity(g.means.loc[label, "latency_ms_p95"])]
            rows.append(row)
        blocks.append(f"{g.title}: {counts_text(g.n_cases.values(), 'test case')}\n" + _text_table(headers, rows))
    return "\n\n".join(blocks)


def _text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

    def line(cells: list[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        return "  ".join([first] + [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:])]).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])

"""The results tables: Markdown, LaTeX (booktabs), CSV, and the compact text summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.metrics import METRICS, RANK_METRICS, MetricSpec, metric_key
from harness.report.collection import Group
from harness.report.constants import LIST_K, SUMMARY_KS, TIMINGS, Timing
from harness.report.statistics import ALPHA

@dataclass(frozen=True)
class _Column:
    key: str  # metric key or timing key
    header: str
    group: str  # header group (metric name, "beyond accuracy", "efficiency")
    metric: MetricSpec | None
    timing: Timing | None

    def best(self, values: Sequence[float]) -> int | None:
        return (self.metric or self.timing).best(values)


def _table_columns(table_ks: tuple[int, ...]) -> list[_Column]:
    cols = [_Column(metric_key(n, k), f"@{k}", n, METRICS[n], None) for n in RANK_METRICS for k in table_ks]
    cols += [_Column(metric_key(n, LIST_K), metric_key(n, LIST_K), "beyond accuracy", METRICS[n], None)
             for n in ("Coverage", "Popularity")]
    cols += [_Column(t.key, t.header, "efficiency", None, t) for t in TIMINGS.values()]
    return cols


def _fmt_metric(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:.4f}"


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


def _fmt(col: _Column, value: float) -> str:
    return _fmt_metric(value) if col.metric is not None else _fmt_quantity(value)


def _best_mask(col: _Column, values: np.ndarray) -> np.ndarray:
    """Where the column's best value is (all ties); none for neutral metrics."""
    best = col.best(values)
    if best is None:
        return np.zeros(len(values), dtype=bool)
    return values == values[best]


def _significant_mask(group: Group, col: _Column) -> np.ndarray:
    sig = group.significance
    rows = sig[(sig["metric"] == col.key) & sig["significant"].astype(bool)] if len(sig) else sig
    marked = set(rows["label"]) if len(rows) else set()
    return np.array([label in marked for label in group.labels])


def _caption(group: Group, n_boot: int, *, latex: bool) -> str:
    """The table caption after the title: what the numbers are and how they were tested."""
    cases = "/".join(f"{n:,}" for n in sorted(set(group.n_cases.values())))
    seeds = "/".join(map(str, sorted(set(group.n_seeds.values()))))
    if latex:
        dag = r"$^{\dagger}$"
        ci = (rf"95\% percentile bootstrap CIs over evaluation cases and seeds (two-level bootstrap, "
              rf"{n_boot} replicates) are in Table~\ref{{tab:sessionbench-{group.slug}-ci}}.")
    else:
        dag = "†"
        ci = (f"± is the half-width of the 95% percentile bootstrap CI over evaluation cases and seeds "
              f"(two-level bootstrap, {n_boot} replicates).")
    return (
        f"Means over {seeds} seed(s), {cases} evaluation cases (full ranking). {ci} "
        f"Bold: best per column. {dag}: differs significantly from the best model of the column "
        f"(paired t-test over the same evaluation cases, paired by session and prefix length, per-case "
        f"values averaged over seeds; Holm correction across models; alpha = {ALPHA}). "
        f"Coverage@{LIST_K} and timings are means over seeds (one value per run, no CI); "
        f"Popularity@{LIST_K} is descriptive (never bold)."
    )


def _table_frame(group: Group) -> pd.DataFrame:
    """The CSV: one row per label; mean, ci_low, ci_high of every column."""
    out = pd.DataFrame(index=pd.Index(group.labels, name="label"))
    out["n_seeds"] = [group.n_seeds[label] for label in group.labels]
    out["n_cases"] = [group.n_cases[label] for label in group.labels]
    ci_cols = set(group.ci_low.columns)
    for col in group.means.columns:
        out[col] = group.means[col]
        if col in ci_cols:
            out[f"{col}_ci_low"] = group.ci_low[col]
            out[f"{col}_ci_high"] = group.ci_high[col]
    return out


def _markdown_table(group: Group, n_boot: int) -> str:
    cols = _table_columns(group.table_ks)
    headers = ["model"] + [c.key if c.metric is not None else c.header for c in cols]
    lines = [f"### {group.title}", "", _caption(group, n_boot, latex=False), ""]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join([":---"] + ["---:"] * len(cols)) + "|")
    cells = {c.key: _column_cells(group, c, markdown=True) for c in cols}
    for i, label in enumerate(group.labels):
        lines.append("| " + " | ".join([_md_escape(label)] + [cells[c.key][i] for c in cols]) + " |")
    if group.notes:
        lines += [""] + [f"Note: {n}" for n in group.notes]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return str(text).replace("|", r"\|")


def _column_cells(group: Group, col: _Column, *, markdown: bool) -> list[str]:
    values = group.means[col.key].to_numpy(np.float64)
    best = _best_mask(col, values)
    sig = _significant_mask(group, col)
    has_ci = col.key in group.ci_low.columns and col.metric is not None
    out = []
    for i, label in enumerate(group.labels):
        text = _fmt(col, values[i])
        if markdown:
            if best[i] and np.isfinite(values[i]):
                text = f"**{text}**"
            if sig[i]:
                text += "†"
            if has_ci:
                hw = (group.ci_high.loc[label, col.key] - group.ci_low.loc[label, col.key]) / 2
                if np.isfinite(hw):
                    text += f" ± {hw:.4f}"
        else:
            text = text.replace("–", "--")
            if best[i] and np.isfinite(values[i]):
                text = rf"\textbf{{{text}}}"
            if sig[i]:
                text += r"$^{\dagger}$"
        out.append(text)
    return out


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _latex_tabular(group: Group, cols: list[_Column], cells: dict[str, list[str]]) -> list[str]:
    spec = "l" + "".join("r" for _ in cols)
    groups: list[tuple[str, int]] = []
    for c in cols:
        if groups and groups[-1][0] == c.group:
            groups[-1] = (c.group, groups[-1][1] + 1)
        else:
            groups.append((c.group, 1))
    top, rules, start = ["Model"], [], 2
    for name, width in groups:
        top.append(rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(name)}}}")
        rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
        start += width
    second = [""] + [latex_escape(c.header) for c in cols]
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(top) + r" \\", "".join(rules),
             " & ".join(second) + r" \\", r"\midrule"]
    for i, label in enumerate(group.labels):
        lines.append(" & ".join([latex_escape(label)] + [cells[c.key][i] for c in cols]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return lines


def _latex_table(group: Group, n_boot: int) -> str:
    """Two booktabs tables: the means (bold best, daggers) and the 95% CIs."""
    cols = _table_columns(group.table_ks)
    cells = {c.key: _column_cells(group, c, markdown=False) for c in cols}
    label_base = f"tab:sessionbench-{group.slug}"
    caption = latex_escape(group.title) + ". " + _caption(group, n_boot, latex=True)
    lines = [
        "% generated by sessionbench report from the stored runs; needs \\usepackage{booktabs}",
        r"\begin{table*}[t]", r"\centering", r"\small", r"\setlength{\tabcolsep}{3.5pt}",
        rf"\caption{{{caption}}}", rf"\label{{{label_base}}}",
    ]
    lines += _latex_tabular(group, cols, cells)
    lines += [r"\end{table*}", ""]
    ci_cols = [c for c in cols if c.key in group.ci_low.columns and c.metric is not None]
    ci_cells = {}
    for c in ci_cols:
        lo, hi = group.ci_low[c.key].to_numpy(), group.ci_high[c.key].to_numpy()
        ci_cells[c.key] = ["--" if not (np.isfinite(a) and np.isfinite(b)) else f"[{a:.3f}, {b:.3f}]"
                           for a, b in zip(lo, hi)]
    ci_caption = (
        rf"{latex_escape(group.title)}: 95\% percentile bootstrap confidence intervals of the means in "
        rf"Table~\ref{{{label_base}}} ({n_boot} replicates; evaluation cases resampled with replacement, "
        r"and seeds where several: two-level bootstrap)."
    )
    lines += [r"\begin{table*}[t]", r"\centering", r"\scriptsize", r"\setlength{\tabcolsep}{2.5pt}",
              rf"\caption{{{ci_caption}}}", rf"\label{{{label_base}-ci}}"]
    lines += _latex_tabular(group, ci_cols, ci_cells)
    lines += [r"\end{table*}", ""]
    return "\n".join(lines)


def _compact_text(groups: Sequence[Group]) -> str:
    """The compact summary printed at the end of ``sessionbench run``."""
    if not groups:
        return "no complete runs"
    blocks = []
    for g in groups:
        keys = [metric_key(n, k) for k in SUMMARY_KS for n in ("HitRate", "Recall", "NDCG", "MRR")]
        headers = ["model"] + keys + ["fit s", "p95 ms"]
        rows = []
        for label in g.labels:
            row = [label] + [_fmt_metric(g.means.loc[label, k]) if k in g.means.columns else "–" for k in keys]
            row += [_fmt_quantity(g.means.loc[label, "fit_seconds"]),
                    _fmt_quantity(g.means.loc[label, "latency_ms_p95"])]
            rows.append(row)
        cases = "/".join(f"{n:,}" for n in sorted(set(g.n_cases.values())))
        blocks.append(f"{g.title}: {cases} test cases\n" + _text_table(headers, rows))
    return "\n\n".join(blocks)


def _text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

    def line(cells: list[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        return "  ".join([first] + [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:])]).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])

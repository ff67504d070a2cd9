"""Settings shared by every part of the report: cut-offs, bins, folder names, timing columns."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: K of the beyond-accuracy columns (Coverage, Popularity) and of the
#: accuracy-vs-latency and prefix-length figures
LIST_K = 20
#: the metric vs K curves run over K = 1..MAX_CURVE_K
MAX_CURVE_K = 50
#: prefix-length bins: (lowest, highest, label)
PREFIX_BINS: tuple[tuple[int, float, str], ...] = (
    (1, 1, "1"), (2, 2, "2"), (3, 3, "3"), (4, 4, "4"), (5, 9, "5–9"), (10, math.inf, "10+"),
)
#: figure widths (inches) of ``--figure-width column`` and ``text``: one
#: column and the full text width of a two-column paper
COLUMN_WIDTH = 3.3
TEXT_WIDTH = 7.0
#: default columns of the results tables: these metrics, at the report's
#: TABLE_K_COUNT largest cut-offs (the suite's ``ks``; also the compact
#: summary's), then these timings
TABLE_METRICS: tuple[str, ...] = ("HitRate", "MRR", "NDCG")
TABLE_K_COUNT = 2
TABLE_TIMINGS: tuple[str, ...] = ("fit_seconds",)

REPORT_DIR = "report"
FIGURES_DIR = "figures"
TABLES_DIR = "tables"


@dataclass(frozen=True)
class Timing:
    """A timing column: manifest key, header, unit and direction (like a MetricSpec)."""

    key: str
    header: str
    unit: str
    direction: str  # "higher" or "lower"

    def best(self, values: Sequence[float]) -> int | None:
        arr = np.asarray(values, dtype=np.float64)
        if arr.size == 0 or np.all(np.isnan(arr)):
            return None
        return int(np.nanargmax(arr) if self.direction == "higher" else np.nanargmin(arr))


#: the timing columns of the tables (keys of ``manifest["timings"]``, see harness.evaluation.timing)
TIMINGS: dict[str, Timing] = {
    t.key: t
    for t in (
        Timing("fit_seconds", "fit (s)", "s", "lower"),
        Timing("prefixes_per_second", "prefixes/s", "prefixes/s", "higher"),
        Timing("latency_ms_p50", "p50 (ms)", "ms", "lower"),
        Timing("latency_ms_p95", "p95 (ms)", "ms", "lower"),
    )
}
#: timings read from the manifests (the tables show TIMINGS; the others are kept in the CSV)
_ALL_TIMINGS = ("fit_seconds", "score_seconds", "prefixes_per_second", "latency_ms_p50",
                "latency_ms_p95", "latency_ms_p99", "peak_rss_mb", "model_size")

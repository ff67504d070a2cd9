"""The documented bounds on values a user gives (command line, suites, specs).

Each bound keeps a typo from turning into a huge allocation, an endless run
or a file name the operating system refuses; docs/datasets.md and
docs/suites-and-reports.md state them.
"""

from __future__ import annotations

#: Largest cut-off K: metrics keep a top-K list per test case and a table of
#: K ideal gains, so K = 10**10 would need about 80 GB. 1000 is far beyond
#: the cut-offs of the literature (5..100).
MAX_K = 1000

#: Seeds are handed to NumPy and torch, which take 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1

#: Longest suite name, dataset name or model label: they become parts of
#: folder names (a run folder joins dataset, label, seed and a hash), and most
#: file systems refuse names over 255 bytes.
MAX_NAME_LENGTH = 64

#: Longest grid-point label (``label[key=value,...]``) of a tuned model.
MAX_GRID_LABEL_LENGTH = 150

#: Most grid points one model of a suite may expand into.
MAX_GRID_POINTS = 1000

#: Most bootstrap replicates per confidence interval (``--n-bootstrap``): the
#: cost grows linearly (about 10 s per 1000 on a large report), and the 95%
#: percentile bounds no longer move in the third decimal long before this.
MAX_BOOTSTRAP = 100_000

#: Shortest time limit of a phase (``timeout``, ``--timeout``), in seconds: the
#: watchdog looks every 0.1 s, so a shorter limit would not be enforced on a
#: phase that ends before its first look.
MIN_TIMEOUT_SECONDS = 1.0
